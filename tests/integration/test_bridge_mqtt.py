"""The bridge as Josev sees it, through a real mosquitto."""

from __future__ import annotations

import asyncio
import socket

import aiomqtt
import pytest

from csbridge.config import Config
from csbridge.messages import Message
from csbridge.mqtt.link import TCP_NODELAY_OPTION
from csbridge.protocol.bridge import Bridge
from csbridge.service.station import Station
from csbridge.tools.emulator import EmulatorError, JosevEmulator
from tests.conftest import start_bridge, stop_bridge


async def test_boot_requests_are_answered_with_their_id(
    bridge: Bridge, josev: JosevEmulator
) -> None:
    parameters, status = await josev.boot(timeout=5)
    assert parameters.name == "cs_parameters"
    assert status.name == "cs_status_and_limits"
    sent = [e.id for e in josev.exchanges if e.outgoing]
    assert sorted(sent) == sorted([parameters.id, status.id])
    assert josev.problems == []


async def test_cs_parameters_and_status_describe_the_same_evses(
    bridge: Bridge, josev: JosevEmulator, config: Config
) -> None:
    parameters, status = await josev.boot(timeout=5)
    configured = [evse.evse_id for evse in config.evse]
    assert parameters.data["number_of_evses"] == len(configured)
    assert [p["evse_id"] for p in parameters.data["parameters"]] == configured
    assert [e["evse_id"] for e in status.data["evses"]] == configured
    dc, ac = status.data["evses"]
    assert set(dc) == {"evse_id", "status_code", "dc", "dc_bpt"}
    assert set(ac) == {"evse_id", "status_code", "ac", "ac_bpt"}
    assert dc["dc"]["max_current"] == 240.0  # three modules of 80 A
    assert dc["dc"]["max_power"] == 120000
    assert dc["dc"]["isolation_status"] == "valid"
    assert ac["ac"]["max_current"] == {"l1": 25.0, "l2": 25.0, "l3": 25.0}  # installation
    services = parameters.data["parameters"][0]["connectors"][0]["services"]
    assert set(services) == {"dc", "dc_bpt"}


async def test_every_boot_is_answered_when_josev_restarts(
    bridge: Bridge, josev: JosevEmulator
) -> None:
    for _ in range(5):
        await josev.boot(timeout=5)
    assert len(josev.responses) == 10
    assert bridge.counters.get("inbound_accepted", "cs_parameters") == 5
    assert bridge.counters.get("inbound_accepted", "cs_status_and_limits") == 5


def _status_and_limits(message: Message) -> bool:
    """A cs_status_and_limits update (the station also pushes its connectors' status)."""
    return message.name == "cs_status_and_limits"


async def test_full_update_of_every_evse_follows_the_connect(
    config: Config, josev: JosevEmulator
) -> None:
    _, task = await start_bridge(config)
    try:
        update = await josev.wait_update(_status_and_limits, timeout=5)
    finally:
        await stop_bridge(task)
    assert [e["evse_id"] for e in update.data["evses"]] == [e.evse_id for e in config.evse]


async def test_a_changed_evse_gets_an_update_of_its_own(
    station: Station, josev: JosevEmulator
) -> None:
    await josev.wait_update(_status_and_limits, timeout=5)
    seen = len(josev.updates)
    board = station.devices.boards["DE*CSB*E0001"]
    board.plug_temperature_c = 81.0  # the plug curve: 250 A at 70 degC, 50 A at 90 degC
    station.devices.emit(board)
    update = await josev.wait_update(_status_and_limits, timeout=5, since=seen)
    assert [e["evse_id"] for e in update.data["evses"]] == ["DE*CSB*E0001"]
    assert update.data["evses"][0]["dc"]["max_current"] == 140.0
    assert josev.view.evses["DE*CSB*E0001"]["dc"]["max_current"] == 140.0
    assert station.engine.reported_binding("DE*CSB*E0001")["max_current"] == "temperature"


async def test_status_topic_is_online_then_offline_and_retained(
    bridge: Bridge, config: Config, raw_client: aiomqtt.Client
) -> None:
    status = await _retained(raw_client, config.mqtt.status_topic)
    assert status == b"online"


async def test_status_goes_offline_when_the_bridge_stops(
    config: Config, raw_client: aiomqtt.Client
) -> None:
    _, task = await start_bridge(config)
    await stop_bridge(task)
    assert await _retained(raw_client, config.mqtt.status_topic) == b"offline"


async def _retained(client: aiomqtt.Client, topic: str) -> bytes:
    await client.subscribe(topic, qos=1)
    async with asyncio.timeout(5):
        async for message in client.messages:
            if message.topic.value == topic:
                await client.unsubscribe(topic)
                assert isinstance(message.payload, bytes)
                return message.payload
    raise AssertionError("unreachable")


async def test_bridge_socket_has_tcp_nodelay(bridge: Bridge) -> None:
    sock = bridge.link.client_socket()
    assert sock is not None
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    assert TCP_NODELAY_OPTION[1] == socket.TCP_NODELAY


async def test_requests_on_other_topics_are_not_answered(
    bridge: Bridge, josev: JosevEmulator, config: Config
) -> None:
    async with JosevEmulator.connect(
        config.mqtt.broker,
        request_topic=config.mqtt.request_topic + "/elsewhere",
        response_topic=config.mqtt.response_topic,
    ) as stray:
        with pytest.raises(EmulatorError):
            await stray.request("cs_parameters", timeout=0.5)
    assert bridge.counters.get("inbound_received") == 0
