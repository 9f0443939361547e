"""Rounding to a fixed resolution, toward the safe side: numbers, and whole snapshots.

Maxima go down and minima go up (never above their maximum), so a reported limit never exceeds
what was computed; present values go to the nearest step; ripple and tolerance go up. The
result is the float nearest to a multiple of the step (123.4, never 123.40000000000001), and it
is checked against the input, so a float never comes back a hair above its input.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import NewType

from csbridge.limits import AcBptLimits, AcLimits, DcBptLimits, DcLimits, EvseSnapshot, PerPhase

CURRENT_STEP = Decimal("0.1")
"""A, for every current Josev is told."""
VOLTAGE_STEP = Decimal("0.1")
"""V, for every voltage Josev is told."""
POWER_STEP = Decimal("1")
"""W (and Wh, W/s), for every power and energy Josev is told."""

Rounder = Callable[[float, int], float | int]
"""A rounding to the safe side, by the step's scale (10 for 0.1)."""

_FAST_LIMIT = 1e12
"""Below this magnitude float arithmetic on the scaled value is exact enough; above, Decimal."""


@functools.lru_cache(maxsize=16)
def _scale(step: Decimal) -> int:
    scale = 1 / step
    if scale != scale.to_integral_value() or scale < 1:
        msg = f"step {step} must be 1/n for a whole n"
        raise ValueError(msg)
    return int(scale)


_CURRENT = _scale(CURRENT_STEP)
_VOLTAGE = _scale(VOLTAGE_STEP)
_POWER = _scale(POWER_STEP)


def _finish(multiple: int, scale: int) -> float | int:
    if scale == 1:
        return multiple
    result = multiple / scale  # correctly rounded: the float nearest the decimal multiple
    return 0.0 if result == 0 else result  # no "-0.0" on the wire


def _check(value: float) -> None:
    if not math.isfinite(value):
        msg = f"cannot report a non-finite value ({value!r})"
        raise ValueError(msg)


def _decimal(value: float, scale: int, mode: str) -> float | int:
    """The slow path: large magnitudes, and the refusal of what is not finite."""
    _check(value)
    quantized = Decimal(repr(float(value))).quantize(Decimal(1) / scale, rounding=mode)
    return _finish(int(quantized * scale), scale)


def _floor(value: float, scale: int) -> float | int:
    if not -_FAST_LIMIT < value < _FAST_LIMIT:  # NaN too
        return _decimal(value, scale, ROUND_FLOOR)
    multiple = round(value * scale)
    if multiple / scale > value:
        multiple -= 1
    return _finish(multiple, scale)


def _ceil(value: float, scale: int) -> float | int:
    if not -_FAST_LIMIT < value < _FAST_LIMIT:
        return _decimal(value, scale, ROUND_CEILING)
    multiple = round(value * scale)
    if multiple / scale < value:
        multiple += 1
    return _finish(multiple, scale)


def _nearest(value: float, scale: int) -> float | int:
    if not -_FAST_LIMIT < value < _FAST_LIMIT:
        return _decimal(value, scale, ROUND_HALF_EVEN)
    return _finish(round(value * scale), scale)


def floor_to(value: float, step: Decimal) -> float | int:
    """Largest multiple of `step` not above `value`: for maxima."""
    return _floor(value, _scale(step))


def ceil_to(value: float, step: Decimal) -> float | int:
    """Smallest multiple of `step` not below `value`: for minima."""
    return _ceil(value, _scale(step))


def nearest(value: float, step: Decimal) -> float | int:
    """Nearest multiple of `step`: for measured values, which are no limits."""
    return _nearest(value, _scale(step))


RoundedSnapshot = NewType("RoundedSnapshot", EvseSnapshot)
"""A snapshot whose every number is what Josev is told: the gate works on these, and only these
become entries on the wire."""


def rounded(snapshot: EvseSnapshot) -> RoundedSnapshot:
    """Every number of `snapshot` at its reporting resolution, to the safe side; ValueError for
    a number that cannot be reported (not finite)."""
    return RoundedSnapshot(
        EvseSnapshot(
            evse_id=snapshot.evse_id,
            status_code=snapshot.status_code,
            dc=None if snapshot.dc is None else _dc(snapshot.dc),
            dc_bpt=None if snapshot.dc_bpt is None else _dc_bpt(snapshot.dc_bpt),
            ac=None if snapshot.ac is None else _ac(snapshot.ac),
            ac_bpt=None if snapshot.ac_bpt is None else _ac_bpt(snapshot.ac_bpt),
        )
    )


def _max_min(maximum: float, minimum: float, scale: int) -> tuple[float, float]:
    """Round a max/min pair to the safe side without letting the minimum pass the maximum."""
    high = _floor(maximum, scale)
    low = _ceil(minimum, scale)
    return high, min(low, high)


def _optional(value: float | None, rounder: Rounder, scale: int) -> float | None:
    return None if value is None else rounder(value, scale)


def _dc(dc: DcLimits) -> DcLimits:
    max_current, min_current = _max_min(dc.max_current, dc.min_current, _CURRENT)
    max_voltage, min_voltage = _max_min(dc.max_voltage, dc.min_voltage, _VOLTAGE)
    return DcLimits(
        present_voltage=_nearest(dc.present_voltage, _VOLTAGE),
        present_current=_nearest(dc.present_current, _CURRENT),
        max_current=max_current,
        min_current=min_current,
        max_voltage=max_voltage,
        min_voltage=min_voltage,
        max_power=_floor(dc.max_power, _POWER),
        # Ripple and tolerance are promises about our own regulation: a larger figure is the
        # honest side, so they round up.
        peak_current_ripple=_ceil(dc.peak_current_ripple, _CURRENT),
        current_reg_tolerance=_optional(dc.current_reg_tolerance, _ceil, _CURRENT),
        energy_to_be_delivered=_optional(dc.energy_to_be_delivered, _floor, _POWER),
        power_ramp_limit=_optional(dc.power_ramp_limit, _floor, _POWER),
        isolation_status=dc.isolation_status,
    )


def _dc_bpt(bpt: DcBptLimits) -> DcBptLimits:
    max_power, min_power = _max_min(bpt.max_discharge_power, bpt.min_discharge_power, _POWER)
    max_current, min_current = _max_min(
        bpt.max_discharge_current, bpt.min_discharge_current, _CURRENT
    )
    return DcBptLimits(
        max_discharge_power=max_power,
        min_discharge_power=min_power,
        max_discharge_current=max_current,
        min_discharge_current=min_current,
    )


def _phases(values: PerPhase, rounder: Rounder, scale: int) -> PerPhase:
    return PerPhase(rounder(values.l1, scale), rounder(values.l2, scale), rounder(values.l3, scale))


def _ac(ac: AcLimits) -> AcLimits:
    return AcLimits(
        max_current=_phases(ac.max_current, _floor, _CURRENT),
        nominal_voltage=_nearest(ac.nominal_voltage, _VOLTAGE),
        rcd_error=ac.rcd_error,
    )


def _ac_bpt(bpt: AcBptLimits) -> AcBptLimits:
    maximum = _phases(bpt.max_discharge_power, _floor, _POWER)
    minimum = _phases(bpt.min_discharge_power, _ceil, _POWER)
    return AcBptLimits(
        max_discharge_power=maximum,
        min_discharge_power=PerPhase(
            min(minimum.l1, maximum.l1), min(minimum.l2, maximum.l2), min(minimum.l3, maximum.l3)
        ),
    )
