"""What a power path is asked to do, whatever carries it: the drivers' protocols, one driver per
transport behind each (power/can.py, power/everest.py, power/simulated.py), and the "none"
drivers of a device that no transport can command."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from csbridge.limits import DEFAULT_WATCHDOG_S

DEFAULT_MIN_CURRENT_A = 1.0
"""A module's smallest well-regulated output current when its profile states none."""


class PowerOnReason(enum.StrEnum):
    """Why the contactors may close: EVerest's PowerOnOff reasons, by EVerest's names (opening
    them is PowerOff, which needs no reason)."""

    DC_CABLE_CHECK = "DCCableCheck"
    DC_PRE_CHARGE = "DCPreCharge"
    FULL_POWER_CHARGING = "FullPowerCharging"


class ModuleDriver(Protocol):
    """One power module of a stack."""

    @property
    def watchdog_s(self) -> float:
        """How long the module holds its output without a fresh command."""
        ...

    @property
    def min_current_a(self) -> float:
        """The smallest output current the module regulates well: a smaller share is better
        given to fewer modules."""
        ...

    def command(self, voltage: float, current: float, *, precharge: bool) -> None:
        """Output `voltage` at most `current`, and on (the setpoint is already clamped)."""
        ...

    def switch_off(self) -> None:
        """Output off."""
        ...


@runtime_checkable
class PhasedModule(Protocol):
    """A module whose commands carry the charging phase (EVerest's power_supply_DC): told when
    its EVSE's cable check starts and ends, so that what it is sent in between (the session
    holds modules off during the check) says CableCheck."""

    def cable_check(self, running: bool) -> None: ...


@runtime_checkable
class BidirectionalModuleDriver(Protocol):
    """A module that can also take energy from the EV (import mode). A driver without this
    cannot: an import setpoint switches it off instead."""

    def command_import(self, voltage: float, current: float) -> None:
        """Take at most `current` (a magnitude) from the EV, the import cut-off at `voltage`,
        and on; the module is put in import mode first (its output off while it changes). The
        setpoint is already clamped."""
        ...


@runtime_checkable
class AcDischargeBoardDriver(Protocol):
    """An AC board that is told the discharge an AC BPT setpoint allows (the EV's own inverter
    does the work). A board without this is not told; the setpoint stands all the same."""

    def allow_discharge(self, power_w: float) -> None:
        """The EV may give back at most `power_w` in total (0: no discharge)."""
        ...


class BoardDriver(Protocol):
    """The EVSE's control board: contactors, the CP PWM and the connector lock."""

    def close_contactors(self, reason: PowerOnReason) -> None: ...

    def open_contactors(self) -> None: ...

    def drive_pwm(self, on: bool, duty_percent: float) -> bool:
        """Drive the CP PWM; False when there is no board to pass it to."""
        ...

    def lock(self) -> bool:
        """Lock the connector; False when there is no board to pass it to. Whether it locked
        shows in the board's readings (`lock`), not here."""
        ...

    def unlock(self) -> bool:
        """Unlock the connector; False when there is no board to pass it to."""
        ...


class ImdDriver(Protocol):
    """The EVSE's insulation monitor."""

    def start_self_test(self, ev_max_voltage: float | None = None) -> None:
        """Test itself; `ev_max_voltage` is the EV's maximum voltage (None: the EV told none),
        for an IMD whose test takes a voltage (EVerest's derives the cable-check voltage from
        it); an IMD whose self-test has no voltage ignores it."""
        ...


@dataclass(frozen=True, slots=True)
class NoModuleDriver:
    """A module no transport can command (a profile without [[command]] tables, or no way to
    reach it): every command goes nowhere. Its watchdog and minimum current are still its
    profile's, if it has them."""

    watchdog_s: float = DEFAULT_WATCHDOG_S
    min_current_a: float = DEFAULT_MIN_CURRENT_A

    def command(self, voltage: float, current: float, *, precharge: bool) -> None:
        pass

    def switch_off(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class NoBoardDriver:
    """No board, or none that can be commanded: contactors go unswitched, the PWM and the lock
    are refused."""

    def close_contactors(self, reason: PowerOnReason) -> None:
        pass

    def open_contactors(self) -> None:
        pass

    def drive_pwm(self, on: bool, duty_percent: float) -> bool:
        return False

    def lock(self) -> bool:
        return False

    def unlock(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class NoImdDriver:
    """No IMD, or none that can be told to test itself: the cable check then rests on its
    readings alone, and ends in `fault` when no verdict comes in time."""

    def start_self_test(self, ev_max_voltage: float | None = None) -> None:
        pass
