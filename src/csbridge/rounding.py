"""Rounding to a fixed resolution, toward the safe side.

Maxima go down and minima go up, so a reported limit never exceeds what was computed. Decimal
arithmetic on the shortest repr keeps this exact: a float never comes back a hair above its input.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

CURRENT_STEP = Decimal("0.1")
"""A, for every current Josev is told."""
VOLTAGE_STEP = Decimal("0.1")
"""V, for every voltage Josev is told."""
POWER_STEP = Decimal("1")
"""W (and Wh, W/s), for every power and energy Josev is told."""


def _quantize(value: float, step: Decimal, mode: str) -> float | int:
    if not math.isfinite(value):
        msg = f"cannot report a non-finite value ({value!r})"
        raise ValueError(msg)
    quantized = Decimal(repr(float(value))).quantize(step, rounding=mode)
    if step == step.to_integral_value():
        return int(quantized)
    result = float(quantized)
    return 0.0 if result == 0 else result  # no "-0.0" on the wire


def floor_to(value: float, step: Decimal) -> float | int:
    """Largest multiple of `step` not above `value`: for maxima."""
    return _quantize(value, step, ROUND_FLOOR)


def ceil_to(value: float, step: Decimal) -> float | int:
    """Smallest multiple of `step` not below `value`: for minima."""
    return _quantize(value, step, ROUND_CEILING)


def nearest(value: float, step: Decimal) -> float | int:
    """Nearest multiple of `step`: for measured values, which are no limits."""
    return _quantize(value, step, ROUND_HALF_EVEN)
