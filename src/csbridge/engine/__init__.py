"""The limits engine: the latest reading of every source, one evaluation per EVSE, the update
gate, the rounded snapshots Josev is told and their cs_status_and_limits entries (typed; JSON
only at the edge), the pacing of the updates that carry them, and the operator's limits reports.

Imports limits, sources (readings), messages (Josev's entry class), config and support.
"""

from __future__ import annotations

from csbridge.engine.engine import LimitsEngine
from csbridge.engine.latest import AsDocuments, Documents, Entry, Latest, LatestByEvse
from csbridge.engine.pacing import UPDATE_GAP_S, PacedUpdates
from csbridge.engine.payloads import cs_parameters_data
from csbridge.engine.report import LimitsReport
from csbridge.engine.rounding import RoundedSnapshot

__all__ = [
    "UPDATE_GAP_S",
    "AsDocuments",
    "Documents",
    "Entry",
    "Latest",
    "LatestByEvse",
    "LimitsEngine",
    "LimitsReport",
    "PacedUpdates",
    "RoundedSnapshot",
    "cs_parameters_data",
]
