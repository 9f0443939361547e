"""A module with two output voltage ranges (UUGreen's Hi/Lo mode): the mode each setpoint needs,
and the change between them as EVerest's driver makes it, the module's output off throughout.

A setpoint above the profile's `high_mode_above_v` needs the high mode, one at or below it the
low mode. A change switches the output off, gives the module `mode_switch_settle_s`, selects the
mode, gives it that long again, and only then lets a setpoint through (so a setpoint above the
threshold never reaches a module that is, or may still be, in its low mode). A module known to
be off skips the first wait. Nothing sleeps: the power path repeats its setpoint (the modules'
keep-alive), and each repeat moves the change on when its time has come.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from csbridge.support import Clock

log = logging.getLogger("csbridge.power")


@dataclass(slots=True)
class VoltageModeSwitch:
    """One module's mode, and the change under way if any."""

    module: str
    above_v: float
    settle_s: float
    clock: Clock
    high: bool | None = None
    """The mode the module is in: True high, False low, None unknown (never selected, or being
    changed)."""
    target: bool | None = None
    """The mode being changed to; None: no change under way."""
    selected: bool = False
    """Whether the change has sent its mode command yet."""
    since: float = 0.0
    """When the change's current step began (output off, or mode selected)."""

    def needs_high(self, voltage: float) -> bool:
        return voltage > self.above_v

    def ready(
        self,
        voltage: float,
        *,
        output_off: bool,
        switch_off: Callable[[], None],
        select: Callable[[bool], None],
    ) -> bool:
        """Whether a setpoint of `voltage` may go out now; if not, the change it needs is started
        or moved on (through `switch_off` and `select`). `output_off`: the module is known off."""
        want = self.needs_high(voltage)
        if self.target is None and self.high is want:
            return True
        now = self.clock()
        if self.target is not want:
            self._start(want, voltage, now, output_off=output_off, switch_off=switch_off)
            if output_off:
                self._select(select)
            return False
        if not self.selected:
            switch_off()  # kept off while the module settles (and its watchdog fed)
            if now - self.since >= self.settle_s:
                self._select(select)
            return False
        if now - self.since < self.settle_s:
            switch_off()
            return False
        self.high, self.target = want, None
        log.info(
            "event=module_voltage_mode module=%s mode=%s -- setpoints resume",
            self.module,
            _name(want),
        )
        return True

    def _start(
        self,
        want: bool,
        voltage: float,
        now: float,
        *,
        output_off: bool,
        switch_off: Callable[[], None],
    ) -> None:
        log.info(
            "event=module_voltage_mode_change module=%s to=%s setpoint_v=%.1f threshold_v=%.1f "
            "-- output off while the mode changes",
            self.module,
            _name(want),
            voltage,
            self.above_v,
        )
        self.high, self.target, self.selected, self.since = None, want, False, now
        if not output_off:
            switch_off()

    def _select(self, select: Callable[[bool], None]) -> None:
        assert self.target is not None
        select(self.target)
        self.selected = True
        self.since = self.clock()


def _name(high: bool) -> str:
    return "high" if high else "low"
