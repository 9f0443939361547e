"""The status code Josev is told, by a fixed precedence (first match wins):

1. e-stop pressed, or an isolation fault           -> evse_emergency_shutdown
   (AC: an RCD error too)
2. csbridge is stopping (SIGTERM)                  -> evse_shutdown
3. no module fresh and healthy now although one has told its capability (silent, faulted,
   offline, too hot), or a module with a fault that stops the EVSE; an IMD that reports a
   device fault or went silent after it was seen; a board that reports a fault or went
   silent after it was seen; a meter silent past its deadline after it was seen; a module
   that delivers output while commanded off
                                                    -> evse_malfunction
4. grid input lost (any fresh module's input flags) -> evse_utility_interrupt_event
5. disabled by the operator, or out of service      -> evse_shutdown
6. the IMD runs its self-test                       -> evse_isolation_monitoring_active
7. a configured source has not reported since start (modules: none has told its capability
   yet)                                             -> evse_not_ready
8. otherwise                                        -> evse_ready

Under every status but evse_ready and evse_isolation_monitoring_active the maxima are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from csbridge.limits.model import StatusCode


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusFacts:
    emergency_stop: bool = False
    isolation_fault: bool = False
    rcd_error: bool = False
    station_stopping: bool = False
    modules_lost: bool = False
    imd_failed: bool = False
    board_failed: bool = False
    meter_failed: bool = False
    input_lost: bool = False
    disabled: bool = False
    unavailable: bool = False
    stray_output: bool = False
    self_test_running: bool = False
    waiting_for_first_data: bool = False


def decide_status(facts: StatusFacts) -> StatusCode:
    if facts.emergency_stop or facts.isolation_fault or facts.rcd_error:
        return StatusCode.EVSE_EMERGENCY_SHUTDOWN
    if facts.station_stopping:
        # Whatever else is wrong, nothing will serve this EVSE any more: say so plainly.
        return StatusCode.EVSE_SHUTDOWN
    if (
        facts.modules_lost
        or facts.imd_failed
        or facts.board_failed
        or facts.meter_failed
        or facts.stray_output
    ):
        return StatusCode.EVSE_MALFUNCTION
    if facts.input_lost:
        return StatusCode.EVSE_UTILITY_INTERRUPT_EVENT
    if facts.disabled or facts.unavailable:
        return StatusCode.EVSE_SHUTDOWN
    if facts.self_test_running:
        return StatusCode.EVSE_ISOLATION_MONITORING_ACTIVE
    if facts.waiting_for_first_data:
        return StatusCode.EVSE_NOT_READY
    return StatusCode.EVSE_READY


ENERGY_FLOWS = frozenset({StatusCode.EVSE_READY, StatusCode.EVSE_ISOLATION_MONITORING_ACTIVE})


def allows_energy(status: StatusCode) -> bool:
    return status in ENERGY_FLOWS
