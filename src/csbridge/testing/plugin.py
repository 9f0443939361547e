"""csbridge's pytest plugin: a broker, a station from a config, a Josev emulator and the
station's CAN buses as fixtures. docs/testing.md describes each with an example to copy.

pytest loads it by itself wherever csbridge is installed (the `pytest11` entry point named
`csbridge`; `-p no:csbridge` turns it off). The async fixtures need pytest-asyncio
(`pip install 'csbridge[testing]'`) and work in its strict and auto modes alike.

Fixtures (all prefixed csbridge_ so they never shadow a suite's own):

    csbridge_broker           session: mosquitto on a free loopback port
    csbridge_mosquitto        a mosquitto of the test's own, to kill() and start()
    csbridge_prefix           a topic and CAN channel prefix no other test uses
    csbridge_config_factory   make(path or Config) -> Config isolated on csbridge_broker
    csbridge_station_config   the test's config: @pytest.mark.csbridge_config(path) or the
                              packaged examples/sim-station.toml
    csbridge_josev            async: a JosevClient on that config's topics
    csbridge_station          async: a running Station of that config, ready
    csbridge_can              taps on that config's virtual CAN buses
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import pytest

from csbridge.config import Config
from csbridge.service import Station
from csbridge.testing.brokers import (
    Broker,
    MosquittoBroker,
    ThreadedEmbeddedBroker,
    find_mosquitto,
    mosquitto_required,
)
from csbridge.testing.can_tap import StationCan
from csbridge.testing.harness import isolated_config, start_station, stop_station, unique_prefix
from csbridge.testing.josev import JosevClient

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - exercised by tests/system/test_plugin.py in a subprocess
    # The plugin is loaded by every pytest run in an environment holding csbridge, including
    # runs that never use it: it must not break them for want of pytest-asyncio.
    pytest_asyncio = None  # type: ignore[assignment]

MARKER = "csbridge_config"
MISSING_ASYNCIO = "csbridge's async fixtures need pytest-asyncio: pip install 'csbridge[testing]'"
NO_MOSQUITTO = "CSBRIDGE_REQUIRE_MOSQUITTO is set but no mosquitto binary is installed"

Fixture = TypeVar("Fixture", bound=Callable[..., Any])


def _async_fixture(function: Fixture) -> Fixture:
    """pytest_asyncio.fixture: async fixtures run on the test's loop in strict and auto mode.
    Without pytest-asyncio the fixture exists but fails with how to install it."""
    if pytest_asyncio is not None:
        # pytest wraps fixtures in a definition object of its own: typed as the function
        # here so the fixture's own signature stays checked.
        return cast(Fixture, pytest_asyncio.fixture(function))

    def unavailable() -> NoReturn:
        pytest.fail(MISSING_ASYNCIO, pytrace=False)

    unavailable.__doc__ = function.__doc__
    fixture: Fixture = pytest.fixture(name=function.__name__)(unavailable)
    return fixture


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(path=None, *, scenario=None, settle_s=None): the station config that "
        "csbridge_station_config and the fixtures built on it use (a path relative to the test "
        "file; none: the packaged examples/sim-station.toml)",
    )


def pytest_report_header() -> str:
    binary = find_mosquitto()
    if binary:
        return f"csbridge broker: mosquitto ({binary})"
    if mosquitto_required():
        return f"csbridge broker: {NO_MOSQUITTO}: broker tests fail"
    return "csbridge broker: mosquitto not installed -- FALLING BACK to the embedded amqtt broker"


# -- brokers ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def csbridge_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for the whole session; tests stay apart by topic prefix. mosquitto (found on
    PATH or in /usr/sbin); where it is missing, amqtt in a thread, unless the environment says
    CSBRIDGE_REQUIRE_MOSQUITTO=1 (CI), where a silent fallback would hide a broken setup."""
    started: MosquittoBroker | ThreadedEmbeddedBroker
    if find_mosquitto():
        started = MosquittoBroker(tmp_path_factory.mktemp("mosquitto"))
    elif mosquitto_required():
        pytest.fail(NO_MOSQUITTO, pytrace=False)
    else:
        started = ThreadedEmbeddedBroker()
    started.start()
    yield started
    started.stop()


