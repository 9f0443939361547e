"""csbridge as EVerest's API entry point for the devices it drives, through a real mosquitto:
the test plays a power supply and an IMD program that, like EVerest's own API clients, wait for
`everest_api/ready_beacon`, discover their module ids with `everest_api/discover`, and publish
their state only then (nothing retained). Payloads as EVerest/EVerest docs/source/reference/
EVerest_API/entrypoint_API.yaml defines them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import orjson
import pytest
import pytest_asyncio

from csbridge.config import Config, broker_address
from csbridge.service.station import Station
from csbridge.testing.brokers import Broker
from csbridge.testing.harness import wait_until as until
from tests.conftest import stop_bridge
from tests.integration.test_everest_api import CAPABILITIES, CHECK_S, EVSE, everest_config
from tests.support import unique_prefix

MONITORING = {"heartbeat_period_ms": 1000, "communication_check_period_s": round(CHECK_S)}


@dataclass
class Device:
    """psu1 and imd1 as programs that start before csbridge and wait for its beacon."""

    client: aiomqtt.Client
    entry: str
    base: str
    reply_to: str
    beacons: int = 0
    replies: list[Any] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def publish(self, topic: str, value: Any) -> None:
        await self.client.publish(topic, orjson.dumps(value), qos=1)

    async def listen(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b"null"
            if message.topic.value == f"{self.entry}/ready_beacon":
                assert orjson.loads(payload) == {}
                self.beacons += 1
                await self.publish(
                    f"{self.entry}/discover", {"headers": {"replyTo": self.reply_to}}
                )
            elif message.topic.value == self.reply_to:
                self.replies.append(orjson.loads(payload))
                self.started.set()

    async def run(self) -> None:
        """Once discovered: the state, then the communication check on its period."""
        await self.started.wait()
        psu, imd = f"{self.base}/power_supply_DC/psu1", f"{self.base}/isolation_monitor/imd1"
        await self.publish(f"{psu}/m2e/capabilities", CAPABILITIES)
        await self.publish(f"{psu}/m2e/mode", "Off")
        while True:
            await self.publish(f"{psu}/m2e/communication_check", True)
            await self.publish(f"{imd}/m2e/communication_check", True)
            await self.publish(f"{imd}/m2e/isolation_measurement", {"resistance_F_Ohm": 5e6})
            await asyncio.sleep(0.25)


@pytest.fixture
def config(broker: Broker) -> Config:
    return everest_config(broker.url, unique_prefix())


@pytest_asyncio.fixture
async def device(config: Config) -> AsyncIterator[Device]:
    host, port, _ = broker_address(config.mqtt.broker)
    api = config.evse[0].module[0].everest
    assert api is not None
    entry = api.topic_prefix.rsplit("/", 1)[0]
    async with aiomqtt.Client(host, port) as client:
        found = Device(client, entry, api.topic_prefix, f"{entry}-client/replies")
        await client.subscribe(f"{entry}/ready_beacon", qos=1)
        await client.subscribe(found.reply_to, qos=1)
        tasks = [asyncio.create_task(found.listen()), asyncio.create_task(found.run())]
        yield found
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest_asyncio.fixture
async def station(config: Config, device: Device) -> AsyncIterator[Station]:
    running = Station(config)
    task = asyncio.create_task(running.run())
    try:
        yield running
    finally:
        await stop_bridge(task)


def _psu(check_s: int = MONITORING["communication_check_period_s"]) -> dict[str, Any]:
    return {
        "type": "power_supply_DC",
        "module_id": "psu1",
        "version": 1,
        "communication_monitoring": {**MONITORING, "communication_check_period_s": check_s},
    }


def _imd() -> dict[str, Any]:
    return {
        "type": "isolation_monitor",
        "module_id": "imd1",
        "version": 1,
        "communication_monitoring": MONITORING,
    }


async def test_a_device_that_waits_for_the_beacon_starts_and_its_evse_gets_ready(
    device: Device, station: Station
) -> None:
    await until(lambda: station.engine.entries.get(EVSE)["status_code"] == "evse_ready", 10)
    assert device.beacons == 1
    assert device.replies == [{"apis": [_psu()]}, {"apis": [_imd()]}]
    assert station.engine.entries.get(EVSE)["dc"]["max_current"] == 400.0


async def test_query_modules_answers_for_that_api_type_only(
    device: Device, station: Station
) -> None:
    await until(lambda: len(device.replies) == 2, 10)
    request = {"headers": {"replyTo": device.reply_to}}
    await device.publish(f"{device.entry}/query-modules/isolation_monitor", request)
    await device.publish(f"{device.entry}/query-modules/display_message", request)
    await device.publish(f"{device.entry}/query-modules/power_supply_DC", request)
    await until(lambda: len(device.replies) == 4, 5)
    assert device.replies[2:] == [{"apis": [_imd()]}, {"apis": [_psu()]}]
    label = "everest:entrypoint/query-modules"
    await until(lambda: station.bridge.counters.get("inbound_accepted", label) == 3, 5)


async def test_a_request_whose_reply_would_reach_josev_is_refused(
    device: Device, station: Station
) -> None:
    await until(lambda: len(device.replies) == 2, 10)
    request = {"headers": {"replyTo": station.config.mqtt.request_topic}}
    await device.publish(f"{device.entry}/discover", request)
    await until(lambda: station.bridge.counters.get("inbound_rejected", "schema") == 1, 5)
    assert len(device.replies) == 2
