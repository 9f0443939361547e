"""Isolation verdicts by IEC 61851-23 (2023 and 2014 rules), freshness and device states."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csbridge.limits.isolation import IsolationRule, classify_resistance, isolation_status
from csbridge.limits.model import IsolationStatus
from csbridge.sources.readings import ImdReading
from tests.support import examples

R2023 = IsolationRule.IEC_61851_23_2023
R2014 = IsolationRule.IEC_61851_23_2014
ISO = IsolationStatus
DEADLINE = 5.0
AT = 100.0


def _status(
    reading: ImdReading | None,
    *,
    now: float = AT,
    rule: IsolationRule = R2023,
    rated_voltage: float = 1000.0,
) -> IsolationStatus:
    return isolation_status(
        reading, now=now, deadline_s=DEADLINE, rule=rule, rated_voltage=rated_voltage
    )


@pytest.mark.parametrize(
    ("resistance", "expected"),
    [
        (0.0, ISO.FAULT),
        (50_000.0, ISO.FAULT),
        (99_999.0, ISO.FAULT),
        (math.nextafter(100_000.0, 0.0), ISO.FAULT),
        (100_000.0, ISO.VALID),
        (100_001.0, ISO.VALID),
        (400_000.0, ISO.VALID),
        (5_000_000.0, ISO.VALID),
    ],
)
def test_2023_rule_faults_below_100_kohm_and_is_valid_from_100_kohm(
    resistance: float, expected: IsolationStatus
) -> None:
    assert classify_resistance(resistance, R2023, rated_voltage=1000.0) is expected


@settings(max_examples=examples(300))
@given(
    st.floats(min_value=0, max_value=1e9, allow_nan=False),
    st.floats(min_value=0, max_value=1500, allow_nan=False),
)
def test_2023_rule_never_warns_and_ignores_the_rated_voltage(
    resistance: float, rated_voltage: float
) -> None:
    verdict = classify_resistance(resistance, R2023, rated_voltage)
    assert verdict is (ISO.FAULT if resistance < 100_000.0 else ISO.VALID)


@pytest.mark.parametrize(
    ("resistance", "expected"),
    [
        (0.0, ISO.FAULT),
        (99_999.0, ISO.FAULT),
        (100_000.0, ISO.WARNING),
        (100_001.0, ISO.WARNING),
        (499_999.0, ISO.WARNING),
        (500_000.0, ISO.VALID),
        (2_000_000.0, ISO.VALID),
    ],
)
def test_2014_rule_at_1000_v_faults_below_100_kohm_and_warns_below_500_kohm(
    resistance: float, expected: IsolationStatus
) -> None:
    assert classify_resistance(resistance, R2014, rated_voltage=1000.0) is expected


@pytest.mark.parametrize(
    ("resistance", "expected"),
    [
        (91_999.0, ISO.FAULT),
        (92_000.0, ISO.WARNING),
        (459_999.0, ISO.WARNING),
        (460_000.0, ISO.VALID),
    ],
)
def test_2014_rule_scales_its_thresholds_with_the_rated_voltage(
    resistance: float, expected: IsolationStatus
) -> None:
    assert classify_resistance(resistance, R2014, rated_voltage=920.0) is expected


@pytest.mark.parametrize("rule", list(IsolationRule))
@pytest.mark.parametrize("resistance", [math.nan, -1.0, -math.inf])
def test_nonsense_resistance_gives_no_verdict(rule: IsolationRule, resistance: float) -> None:
    assert classify_resistance(resistance, rule, rated_voltage=1000.0) is ISO.INVALID


def test_fresh_sample_is_classified_by_the_configured_rule() -> None:
    reading = ImdReading(at=AT, resistance_ohm=300_000.0)
    assert _status(reading, rule=R2023) is ISO.VALID
    assert _status(reading, rule=R2014) is ISO.WARNING
    assert _status(ImdReading(at=AT, resistance_ohm=99_999.0)) is ISO.FAULT


def test_sample_exactly_at_its_deadline_still_counts() -> None:
    reading = ImdReading(at=AT, resistance_ohm=5_000_000.0)
    assert _status(reading, now=AT + DEADLINE) is ISO.VALID


@pytest.mark.parametrize(
    "now", [math.nextafter(AT + DEADLINE, math.inf), AT + DEADLINE + 0.1, AT + 3600.0]
)
def test_sample_past_its_deadline_is_invalid_never_the_last_valid(now: float) -> None:
    reading = ImdReading(at=AT, resistance_ohm=5_000_000.0)
    assert _status(reading, now=now) is ISO.INVALID


def test_stale_fault_is_invalid_too_not_a_remembered_fault() -> None:
    reading = ImdReading(at=AT, resistance_ohm=1_000.0)
    assert _status(reading, now=AT + DEADLINE + 0.1) is ISO.INVALID


def test_no_sample_yet_is_invalid() -> None:
    assert _status(None) is ISO.INVALID


@pytest.mark.parametrize(
    "reading",
    [
        ImdReading(at=AT, resistance_ohm=5_000_000.0, self_test_running=True),
        ImdReading(at=AT, resistance_ohm=5_000_000.0, value_outdated=True),
        ImdReading(at=AT, resistance_ohm=5_000_000.0, device_fault=True),
        ImdReading(at=AT, resistance_ohm=None),
        ImdReading(at=AT, resistance_ohm=1_000.0, self_test_running=True),
        ImdReading(at=AT, resistance_ohm=1_000.0, device_fault=True),
    ],
    ids=[
        "self_test",
        "outdated",
        "device_fault",
        "no_resistance",
        "low_during_self_test",
        "low_with_device_fault",
    ],
)
@pytest.mark.parametrize("rule", list(IsolationRule))
def test_unmeasurable_sample_is_invalid(reading: ImdReading, rule: IsolationRule) -> None:
    assert _status(reading, rule=rule) is ISO.INVALID
