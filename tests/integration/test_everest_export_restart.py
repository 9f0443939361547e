"""The export when EVerest starts, restarts or goes quiet after csbridge, through a real
mosquitto: the test plays EVerest's power_supply_DC_API module and its entry point with a plain
MQTT client. Channel names and payloads are EVerest's (EVerest/EVerest docs/source/reference/
EVerest_API/power_supply_DC_API.yaml and entrypoint_API.yaml): e2m/heartbeat a bare counter,
everest_api/ready_beacon `{}`, everest_api/query-modules/power_supply_DC a request with
headers.replyTo answered by `{"apis": [...]}` with `communication_monitoring.heartbeat_period_ms`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import orjson
import pytest
import pytest_asyncio

from csbridge.config import Config, broker_address
from csbridge.service.everest_export import BEACON_EVERY_S
from csbridge.service.station import Station
from csbridge.testing.brokers import Broker
from csbridge.testing.harness import wait_until as until
from tests.conftest import stop_bridge
from tests.support import unique_prefix, wire_station_config

DC = "DE*CSB*E0001"
MODULE_ID = "csb_dc1"
PERIOD_MS = 300
"""The heartbeat period this EVerest announces (EVerest's default is 1000 ms)."""


class Everest:
    """EVerest's power_supply_DC_API module for csb_dc1 and its API entry point."""

    def __init__(self, client: aiomqtt.Client, prefix: str) -> None:
        self.client = client
        self.entry = f"{prefix}/everest_api"
        self.base = f"{self.entry}/1/power_supply_DC/{MODULE_ID}"
        self.received: list[tuple[str, Any]] = []
        self.queries: list[Any] = []
        self.beating = False
        self.count = 0

    async def send(self, channel: str, value: Any) -> None:
        await self.client.publish(f"{self.base}/{channel}", orjson.dumps(value), qos=1)

    async def listen(self) -> None:
        query = f"{self.entry}/query-modules/power_supply_DC"
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b"null"
            value = orjson.loads(payload)
            if message.topic.value == query:
                self.queries.append(value)
                await self.answer(value)
            else:
                self.received.append((message.topic.value.rsplit("/m2e/", 1)[1], value))

    async def answer(self, request: Any) -> None:
        """What ApiHelper::generate_api_entrypoint_cmd_query_module replies."""
        reply = {
            "apis": [
                {"type": "power_supply_DC", "module_id": "someone_else", "version": 1},
                {
                    "type": "power_supply_DC",
                    "module_id": MODULE_ID,
                    "version": 1,
                    "communication_monitoring": {
                        "heartbeat_period_ms": PERIOD_MS,
                        "communication_check_period_s": 5,
                    },
                },
            ]
        }
        await self.client.publish(request["headers"]["replyTo"], orjson.dumps(reply), qos=1)

    async def heartbeat(self) -> None:
        """EVerest's heartbeat on its announced period: the behaviour the export watches."""
        while True:
            if self.beating:
                await self.send("e2m/heartbeat", self.count)
                self.count += 1
            await asyncio.sleep(PERIOD_MS / 1000)

    def seen(self, channel: str) -> list[Any]:
        return [value for name, value in self.received if name == channel]


def export_config(broker_url: str, prefix: str) -> Config:
    raw = wire_station_config(broker_url, prefix).model_dump(mode="json", exclude_none=True)
    # No heartbeat_timeout_s: it is derived from the period EVerest announces.
    raw["everest_export"] = [
        {"evse_id": DC, "module_id": MODULE_ID, "topic_prefix": f"{prefix}/everest_api/1"}
    ]
    return Config.model_validate(raw)


@pytest_asyncio.fixture
async def setup(broker: Broker) -> AsyncIterator[tuple[Station, Everest]]:
    prefix = unique_prefix()
    host, port, _ = broker_address(broker.url)
    async with aiomqtt.Client(host, port) as client:
        everest = Everest(client, prefix)
        await client.subscribe(f"{everest.base}/m2e/#", qos=1)
        await client.subscribe(f"{everest.entry}/query-modules/power_supply_DC", qos=1)
        helpers = [asyncio.create_task(everest.listen()), asyncio.create_task(everest.heartbeat())]
        station = Station(export_config(broker.url, prefix))
        task = asyncio.create_task(station.run())
        try:
            await until(lambda: station.engine.entries.get(DC)["dc"]["max_current"] == 240.0)
            await until(lambda: bool(everest.seen("capabilities")) and bool(everest.seen("mode")))
            yield station, everest
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await stop_bridge(task)


def _output(station: Station) -> float:
    return sum(m.output_current for (evse, _), m in station.devices.modules.items() if evse == DC)


def _said_again(everest: Everest, *channels: str) -> bool:
    return all(everest.seen(channel) for channel in channels)


async def _exporting(station: Station, everest: Everest) -> None:
    await everest.send("e2m/export_voltage_current", {"voltage_V": 400.0, "current_A": 60.0})
    await everest.send("e2m/mode", {"mode": "Export", "charging_phase": "Charging"})
    await until(lambda: _output(station) > 0, timeout=5)


async def test_the_heartbeat_period_is_asked_of_everest_and_sets_the_timeout(
    setup: tuple[Station, Everest],
) -> None:
    station, everest = setup
    await until(lambda: bool(everest.queries), timeout=5)
    assert everest.queries[0] == {
        "headers": {"replyTo": f"{everest.entry}/reply/csbridge/{MODULE_ID}"}
    }
    offer = station.export.offers[DC]
    await until(lambda: offer.heartbeat_interval_s == PERIOD_MS / 1000, timeout=5)
    assert offer.heartbeat_timeout_s == pytest.approx(3 * PERIOD_MS / 1000)  # not a fixed 5 s


async def test_the_first_heartbeat_says_capabilities_and_mode_again(
    setup: tuple[Station, Everest],
) -> None:
    _, everest = setup
    everest.received.clear()
    everest.beating = True  # EVerest starts after csbridge
    await until(lambda: _said_again(everest, "capabilities", "mode"), timeout=5)
    assert everest.seen("capabilities")[-1]["max_export_current_A"] == 240.0
    assert everest.seen("mode")[-1] == "Off"


async def test_a_heartbeat_counter_going_back_is_a_restarted_everest(
    setup: tuple[Station, Everest],
) -> None:
    station, everest = setup
    everest.beating = True
    await until(lambda: everest.count >= 3, timeout=5)
    await _exporting(station, everest)
    everest.received.clear()
    everest.count = 0  # EVerest restarted: its counter starts again
    await until(lambda: _said_again(everest, "capabilities", "mode"), timeout=5)
    # A restarted EVerest runs no session: the former one's setpoint is dropped.
    await until(lambda: _output(station) == 0.0, timeout=5)


async def test_the_ready_beacon_says_active_errors_again_and_asks_for_the_period(
    setup: tuple[Station, Everest],
) -> None:
    station, everest = setup
    await until(lambda: bool(everest.queries), timeout=5)
    for name in ("m1", "m2", "m3"):
        station.devices.modules[(DC, name)].silent = True
    await until(lambda: bool(everest.seen("raise_error")), timeout=10)
    queries = len(everest.queries)
    everest.received.clear()
    await everest.client.publish(f"{everest.entry}/ready_beacon", b"{}", qos=1)
    await until(lambda: _said_again(everest, "raise_error", "capabilities", "mode"), timeout=5)
    # Only types of power_supply_DC's closed list, with the sub_type a later clear will use.
    assert everest.seen("raise_error") == [
        {"type": "HardwareFault", "sub_type": "csbridge: evse_malfunction"}
    ]
    assert everest.seen("mode")[-1] == "Fault"
    await until(lambda: len(everest.queries) > queries, timeout=5)


async def test_a_lost_heartbeat_stops_the_stack_within_three_periods_and_its_return_resumes(
    setup: tuple[Station, Everest],
) -> None:
    station, everest = setup
    offer = station.export.offers[DC]
    await until(lambda: offer.heartbeat_interval_s == PERIOD_MS / 1000, timeout=5)
    everest.beating = True
    await until(lambda: everest.count >= 2, timeout=5)
    await _exporting(station, everest)
    everest.beating = False
    took = await until(lambda: _output(station) == 0.0, timeout=5)
    # Three announced periods, one period of slack for the last beat in flight, one tick.
    assert took <= 4 * PERIOD_MS / 1000 + 0.5
    everest.received.clear()
    everest.beating = True  # the same EVerest: its counter goes on
    await until(lambda: _output(station) > 0, timeout=5)  # no new e2m/ command: re-applied
    await until(lambda: _said_again(everest, "capabilities", "mode"), timeout=5)


async def test_a_flood_of_ready_beacons_asks_everest_at_most_once_a_second(
    setup: tuple[Station, Everest],
) -> None:
    station, everest = setup
    await until(lambda: bool(everest.queries), timeout=5)
    before = len(everest.queries)
    label = "everest-export:ready_beacon"
    taken = station.bridge.counters.get("inbound_accepted", label)
    started = time.monotonic()
    for _ in range(50):
        await everest.client.publish(f"{everest.entry}/ready_beacon", b"{}", qos=1)
    await until(
        lambda: station.bridge.counters.get("inbound_accepted", label) == taken + 50, timeout=5
    )
    took = time.monotonic() - started
    # csbridge's messages arrive in the order it sent them: once two voltage_currents (4 Hz)
    # came after the last beacon was taken, every query the flood caused is in too.
    mark = len(everest.received)
    await until(
        lambda: sum(n == "voltage_current" for n, _ in everest.received[mark:]) >= 2, timeout=5
    )
    assert len(everest.queries) > before
    # One query per started second of the flood, not one per beacon.
    assert len(everest.queries) - before <= math.ceil(took / BEACON_EVERY_S) + 1
