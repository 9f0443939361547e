"""The project's fixtures: csbridge's own pytest plugin (csbridge.testing.plugin, the fixtures a
test engineer gets) under the names these tests have always used, on the project's test
station (fixtures/configs/reading-station.toml) instead of the packaged example.

Every station fixture goes through `config`, so a test module that overrides `config` changes
what `josev`, `station` and the plugin's csbridge_* fixtures run.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Iterator

import aiomqtt
import pytest
import pytest_asyncio
from hypothesis import settings

from csbridge.config import Config, broker_address
from csbridge.mqtt.link import TCP_NODELAY_OPTION
from csbridge.protocol.bridge import Bridge
from csbridge.service.station import Station
from csbridge.support.resources import example_config
from csbridge.testing import harness, plugin
from csbridge.testing.brokers import Broker, MosquittoBroker
from csbridge.testing.harness import all_ready, running_station, wait_until
from csbridge.testing.josev import JosevClient
from csbridge.testing.plugin import ConfigFactory, marked_config
from tests.support import CI_EXAMPLES, DEV_EXAMPLES, FIXTURES

WIRE_DC = "DE*CSB*E0001"
READING_STATION = FIXTURES / "configs" / "reading-station.toml"
START_TIMEOUT_S = 5.0


# hypothesis: `dev` keeps a local run quick; `ci` (`--hypothesis-profile=ci`, as .ci/run runs the
# suite) is the thorough one. Tests that set their own max_examples scale with the profile
# through tests.support.examples(). pytest loads a profile given on its command line after
# importing this file, so that one wins over the default loaded here.
settings.register_profile("dev", max_examples=DEV_EXAMPLES)
settings.register_profile("ci", max_examples=CI_EXAMPLES)
settings.load_profile("dev")


def pytest_configure(config: pytest.Config) -> None:
    # The plugin comes in through the pytest11 entry point of the installed csbridge; an
    # editable install made before that entry point existed lacks it, so register it here.
    if not config.pluginmanager.has_plugin("csbridge"):
        config.pluginmanager.register(plugin, "csbridge")


# -- the plugin's fixtures under the project's names -----------------------------------------


@pytest.fixture
def broker(csbridge_broker: Broker) -> Broker:
    """One broker for the session; each test keeps to its own topic prefix."""
    return csbridge_broker


@pytest.fixture
def own_mosquitto(csbridge_mosquitto: MosquittoBroker) -> MosquittoBroker:
    """A mosquitto of this test's own, which it may kill and restart."""
    return csbridge_mosquitto


@pytest.fixture
def prefix(csbridge_prefix: str) -> str:
    return csbridge_prefix


@pytest.fixture
def config(
    request: pytest.FixtureRequest, csbridge_config_factory: ConfigFactory, prefix: str
) -> Config:
    """The tests' station (reading-level devices, no scenario) on this test's topics, or the
    file of a csbridge_config marker."""
    return marked_config(request, csbridge_config_factory, prefix, default=READING_STATION)


@pytest.fixture
def csbridge_station_config(config: Config) -> Config:
    """The plugin's fixtures (csbridge_josev, csbridge_station, csbridge_can) run `config`."""
    return config


@pytest.fixture
def josev(csbridge_josev: JosevClient) -> JosevClient:
    """The Josev emulator on `config`'s topics, listening before `station` starts."""
    return csbridge_josev


@pytest_asyncio.fixture
async def station(csbridge_station: Station) -> Station:
    """The station of `config` with every EVSE ready (the plugin waits only until each has
    left evse_not_ready: a malfunction is a verdict too)."""
    await wait_until(lambda: all_ready(csbridge_station), START_TIMEOUT_S, "every EVSE ready")
    return csbridge_station


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
def wire_config(csbridge_config_factory: ConfigFactory) -> Config:
    """examples/sim-station.toml on virtual CAN channels and topics of this test's own; its
    stack fills up module by module, so increases settle in 0.2 s to keep the tests short."""
    return csbridge_config_factory(example_config("sim-station.toml"), settle_s=0.2)


@pytest_asyncio.fixture
async def wire_station(wire_config: Config) -> AsyncIterator[Station]:
    """The example station with its devices on the wire, once its stack is full (240 A)."""

    def full(station: Station) -> bool:
        return bool(station.engine.entries.get(WIRE_DC)["dc"]["max_current"] == 240.0)

    async with running_station(wire_config, ready=full) as running:
        yield running


@pytest.fixture
def systemd_socket() -> Iterator[tuple[socket.socket, str]]:
    """What systemd listens on for sd_notify(3): an abstract unix datagram socket (no path
    length limit) and its name as NOTIFY_SOCKET gives it. Non-blocking: read it with
    tests.support.notification() and its kin, on the test's loop."""
    name = f"@csbridge-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    sock.setblocking(False)
    yield sock, name
    sock.close()


# -- helpers for tests that start and stop stations themselves -------------------------------


async def start_station(
    config: Config, *, wait_ready: bool = True
) -> tuple[Station, asyncio.Task[None]]:
    """The whole station (engine, simulated devices, bridge), connected and, unless told
    otherwise, with every EVSE ready."""
    return await harness.start_station(
        config,
        ready=all_ready if wait_ready else None,
        connect_timeout=START_TIMEOUT_S,
        ready_timeout=START_TIMEOUT_S,
    )


async def start_bridge(config: Config) -> tuple[Bridge, asyncio.Task[None]]:
    station, task = await start_station(config)
    return station.bridge, task


async def stop_bridge(task: asyncio.Task[None]) -> None:
    """Stop a station's (or a bare bridge's) task. One that crashed meanwhile raises
    StationCrashedError here, from its own exception: a failure in the background never passes
    unnoticed."""
    await harness.stop_station(task)


def josev_for(config: Config) -> contextlib.AbstractAsyncContextManager[JosevClient]:
    """A Josev emulator on the station's broker and topics."""
    return JosevClient.for_config(config)
