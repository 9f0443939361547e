"""Isolation status from the IMD's latest sample, by IEC 61851-23.

2023 edition (default): fault below 100 kOhm, valid otherwise (the warning band was dropped).
2014 edition: fault below 100 Ohm/V and warning below 500 Ohm/V of the rated maximum voltage.
Stale, absent, outdated or unmeasurable data is `invalid`: never the last `valid`.
"""

from __future__ import annotations

import enum
import math

from csbridge.limits.model import IsolationStatus
from csbridge.sources import ImdReading

FAULT_2023_OHM = 100_000.0
FAULT_2014_OHM_PER_V = 100.0
WARNING_2014_OHM_PER_V = 500.0


class IsolationRule(enum.StrEnum):
    IEC_61851_23_2023 = "iec61851-23:2023"
    IEC_61851_23_2014 = "iec61851-23:2014"


def classify_resistance(
    resistance_ohm: float, rule: IsolationRule, rated_voltage: float
) -> IsolationStatus:
    if math.isnan(resistance_ohm) or resistance_ohm < 0:  # no verdict from nonsense
        return IsolationStatus.INVALID
    if rule is IsolationRule.IEC_61851_23_2023:
        return IsolationStatus.FAULT if resistance_ohm < FAULT_2023_OHM else IsolationStatus.VALID
    if resistance_ohm < FAULT_2014_OHM_PER_V * rated_voltage:
        return IsolationStatus.FAULT
    if resistance_ohm < WARNING_2014_OHM_PER_V * rated_voltage:
        return IsolationStatus.WARNING
    return IsolationStatus.VALID


def isolation_status(
    reading: ImdReading | None,
    *,
    now: float,
    deadline_s: float,
    rule: IsolationRule,
    rated_voltage: float,
) -> IsolationStatus:
    """The verdict for Josev; `reading` is the latest sample, or None when none came yet."""
    if reading is None or now - reading.at > deadline_s:
        return IsolationStatus.INVALID
    if reading.device_fault or reading.self_test_running or reading.value_outdated:
        return IsolationStatus.INVALID
    if reading.resistance_ohm is None:
        return IsolationStatus.INVALID
    return classify_resistance(reading.resistance_ohm, rule, rated_voltage)
