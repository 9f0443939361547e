"""The limits engine: the latest reading of every source, one evaluation per EVSE, the update
gate, the rounded entries Josev is told and the operator's limits reports.

Imports limits, sources (readings), config and support.
"""

from __future__ import annotations

from csbridge.engine.engine import LimitsEngine
from csbridge.engine.latest import Entry, LatestByEvse
from csbridge.engine.payloads import cs_parameters_data

__all__ = [
    "Entry",
    "LatestByEvse",
    "LimitsEngine",
    "cs_parameters_data",
]
