"""Session broker (a real mosquitto), per-test topics, a running bridge and a Josev emulator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest
import pytest_asyncio

from csbridge.bridge import Bridge
from csbridge.config import Config, broker_address
from csbridge.emulator import JosevEmulator
from csbridge.mqtt_link import TCP_NODELAY_OPTION
from csbridge.station import Station
from csbridge.testing.brokers import (
    Broker,
    MosquittoBroker,
    ThreadedEmbeddedBroker,
    find_mosquitto,
    mosquitto_required,
)
from tests.support import station_config, unique_prefix, wire_station_config

WIRE_DC = "DE*CSB*E0001"


def pytest_report_header() -> str:
    binary = find_mosquitto()
    if binary:
        return f"broker: mosquitto ({binary})"
    if mosquitto_required():
        return "broker: CSBRIDGE_REQUIRE_MOSQUITTO=1 but mosquitto is missing: broker tests fail"
    return "broker: mosquitto not installed -- FALLING BACK to the embedded amqtt broker"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for the session; each test keeps to its own topic prefix."""
    started: MosquittoBroker | ThreadedEmbeddedBroker
    if find_mosquitto():
        started = MosquittoBroker(tmp_path_factory.mktemp("mosquitto"))
    elif mosquitto_required():
        pytest.fail("CSBRIDGE_REQUIRE_MOSQUITTO=1 but no mosquitto binary is installed")
    else:
        started = ThreadedEmbeddedBroker()
    started.start()
    yield started
    started.stop()


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A mosquitto of this test's own, which it may kill and restart."""
    if not find_mosquitto():
        if mosquitto_required():
            pytest.fail("CSBRIDGE_REQUIRE_MOSQUITTO=1 but no mosquitto binary is installed")
        pytest.skip("needs a mosquitto binary to kill and restart")
    started = MosquittoBroker(tmp_path)
    started.start()
    yield started
    started.stop()


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture
def config(broker: Broker, prefix: str) -> Config:
    return station_config(broker.url, prefix)


async def start_station(
    config: Config, *, wait_ready: bool = True
) -> tuple[Station, asyncio.Task[None]]:
    """The whole station (engine, simulated devices, bridge), connected and, unless told
    otherwise, with every EVSE ready."""
    station = Station(config)
    task = asyncio.create_task(station.run())
    await asyncio.wait_for(station.bridge.link.connected.wait(), 5)
    if wait_ready:
        async with asyncio.timeout(5):
            while any(e["status_code"] != "evse_ready" for e in station.engine.entries.values()):
                await asyncio.sleep(0.01)
    return station, task


async def start_bridge(config: Config) -> tuple[Bridge, asyncio.Task[None]]:
    station, task = await start_station(config)
    return station.bridge, task


async def stop_bridge(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def josev_for(config: Config) -> contextlib.AbstractAsyncContextManager[JosevEmulator]:
    """A Josev emulator on the station's broker and topics."""
    return JosevEmulator.connect(
        config.mqtt.broker,
        request_topic=config.mqtt.request_topic,
        response_topic=config.mqtt.response_topic,
    )


@pytest_asyncio.fixture
async def josev(config: Config) -> AsyncIterator[JosevEmulator]:
    async with josev_for(config) as emulator:
        yield emulator


@pytest_asyncio.fixture
async def station(config: Config, josev: JosevEmulator) -> AsyncIterator[Station]:
    """The example station, started after the emulator listens."""
    running, task = await start_station(config)
    yield running
    await stop_bridge(task)


@pytest.fixture
def bridge(station: Station) -> Bridge:
    return station.bridge


@pytest_asyncio.fixture
async def raw_client(broker: Broker) -> AsyncIterator[aiomqtt.Client]:
    """A plain client for publishing anything at all."""
    host, port, _ = broker_address(broker.url)
    async with aiomqtt.Client(host, port, socket_options=[TCP_NODELAY_OPTION]) as client:
        yield client


@pytest.fixture
def wire_config(broker: Broker) -> Config:
    """examples/sim-station.toml on virtual CAN channels and topics of this test's own."""
    return wire_station_config(broker.url, unique_prefix())


@pytest_asyncio.fixture
async def wire_station(wire_config: Config) -> AsyncIterator[Station]:
    """The example station with its devices on the wire, once its stack is full (240 A)."""
    station = Station(wire_config)
    task = asyncio.create_task(station.run())
    try:
        async with asyncio.timeout(10):
            while station.engine.entries.get(WIRE_DC)["dc"]["max_current"] != 240.0:
                await asyncio.sleep(0.02)
        yield station
    finally:
        await stop_bridge(task)
