"""Josev's request topic through a real mosquitto: a retained message is never acted on (not at
the first connect, not after a reconnect), a repeated request is answered again byte for byte
and handled once, and the station's own request to Josev gets its response by id."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import orjson
import pytest

from csbridge.config import Config, broker_address
from csbridge.engine import LimitsEngine
from csbridge.messages import (
    HandlerTable,
    PowerElectronicsSetpointRequest,
    PowerElectronicsSetpointResponse,
    SchemaRegistry,
    handles,
)
from csbridge.mqtt.link import TCP_NODELAY_OPTION
from csbridge.protocol import Bridge, Discard
from csbridge.testing.harness import wait_until
from tests.conftest import stop_bridge
from tests.probe_kind import NAME as PROBE
from tests.probe_kind import ProbeRequest, ProbeResponse, probe_registry, probe_response
from tests.support import load_fixture

DC = "DE*CSB*E0001"


class Setpoints:
    """The session's setpoint handler, reduced to counting what reaches it."""

    def __init__(self) -> None:
        self.seen: list[PowerElectronicsSetpointRequest] = []

    @handles(PowerElectronicsSetpointRequest)
    def setpoint(
        self, message: PowerElectronicsSetpointRequest
    ) -> PowerElectronicsSetpointResponse:
        self.seen.append(message)
        return PowerElectronicsSetpointResponse(evse_id=message.evse_id, status="accepted")


class ProbeResponses:
    """A handler for the probe's response: the bridge must never call it."""

    def __init__(self) -> None:
        self.seen: list[ProbeResponse] = []

    @handles(ProbeResponse)
    def probe(self, message: ProbeResponse) -> None:
        self.seen.append(message)


def _setpoint(message_id: str | None = None) -> bytes:
    document = load_fixture("power_electronics_setpoint_request", "messages-session")
    document["id"] = message_id or str(uuid.uuid4())
    return orjson.dumps(document)


@contextlib.asynccontextmanager
async def _client(config: Config, identifier: str | None = None) -> AsyncIterator[aiomqtt.Client]:
    host, port, _ = broker_address(config.mqtt.broker)
    async with aiomqtt.Client(
        host, port, identifier=identifier, socket_options=[TCP_NODELAY_OPTION]
    ) as client:
        yield client


async def _listen(client: aiomqtt.Client, into: list[aiomqtt.Message]) -> None:
    async for message in client.messages:
        into.append(message)


async def _take_over(config: Config) -> None:
    """Connect with the bridge's own client id: the broker drops the bridge's connection (MQTT's
    session takeover), and the bridge connects again and subscribes again."""
    with contextlib.suppress(aiomqtt.MqttError):  # the bridge may take it back first
        async with _client(config, identifier=config.mqtt.client_id):
            pass


def _rejected_lines(caplog: pytest.LogCaptureFixture, reason: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if "event=inbound_rejected" in r.getMessage() and f"reason={reason} " in r.getMessage()
    ]


def _responses(heard: list[aiomqtt.Message], message_id: str) -> list[bytes]:
    found = []
    for message in heard:
        assert isinstance(message.payload, bytes)
        document = orjson.loads(message.payload)
        if document["id"] == message_id and document["type"] == "response":
            found.append(message.payload)
    return found


