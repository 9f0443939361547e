"""The DC session requests Josev sends the station, and the updates it keeps per EVSE.

cable_check runs the IMD's self-test and answers `ongoing` until a fresh verdict (bounded like
EVerest's: the self-test 30 s, a sample within 5 s, else `fault`); cs_contactor_status comes
from the board's feedback; power_electronics_setpoint is clamped by limits/setpoint.py and sent
to the modules; stop_charging switches them off; cp_pwm goes to the board; meter_values comes
from the modules' telemetry. A session that Josev ends (SessionStop, Idle) switches the modules
off: the safe side.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Protocol, cast

from csbridge.config import Config, EvseConfig, Kind
from csbridge.engine import LimitsEngine
from csbridge.limits import (
    Absence,
    Composition,
    DcRequest,
    EvseInputs,
    Refused,
    dc_setpoint,
    module_contacts,
)
from csbridge.messages import (
    ABSENT,
    CableCheckRequest,
    CableCheckResponse,
    ContactorStatus,
    CpPilotState,
    CpPwmRequest,
    CpPwmResponse,
    CpStatusUpdate,
    CsContactorStatusRequest,
    CsContactorStatusResponse,
    CsContactorStatusUpdate,
    EvRatedLimitsUpdate,
    FaultName,
    HandlerTable,
    HardwareFaultUpdate,
    HlcChargingUpdate,
    Iso15118StateInfoUpdate,
    IsolationStatus,
    Message,
    MeterValuesRequest,
    MeterValuesResponse,
    Payload,
    PerPhase,
    PowerElectronicsSetpointRequest,
    PowerElectronicsSetpointResponse,
    ServiceStatusUpdate,
    SlacStatusUpdate,
    StopChargingRequest,
    StopChargingResponse,
    TransactionStatusUpdate,
    handles,
    value_or,
)
from csbridge.power import PowerOnReason, PowerStage
from csbridge.sources import CpState, cp_status

log = logging.getLogger("csbridge.session")

KEEPALIVE_S = 1.0
"""Setpoints are sent again this often: well inside a module's own 10 s watchdog."""
SELF_TEST_TIMEOUT_S = 30.0
SAMPLE_TIMEOUT_S = 5.0
SESSION_OVER = frozenset({"SessionStop", "Idle"})


class ForEvse(Protocol):
    """A message about one EVSE."""

    NAME: ClassVar[str]

    @property
    def evse_id(self) -> str: ...


@dataclass(slots=True)
class EvseSession:
    """What Josev told about one EVSE's session, and the cable check under way."""

    hlc_charging: bool = False
    hlc_reported: bool = False
    """Josev said whether an HLC session runs (DC power needs one)."""
    slac_status: str | None = None
    iso15118_state: str | None = None
    ev_rated_limits: EvRatedLimitsUpdate | None = None
    transaction: TransactionStatusUpdate | None = None
    cable_check_started: float | None = None
    energy_wh: float = 0.0
    metered_at: float | None = None
    request: DcRequest | None = None
    """The EV's last accepted DC request: resent, re-clamped, while the session runs."""
    pwm_on: bool = False
    cp_status: str | None = None
    contactor: str | None = None
    faults: frozenset[tuple[str, FaultName]] = frozenset()


