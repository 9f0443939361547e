"""The binding-bound rule (tightest value, tie-break by source) and thermal derating curves."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csbridge.limits.bounds import Bound, LimitSource, tightest_lower, tightest_upper
from csbridge.limits.derating import DeratingCurve
from tests.support import examples

S = LimitSource

TIE_BREAK_ORDER = [
    S.SAFETY,
    S.OPERATOR,
    S.AVAILABILITY,
    S.EXTERNAL,
    S.TEMPERATURE,
    S.INSTALLATION,
    S.CABLE,
    S.POOL,
    S.MODULE_DROPOUT,
    S.HARDWARE,
]
"""Earlier wins a tie: pinned here so a reordering of the enum is a visible change."""

EARLIER_LATER_PAIRS = list(itertools.combinations(TIE_BREAK_ORDER, 2))

# -- bounds ---------------------------------------------------------------------------------------


def test_tie_break_order_is_the_declaration_order() -> None:
    assert list(LimitSource) == TIE_BREAK_ORDER


def test_tightest_upper_is_the_lowest_value_whatever_its_source() -> None:
    bounds = [Bound(250.0, S.SAFETY), Bound(240.0, S.HARDWARE), Bound(245.0, S.OPERATOR)]
    assert tightest_upper(bounds) == Bound(240.0, S.HARDWARE)


def test_tightest_lower_is_the_highest_value_whatever_its_source() -> None:
    bounds = [Bound(150.0, S.HARDWARE), Bound(120.0, S.SAFETY), Bound(149.9, S.OPERATOR)]
    assert tightest_lower(bounds) == Bound(150.0, S.HARDWARE)


def test_operator_is_named_over_hardware_at_an_equal_upper_bound() -> None:
    for bounds in (
        [Bound(100.0, S.HARDWARE), Bound(100.0, S.OPERATOR)],
        [Bound(100.0, S.OPERATOR), Bound(100.0, S.HARDWARE)],
    ):
        assert tightest_upper(bounds) == Bound(100.0, S.OPERATOR)


def test_external_is_named_over_hardware_temperature_and_cable_at_an_equal_upper_bound() -> None:
    bounds = [
        Bound(50_000.0, S.HARDWARE),
        Bound(50_000.0, S.CABLE),
        Bound(50_000.0, S.TEMPERATURE),
        Bound(50_000.0, S.EXTERNAL),
        Bound(60_000.0, S.SAFETY),
    ]
    assert tightest_upper(bounds) == Bound(50_000.0, S.EXTERNAL)


@pytest.mark.parametrize(("earlier", "later"), EARLIER_LATER_PAIRS)
def test_upper_tie_names_the_source_declared_first(
    earlier: LimitSource, later: LimitSource
) -> None:
    assert tightest_upper([Bound(7.0, later), Bound(7.0, earlier)]).source is earlier
    assert tightest_upper([Bound(7.0, earlier), Bound(7.0, later)]).source is earlier


@pytest.mark.parametrize(("earlier", "later"), EARLIER_LATER_PAIRS)
def test_lower_tie_names_the_source_declared_first(
    earlier: LimitSource, later: LimitSource
) -> None:
    assert tightest_lower([Bound(7.0, later), Bound(7.0, earlier)]).source is earlier
    assert tightest_lower([Bound(7.0, earlier), Bound(7.0, later)]).source is earlier


def test_nan_upper_candidates_are_ignored_wherever_they_stand() -> None:
    real = Bound(80.0, S.HARDWARE)
    nan = Bound(math.nan, S.SAFETY)
    assert tightest_upper([nan, real]) == real
    assert tightest_upper([real, nan]) == real
    assert tightest_upper([real, nan, Bound(math.nan, S.OPERATOR)]) == real


def test_only_nan_upper_candidates_give_the_safety_zero() -> None:
    assert tightest_upper([Bound(math.nan, S.HARDWARE)]) == Bound(0.0, S.SAFETY)


def test_no_upper_candidate_gives_the_safety_zero() -> None:
    assert tightest_upper([]) == Bound(0.0, S.SAFETY)
    assert tightest_upper(iter(())) == Bound(0.0, S.SAFETY)


def test_no_lower_candidate_gives_a_zero_minimum() -> None:
    assert tightest_lower([]) == Bound(0.0, S.HARDWARE)


def test_nan_lower_candidates_are_ignored_like_upper_ones() -> None:
    real = Bound(150.0, S.HARDWARE)
    assert tightest_lower([Bound(math.nan, S.HARDWARE), real]) == real


VALUES = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
BOUNDS = st.lists(st.builds(Bound, st.one_of(VALUES, st.just(math.nan)), st.sampled_from(S)))


@settings(max_examples=examples(300))
@given(BOUNDS)
def test_tightest_upper_value_is_the_minimum_of_the_real_candidates(bounds: list[Bound]) -> None:
    real = [b for b in bounds if not math.isnan(b.value)]
    chosen = tightest_upper(bounds)
    if not real:
        assert chosen == Bound(0.0, S.SAFETY)
        return
    assert chosen.value == min(b.value for b in real)
    tied = [b.source for b in real if b.value == chosen.value]
    assert chosen.source is min(tied, key=TIE_BREAK_ORDER.index)


@settings(max_examples=examples(300))
@given(st.lists(st.builds(Bound, VALUES, st.sampled_from(S)), min_size=1))
def test_tightest_lower_value_is_the_maximum_of_the_candidates(bounds: list[Bound]) -> None:
    chosen = tightest_lower(bounds)
    assert chosen.value == max(b.value for b in bounds)
    tied = [b.source for b in bounds if b.value == chosen.value]
    assert chosen.source is min(tied, key=TIE_BREAK_ORDER.index)


# -- derating -------------------------------------------------------------------------------------

MODULE_CURRENT = DeratingCurve.of([[60, 80], [90, 20]])
"""The example station's per-module curve: 80 A to 60 degC, 20 A at 90 degC."""


