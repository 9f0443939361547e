"""The latest snapshot of every EVSE, and which of them changed since they were last sent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from csbridge.model import EvseSnapshot


class StationState:
    """Holds one snapshot per EVSE in configuration order; sources write, the bridge reads."""

    def __init__(self, snapshots: Iterable[EvseSnapshot]) -> None:
        self._snapshots: dict[str, EvseSnapshot] = {s.evse_id: s for s in snapshots}
        self._changed: dict[str, None] = {}  # insertion-ordered set
        self._wakeup = asyncio.Event()

    @property
    def evse_ids(self) -> tuple[str, ...]:
        return tuple(self._snapshots)

    def snapshots(self) -> list[EvseSnapshot]:
        return list(self._snapshots.values())

    def get(self, evse_id: str) -> EvseSnapshot:
        return self._snapshots[evse_id]

    def set(self, snapshot: EvseSnapshot) -> bool:
        """Store a snapshot; True (and the EVSE marked changed) only if it differs."""
        if snapshot.evse_id not in self._snapshots:
            msg = f"unknown EVSE {snapshot.evse_id!r}"
            raise KeyError(msg)
        if self._snapshots[snapshot.evse_id] == snapshot:
            return False
        self._snapshots[snapshot.evse_id] = snapshot
        self._changed[snapshot.evse_id] = None
        self._wakeup.set()
        return True

    async def wait_changed(self) -> list[EvseSnapshot]:
        """Wait until some EVSE changed; return the changed ones and clear the marks."""
        while not self._changed:
            self._wakeup.clear()
            await self._wakeup.wait()
        changed = [self._snapshots[evse_id] for evse_id in self._changed]
        self._changed.clear()
        return changed

    def clear_changed(self) -> None:
        """Forget pending changes: a full update was just sent."""
        self._changed.clear()
