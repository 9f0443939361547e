"""What the bridge does with a message from Josev before any handler sees it: a retained one is
never acted on, one handled within the last minute is answered again and not acted on twice, a
response goes to the station's request that waits for it. No broker here: the bridge's answers
are encoded and checked, then deferred (tests/integration/test_josev_inbound.py has the wire)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from csbridge.config import Config
from csbridge.engine import LimitsEngine
from csbridge.messages import (
    CsContactorStatusRequest,
    CsContactorStatusResponse,
    HandlerTable,
    HlcChargingUpdate,
    Message,
    PowerElectronicsSetpointRequest,
    PowerElectronicsSetpointResponse,
    SchemaRegistry,
    handles,
)
from csbridge.protocol import READ_ONLY_REQUESTS, Bridge, Discard, Leaf
from csbridge.protocol.asks import PendingAsks
from csbridge.protocol.recent import RecentMessages
from tests.probe_kind import ProbeRequest, ProbeResponse, probe_registry, probe_response
from tests.support import load_fixture, station_config

DC = "DE*CSB*E0001"


class Clock:
    """The engine's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Session handlers that count what reaches them and answer as told."""

    def __init__(self, fail: bool = False) -> None:
        self.seen: list[Any] = []
        self.fail = fail

    @handles(PowerElectronicsSetpointRequest)
    def setpoint(
        self, message: PowerElectronicsSetpointRequest
    ) -> PowerElectronicsSetpointResponse:
        self.seen.append(message)
        if self.fail:
            raise RuntimeError("a handler bug")
        return PowerElectronicsSetpointResponse(evse_id=message.evse_id, status="accepted")

    @handles(CsContactorStatusRequest)
    def contactor(self, message: CsContactorStatusRequest) -> CsContactorStatusResponse | None:
        self.seen.append(message)
        return None

    @handles(HlcChargingUpdate)
    def hlc(self, message: HlcChargingUpdate) -> None:
        self.seen.append(message)


@pytest.fixture
def probe_schemas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SchemaRegistry:
    return probe_registry(tmp_path / "schemas", monkeypatch)


def _config() -> Config:
    return station_config("mqtt://127.0.0.1:1", "discipline")


def _bridge(
    recorder: Recorder, clock: Clock | None = None, registry: SchemaRegistry | None = None
) -> Bridge:
    config = _config()
    engine = LimitsEngine(config, clock=clock or Clock())
    return Bridge(config, engine, session=HandlerTable.of(recorder), registry=registry)


def _setpoint(message_id: str | None = None, current: float = 125.5) -> bytes:
    document = load_fixture("power_electronics_setpoint_request", "messages-session")
    document["id"] = message_id or str(uuid.uuid4())
    document["data"]["dc"]["charge_current"] = current
    return orjson.dumps(document)


def _document(name: str, message_type: str, data: dict[str, Any], message_id: str) -> bytes:
    return orjson.dumps({"id": message_id, "name": name, "type": message_type, "data": data})


def _answers_deferred(bridge: Bridge, name: str) -> int:
    """Answers encoded, checked and handed to MQTT, which is down here: deferred."""
    return bridge.counters.get("publish_deferred", f"{name}/response")


def _rejected_lines(caplog: pytest.LogCaptureFixture, reason: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if "event=inbound_rejected" in r.getMessage() and f"reason={reason} " in r.getMessage()
    ]


# -- the memory of handled messages ------------------------------------------------------------


def _message(payload: Any, message_id: str = "5a8e1f3c-9b27-4d60-b4e2-0f7a3c95d18b") -> Message:
    return Message(payload, message_id)


def test_the_same_message_is_found_and_another_is_not() -> None:
    clock = Clock()
    recent = RecentMessages(clock)
    first = _message(HlcChargingUpdate(evse_id=DC, status=True))
    assert recent.earlier(first) is None
    handled = recent.remember(first)
    assert recent.earlier(first) is handled
    assert recent.earlier(_message(HlcChargingUpdate(evse_id=DC, status=True))) is handled
    other_data = _message(HlcChargingUpdate(evse_id=DC, status=False))
    assert recent.earlier(other_data) is None
    other_name = _message(CsContactorStatusRequest(evse_id=DC))
    assert recent.earlier(other_name) is None
    other_id = _message(HlcChargingUpdate(evse_id=DC, status=True), str(uuid.uuid4()))
    assert recent.earlier(other_id) is None


def test_an_id_reused_with_other_data_takes_the_old_ones_place() -> None:
    recent = RecentMessages(Clock())
    recent.remember(_message(HlcChargingUpdate(evse_id=DC, status=True)))
    newer = _message(HlcChargingUpdate(evse_id=DC, status=False))
    recent.remember(newer)
    assert len(recent) == 1
    assert recent.earlier(newer) is not None
    assert recent.earlier(_message(HlcChargingUpdate(evse_id=DC, status=True))) is None


