"""Per-device EVerest API options through a real mosquitto: `communication_check_s = 0` (no
check, as EVerest's bring-up configurations run it) and `api_revision = "2025.10"` (the
isolation monitor's command names before EVerest 2026.02: e2m/receive_start, ...). The test
plays the device programs with a plain MQTT client that never sends m2e/communication_check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import orjson
import pytest_asyncio

from csbridge.config import Config, broker_address
from csbridge.service.station import Station
from csbridge.testing.brokers import Broker
from csbridge.testing.harness import wait_until as until
from tests.conftest import stop_bridge
from tests.integration.test_everest_api import CAPABILITIES, EVSE, everest_config
from tests.support import unique_prefix


def no_check_old_revision(broker_url: str) -> Config:
    raw = everest_config(broker_url, unique_prefix()).model_dump(mode="json", exclude_none=True)
    evse = raw["evse"][0]
    for api in (evse["module"][0]["everest"], evse["imd"]["everest"]):
        api["communication_check_s"] = 0
        api["api_revision"] = "2025.10"
    return Config.model_validate(raw)


@pytest_asyncio.fixture
async def setup(broker: Broker) -> AsyncIterator[tuple[Station, list[tuple[str, Any]]]]:
    config = no_check_old_revision(broker.url)
    api = config.evse[0].module[0].everest
    assert api is not None
    host, port, _ = broker_address(broker.url)
    received: list[tuple[str, Any]] = []
    entry = api.topic_prefix.rsplit("/", 1)[0]
    psu = f"{api.topic_prefix}/power_supply_DC/psu1"
    imd = f"{api.topic_prefix}/isolation_monitor/imd1"

    async def listen(client: aiomqtt.Client) -> None:
        """The capabilities on csbridge's ready beacon (nothing is retained)."""
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b"null"
            received.append((message.topic.value, orjson.loads(payload)))
            if message.topic.value == f"{entry}/ready_beacon":
                capabilities = orjson.dumps(CAPABILITIES)
                await client.publish(f"{psu}/m2e/capabilities", capabilities, qos=1)

    async def device(client: aiomqtt.Client) -> None:
        """Measurements on their period, never a communication check."""
        while True:
            measured = {"voltage_V": 0.0, "current_A": 0.0}
            await client.publish(f"{psu}/m2e/voltage_current", orjson.dumps(measured), qos=1)
            isolation = {"resistance_F_Ohm": 5e6}
            await client.publish(f"{imd}/m2e/isolation_measurement", orjson.dumps(isolation))
            await asyncio.sleep(0.25)

    async with aiomqtt.Client(host, port) as client:
        await client.subscribe(f"{api.topic_prefix}/+/+/e2m/#", qos=1)
        await client.subscribe(f"{entry}/ready_beacon", qos=1)
        station = Station(config)
        task = asyncio.create_task(station.run())
        helpers = [asyncio.create_task(listen(client)), asyncio.create_task(device(client))]
        try:
            yield station, received
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await stop_bridge(task)


async def test_without_a_communication_check_the_devices_count_from_their_first_message(
    setup: tuple[Station, list[tuple[str, Any]]],
) -> None:
    station, _ = setup
    await until(lambda: station.engine.entries.get(EVSE)["status_code"] == "evse_ready", 10)
    assert station.engine.entries.get(EVSE)["dc"]["max_current"] == 400.0


async def test_api_revision_2025_10_starts_the_imd_with_the_old_command_name(
    setup: tuple[Station, list[tuple[str, Any]]],
) -> None:
    _, received = setup
    await until(lambda: any(t.endswith("/imd1/e2m/receive_start") for t, _ in received), 10)
    assert not any(t.endswith("/imd1/e2m/start") for t, _ in received)
