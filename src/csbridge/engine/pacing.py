"""How often each EVSE's entry may go to Josev: at most once per gap for each of two kinds of
change, so no input can make an update storm.

An urgent change (a decrease, a status change: a tightening the update gate reports at once)
waits only behind the EVSE's previous urgent update; a routine one (an increase, a present
value) behind any update; a released one (a shared pool's own lowered or raised limit, bounded
by its module moves) behind none. A change whose EVSE has not been sent such an
update within the last gap goes out at once; one that comes sooner is held until the gap has
passed and then goes out with every other change held by then, at the latest value (a train of
decreases is reported once per gap, at its lowest). So a decrease never waits behind a routine
update, an EVSE is told at most 2/gap times a second (1/gap for a train of one kind), and a held
change is told no later than one gap after it arose. Only what goes to Josev is paced: the
engine's snapshots, which the power path follows, change at once.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from csbridge.engine.latest import AsDocuments
from csbridge.support import Clock

UPDATE_GAP_S = 0.05
"""Between two updates of one EVSE's entry of one kind (urgent, or any): at most 20 of a kind a
second, and a held change is reported within 50 ms of arising."""

T = TypeVar("T")
D = TypeVar("D")


class PacedUpdates(Generic[T, D]):
    """The entries that are due to go to Josev now, per EVSE at most once per `gap_s`.

    Reads the change marks of the typed store behind `documents` (so a change that is held and
    then superseded never has its document made) and the documents of what is due."""

    def __init__(self, documents: AsDocuments[T, D], clock: Clock, gap_s: float = UPDATE_GAP_S):
        if not gap_s > 0:
            raise ValueError(f"the update gap must be positive, not {gap_s!r}")
        self._documents = documents
        self._typed = documents.typed
        self._clock = clock
        self.gap_s = gap_s
        self._held: dict[str, None] = {}  # insertion-ordered set: changed, not sent yet
        self._sent_at: dict[str, float] = {}
        self._urgent_at: dict[str, float] = {}
        """Per EVSE, when its latest urgent update went out."""
        self._urgent: set[str] = set()
        """EVSEs whose held (or not yet seen) change is urgent."""
        self.taken: list[Callable[[str, float], None]] = []
        """Called with (evse_id, the clock's time) for each entry taken to go to Josev, just
        before it is encoded and published (a shared pool times its updates by it)."""

    def take_due(self) -> list[tuple[str, D]]:
        """Every changed EVSE whose gap has passed, with the document of its latest value,
        counted as sent now; the others stay held."""
        self._hold(evse_id for evse_id, _ in self._typed.drain_changed())
        if not self._held:
            return []
        now = self._clock()
        due: list[tuple[str, D]] = []
        for evse_id in list(self._held):
            if now < self._due_at(evse_id):
                continue
            del self._held[evse_id]
            # Sent even when it equals what was last taken: that one may never have reached
            # Josev (MQTT down, a full state sent since), and a repeat costs one of the 20.
            self._sent_at[evse_id] = now
            if evse_id in self._urgent:
                self._urgent.discard(evse_id)
                self._urgent_at[evse_id] = now
            due.append((evse_id, self._documents.get(evse_id)))
        for evse_id, _ in due:
            for observer in self.taken:
                observer(evse_id, now)
        return due

    def told_all(self) -> None:
        """Every EVSE's entry was just sent as it stands (the full state after a connect):
        nothing is held, and each EVSE's next change waits for its gap from now."""
        self._typed.clear_changed()
        self._held.clear()
        self._urgent.clear()
        now = self._clock()
        for evse_id in self._typed.evse_ids:
            self._sent_at[evse_id] = now
            self._urgent_at[evse_id] = now

    def next_due_at(self) -> float | None:
        """When the first held change may go out (None: nothing is held)."""
        if not self._held:
            return None
        return min(self._due_at(evse_id) for evse_id in self._held)

    def _due_at(self, evse_id: str) -> float:
        # One expression for both the check and the wake-up time: a pusher woken at this time
        # finds its change due (a difference of floats could fall a hair short of the gap).
        last = self._urgent_at if evse_id in self._urgent else self._sent_at
        return last.get(evse_id, -math.inf) + self.gap_s

    def urgent(self, evse_id: str) -> None:
        """The EVSE's change (set now, or held) is urgent: it waits only behind the EVSE's
        previous urgent update, never behind a routine one."""
        self._urgent.add(evse_id)

    def pending(self, evse_id: str) -> bool:
        """The EVSE has a change not yet taken to go to Josev (held, or not yet seen)."""
        return evse_id in self._held or self._typed.is_changed(evse_id)

    def release(self, evse_id: str) -> None:
        """The EVSE's next change goes out at once, whatever its gap: a shared pool's lowered
        limit, which must reach Josev before a module moves, or its raised one once the module
        delivers (never delayed)."""
        self._sent_at.pop(evse_id, None)
        self._urgent_at.pop(evse_id, None)

    @property
    def held(self) -> tuple[str, ...]:
        """The EVSEs with a change that waits for its gap."""
        return tuple(self._held)

    async def wait_due(self) -> list[tuple[str, D]]:
        """Wait until some change is due; return the due ones (as `take_due`)."""
        while True:
            due = self.take_due()
            if due:
                return due
            due_at = self.next_due_at()
            if due_at is None:
                self._hold(evse_id for evse_id, _ in await self._typed.wait_changed())
                continue
            try:
                async with asyncio.timeout(max(0.0, due_at - self._clock())):
                    self._hold(evse_id for evse_id, _ in await self._typed.wait_changed())
            except TimeoutError:
                pass  # the gap has passed: the held changes are due

    def _hold(self, evse_ids: Iterable[str]) -> None:
        for evse_id in evse_ids:
            self._held[evse_id] = None
