"""One handler table for every message Josev sends: the bridge's boot answers and the session's
handlers register with @handles, each kind once; a request's handler answers with its response."""

from __future__ import annotations

import typing
import uuid
from typing import Any

import orjson
import pytest

from csbridge.config import Config
from csbridge.engine import LimitsEngine
from csbridge.messages import (
    PAYLOADS,
    CableCheckRequest,
    CableCheckResponse,
    Direction,
    HandlerTable,
    MessageType,
    SchemaRegistry,
    StopChargingResponse,
    handles,
)
from csbridge.protocol import Bridge
from csbridge.service.station import Station
from tests.support import station_config

FROM_JOSEV = {
    cls
    for kind, cls in PAYLOADS.items()
    if SchemaRegistry().kinds[kind].direction is Direction.FROM_JOSEV
    and cls.TYPE is not MessageType.RESPONSE
}
"""Every request and update Josev sends; its responses answer the station's own requests and
go to the request that waits for them (Bridge.ask), never to a handler."""


def _config() -> Config:
    return station_config("mqtt://127.0.0.1:1", "handlers")


class _CableCheck:
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    @handles(CableCheckRequest)
    def cable_check(self, message: CableCheckRequest) -> CableCheckResponse | None:
        return typing.cast(CableCheckResponse | None, self.answer)


def _cable_check_request() -> bytes:
    data = {"evse_id": "DE*CSB*E0001", "cable_check_action": "start"}
    document = {"id": str(uuid.uuid4()), "name": "cable_check", "type": "request", "data": data}
    return orjson.dumps(document)


def test_marked_methods_are_collected_bound_to_their_owner() -> None:
    owner = _CableCheck(None)
    table = HandlerTable.of(owner)
    assert table.kinds() == {CableCheckRequest}
    handler = table.get(CableCheckRequest)
    assert handler is not None
    assert getattr(handler, "__self__", None) is owner


def test_a_kind_claimed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="two handlers for CableCheckRequest"):
        HandlerTable.of(_CableCheck(None), _CableCheck(None))
    with pytest.raises(ValueError, match="two handlers for CableCheckRequest"):
        _ = HandlerTable.of(_CableCheck(None)) | HandlerTable.of(_CableCheck(None))


def test_the_station_handles_every_kind_josev_sends_in_one_table() -> None:
    table = Station(_config()).bridge._handlers  # noqa: SLF001 - the one table, as wired
    assert table.kinds() == FROM_JOSEV


def test_a_request_handler_returns_its_response_and_an_update_handler_nothing() -> None:
    table = Station(_config()).bridge._handlers  # noqa: SLF001 - the one table, as wired
    for kind in table.kinds():
        handler = table.get(kind)
        assert handler is not None
        returned = typing.get_type_hints(handler)["return"]
        if kind.TYPE is MessageType.REQUEST:
            response = PAYLOADS[(kind.NAME, MessageType.RESPONSE)]
            answers = set(typing.get_args(returned)) or {returned}
            assert answers - {type(None)} == {response}, kind
        else:
            assert returned is type(None), kind


async def test_an_answer_of_another_kind_is_a_bug_never_sent() -> None:
    config = _config()
    wrong = StopChargingResponse(evse_id="DE*CSB*E0001", status="accepted")
    bridge = Bridge(config, LimitsEngine(config), session=HandlerTable.of(_CableCheck(wrong)))
    await bridge.handle(config.mqtt.request_topic, _cable_check_request())
    assert bridge.counters.get("handler_failed", config.mqtt.request_topic) == 1
    assert bridge.counters.get("inbound_accepted", "cable_check") == 0
    assert bridge.counters.total("publish_deferred") == 0


async def test_an_answer_is_sent_and_none_is_not() -> None:
    config = _config()
    answer = CableCheckResponse(evse_id="DE*CSB*E0001", cable_check_status="ongoing")
    bridge = Bridge(config, LimitsEngine(config), session=HandlerTable.of(_CableCheck(answer)))
    await bridge.handle(config.mqtt.request_topic, _cable_check_request())
    # No broker: the answer is encoded and checked, then deferred.
    assert bridge.counters.get("publish_deferred", "cable_check/response") == 1
    silent = Bridge(config, LimitsEngine(config), session=HandlerTable.of(_CableCheck(None)))
    await silent.handle(config.mqtt.request_topic, _cable_check_request())
    assert silent.counters.get("inbound_accepted", "cable_check") == 1
    assert silent.counters.total("publish_deferred") == 0


async def test_a_kind_nobody_handles_is_counted_unhandled() -> None:
    config = _config()
    bridge = Bridge(config, LimitsEngine(config))
    await bridge.handle(config.mqtt.request_topic, _cable_check_request())
    assert bridge.counters.get("inbound_unhandled", "cable_check") == 1
