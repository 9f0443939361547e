"""`csbridge status --json`: the bridge's retained reports as JSON lines for scripts.

Once (the default): the broker's retained messages, gathered until they stop coming, as one
object: the bridge's status word, every EVSE's latest limits report as the bridge published it,
and what was ignored. Watching (`--watch` or `--duration`): one object per change, as it
arrives. Every object carries `at`, the wall-clock time it was written.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from csbridge.messages import SchemaRegistry
from csbridge.tools.status_view import Arrival, StatusBoard

QUIET_S = 0.5
"""Retained messages come in one burst after the subscription: this long without one ends it."""
GATHER_AT_MOST_S = 5.0
"""A bridge that reports several times a second never leaves the topics quiet: the once-view is
written after this long all the same."""

Write = Callable[[dict[str, Any]], None]


class Arriving(Protocol):
    """A message as the watch takes it: its topic, payload and whether it was retained."""

    @property
    def topic(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def retain(self) -> bool: ...


def stamp(wall_now: datetime) -> str:
    return wall_now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def board_document(board: StatusBoard, wall_now: datetime) -> dict[str, Any]:
    """Everything the board holds: the once-view."""
    return {
        "at": stamp(wall_now),
        "broker": board.broker,
        "bridge": board.bridge,
        "evses": {evse_id: dict(board.reports[evse_id]) for evse_id in sorted(board.reports)},
        "warnings": list(board.warnings),
    }


def change_document(
    board: StatusBoard, arrival: Arrival, wall_now: datetime
) -> dict[str, Any] | None:
    """One arrival as a change: a report (the whole report), the bridge's status, a report
    removed, or a warning about what was ignored; None for a message of no interest."""
    change: dict[str, Any] = {"at": stamp(wall_now), "change": arrival.kind}
    if arrival.kind == "report":
        change["evse_id"] = arrival.evse_id
        change["report"] = dict(board.reports[arrival.evse_id])
    elif arrival.kind == "status":
        change["bridge"] = board.bridge
    elif arrival.kind == "cleared":
        change["evse_id"] = arrival.evse_id
    elif arrival.kind == "warning":
        change["evse_id"] = arrival.evse_id
        change["warning"] = arrival.text
    else:
        return None
    return change


async def write_once(
    messages: AsyncIterator[Arriving],
    board: StatusBoard,
    registry: SchemaRegistry,
    write: Write,
    clock: Callable[[], float],
) -> None:
    """Take the retained burst (until QUIET_S without a message, a message that was not
    retained, or GATHER_AT_MOST_S), then write the board once."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + GATHER_AT_MOST_S
    while (left := give_up_at - loop.time()) > 0:
        try:
            message = await asyncio.wait_for(anext(messages), min(QUIET_S, left))
        except (TimeoutError, StopAsyncIteration):
            break
        board.take(message.topic, message.payload, clock(), registry)
        if not message.retain:  # the live ones have begun: every retained one is in
            break
    write(board_document(board, datetime.now(UTC)))


async def write_changes(
    messages: AsyncIterator[Arriving],
    board: StatusBoard,
    registry: SchemaRegistry,
    write: Write,
    clock: Callable[[], float],
) -> None:
    """One object per change, until the messages end (or the caller's timeout)."""
    async for message in messages:
        arrival = board.take(message.topic, message.payload, clock(), registry)
        change = change_document(board, arrival, datetime.now(UTC))
        if change is not None:
            write(change)