class SessionHandlers:
    def __init__(
        self,
        config: Config,
        engine: LimitsEngine,
        stage: PowerStage,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = {evse.evse_id: evse for evse in config.evse}
        self._engine = engine
        self._stage = stage
        self._clock = clock
        self.sessions = {evse.evse_id: EvseSession() for evse in config.evse}
        self.pushed: asyncio.Queue[Message] = asyncio.Queue()
        """Updates for Josev that the station raises itself (CP, contactors, faults)."""
        engine.observers.append(self._observe)

    def handlers(self) -> HandlerTable:
        """The methods below marked @handles."""
        return HandlerTable.of(self)

    def _evse(self, message: ForEvse) -> tuple[str, EvseConfig] | None:
        evse_id = message.evse_id
        if evse_id not in self._config:
            log.warning("event=unknown_evse message=%s evse_id=%r", message.NAME, evse_id)
            return None
        return evse_id, self._config[evse_id]

    # -- updates from Josev ------------------------------------------------------------------

    @handles(SlacStatusUpdate)
    def slac_status(self, message: SlacStatusUpdate) -> None:
        found = self._evse(message)
        if found is not None:
            self.sessions[found[0]].slac_status = message.status

    @handles(EvRatedLimitsUpdate)
    def ev_rated_limits(self, message: EvRatedLimitsUpdate) -> None:
        found = self._evse(message)
        if found is not None:
            self.sessions[found[0]].ev_rated_limits = message

    @handles(HlcChargingUpdate)
    def hlc_charging(self, message: HlcChargingUpdate) -> None:
        found = self._evse(message)
        if found is None:
            return
        session = self.sessions[found[0]]
        session.hlc_charging = message.status
        session.hlc_reported = True
        if not session.hlc_charging:
            self.switch_off(found[0], "the HLC session ended")

    @handles(TransactionStatusUpdate)
    def transaction_status(self, message: TransactionStatusUpdate) -> None:
        evse_id = message.evse_id
        if evse_id is ABSENT or evse_id not in self.sessions:
            return
        self.sessions[evse_id].transaction = message
        if message.status == "ended":
            self.switch_off(evse_id, "the transaction ended")

    @handles(ServiceStatusUpdate)
    def service_status(self, message: ServiceStatusUpdate) -> None:
        """Josev's service going down takes its sessions with it: the safe side."""
        status = message.status
        if status in ("stopping", "error"):
            service = value_or(message.service, "josev")
            self.switch_everything_off(f"Josev's {service} reports {status}")

    @handles(Iso15118StateInfoUpdate)
    def state_info(self, message: Iso15118StateInfoUpdate) -> None:
        found = self._evse(message)
        if found is None:
            return
        evse_id = found[0]
        state = message.session_status
        self.sessions[evse_id].iso15118_state = state
        if state in SESSION_OVER:
            self.switch_off(evse_id, f"Josev reports {state}")
            self._set_contactor(evse_id, closed=False)

    # -- requests ----------------------------------------------------------------------------

    @handles(CableCheckRequest)
    def cable_check(self, message: CableCheckRequest) -> CableCheckResponse | None:
        found = self._evse(message)
        if found is None:
            return None
        evse_id, evse = found
        if evse.imd is None:
            return self._cable_check_answer(evse_id, "finished", "no_imd")
        session = self.sessions[evse_id]
        now = self._clock()
        if message.cable_check_action == "start" or session.cable_check_started is None:
            session.cable_check_started = now
            self._set_contactor(evse_id, closed=True)
            self._stage.start_imd_self_test(evse_id)
            return self._cable_check_answer(evse_id, "ongoing")
        return self._cable_check_status(evse_id, evse, session, now)

    def _cable_check_status(
        self, evse_id: str, evse: EvseConfig, session: EvseSession, now: float
    ) -> CableCheckResponse:
        assert session.cable_check_started is not None
        started = session.cable_check_started
        reading = self._engine.inputs(evse_id).imd
        dc = self._engine.snapshots.get(evse_id).dc
        reported = dc.isolation_status if dc is not None else None
        isolation: IsolationStatus = reported.value if reported is not None else "invalid"
        fresh_after_start = reading is not None and reading.at > started
        verdict = isolation in ("valid", "warning", "fault")
        if fresh_after_start and reading is not None and not reading.self_test_running and verdict:
            return self._cable_check_answer(evse_id, "finished", isolation)
        testing = fresh_after_start and reading is not None and reading.self_test_running
        if now - started > SELF_TEST_TIMEOUT_S:
            return self._cable_check_answer(evse_id, "finished", "fault")
        last_sample = reading.at if reading is not None else started
        if not testing and now - max(last_sample, started) > SAMPLE_TIMEOUT_S:
            return self._cable_check_answer(evse_id, "finished", "fault")
        return self._cable_check_answer(evse_id, "ongoing")

    @staticmethod
    def _cable_check_answer(
        evse_id: str,
        status: Literal["ongoing", "finished"],
        isolation: IsolationStatus | None = None,
    ) -> CableCheckResponse:
        return CableCheckResponse(
            evse_id=evse_id,
            cable_check_status=status,
            isolation_level=isolation if isolation is not None else ABSENT,
        )

    @handles(CsContactorStatusRequest)
    def contactor_status(
        self, message: CsContactorStatusRequest
    ) -> CsContactorStatusResponse | None:
        found = self._evse(message)
        if found is None:
            return None
        evse_id = found[0]
        board = self._engine.inputs(evse_id).board
        if board is None or board.contactor_closed is None:
            return CsContactorStatusResponse(
                evse_id=evse_id, status="error", info="no contactor feedback"
            )
        return CsContactorStatusResponse(
            evse_id=evse_id, status="closed" if board.contactor_closed else "opened"
        )

    @handles(PowerElectronicsSetpointRequest)
    def setpoint(
        self, message: PowerElectronicsSetpointRequest
    ) -> PowerElectronicsSetpointResponse | None:
        found = self._evse(message)
        if found is None:
            return None
        evse_id, evse = found
        dc = message.dc
        if evse.kind is Kind.AC or dc is ABSENT:
            # An AC EV draws what the PWM allows: there is no power stage to command.
            return PowerElectronicsSetpointResponse(
                evse_id=evse_id, status="accepted" if evse.kind is Kind.AC else "rejected"
            )
        session = self.sessions[evse_id]
        if session.hlc_charging is False and session.hlc_reported:
            log.warning(
                "event=setpoint_rejected evse=%s why=no HLC session (basic charging)", evse_id
            )
            return PowerElectronicsSetpointResponse(evse_id=evse_id, status="rejected")
        request = DcRequest(
            voltage=value_or(dc.voltage, 0.0),
            ev_max_voltage=min(message.ev_limits.maximum_voltage, _rated_max_voltage(session)),
            current=value_or(dc.charge_current, None),
            power=value_or(dc.charge_power, None),
            precharge=message.is_precharge is True,
        )
        if not self._apply(evse_id, request):
            return PowerElectronicsSetpointResponse(evse_id=evse_id, status="rejected")
        reason = (
            PowerOnReason.DC_PRE_CHARGE if request.precharge else PowerOnReason.FULL_POWER_CHARGING
        )
        self._set_contactor(evse_id, closed=True, reason=reason)
        self.sessions[evse_id].request = request
        return PowerElectronicsSetpointResponse(evse_id=evse_id, status="accepted")

    def drive(self, evse_id: str, request: DcRequest) -> bool:
        """Run the stack at `request` (clamped now and on every keepalive), for a caller other
        than Josev (EVerest through the export); False: refused, and the stack is off."""
        if not self._apply(evse_id, request):
            self.switch_off(evse_id, "the requested setpoint is not allowed")
            return False
        self.sessions[evse_id].request = request
        return True

    def _apply(self, evse_id: str, request: DcRequest) -> bool:
        """Clamp `request` to what is reported now and command the modules; False: refused."""
        result = dc_setpoint(self._engine.entries.get(evse_id), request, self._contacts(evse_id))
        if isinstance(result, Refused):
            log.warning(
                "event=setpoint_rejected evse=%s reason=%s why=%s",
                evse_id,
                result.reason,
                result.detail,
            )
            return False
        self._stage.command(evse_id, result)
        return True

    async def keep_alive(self) -> None:
        """Resend every running session's setpoint, clamped to the limits of now, faster than
        the modules' watchdog; a session the limits no longer allow is switched off."""
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            for evse_id, session in self.sessions.items():
                if session.request is not None and not self._apply(evse_id, session.request):
                    self.switch_off(evse_id, "the setpoint is no longer allowed")

    def switch_off(self, evse_id: str, why: str) -> None:
        session = self.sessions[evse_id]
        if session.request is not None:
            log.warning("event=modules_off evse=%s why=%s", evse_id, why)
        session.request = None
        self._stage.switch_off(evse_id)

    def switch_everything_off(self, why: str) -> None:
        """The safe side: MQTT lost, the bridge stopping."""
        for evse_id in self.sessions:
            self.switch_off(evse_id, why)

    def _contacts(self, evse_id: str) -> list[Any]:
        composition = self._engine.composition(evse_id)
        if composition is None or composition.stack is None:
            return []
        stack = composition.stack
        readings = self._engine.inputs(evse_id).modules
        silent = {
            name: readings[name].at
            for name, reason in stack.absent.items()
            if reason is Absence.STALE and name in readings
        }
        return module_contacts(stack.healthy, silent, self._clock(), self._stage.watchdogs(evse_id))

    @handles(StopChargingRequest)
    def stop_charging(self, message: StopChargingRequest) -> StopChargingResponse | None:
        found = self._evse(message)
        if found is None:
            return None
        evse_id = found[0]
        self.switch_off(evse_id, "stop_charging")
        self._set_contactor(evse_id, closed=False)
        self.sessions[evse_id].cable_check_started = None
        return StopChargingResponse(evse_id=evse_id, status="accepted")

    @handles(CpPwmRequest)
    def cp_pwm(self, message: CpPwmRequest) -> CpPwmResponse | None:
        found = self._evse(message)
        if found is None:
            return None
        evse_id = found[0]
        pwm_on = not (message.error_state or message.fault_state)
        # HLC: 5 % duty; basic charging: the current as a duty per IEC 61851-1 (A / 0.6 up to 51 A).
        current = float(value_or(message.current, 0.0))
        duty = 5.0 if message.hlc else min(100.0, max(0.0, current / 0.6))
        if not self._stage.drive_pwm(evse_id, on=pwm_on, duty_percent=duty):
            return CpPwmResponse(
                evse_id=evse_id, status="error", info="no board to pass the PWM to"
            )
        self.sessions[evse_id].pwm_on = pwm_on
        self._observe(evse_id, self._engine.inputs(evse_id), self._engine.composition(evse_id))
        return CpPwmResponse(evse_id=evse_id, status="valid")

    @handles(MeterValuesRequest)
    def meter_values(self, message: MeterValuesRequest) -> MeterValuesResponse | None:
        evse_id = value_or(message.evse_id, None) or next(iter(self._config))
        if evse_id not in self._config:
            return None
        dc = self._engine.snapshots.get(evse_id).dc
        voltage = float(dc.present_voltage) if dc is not None else 0.0
        current = float(dc.present_current) if dc is not None else 0.0
        session = self.sessions[evse_id]
        now = self._clock()
        if session.metered_at is not None:
            session.energy_wh += max(0.0, voltage * current) * (now - session.metered_at) / 3600
        session.metered_at = now
        zero = PerPhase(l1=0.0, l2=0.0, l3=0.0)
        return MeterValuesResponse(
            evse_id=evse_id,
            timestamp=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            voltage=zero,
            current=zero,
            power_factor=1.0,
            frequency=50.0,
            total_active_energy_imported=round(session.energy_wh, 3),
            total_reactive_energy_imported=0.0,
            dc_voltage=voltage,
            dc_current=current,
        )

    # -- what the station tells Josev by itself ---------------------------------------------

    def _observe(self, evse_id: str, inputs: EvseInputs, composition: Composition | None) -> None:
        session = self.sessions[evse_id]
        board = inputs.board
        if board is not None and board.cp_state is not None:
            if board.cp_state is CpState.A:
                session.pwm_on = False  # unplugged: the board stops the PWM until asked again
            state = cp_status(board.cp_state, session.pwm_on)
            if state != session.cp_status:
                session.cp_status = state
                connector = self._config[evse_id].connectors[0].id
                self._push(
                    CpStatusUpdate(
                        evse_id=evse_id,
                        connector_id=connector,
                        state=cast(CpPilotState, state),  # a letter of CpState, 1 or 2 added
                    )
                )
        if board is not None and board.contactor_closed is not None:
            contactor: ContactorStatus = "closed" if board.contactor_closed else "opened"
            if contactor != session.contactor:
                session.contactor = contactor
                self._push(CsContactorStatusUpdate(evse_id=evse_id, status=contactor))
        faults = _faults(inputs, composition)
        for component, fault in sorted(faults - session.faults):
            self._push(
                HardwareFaultUpdate(evse_id=evse_id, component_name=component, fault_name=fault)
            )
            if session.request is not None:
                self.switch_off(evse_id, f"{component}: {fault}")
        session.faults = faults

    def _push(self, payload: Payload) -> None:
        self.pushed.put_nowait(Message(payload))

    def _set_contactor(
        self,
        evse_id: str,
        *,
        closed: bool,
        reason: PowerOnReason = PowerOnReason.DC_CABLE_CHECK,
    ) -> None:
        if closed:
            self._stage.close_contactors(evse_id, reason)
        else:
            self._stage.open_contactors(evse_id)


def _faults(
    inputs: EvseInputs, composition: Composition | None
) -> frozenset[tuple[str, FaultName]]:
    """(component, fault_name) of every fault the sources report now."""
    faults: set[tuple[str, FaultName]] = set()
    for name, module in inputs.modules.items():
        if module.fault or module.over_temperature:
            faults.add((name, "other"))
        if module.input_lost:
            faults.add((name, "power_loss"))
    if inputs.imd is not None and inputs.imd.device_fault:
        faults.add(("imd", "other"))
    if inputs.board is not None and inputs.board.emergency_stop:
        faults.add(("board", "emergency_stop"))
    dc = composition.snapshot.dc if composition is not None else None
    if dc is not None and dc.isolation_status is not None and dc.isolation_status.value == "fault":
        faults.add(("imd", "ground_fault"))
    return frozenset(faults)


def _rated_max_voltage(session: EvseSession) -> float:
    """The EV's own maximum voltage from its rated limits (ev_rated_limits), if it told one."""
    limits = session.ev_rated_limits
    rated = value_or(limits.dc_rated_limits, {}) if limits is not None else {}
    values = [
        float(value)
        for key, value in rated.items()
        if "max" in key and "voltage" in key and isinstance(value, int | float)
    ]
    return min(values, default=float("inf"))
