"""The latest value per EVSE, and which EVSEs changed since they were last sent; and the same
values as the JSON documents the wire carries, each made once, when first read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

Entry = dict[str, Any]
"""A JSON document: what the wire carries."""

T = TypeVar("T")
D = TypeVar("D")


class LatestByEvse(Generic[T]):
    """One value per EVSE in configuration order; writers set, one reader drains."""

    def __init__(self, items: Iterable[tuple[str, T]]) -> None:
        self._values: dict[str, T] = dict(items)
        self._changed: dict[str, None] = {}  # insertion-ordered set
        self._wakeup = asyncio.Event()

    @property
    def evse_ids(self) -> tuple[str, ...]:
        return tuple(self._values)

    def values(self) -> list[T]:
        return list(self._values.values())

    def get(self, evse_id: str) -> T:
        return self._values[evse_id]

    def set(self, evse_id: str, value: T) -> bool:
        """Store a value; True (and the EVSE marked changed) only if it differs."""
        if evse_id not in self._values:
            msg = f"unknown EVSE {evse_id!r}"
            raise KeyError(msg)
        current = self._values[evse_id]
        if current is value or current == value:
            return False
        self._values[evse_id] = value
        self._changed[evse_id] = None
        self._wakeup.set()
        return True

    async def wait_changed(self) -> list[tuple[str, T]]:
        """Wait until some EVSE changed; return the changed ones and clear the marks."""
        while not self._changed:
            self._wakeup.clear()
            await self._wakeup.wait()
        return self.drain_changed()

    def is_changed(self, evse_id: str) -> bool:
        """Marked changed and not drained yet."""
        return evse_id in self._changed

    def drain_changed(self) -> list[tuple[str, T]]:
        """The changed EVSEs now, without waiting (replay's synchronous loop)."""
        changed = [(evse_id, self._values[evse_id]) for evse_id in self._changed]
        self._changed.clear()
        return changed

    def clear_changed(self) -> None:
        """Forget pending changes: everything was just sent."""
        self._changed.clear()


class Latest(Protocol[D]):
    """The latest value per EVSE, with change marks: what the bridge publishes."""

    @property
    def evse_ids(self) -> tuple[str, ...]: ...

    def values(self) -> list[D]: ...

    def get(self, evse_id: str) -> D: ...

    async def wait_changed(self) -> list[tuple[str, D]]: ...

    def drain_changed(self) -> list[tuple[str, D]]: ...

    def clear_changed(self) -> None: ...


Documents = Latest[Entry]
"""The latest JSON document per EVSE."""


class AsDocuments(Generic[T, D]):
    """A LatestByEvse of values read as other values (the messages or the JSON documents the
    wire carries): each value becomes its document once, the first time it is read, and that
    document is kept while the value stays. Change marks are the typed store's."""

    def __init__(self, typed: LatestByEvse[T], document: Callable[[T], D]) -> None:
        self.typed = typed
        self._document = document
        self._made: dict[str, tuple[T, D]] = {}

    @property
    def evse_ids(self) -> tuple[str, ...]:
        return self.typed.evse_ids

    def values(self) -> list[D]:
        return [self.document_of(evse_id, self.typed.get(evse_id)) for evse_id in self.evse_ids]

    def get(self, evse_id: str) -> D:
        return self.document_of(evse_id, self.typed.get(evse_id))

    async def wait_changed(self) -> list[tuple[str, D]]:
        return [(i, self.document_of(i, value)) for i, value in await self.typed.wait_changed()]

    def drain_changed(self) -> list[tuple[str, D]]:
        return [(i, self.document_of(i, value)) for i, value in self.typed.drain_changed()]

    def clear_changed(self) -> None:
        self.typed.clear_changed()

    def document_of(self, evse_id: str, value: T) -> D:
        """`value`'s document: made now unless it was made for this very value before."""
        made = self._made.get(evse_id)
        if made is not None and made[0] is value:
            return made[1]
        document = self._document(value)
        if value is self.typed.get(evse_id):
            self._made[evse_id] = (value, document)
        return document