@pytest.mark.parametrize(
    ("temperature", "expected"),
    [(60.0, 80.0), (67.5, 65.0), (75.0, 50.0), (89.0, 22.0), (90.0, 20.0)],
)
def test_derating_interpolates_linearly_between_points(temperature: float, expected: float) -> None:
    assert MODULE_CURRENT.limit_at(temperature) == pytest.approx(expected)


def test_derating_interpolates_each_segment_of_a_multi_point_curve() -> None:
    curve = DeratingCurve.of([[0, 100], [50, 100], [70, 40], [80, 40], [100, 0]])
    assert curve.limit_at(25) == 100
    assert curve.limit_at(60) == pytest.approx(70)
    assert curve.limit_at(75) == 40
    assert curve.limit_at(90) == pytest.approx(20)
    assert curve.limit_at(70) == 40


def test_derating_is_flat_beyond_both_ends() -> None:
    assert MODULE_CURRENT.limit_at(-40.0) == 80.0
    assert MODULE_CURRENT.limit_at(59.999) == 80.0
    assert MODULE_CURRENT.limit_at(90.001) == 20.0
    assert MODULE_CURRENT.limit_at(500.0) == 20.0
    assert MODULE_CURRENT.limit_at(math.inf) == 20.0
    assert MODULE_CURRENT.limit_at(-math.inf) == 80.0


def test_a_rising_curve_is_flat_at_its_end_values_too() -> None:
    curve = DeratingCurve.of([[-20, 10], [0, 50]])  # cold derating: limit rises with heat
    assert curve.limit_at(-30) == 10
    assert curve.limit_at(-10) == pytest.approx(30)
    assert curve.limit_at(10) == 50


@pytest.mark.parametrize("temperature", [None, math.nan])
def test_missing_temperature_is_the_worst_case_the_curve_floor(temperature: float | None) -> None:
    assert MODULE_CURRENT.limit_at(temperature) == 20.0
    dipping = DeratingCurve.of([[0, 100], [50, 30], [80, 60]])
    assert dipping.floor == 30.0
    assert dipping.limit_at(temperature) == 30.0


