"""Where readings come from: the reading types every source produces; sources.can, sources.everest
and sources.simulated produce them.

Imports nothing of csbridge.
"""

from __future__ import annotations

from csbridge.sources.readings import (
    BoardReading,
    Capability,
    CpState,
    ExternalLimit,
    ImdReading,
    LockState,
    MeterSample,
    ModuleReading,
    OperatorCommand,
    ReadingSink,
    SessionCondition,
    SourceReading,
    cp_status,
    sanitized,
)

__all__ = [
    "BoardReading",
    "Capability",
    "CpState",
    "ExternalLimit",
    "ImdReading",
    "LockState",
    "MeterSample",
    "ModuleReading",
    "OperatorCommand",
    "ReadingSink",
    "SessionCondition",
    "SourceReading",
    "cp_status",
    "sanitized",
]