def test_a_message_is_forgotten_after_the_window() -> None:
    clock = Clock()
    recent = RecentMessages(clock, window_s=60.0)
    message = _message(HlcChargingUpdate(evse_id=DC, status=True))
    recent.remember(message)
    clock.now += 59.9
    assert recent.earlier(message) is not None
    clock.now += 0.1
    assert recent.earlier(message) is None
    assert len(recent) == 0


def test_at_most_capacity_messages_are_kept_the_oldest_going_first() -> None:
    recent = RecentMessages(Clock(), capacity=3)
    messages = [
        _message(HlcChargingUpdate(evse_id=DC, status=True), str(uuid.uuid4())) for _ in range(5)
    ]
    for message in messages:
        recent.remember(message)
    assert len(recent) == 3
    assert [recent.earlier(m) is not None for m in messages] == [False, False, True, True, True]
    with pytest.raises(ValueError, match="capacity"):
        RecentMessages(Clock(), capacity=0)


# -- requests of the station's, waiting for Josev's response -----------------------------------


async def test_a_response_goes_to_the_request_with_its_id_once() -> None:
    asks = PendingAsks()
    request = Message(ProbeRequest(evse_id=DC))
    answer = asks.open(request)
    unknown = Message(ProbeResponse(status="accepted"))
    assert asks.resolve(unknown) is not None
    assert not answer.done()
    response = Message(ProbeResponse(status="rejected"), request.id)
    assert asks.resolve(response) is None
    assert await answer == ProbeResponse(status="rejected")
    problem = asks.resolve(response)
    assert problem is not None
    assert "already" in problem
    asks.close(request.id)
    assert len(asks) == 0
    problem = asks.resolve(response)
    assert problem is not None
    assert "no request" in problem


async def test_a_response_of_another_kind_leaves_the_request_waiting() -> None:
    asks = PendingAsks()
    request = Message(ProbeRequest(evse_id=DC))
    answer = asks.open(request)
    problem = asks.resolve(Message(HlcChargingUpdate(evse_id=DC, status=True), request.id))
    assert problem == "the request with this id is station_probe, not hlc_charging"
    assert not answer.done()
    with pytest.raises(ValueError, match="already waiting"):
        asks.open(request)
    asks.close(request.id)
    assert answer.cancelled()


# -- the bridge ----------------------------------------------------------------------------------


async def test_a_repeated_request_is_answered_again_and_handled_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge")
    recorder = Recorder()
    bridge = _bridge(recorder)
    topic = bridge.config.mqtt.request_topic
    request = _setpoint()
    for _ in range(3):
        await bridge.handle(topic, request)
    assert len(recorder.seen) == 1
    assert _answers_deferred(bridge, "power_electronics_setpoint") == 3
    assert bridge.counters.get("inbound_accepted", "power_electronics_setpoint") == 1
    assert bridge.counters.get("inbound_rejected", Discard.DUPLICATE) == 2
    lines = _rejected_lines(caplog, "duplicate")
    assert len(lines) == 1, "one line a minute per kind"
    assert "message=power_electronics_setpoint" in lines[0]
    assert "its answer is sent again" in lines[0]


async def test_a_repeat_without_an_answer_is_dropped() -> None:
    recorder = Recorder()
    bridge = _bridge(recorder)
    topic = bridge.config.mqtt.request_topic
    message_id = str(uuid.uuid4())
    update = _document("hlc_charging", "update", {"evse_id": DC, "status": True}, message_id)
    unanswered = _document("cs_contactor_status", "request", {"evse_id": DC}, message_id)
    for payload in (update, update, unanswered, unanswered):
        await bridge.handle(topic, payload)
    # The same id on another kind is a message of its own (see protocol/recent.py).
    assert [type(m) for m in recorder.seen] == [HlcChargingUpdate, CsContactorStatusRequest]
    assert bridge.counters.get("inbound_rejected", Discard.DUPLICATE) == 2
    assert bridge.counters.total("publish_deferred") == 0


async def test_a_handler_that_failed_is_not_run_again_for_the_repeat() -> None:
    recorder = Recorder(fail=True)
    bridge = _bridge(recorder)
    topic = bridge.config.mqtt.request_topic
    request = _setpoint()
    await bridge.handle(topic, request)
    await bridge.handle(topic, request)
    assert len(recorder.seen) == 1
    assert bridge.counters.get("handler_failed", topic) == 1
    assert bridge.counters.get("inbound_rejected", Discard.DUPLICATE) == 1
    assert bridge.counters.total("publish_deferred") == 0


