"""Limits round to the safe side, exactly."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csbridge.engine.rounding import CURRENT_STEP, POWER_STEP, ceil_to, floor_to, nearest
from tests.support import examples

FINITE = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
STEPS = st.sampled_from([CURRENT_STEP, POWER_STEP, Decimal("0.01")])


@settings(max_examples=examples(3000))
@given(FINITE, STEPS)
def test_floor_never_rises_and_loses_less_than_a_step(value: float, step: Decimal) -> None:
    rounded = floor_to(value, step)
    assert rounded <= value
    assert value - rounded < float(step) * (1 + 1e-9) + abs(value) * 1e-15


@settings(max_examples=examples(3000))
@given(FINITE, STEPS)
def test_ceil_never_falls(value: float, step: Decimal) -> None:
    assert ceil_to(value, step) >= value


def test_classic_float_traps_stay_exact() -> None:
    assert floor_to(0.3, CURRENT_STEP) == 0.3
    assert floor_to(0.1 + 0.2, CURRENT_STEP) == 0.3  # 0.30000000000000004 -> 0.3 (below it)
    assert floor_to(9.99999999999, CURRENT_STEP) == 9.9
    assert ceil_to(0.05, CURRENT_STEP) == 0.1
    assert floor_to(150000.9, POWER_STEP) == 150000
    assert isinstance(floor_to(150000.9, POWER_STEP), int)


def test_no_negative_zero_on_the_wire() -> None:
    assert math.copysign(1, floor_to(-0.0, CURRENT_STEP)) == 1
    assert math.copysign(1, nearest(-0.04, CURRENT_STEP)) == 1


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        floor_to(value, CURRENT_STEP)
