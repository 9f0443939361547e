"""A bidirectional module's working mode (export: rectifier, energy to the EV; import: grid
inverter, energy from the EV), and the change between them with the module's output off.

The public drivers flip the mode with the output on; we do not: a change switches the output
off, gives the module `mode_switch_settle_s` (its profile's) to be off, selects the mode, gives
it that long again, and only then lets a setpoint of the new direction through. The power path
has already brought the current to 0 A in the old direction (limits/ramp.py), so the output
that goes off carries nothing. Nothing sleeps: each repeat of the setpoint (the keep-alive)
moves the change on when its time has come; meanwhile the module is kept off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from csbridge.support import Clock

log = logging.getLogger("csbridge.power")


@dataclass(slots=True)
class DirectionSwitch:
    """One module's direction, and the change under way if any."""

    module: str
    settle_s: float
    clock: Clock
    import_: bool | None = None
    """The mode the module is in: True import, False export, None unknown (never selected
    since start, or being changed)."""
    target: bool | None = None
    """The mode being changed to; None: no change under way."""
    selected: bool = False
    since: float = 0.0
    changes: int = 0
    """Mode commands sent since start."""

    def ready(
        self,
        import_: bool,
        *,
        output_off: bool,
        switch_off: Callable[[], None],
        select: Callable[[bool], None],
    ) -> bool:
        """Whether a setpoint of this direction may go out now; if not, the change it needs is
        started or moved on (through `switch_off` and `select`)."""
        if self.target is None and self.import_ is import_:
            return True
        now = self.clock()
        if self.target is not import_:
            log.info(
                "event=module_direction_change module=%s to=%s -- output off while it changes",
                self.module,
                _name(import_),
            )
            self.import_, self.target, self.selected, self.since = None, import_, False, now
            if output_off:
                self._select(select)
            else:
                switch_off()
            return False
        if not self.selected:
            switch_off()
            if now - self.since >= self.settle_s:
                self._select(select)
            return False
        if now - self.since < self.settle_s:
            switch_off()
            return False
        self.import_, self.target = import_, None
        log.info("event=module_direction module=%s mode=%s", self.module, _name(import_))
        return True

    def _select(self, select: Callable[[bool], None]) -> None:
        assert self.target is not None
        select(self.target)
        self.changes += 1
        self.selected = True
        self.since = self.clock()


def _name(import_: bool) -> str:
    return "import" if import_ else "export"
