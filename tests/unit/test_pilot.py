"""The pilot's duty cycle for a current, per IEC 61851-1's table (limits/pilot.py names the
sources): every edge of the table, and over the whole range never more current than asked and
never less than the table can say."""

from __future__ import annotations

import math

import pytest

from csbridge.limits import duty_percent, offered_current_a

BASIC: list[tuple[float, float]] = [
    # below 6 A nothing can be signalled: no charging allowed (steady +12 V)
    (-math.inf, 100.0),
    (-1.0, 100.0),
    (0.0, 100.0),
    (1.0, 100.0),
    (5.99, 100.0),
    (math.nan, 100.0),
    # 6-51 A: I / 0.6, rounded down to the board's 0.1 %
    (6.0, 10.0),
    (6.05, 10.0),
    (10.0, 16.6),
    (16.0, 26.6),
    (32.0, 53.3),
    (50.0, 83.3),
    (51.0, 85.0),
    # 51-52.5 A: no duty cycle means it; 85 % (51 A) is the most within it
    (51.5, 85.0),
    (52.4, 85.0),
    (52.5, 85.0),
    # 52.5-80 A: I / 2.5 + 64
    (52.75, 85.1),
    (63.0, 89.2),
    (70.0, 92.0),
    (79.9, 95.9),
    (80.0, 96.0),
    # above 80 A: 80 A's duty cycle at most
    (80.1, 96.0),
    (125.0, 96.0),
    (math.inf, 96.0),
]


@pytest.mark.parametrize(("current_a", "expected"), BASIC)
def test_basic_charging_duty_cycle(current_a: float, expected: float) -> None:
    assert duty_percent(current_a, hlc=False) == expected


@pytest.mark.parametrize("current_a", [0.0, 6.0, 32.0, 63.0, 80.0, 500.0, math.nan])
def test_high_level_communication_is_five_percent_whatever_the_current(current_a: float) -> None:
    assert duty_percent(current_a, hlc=True) == 5.0


def _grid() -> list[float]:
    return [round(step * 0.1, 1) for step in range(1001)]


def test_never_more_than_asked_and_the_most_the_table_can_say() -> None:
    readable = sorted({offered_current_a(duty) for duty in _grid()} - {0.0})
    for centiamps in range(10_001):
        current_a = centiamps / 100
        duty = duty_percent(current_a, hlc=False)
        offered = offered_current_a(duty)
        assert offered <= current_a + 1e-9, (current_a, duty, offered)
        best = max((a for a in readable if a <= current_a + 1e-9), default=0.0)
        assert offered == pytest.approx(best), (current_a, duty, offered, best)
        if current_a < 6.0:
            assert duty == 100.0


@pytest.mark.parametrize(
    ("duty", "current_a"),
    [
        (0.0, 0.0),
        (2.9, 0.0),
        (5.0, 0.0),
        (7.5, 0.0),
        (8.0, 6.0),
        (9.9, 6.0),
        (10.0, 6.0),
        (53.3, 31.98),
        (85.0, 51.0),
        (85.1, 52.75),
        (89.2, 63.0),
        (96.0, 80.0),
        (97.0, 80.0),
        (97.1, 0.0),
        (100.0, 0.0),
    ],
)
def test_what_an_ev_reads_from_a_duty_cycle(duty: float, current_a: float) -> None:
    assert offered_current_a(duty) == pytest.approx(current_a)
