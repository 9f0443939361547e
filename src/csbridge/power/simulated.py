"""The power path into simulated devices: what the session commands shows in their next
reading (or, for a simulated device on a CAN bus, its next frame)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from csbridge.limits import DEFAULT_WATCHDOG_S
from csbridge.power.drivers import PowerOnReason
from csbridge.sources.simulated import (
    SimulatedBoard,
    SimulatedCanBoard,
    SimulatedCanImd,
    SimulatedDevices,
    SimulatedImd,
    SimulatedModule,
)
from csbridge.support import Clock


@dataclass(frozen=True, slots=True)
class SimulatedModuleDriver:
    """A reading-level simulated module (no wire protocol): its output is the setpoint, each
    command stamped with the driver's clock so the module switches itself off when commands
    stop for its timeout, as a real module's CAN watchdog does."""

    module: SimulatedModule
    watchdog_s: float = DEFAULT_WATCHDOG_S
    clock: Clock = field(default=time.monotonic)

    @property
    def min_current_a(self) -> float:
        """The module's configured minimum current ([simulated] min_current_a)."""
        simulated = self.module.config.simulated
        assert simulated is not None  # only modules with a [simulated] table are simulated
        return simulated.min_current_a

    def command(self, voltage: float, current: float, *, precharge: bool) -> None:
        self.module.command(voltage, current, self.clock())

    def command_import(self, voltage: float, current: float) -> None:
        """A reading-level module reports the current it takes from the EV as a magnitude,
        as the Infypower BEG does."""
        self.module.command(voltage, current, self.clock())

    def switch_off(self) -> None:
        self.module.switch_off(self.clock())


@dataclass(frozen=True, slots=True)
class SimulatedBoardDriver:
    """A simulated board that takes no BOARD_Command: its contactors follow at once, and it
    reports them straight away as a real board's feedback would; its lock travels as the
    simulated actuator does (MOVING, then the end)."""

    devices: SimulatedDevices
    board: SimulatedBoard | SimulatedCanBoard

    def close_contactors(self, reason: PowerOnReason) -> None:
        self._switch(closed=True)

    def open_contactors(self) -> None:
        self._switch(closed=False)

    def drive_pwm(self, on: bool, duty_percent: float) -> bool:
        self.board.pwm_on = on
        self.board.pwm_duty_percent = duty_percent
        if isinstance(self.board, SimulatedCanBoard):
            self.devices.emit(self.board)  # its status frame says the PWM is driven
        # A reading-level board's readings carry no PWM: the session keeps whether it is on.
        return True

    def lock(self) -> bool:
        self.devices.command_lock(self.board, locked=True)
        return True

    def allow_discharge(self, power_w: float) -> None:
        self.board.discharge_allowed_w = power_w

    def unlock(self) -> bool:
        self.devices.command_lock(self.board, locked=False)
        return True

    def _switch(self, *, closed: bool) -> None:
        self.board.contactor_closed = closed
        self.devices.emit(self.board)


@dataclass(frozen=True, slots=True)
class SimulatedImdDriver:
    """A simulated IMD (reading-level or on a CAN bus): told directly, never over the bus, and
    it reports the running test at once."""

    devices: SimulatedDevices
    imd: SimulatedImd | SimulatedCanImd

    def start_self_test(self, ev_max_voltage: float | None = None) -> None:
        self.imd.start_self_test(self.devices.clock())
        self.devices.emit(self.imd)


def simulated_module_driver(
    devices: SimulatedDevices, evse_id: str, name: str
) -> SimulatedModuleDriver | None:
    """The driver of a reading-level simulated module; None when `name` is not one."""
    simulated = devices.modules.get((evse_id, name))
    if not isinstance(simulated, SimulatedModule):
        return None
    return SimulatedModuleDriver(simulated, clock=devices.clock)
