"""How a DC stack moves from what it was told to what a setpoint asks: never both directions at
once, never through a direction change without a step at 0 A, and never a step in power larger
than the configured ramp (`power_ramp_limit_w_per_s`) allows.

A step is a direction (export: to the EV; import: from the EV) and a current magnitude. The
power of a step is voltage x current, signed (import negative); the ramp bounds the change of
that power between two successive commands at the voltage of the new command: |V x (I_new -
I_old)| <= ramp x dt, with dt at most MAX_RAMP_INTERVAL_S (a command after a long pause is
still one step, not a jump).

A reported limit that drops wins over the ramp: the new step is never above the ceiling of its
direction, whatever the ramp would allow (a limit reaches the modules at once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_RAMP_INTERVAL_S = 1.0
"""The longest time one step may be credited with (the power path's keep-alive period)."""


@dataclass(frozen=True, slots=True)
class Step:
    """One command's direction and current magnitude (A)."""

    import_: bool
    current: float

    def signed(self) -> float:
        """Export positive, import negative."""
        return -self.current if self.import_ else self.current


ZERO = Step(import_=False, current=0.0)
"""The stack off, or at 0 A: where every direction change starts."""


@dataclass(frozen=True, slots=True)
class Ceilings:
    """The most current the reported limits allow now, per direction, at the step's voltage."""

    export: float
    import_: float

    def of(self, import_: bool) -> float:
        return self.import_ if import_ else self.export


def ramp_step(
    previous: Step,
    target: Step,
    *,
    voltage: float,
    dt: float,
    ramp_w_per_s: float | None,
    ceilings: Ceilings,
) -> Step:
    """The next step from `previous` toward `target`: the same direction, or 0 A in the old one
    first; at most the ramp's worth of current away from `previous`; never above the ceiling of
    the direction it is in. Without a ramp (None), any size of step, but still through 0 A."""
    if ramp_w_per_s is None or not voltage > 0:
        room = math.inf
    else:
        interval = min(max(dt, 0.0), MAX_RAMP_INTERVAL_S)
        room = ramp_w_per_s * interval / voltage
    if previous.current > 0 and previous.import_ != target.import_:
        # Toward 0 A in the old direction; the new one only once there.
        import_, base, goal = previous.import_, previous.current, 0.0
    else:
        import_ = target.import_
        base = previous.current if previous.import_ == target.import_ else 0.0
        goal = target.current
    current = min(goal, base + room) if goal >= base else max(goal, base - room)
    if ramp_w_per_s is not None and voltage > 0:
        budget = ramp_w_per_s * min(max(dt, 0.0), MAX_RAMP_INTERVAL_S)
        current = _within(current, base, voltage, budget)
    return Step(import_, max(0.0, min(current, ceilings.of(import_))))


def _within(current: float, base: float, voltage: float, budget: float) -> float:
    """`current`, nudged by ulps toward `base` so the float product stays within the ramp's
    budget (a sum or a quotient may round a hair past it)."""
    for _ in range(64):
        if voltage * abs(current - base) <= budget:
            return current
        current = math.nextafter(current, base)
    return base
