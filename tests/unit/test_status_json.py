"""`csbridge status --json` (tools/status_json.py): the once-view and the per-change objects,
made from a StatusBoard fed real reports of the limits engine, and the end of the retained
burst."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import NamedTuple

import orjson

from csbridge.messages.registry import SchemaRegistry
from csbridge.tools.status_json import (
    board_document,
    change_document,
    write_changes,
    write_once,
)
from csbridge.tools.status_view import StatusBoard
from tests.support import dc_report

DC = "DE*CSB*E0001"
TOPIC = f"p/csbridge/{DC}/limits"
NOON = datetime(2026, 12, 2, 12, 0, 0, 123456, tzinfo=UTC)


class Arrived(NamedTuple):
    topic: str
    payload: bytes
    retain: bool


def _board() -> StatusBoard:
    return StatusBoard("mqtt://x", prefix="p/csbridge", status_topic="p/status")


def test_the_once_view_holds_the_bridge_every_report_and_the_warnings() -> None:
    registry = SchemaRegistry()
    board = _board()
    report = dc_report(("m1",))
    board.take("p/status", b"online", 1.0, registry)
    board.take(TOPIC, orjson.dumps(report), 1.0, registry)
    board.take("p/csbridge/E9/limits", b"{not json", 1.0, registry)
    document = orjson.loads(orjson.dumps(board_document(board, NOON)))
    assert document["at"] == "2026-12-02T12:00:00.123Z"
    assert document["bridge"] == "online"
    assert document["evses"] == {DC: report}
    assert len(document["warnings"]) == 1
    assert document["warnings"][0].startswith("p/csbridge/E9/limits: ignored: not JSON")


def test_each_change_is_an_object_of_its_kind() -> None:
    registry = SchemaRegistry()
    board = _board()
    report = dc_report(("m1", "m2"))

    def change(topic: str, payload: bytes) -> dict[str, object] | None:
        return change_document(board, board.take(topic, payload, 1.0, registry), NOON)

    assert change("p/status", b"offline") == {
        "at": "2026-12-02T12:00:00.123Z",
        "change": "status",
        "bridge": "offline",
    }
    reported = change(TOPIC, orjson.dumps(report))
    assert reported is not None
    assert (reported["change"], reported["evse_id"], reported["report"]) == ("report", DC, report)
    warned = change(TOPIC, b"[]")
    assert warned is not None
    assert (warned["change"], warned["evse_id"]) == ("warning", DC)
    assert change(TOPIC, b"") == {
        "at": "2026-12-02T12:00:00.123Z",
        "change": "cleared",
        "evse_id": DC,
    }
    assert change("elsewhere", b"x") is None


async def _messages(items: list[Arrived], then_wait: bool) -> AsyncIterator[Arrived]:
    for item in items:
        yield item
    if then_wait:
        await asyncio.Event().wait()  # a broker with nothing more to say


async def test_once_ends_at_the_first_live_message_and_writes_one_object() -> None:
    report = orjson.dumps(dc_report(("m1",)))
    items = [
        Arrived("p/status", b"online", True),
        Arrived(TOPIC, report, True),
        Arrived(TOPIC, b"", False),  # live: after the retained burst, and not taken
        Arrived("p/status", b"offline", False),
    ]
    written: list[dict[str, object]] = []
    board = _board()
    messages = _messages(items, then_wait=False)
    await write_once(messages, board, SchemaRegistry(), written.append, lambda: 1.0)
    assert len(written) == 1
    assert written[0]["bridge"] == "online", "the live offline after it is not read"
    assert list(await anext(messages)) == list(items[3])


async def test_once_ends_when_the_retained_burst_goes_quiet() -> None:
    written: list[dict[str, object]] = []
    items = [Arrived(TOPIC, orjson.dumps(dc_report(("m1",))), True)]
    async with asyncio.timeout(3):
        await write_once(
            _messages(items, then_wait=True),
            _board(),
            SchemaRegistry(),
            written.append,
            lambda: 1.0,
        )
    assert [list(document["evses"]) for document in written] == [[DC]]  # type: ignore[call-overload]


async def test_watching_writes_one_object_per_change() -> None:
    items = [
        Arrived("p/status", b"online", True),
        Arrived("p/other", b"x", False),
        Arrived(TOPIC, orjson.dumps(dc_report(("m1",))), False),
    ]
    written: list[dict[str, object]] = []
    await write_changes(
        _messages(items, then_wait=False), _board(), SchemaRegistry(), written.append, lambda: 1.0
    )
    assert [document["change"] for document in written] == ["status", "report"]
