"""A csbridge CAN stack offered to EVerest as a power_supply_DC API module: the test plays
EVerest with a plain MQTT client against examples/sim-station.toml (modules on the virtual bus,
so the real codecs run)."""

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
from tests.support import unique_prefix, wire_station_config

DC = "DE*CSB*E0001"
HEARTBEAT_TIMEOUT_S = 1.0


class Everest:
    """What EVerest's power_supply_DC_API module would be: e2m out, m2e in."""

    def __init__(self, client: aiomqtt.Client, base: str) -> None:
        self.client = client
        self.base = base
        self.received: list[tuple[str, Any]] = []
        self.beating = True

    async def send(self, channel: str, value: Any) -> None:
        await self.client.publish(f"{self.base}/{channel}", orjson.dumps(value), qos=1)

    async def listen(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b"null"
            self.received.append((message.topic.value.rsplit("/m2e/", 1)[1], orjson.loads(payload)))

    async def heartbeat(self) -> None:
        """EVerest's heartbeat on its own period: the behaviour the export watches."""
        count = 0
        while True:
            if self.beating:
                await self.send("e2m/heartbeat", count)
                count += 1
            await asyncio.sleep(0.2)

    def last(self, channel: str) -> Any:
        values = [value for name, value in self.received if name == channel]
        return values[-1] if values else None


def export_config(broker_url: str, prefix: str) -> Config:
    raw = wire_station_config(broker_url, prefix).model_dump(mode="json", exclude_none=True)
    raw["everest_export"] = [
        {
            "evse_id": DC,
            "module_id": "csb_dc1",
            "topic_prefix": f"{prefix}/everest_api/1",
            "heartbeat_timeout_s": HEARTBEAT_TIMEOUT_S,
        }
    ]
    return Config.model_validate(raw)


@pytest_asyncio.fixture
async def setup(broker: Broker) -> AsyncIterator[tuple[Station, Everest]]:
    prefix = unique_prefix()
    config = export_config(broker.url, prefix)
    host, port, _ = broker_address(broker.url)
    station = Station(config)
    task = asyncio.create_task(station.run())
    async with aiomqtt.Client(host, port) as client:
        everest = Everest(client, f"{prefix}/everest_api/1/power_supply_DC/csb_dc1")
        await client.subscribe(f"{everest.base}/m2e/#", qos=1)
        helpers = [asyncio.create_task(everest.listen()), asyncio.create_task(everest.heartbeat())]
        try:
            await until(lambda: station.engine.entries.get(DC)["dc"]["max_current"] == 240.0)
            yield station, everest
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await stop_bridge(task)


def _output(station: Station) -> float:
    return sum(m.output_current for (evse, _), m in station.devices.modules.items() if evse == DC)


async def test_everest_sees_the_stack_as_a_power_supply(setup: tuple[Station, Everest]) -> None:
    _, everest = setup
    await until(lambda: (everest.last("capabilities") or {}).get("max_export_current_A") == 240.0)
    capabilities = everest.last("capabilities")
    assert capabilities["max_export_power_W"] == 120000.0
    assert capabilities["max_export_voltage_V"] == 920.0
    assert capabilities["bidirectional"] is False
    await until(lambda: everest.last("communication_check") is True)
    assert everest.last("mode") == "Off"
    count_before = len([n for n, _ in everest.received if n == "voltage_current"])
    await asyncio.sleep(1.0)  # the window the rate is measured over
    count_after = len([n for n, _ in everest.received if n == "voltage_current"])
    assert count_after - count_before >= 3  # about 4 Hz


async def test_everest_drives_the_modules_clamped_to_the_reported_limits(
    setup: tuple[Station, Everest],
) -> None:
    station, everest = setup
    await everest.send("e2m/export_voltage_current", {"voltage_V": 400.0, "current_A": 1000.0})
    await everest.send("e2m/mode", {"mode": "Export", "charging_phase": "Charging"})
    await until(lambda: _output(station) > 0, timeout=5)
    assert _output(station) <= 240.0  # 1000 A asked; never above what is reported
    await until(lambda: everest.last("mode") == "Export", timeout=5)
    await everest.send("e2m/mode", {"mode": "Off", "charging_phase": "Other"})
    await until(lambda: _output(station) == 0.0, timeout=5)
    await until(lambda: everest.last("mode") == "Off", timeout=5)


async def test_a_silent_everest_switches_the_stack_off(setup: tuple[Station, Everest]) -> None:
    station, everest = setup
    await everest.send("e2m/export_voltage_current", {"voltage_V": 400.0, "current_A": 60.0})
    await everest.send("e2m/mode", {"mode": "Export", "charging_phase": "Charging"})
    await until(lambda: _output(station) > 0, timeout=5)
    everest.beating = False
    took = await until(lambda: _output(station) == 0.0, timeout=5)
    assert took <= HEARTBEAT_TIMEOUT_S + 0.5


async def test_a_lost_module_lowers_the_capabilities_and_a_malfunction_is_an_error(
    setup: tuple[Station, Everest],
) -> None:
    station, everest = setup
    await until(lambda: (everest.last("capabilities") or {}).get("max_export_current_A") == 240.0)
    station.devices.modules[(DC, "m3")].silent = True
    await until(
        lambda: (everest.last("capabilities") or {}).get("max_export_current_A") == 160.0, 10
    )
    for name in ("m1", "m2"):
        station.devices.modules[(DC, name)].silent = True
    await until(lambda: everest.last("raise_error") is not None, timeout=10)
    assert everest.last("raise_error")["type"] == "HardwareFault"
    assert everest.last("mode") == "Fault"
    assert everest.last("capabilities")["max_export_current_A"] == 0.0
    for name in ("m1", "m2", "m3"):
        station.devices.modules[(DC, name)].silent = False
    await until(lambda: everest.last("clear_error") is not None, timeout=10)
    assert everest.last("clear_error")["type"] == "HardwareFault"
