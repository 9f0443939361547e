"""What a pooled EVSE's limits count of its shared module pool at one moment: the modules whose
capability it reports, and its part of the pool's installation limit. The pool coordinator
(session/pool.py) sets it; the composer only reads it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from csbridge.sources import ModuleReading


@dataclass(frozen=True, slots=True)
class PoolScope:
    pool: str
    counted: frozenset[str] = frozenset()
    """The modules whose capability the EVSE reports: in session, those the switching
    sequencer confirms connected to it alone; idle, the share it would get if it started now."""
    readings: Mapping[str, ModuleReading] = field(default_factory=dict)
    """The latest reading of every module of the pool, by name."""
    installation_fraction: float = 1.0
    """Its part of the pool's installation limit: its allocated power over the pool's."""
    starting: bool = True
    """No module of the pool has reported yet: waiting, not lost."""
    usable: int = 0
    """Modules of the pool that can deliver now (none, once started: the modules are lost)."""
    whole: bool = False
    """It counts every module of the pool that can deliver: the allocation withholds nothing,
    so its stack binds as `hardware` (a pool of one EVSE is just its stack), not `pool`."""