def test_of_converts_integer_points_to_float_tuples() -> None:
    assert MODULE_CURRENT.points == ((60.0, 80.0), (90.0, 20.0))
    assert all(isinstance(v, float) for point in MODULE_CURRENT.points for v in point)


@pytest.mark.parametrize(
    "points",
    [
        [[90, 80], [60, 20]],
        [[60, 80], [60, 20]],
        [[0, 100], [50, 80], [50, 60]],
        [[0, 100], [50, 80], [40, 60]],
    ],
)
def test_curve_refuses_temperatures_that_do_not_rise_strictly(points: list[list[float]]) -> None:
    with pytest.raises(ValueError, match="rise strictly"):
        DeratingCurve.of(points)


@pytest.mark.parametrize("points", [[[60, -1], [90, 20]], [[60, 80], [90, -0.001]]])
def test_curve_refuses_negative_limits(points: list[list[float]]) -> None:
    with pytest.raises(ValueError, match="negative"):
        DeratingCurve.of(points)


@pytest.mark.parametrize("points", [[], [[60, 80]]])
def test_curve_refuses_fewer_than_two_points(points: list[list[float]]) -> None:
    with pytest.raises(ValueError, match="at least two points"):
        DeratingCurve.of(points)


def test_curve_refuses_a_nan_temperature() -> None:
    with pytest.raises(ValueError, match="finite"):
        DeratingCurve.of([[math.nan, 80], [90, 20]])


def test_curve_refuses_a_nan_limit() -> None:
    with pytest.raises(ValueError, match="finite"):
        DeratingCurve.of([[60, math.nan], [90, 20]])


@st.composite
def curves(draw: st.DrawFn) -> DeratingCurve:
    temperatures = draw(
        st.lists(
            st.floats(min_value=-50, max_value=200, allow_nan=False),
            min_size=2,
            max_size=6,
            unique=True,
        )
    )
    limits = draw(
        st.lists(
            st.floats(min_value=0, max_value=1e6, allow_nan=False),
            min_size=len(temperatures),
            max_size=len(temperatures),
        )
    )
    return DeratingCurve(tuple(zip(sorted(temperatures), limits, strict=True)))


TEMPERATURES = st.floats(min_value=-100, max_value=300, allow_nan=False)


@settings(max_examples=examples(500))
@given(curves(), TEMPERATURES)
def test_derated_limit_stays_within_its_neighbours_values(
    curve: DeratingCurve, temperature: float
) -> None:
    value = curve.limit_at(temperature)
    points = curve.points
    if temperature <= points[0][0]:
        assert value == points[0][1]
    elif temperature >= points[-1][0]:
        assert value == points[-1][1]
    else:
        (_, v0), (_, v1) = next(
            (a, b) for a, b in itertools.pairwise(points) if a[0] <= temperature < b[0]
        )
        assert min(v0, v1) <= value <= max(v0, v1)
    assert curve.floor <= value <= max(limit for _, limit in points)


@settings(max_examples=examples(200))
@given(curves(), TEMPERATURES, TEMPERATURES)
def test_derating_is_monotonic_on_a_falling_curve(
    curve: DeratingCurve, first: float, second: float
) -> None:
    falling = DeratingCurve(
        tuple(
            zip(
                (t for t, _ in curve.points),
                sorted((v for _, v in curve.points), reverse=True),
                strict=True,
            )
        )
    )
    cooler, hotter = sorted((first, second))
    assert falling.limit_at(hotter) <= falling.limit_at(cooler)


@settings(max_examples=examples(200))
@given(curves())
def test_a_missing_temperature_is_never_better_than_any_measured_one(
    curve: DeratingCurve,
) -> None:
    worst = curve.limit_at(None)
    assert worst == curve.floor
    for temperature, _ in curve.points:
        assert worst <= curve.limit_at(temperature)
