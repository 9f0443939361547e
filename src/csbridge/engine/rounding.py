"""Rounding to a fixed resolution, toward the safe side.

Maxima go down and minima go up, so a reported limit never exceeds what was computed. The
result is the float nearest to a multiple of the step (123.4, never 123.40000000000001), and it
is checked against the input, so a float never comes back a hair above its input.
"""

from __future__ import annotations

import functools
import math
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

CURRENT_STEP = Decimal("0.1")
"""A, for every current Josev is told."""
VOLTAGE_STEP = Decimal("0.1")
"""V, for every voltage Josev is told."""
POWER_STEP = Decimal("1")
"""W (and Wh, W/s), for every power and energy Josev is told."""

_FAST_LIMIT = 1e12
"""Below this magnitude float arithmetic on the scaled value is exact enough; above, Decimal."""


@functools.lru_cache(maxsize=16)
def _scale(step: Decimal) -> int:
    scale = 1 / step
    if scale != scale.to_integral_value() or scale < 1:
        msg = f"step {step} must be 1/n for a whole n"
        raise ValueError(msg)
    return int(scale)


def _finish(multiple: int, scale: int) -> float | int:
    if scale == 1:
        return multiple
    result = multiple / scale  # correctly rounded: the float nearest the decimal multiple
    return 0.0 if result == 0 else result  # no "-0.0" on the wire


def _check(value: float) -> None:
    if not math.isfinite(value):
        msg = f"cannot report a non-finite value ({value!r})"
        raise ValueError(msg)


def _decimal(value: float, step: Decimal, mode: str) -> float | int:
    quantized = Decimal(repr(float(value))).quantize(step, rounding=mode)
    return _finish(int(quantized * _scale(step)), _scale(step))


def floor_to(value: float, step: Decimal) -> float | int:
    """Largest multiple of `step` not above `value`: for maxima."""
    _check(value)
    if abs(value) >= _FAST_LIMIT:
        return _decimal(value, step, ROUND_FLOOR)
    scale = _scale(step)
    multiple = round(value * scale)
    if multiple / scale > value:
        multiple -= 1
    return _finish(multiple, scale)


def ceil_to(value: float, step: Decimal) -> float | int:
    """Smallest multiple of `step` not below `value`: for minima."""
    _check(value)
    if abs(value) >= _FAST_LIMIT:
        return _decimal(value, step, ROUND_CEILING)
    scale = _scale(step)
    multiple = round(value * scale)
    if multiple / scale < value:
        multiple += 1
    return _finish(multiple, scale)


def nearest(value: float, step: Decimal) -> float | int:
    """Nearest multiple of `step`: for measured values, which are no limits."""
    _check(value)
    if abs(value) >= _FAST_LIMIT:
        return _decimal(value, step, ROUND_HALF_EVEN)
    scale = _scale(step)
    return _finish(round(value * scale), scale)
