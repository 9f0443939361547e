"""The latest value per EVSE, and which EVSEs changed since they were last sent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

Entry = dict[str, Any]


class LatestByEvse:
    """One JSON-ready value per EVSE in configuration order; writers set, one reader drains."""

    def __init__(self, items: Iterable[tuple[str, Entry]]) -> None:
        self._values: dict[str, Entry] = dict(items)
        self._changed: dict[str, None] = {}  # insertion-ordered set
        self._wakeup = asyncio.Event()

    @property
    def evse_ids(self) -> tuple[str, ...]:
        return tuple(self._values)

    def values(self) -> list[Entry]:
        return list(self._values.values())

    def get(self, evse_id: str) -> Entry:
        return self._values[evse_id]

    def set(self, evse_id: str, value: Entry) -> bool:
        """Store a value; True (and the EVSE marked changed) only if it differs."""
        if evse_id not in self._values:
            msg = f"unknown EVSE {evse_id!r}"
            raise KeyError(msg)
        if self._values[evse_id] == value:
            return False
        self._values[evse_id] = value
        self._changed[evse_id] = None
        self._wakeup.set()
        return True

    async def wait_changed(self) -> list[tuple[str, Entry]]:
        """Wait until some EVSE changed; return the changed ones and clear the marks."""
        while not self._changed:
            self._wakeup.clear()
            await self._wakeup.wait()
        changed = [(evse_id, self._values[evse_id]) for evse_id in self._changed]
        self._changed.clear()
        return changed

    def drain_changed(self) -> list[tuple[str, Entry]]:
        """The changed EVSEs now, without waiting (replay's synchronous loop)."""
        changed = [(evse_id, self._values[evse_id]) for evse_id in self._changed]
        self._changed.clear()
        return changed

    def clear_changed(self) -> None:
        """Forget pending changes: everything was just sent."""
        self._changed.clear()
