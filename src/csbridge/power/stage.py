"""Every EVSE's power path: its modules, board and IMD, each behind the driver of the transport
that reaches it (chosen once, in power/wiring.py)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from csbridge.limits import Setpoint
from csbridge.power.drivers import (
    AcDischargeBoardDriver,
    BidirectionalModuleDriver,
    BoardDriver,
    ImdDriver,
    ModuleDriver,
    PhasedModule,
    PowerOnReason,
)
from csbridge.power.pool import PoolModules

log = logging.getLogger("csbridge.power")


@dataclass(frozen=True, slots=True)
class EvsePower:
    """One EVSE's drivers; `modules` by name, in configuration order."""

    modules: Mapping[str, ModuleDriver]
    board: BoardDriver
    imd: ImdDriver


class PowerStage:
    def __init__(self, evses: Mapping[str, EvsePower]) -> None:
        self.evses: Mapping[str, EvsePower] = dict(evses)
        """Each EVSE's drivers, by evse_id."""

    def watchdogs(self, evse_id: str) -> dict[str, float]:
        return {name: driver.watchdog_s for name, driver in self.evses[evse_id].modules.items()}

    def min_currents(self, evse_id: str) -> dict[str, float]:
        """Each module's smallest well-regulated output current, by name, in configuration
        order."""
        modules = self.evses[evse_id].modules
        if isinstance(modules, PoolModules):  # any pool module may come to serve it
            modules = modules.every
        return {name: driver.min_current_a for name, driver in modules.items()}

    def command(self, evse_id: str, setpoint: Setpoint) -> None:
        """Every module the setpoint names, in its order, to its share and on; an import
        setpoint in import mode (a module whose driver cannot import is switched off)."""
        modules = self.evses[evse_id].modules
        for target in setpoint.modules:
            driver = modules.get(target.name)
            if driver is None:
                # A pooled EVSE drives only the modules serving it now; a setpoint never names
                # another (its limits count only those), but one that did is not obeyed.
                log.error(
                    "event=module_not_serving evse=%s module=%s -- not commanded",
                    evse_id,
                    target.name,
                )
                continue
            if not setpoint.import_:
                driver.command(target.voltage, target.current, precharge=setpoint.precharge)
            elif isinstance(driver, BidirectionalModuleDriver):
                driver.command_import(target.voltage, target.current)
            else:
                log.error(
                    "event=import_not_possible evse=%s module=%s why=its driver cannot import "
                    "-- off",
                    evse_id,
                    target.name,
                )
                driver.switch_off()

    def switch_off(self, evse_id: str) -> None:
        """Every module of the EVSE off (a module without an off command: 0 A)."""
        for driver in self.evses[evse_id].modules.values():
            driver.switch_off()

    def allow_ac_discharge(self, evse_id: str, power_w: float) -> bool:
        """Tell the EVSE's board the discharge an AC BPT setpoint allows; False: its board
        cannot be told (the EV's inverter still keeps to what Josev negotiated)."""
        board = self.evses[evse_id].board
        if not isinstance(board, AcDischargeBoardDriver):
            return False
        board.allow_discharge(power_w)
        return True

    def close_contactors(self, evse_id: str, reason: PowerOnReason) -> None:
        self.evses[evse_id].board.close_contactors(reason)

    def open_contactors(self, evse_id: str) -> None:
        self.evses[evse_id].board.open_contactors()

    def drive_pwm(self, evse_id: str, *, on: bool, duty_percent: float) -> bool:
        """False: the EVSE has no board to pass the PWM to."""
        return self.evses[evse_id].board.drive_pwm(on, duty_percent)

    def lock(self, evse_id: str) -> bool:
        """Lock the connector; False: the EVSE has no board to pass it to. The board's readings
        (`lock`) say when it is locked."""
        return self.evses[evse_id].board.lock()

    def unlock(self, evse_id: str) -> bool:
        """Unlock the connector; False: the EVSE has no board to pass it to."""
        return self.evses[evse_id].board.unlock()

    def start_imd_self_test(self, evse_id: str, ev_max_voltage: float | None = None) -> None:
        """The IMD's self-test alone (a reset's check); `ev_max_voltage` as in
        start_cable_check."""
        self.evses[evse_id].imd.start_self_test(ev_max_voltage)

    def start_cable_check(self, evse_id: str, ev_max_voltage: float | None) -> None:
        """The cable check begins: modules that carry a charging phase are in CableCheck until
        end_cable_check (or a precharge or charging setpoint), and the IMD tests itself for an
        EV of `ev_max_voltage` (None: the EV told none)."""
        self._phase(evse_id, running=True)
        self.evses[evse_id].imd.start_self_test(ev_max_voltage)

    def end_cable_check(self, evse_id: str) -> None:
        """The EVSE left its cable check (stopped or failed); a no-op when none runs."""
        self._phase(evse_id, running=False)

    def _phase(self, evse_id: str, *, running: bool) -> None:
        for driver in self.evses[evse_id].modules.values():
            if isinstance(driver, PhasedModule):
                driver.cable_check(running)