async def test_a_retained_setpoint_is_not_acted_on_before_or_after_a_reconnect(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge")
    setpoints = Setpoints()
    heard: list[aiomqtt.Message] = []
    retained_id = str(uuid.uuid4())
    async with _client(config) as josev:
        await josev.subscribe(config.mqtt.response_topic, qos=1)
        listener = asyncio.create_task(_listen(josev, heard))
        # On the broker before the bridge first connects, as a stale request from a past session.
        await josev.publish(config.mqtt.request_topic, _setpoint(retained_id), qos=1, retain=True)
        bridge = Bridge(config, LimitsEngine(config), session=HandlerTable.of(setpoints))
        task = asyncio.create_task(bridge.run())
        try:
            retained = bridge.counters.get
            await wait_until(
                lambda: retained("inbound_rejected", Discard.RETAINED) == 1, 5, "first refusal"
            )
            await _take_over(config)
            await wait_until(lambda: bridge.link.connects >= 2, 5, "the reconnect")
            await wait_until(
                lambda: retained("inbound_rejected", Discard.RETAINED) == 2, 5, "second refusal"
            )
            assert setpoints.seen == []

            live_id = str(uuid.uuid4())
            await josev.publish(config.mqtt.request_topic, _setpoint(live_id), qos=1)
            await wait_until(lambda: len(_responses(heard, live_id)) == 1, 5, "the live answer")
            assert [m.evse_id for m in setpoints.seen] == [DC]
            assert _responses(heard, retained_id) == []
            assert retained("inbound_rejected", Discard.RETAINED) == 2
        finally:
            await josev.publish(config.mqtt.request_topic, b"", qos=1, retain=True)  # clear it
            await stop_bridge(task)
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
    lines = _rejected_lines(caplog, "retained")
    assert len(lines) == 1, "one line per message name, not per message"
    assert "message=power_electronics_setpoint" in lines[0]


async def test_a_repeated_setpoint_is_answered_again_the_same_and_handled_once(
    config: Config,
) -> None:
    setpoints = Setpoints()
    heard: list[aiomqtt.Message] = []
    bridge = Bridge(config, LimitsEngine(config), session=HandlerTable.of(setpoints))
    task = asyncio.create_task(bridge.run())
    async with _client(config) as josev:
        await josev.subscribe(config.mqtt.response_topic, qos=1)
        listener = asyncio.create_task(_listen(josev, heard))
        try:
            await wait_until(bridge.link.connected.is_set, 5, "the bridge connected")
            message_id = str(uuid.uuid4())
            request = _setpoint(message_id)
            for count in (1, 2, 3):
                await josev.publish(config.mqtt.request_topic, request, qos=1)
                await wait_until(
                    lambda n=count: len(_responses(heard, message_id)) == n, 5, f"answer {count}"
                )
        finally:
            await stop_bridge(task)
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
    answers = _responses(heard, message_id)
    assert len(set(answers)) == 1, "the same answer, byte for byte"
    assert len(setpoints.seen) == 1
    assert bridge.counters.get("inbound_rejected", Discard.DUPLICATE) == 2


@pytest.fixture
def probe_schemas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SchemaRegistry:
    return probe_registry(tmp_path / "schemas", monkeypatch)


async def _answer_probes(
    client: aiomqtt.Client, config: Config, status: str, answered: list[str]
) -> None:
    """Josev: answers every probe request on the station's topic, with the request's id."""
    async for message in client.messages:
        assert isinstance(message.payload, bytes)
        document = orjson.loads(message.payload)
        if document["name"] == PROBE and document["type"] == "request":
            answered.append(document["id"])
            reply = probe_response(document["id"], status)
            await client.publish(config.mqtt.request_topic, reply, qos=1)


async def test_the_station_asks_josev_and_gets_the_response_with_its_id(
    config: Config, probe_schemas: SchemaRegistry
) -> None:
    responses = ProbeResponses()
    engine = LimitsEngine(config)
    bridge = Bridge(config, engine, session=HandlerTable.of(responses), registry=probe_schemas)
    task = asyncio.create_task(bridge.run())
    answered: list[str] = []
    async with _client(config) as josev:
        await josev.subscribe(config.mqtt.response_topic, qos=1)
        answering = asyncio.create_task(_answer_probes(josev, config, "rejected", answered))
        try:
            await wait_until(bridge.link.connected.is_set, 5, "the bridge connected")
            first = await bridge.ask(ProbeRequest(evse_id=DC), timeout_s=5)
            second = await bridge.ask(ProbeRequest(evse_id=DC), timeout_s=5)
        finally:
            await stop_bridge(task)
            answering.cancel()
            await asyncio.gather(answering, return_exceptions=True)
    assert first == second == ProbeResponse(status="rejected")
    assert len(set(answered)) == 2, "each request has an id of its own"
    assert responses.seen == [], "a response never reaches the handler table"
    assert bridge.counters.get("inbound_accepted", PROBE) == 2
    assert bridge.counters.get("outbound_published", f"{PROBE}/request") == 2
    assert bridge.counters.total("request_unanswered") == 0


async def test_an_unanswered_ask_times_out_and_a_late_or_stray_response_is_counted(
    config: Config, probe_schemas: SchemaRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge")
    responses = ProbeResponses()
    bridge = Bridge(
        config, LimitsEngine(config), session=HandlerTable.of(responses), registry=probe_schemas
    )
    task = asyncio.create_task(bridge.run())
    heard: list[aiomqtt.Message] = []
    async with _client(config) as josev:
        await josev.subscribe(config.mqtt.response_topic, qos=1)
        listener = asyncio.create_task(_listen(josev, heard))
        try:
            await wait_until(bridge.link.connected.is_set, 5, "the bridge connected")
            answer = await bridge.ask(ProbeRequest(evse_id=DC), timeout_s=0.3)
            assert answer is None
            assert bridge.counters.get("request_unanswered", PROBE) == 1
            (request,) = [orjson.loads(m.payload) for m in heard if b"station_probe" in m.payload]
            # Josev answers too late, then answers something nobody asked.
            for message_id in (request["id"], str(uuid.uuid4())):
                await josev.publish(config.mqtt.request_topic, probe_response(message_id), qos=1)
            await wait_until(
                lambda: bridge.counters.get("inbound_rejected", Discard.UNMATCHED_RESPONSE) == 2,
                5,
                "both responses refused",
            )
        finally:
            await stop_bridge(task)
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
    assert responses.seen == []
    logged = [r.getMessage() for r in caplog.records]
    assert sum("event=request_unanswered message=station_probe" in line for line in logged) == 1
    assert len(_rejected_lines(caplog, "unmatched_response")) == 1, "once per kind"