async def test_an_id_reused_with_other_data_is_a_new_request() -> None:
    recorder = Recorder()
    bridge = _bridge(recorder)
    topic = bridge.config.mqtt.request_topic
    message_id = str(uuid.uuid4())
    await bridge.handle(topic, _setpoint(message_id, current=100.0))
    await bridge.handle(topic, _setpoint(message_id, current=20.0))
    assert [m.dc.charge_current for m in recorder.seen] == [100.0, 20.0]
    assert bridge.counters.total("inbound_rejected") == 0


async def test_a_request_repeated_after_the_minute_is_handled_again() -> None:
    clock = Clock()
    recorder = Recorder()
    bridge = _bridge(recorder, clock)
    topic = bridge.config.mqtt.request_topic
    request = _setpoint()
    await bridge.handle(topic, request)
    clock.now += 59.0
    await bridge.handle(topic, request)
    clock.now += 61.0
    await bridge.handle(topic, request)
    assert len(recorder.seen) == 2
    assert bridge.counters.get("inbound_rejected", Discard.DUPLICATE) == 1


async def test_a_repeated_boot_request_is_answered_afresh() -> None:
    bridge = _bridge(Recorder())
    topic = bridge.config.mqtt.request_topic
    assert {kind.NAME for kind in READ_ONLY_REQUESTS} == {"cs_parameters", "cs_status_and_limits"}
    request = _document("cs_status_and_limits", "request", {}, str(uuid.uuid4()))
    await bridge.handle(topic, request)
    await bridge.handle(topic, request)
    assert bridge.counters.get("inbound_accepted", "cs_status_and_limits") == 2
    assert _answers_deferred(bridge, "cs_status_and_limits") == 2
    assert bridge.counters.total("inbound_rejected") == 0


async def test_a_retained_message_reaches_no_handler_and_is_logged_once_per_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge")
    recorder = Recorder()
    bridge = _bridge(recorder)
    topic = bridge.config.mqtt.request_topic
    update = _document("hlc_charging", "update", {"evse_id": DC, "status": True}, str(uuid.uuid4()))
    retained = [_setpoint(), _setpoint(), update, b"\x00garbage", b'{"name": "make_coffee"}']
    for payload in retained:
        await bridge.handle(topic, payload, retained=True)
    assert recorder.seen == []
    assert bridge.counters.get("inbound_rejected", Discard.RETAINED) == 5
    assert bridge.counters.total("inbound_rejected") == 5
    assert bridge.counters.total("publish_deferred") == 0
    lines = _rejected_lines(caplog, "retained")
    named = [line.split("message=")[1].split()[0] for line in lines]
    assert named == ["power_electronics_setpoint", "hlc_charging", "?"]
    # Not remembered either: the same message asked now is acted on.
    await bridge.handle(topic, retained[0])
    assert len(recorder.seen) == 1


async def test_a_retained_flag_on_our_own_topics_changes_nothing() -> None:
    """An operator's retained disable is meant to survive a restart (docs/deploy.md)."""
    bridge = _bridge(Recorder())
    topic = bridge.local.topic(DC, Leaf.OPERATOR)
    await bridge.handle(topic, b'{"enabled": false}', retained=True)
    assert bridge.counters.get("inbound_accepted", "operator") == 1


async def test_ask_without_a_broker_gives_none_at_once(
    caplog: pytest.LogCaptureFixture, probe_schemas: SchemaRegistry
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge")
    bridge = _bridge(Recorder(), registry=probe_schemas)
    answer = await asyncio.wait_for(bridge.ask(ProbeRequest(evse_id=DC), timeout_s=30), 1)
    assert answer is None
    assert bridge.counters.get("request_unanswered", "station_probe") == 1
    assert bridge.counters.get("publish_deferred", "station_probe/request") == 1
    logged = [r.getMessage() for r in caplog.records]
    assert any("event=request_unanswered message=station_probe" in line for line in logged)
    with pytest.raises(ValueError, match="not a request"):
        await bridge.ask(ProbeResponse(status="accepted"), timeout_s=1)


async def test_a_response_nobody_waits_for_reaches_no_handler(
    caplog: pytest.LogCaptureFixture, probe_schemas: SchemaRegistry
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge")

    class ResponseHandler:
        def __init__(self) -> None:
            self.seen: list[ProbeResponse] = []

        @handles(ProbeResponse)
        def probe(self, message: ProbeResponse) -> None:
            self.seen.append(message)

    owner = ResponseHandler()
    config = _config()
    bridge = Bridge(
        config,
        LimitsEngine(config),
        session=HandlerTable.of(owner),
        registry=probe_schemas,
    )
    for _ in range(3):
        await bridge.handle(config.mqtt.request_topic, probe_response(str(uuid.uuid4())))
    assert owner.seen == []
    assert bridge.counters.get("inbound_rejected", Discard.UNMATCHED_RESPONSE) == 3
    lines = _rejected_lines(caplog, "unmatched_response")
    assert len(lines) == 1
    assert "message=station_probe" in lines[0]
