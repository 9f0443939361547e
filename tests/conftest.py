"""Session broker (a real mosquitto), per-test topics, a running bridge and a Josev emulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest
import pytest_asyncio

from csbridge.bridge import Bridge
from csbridge.config import Config, broker_address
from csbridge.emulator import JosevEmulator
from csbridge.mqtt_link import TCP_NODELAY_OPTION
from csbridge.static_source import static_snapshot
from csbridge.station_state import StationState
from csbridge.testing.brokers import (
    Broker,
    MosquittoBroker,
    ThreadedEmbeddedBroker,
    find_mosquitto,
    mosquitto_required,
)
from tests.support import station_config, unique_prefix


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


async def start_bridge(
    config: Config, state: StationState | None = None
) -> tuple[Bridge, asyncio.Task[None]]:
    bridge = Bridge(config, state or StationState(static_snapshot(e) for e in config.evse))
    task = asyncio.create_task(bridge.run())
    await asyncio.wait_for(bridge.link.connected.wait(), 5)
    return bridge, task


async def stop_bridge(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest_asyncio.fixture
async def josev(config: Config) -> AsyncIterator[JosevEmulator]:
    async with JosevEmulator.connect(
        config.mqtt.broker,
        request_topic=config.mqtt.request_topic,
        response_topic=config.mqtt.response_topic,
    ) as emulator:
        yield emulator


@pytest_asyncio.fixture
async def bridge(config: Config, josev: JosevEmulator) -> AsyncIterator[Bridge]:
    """A bridge on the static station, started after the emulator listens."""
    running, task = await start_bridge(config)
    yield running
    await stop_bridge(task)


@pytest_asyncio.fixture
async def raw_client(broker: Broker) -> AsyncIterator[aiomqtt.Client]:
    """A plain client for publishing anything at all."""
    host, port, _ = broker_address(broker.url)
    async with aiomqtt.Client(host, port, socket_options=[TCP_NODELAY_OPTION]) as client:
        yield client