@pytest.fixture
def csbridge_mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A mosquitto of the test's own, started; the test may kill() it (SIGKILL, as a crash)
    and start() it again on the same port. Skipped without a mosquitto binary (failed if
    CSBRIDGE_REQUIRE_MOSQUITTO is set): amqtt cannot be killed and restarted like a process."""
    if not find_mosquitto():
        if mosquitto_required():
            pytest.fail(NO_MOSQUITTO, pytrace=False)
        pytest.skip("needs a mosquitto binary to kill and restart")
    started = MosquittoBroker(tmp_path)
    started.start()
    yield started
    started.stop()


# -- configs ---------------------------------------------------------------------------------


class ConfigFactory:
    """Station configs isolated on one broker: see csbridge.testing.harness.isolated_config."""

    def __init__(self, broker_url: str, base_dir: Path) -> None:
        self.broker_url = broker_url
        self.base_dir = base_dir

    def resolve(self, source: str | Path) -> Path:
        """A relative path is taken from the folder of the test file."""
        path = Path(source)
        return path if path.is_absolute() else self.base_dir / path

    def __call__(
        self,
        source: Config | str | Path | None = None,
        *,
        prefix: str | None = None,
        scenario: str | None = None,
        settle_s: float | None = None,
    ) -> Config:
        """`source` (a Config, a TOML path, None: the packaged examples/sim-station.toml) on
        csbridge_broker, on `prefix` (None: a fresh one, so two stations of one test never
        hear each other)."""
        if isinstance(source, str | Path):
            source = self.resolve(source)
        return isolated_config(
            source,
            self.broker_url,
            prefix if prefix is not None else unique_prefix(),
            scenario=scenario,
            settle_s=settle_s,
        )


def marked_config(
    request: pytest.FixtureRequest,
    factory: ConfigFactory,
    prefix: str,
    default: Config | str | Path | None = None,
) -> Config:
    """The config of the nearest @pytest.mark.csbridge_config (test, class, module), else
    `default`, on `prefix`: for a conftest.py that overrides csbridge_station_config with
    a default of its own."""
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return factory(default, prefix=prefix)
    return factory(*marker.args, prefix=prefix, **marker.kwargs)


@pytest.fixture
def csbridge_prefix() -> str:
    """The test's own prefix: topics are <prefix>/josev/cs..., virtual CAN channels
    <prefix>-<bus name>."""
    return unique_prefix()


@pytest.fixture
def csbridge_config_factory(
    request: pytest.FixtureRequest, csbridge_broker: Broker
) -> ConfigFactory:
    """make(path_or_config=None, *, prefix=None, scenario=None, settle_s=None) -> Config."""
    return ConfigFactory(csbridge_broker.url, request.path.parent)


@pytest.fixture
def csbridge_station_config(
    request: pytest.FixtureRequest, csbridge_config_factory: ConfigFactory, csbridge_prefix: str
) -> Config:
    """The config csbridge_station runs, csbridge_josev and csbridge_can use: the path of the
    nearest @pytest.mark.csbridge_config (test, class or module), else the packaged
    examples/sim-station.toml; isolated on csbridge_broker with csbridge_prefix. Override
    this fixture in a conftest.py to choose a config for a whole folder."""
    return marked_config(request, csbridge_config_factory, csbridge_prefix)


# -- the station and Josev -------------------------------------------------------------------


@_async_fixture
async def csbridge_josev(csbridge_station_config: Config) -> AsyncIterator[JosevClient]:
    """A Josev emulator connected to the station's broker and listening on its topics,
    before csbridge_station starts (so it records the station's first messages too)."""
    async with JosevClient.for_config(csbridge_station_config) as client:
        yield client


@_async_fixture
async def csbridge_station(
    csbridge_station_config: Config, csbridge_josev: JosevClient
) -> AsyncIterator[Station]:
    """The station of csbridge_station_config running on the test's event loop: connected to
    the broker and every EVSE past evse_not_ready (10 s at most, or the test errors saying
    where each EVSE stands). Stopped after the test; a station that crashed meanwhile fails
    the test in teardown."""
    station, task = await start_station(csbridge_station_config)
    try:
        yield station
    finally:
        await stop_station(task)


@pytest.fixture
def csbridge_can(csbridge_station_config: Config) -> Iterator[StationCan]:
    """Taps on the station's CAN buses: `csbridge_can.tap()` is the first [[bus]],
    `csbridge_can.tap("sim-can1")` another. Closed after the test."""
    taps = StationCan(csbridge_station_config)
    try:
        yield taps
    finally:
        taps.close()
