"""The power path through EVerest's API: power supplies (power_supply_DC) take a mode and an
export setpoint, IMDs (isolation_monitor) a self-test request."""

from __future__ import annotations

from dataclasses import dataclass

from csbridge.limits import DEFAULT_WATCHDOG_S
from csbridge.power.drivers import DEFAULT_MIN_CURRENT_A
from csbridge.sources.everest import EverestSources


@dataclass(frozen=True, slots=True)
class EverestApiModule:
    """A power supply behind EVerest's API; its charging phase is EVerest's CableCheck while
    the EVSE's cable check runs, then PreCharge or Charging.

    csbridge's session never drives the supply during the cable check (EVerest's EvseManager
    raises it to the cable-check voltage at 2 A; here it is held off while the IMD tests
    itself and measures): what it is sent then, its Off, carries CableCheck, as EVerest's
    powersupply_DC_off sends Off in the phase it is in; Off outside the check carries Other."""

    sources: EverestSources
    evse_id: str
    name: str
    watchdog_s: float = DEFAULT_WATCHDOG_S
    min_current_a: float = DEFAULT_MIN_CURRENT_A

    def command(self, voltage: float, current: float, *, precharge: bool) -> None:
        phase = self.sources.charging_phase(self.evse_id, precharge=precharge)
        self.sources.command(self.evse_id, self.name, voltage, current, phase)

    def switch_off(self) -> None:
        self.sources.switch_off(self.evse_id, self.name)

    def cable_check(self, running: bool) -> None:
        self.sources.cable_check(self.evse_id, running=running)


@dataclass(frozen=True, slots=True)
class EverestApiImd:
    """An IMD behind EVerest's API: its self-test runs at the cable-check voltage EVerest's
    EvseManager would use for the EV's maximum voltage (500 V assumed when it told none)."""

    sources: EverestSources
    evse_id: str

    def start_self_test(self, ev_max_voltage: float | None = None) -> None:
        self.sources.start_self_test(self.evse_id, ev_max_voltage)
