"""A station under test: its config isolated from every other test's, started, waited for and
stopped. Plain asyncio, no pytest: the pytest plugin (csbridge.testing.plugin) builds its
fixtures on these, and a script or benchmark may use them directly.

Isolation matters because tests share one broker and one process: MQTT topics and client ids
are per broker, and python-can's virtual buses are per process (every bus opened on a channel
name hears every other one of that name), so two stations of the same config would answer each
other's Josev and poll each other's simulated modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from csbridge.config import Config, load_config
from csbridge.limits import StatusCode
from csbridge.mqtt import LOOPBACK, free_port
from csbridge.service import Station
from csbridge.support import example_config

DEFAULT_CONFIG = "sim-station.toml"
"""The packaged example: a DC EVSE of three Infypower modules and a Bender IMD on virtual CAN
buses (the real codecs run against simulators speaking the real protocols), and an AC EVSE."""

NOT_READY = StatusCode.EVSE_NOT_READY
CONNECT_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 10.0
POLL_S = 0.01

ReadyCheck = Callable[[Station], bool]
Condition = Callable[[], bool] | Callable[[], Awaitable[bool]]
"""What wait_until polls: a plain check, or a coroutine function for a round trip."""


def unique_prefix() -> str:
    """A topic prefix (and CAN channel prefix) no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"


def default_config_path() -> Path:
    return example_config(DEFAULT_CONFIG)


def isolated_config(
    source: Config | str | Path | None,
    broker_url: str,
    prefix: str,
    *,
    scenario: str | None = None,
    settle_s: float | None = None,
) -> Config:
    """`source` (a Config, a TOML file, or None for the packaged sim-station.toml) made safe to
    run beside other tests on a shared broker and in a shared process:

    - MQTT: the broker is `broker_url` (plain, anonymous: the config's TLS and credential
      settings are dropped with its broker), the client id is csbridge-<prefix>, and every
      topic (Josev's two, the status topic, the local per-EVSE topics, EVerest API topics,
      EVerest exports)
      starts with <prefix>/.
    - CAN: every virtual bus's channel becomes <prefix>-<bus name> (socketcan buses are real
      interfaces and keep their channel). The bus *names* stay, so counters and device
      profiles read as in the file.
    - station.scenario is `scenario` (None: no scripted demo changing the limits under the
      test's feet).
    - reporting.settle_s is `settle_s` when given (the example holds increases back for 1 s,
      so a stack filling module by module takes several seconds to show).
    - metrics.listen, when set, moves to a free loopback port.
    - station.state_dir is a fresh temporary folder (availability set in one test never
      reaches another).
    """
    if isinstance(source, Config):
        base = source
    else:
        base = load_config(Path(source) if source is not None else default_config_path())
    raw: dict[str, Any] = base.model_dump(mode="json", exclude_none=True)
    raw["station"]["scenario"] = scenario
    raw["station"]["state_dir"] = tempfile.mkdtemp(prefix=f"csbridge-{prefix}-")
    if settle_s is not None:
        raw.setdefault("reporting", {})["settle_s"] = settle_s
    mqtt = raw.setdefault("mqtt", {})
    for field in ("username", "password_file", "ca_file", "cert_file", "key_file"):
        mqtt.pop(field, None)
    defaults = Config.model_fields["mqtt"].default
    mqtt.update(
        broker=broker_url,
        client_id=f"csbridge-{prefix}",
        request_topic=f"{prefix}/{mqtt.get('request_topic', defaults.request_topic)}",
        response_topic=f"{prefix}/{mqtt.get('response_topic', defaults.response_topic)}",
        status_topic=f"{prefix}/{mqtt.get('status_topic', defaults.status_topic)}",
        local_prefix=f"{prefix}/{mqtt.get('local_prefix', defaults.local_prefix)}",
    )
    for bus in raw.get("bus", []):
        if bus.get("interface") == "virtual":
            bus["channel"] = f"{prefix}-{bus['name']}"
    for evse in raw["evse"]:
        devices = [*evse.get("module", []), evse.get("imd"), evse.get("board")]
        for device in devices:
            if device is not None and "everest" in device:
                everest = device["everest"]
                everest["topic_prefix"] = f"{prefix}/{everest.get('topic_prefix', 'everest_api/1')}"
    for export in raw.get("everest_export", []):
        export["topic_prefix"] = f"{prefix}/{export.get('topic_prefix', 'everest_api/1')}"
    if raw.get("metrics", {}).get("listen"):
        raw["metrics"]["listen"] = f"{LOOPBACK}:{free_port()}"
    return Config.model_validate(raw)


def connected(station: Station) -> bool:
    return station.bridge.link.connected.is_set()


def left_not_ready(station: Station) -> bool:
    """Every EVSE has a verdict from its devices (ready, or a fault it found)."""
    entries = station.engine.entries.values()
    return connected(station) and not any(e["status_code"] == NOT_READY for e in entries)


def all_ready(station: Station) -> bool:
    entries = station.engine.entries.values()
    return connected(station) and all(e["status_code"] == StatusCode.EVSE_READY for e in entries)


def describe(station: Station) -> str:
    """Where each EVSE stands, for a failure message."""
    parts = [
        f"{entry['evse_id']}: {entry['status_code']}" for entry in station.engine.entries.values()
    ]
    link = "connected" if connected(station) else "NOT connected to the broker"
    return f"MQTT {link}; " + ", ".join(parts)


async def wait_until(
    condition: Condition,
    timeout: float = 10.0,
    what: str = "condition",
    *,
    every: float = POLL_S,
) -> float:
    """Poll `condition()` (every 10 ms, on the running loop) until true; the seconds it took.
    TimeoutError naming `what` after `timeout` seconds.

    `condition` may also be a coroutine function, for a state that only a round trip can read
    (a request answered over MQTT, a scrape over HTTP): it is awaited, within what is left of
    `timeout`, and asked again `every` seconds after each answer (choose a pace the other side
    can take)."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        answer = condition()
        if inspect.isawaitable(answer):
            try:
                answer = await asyncio.wait_for(answer, max(deadline - time.monotonic(), 0.0))
            except TimeoutError:
                raise TimeoutError(f"{what} not met within {timeout} s") from None
        if answer:
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout} s")
        await asyncio.sleep(every)


class StationCrashedError(RuntimeError):
    """The station's task ended with an exception while a test used it."""


async def wait_for_station(
    station: Station,
    task: asyncio.Task[None],
    condition: ReadyCheck,
    timeout: float,
    what: str = "the condition",
) -> float:
    """Poll `condition(station)` until true; the seconds it took. A station that stops or
    crashes meanwhile raises at once (not after the timeout) with its own exception."""
    started = time.monotonic()
    while not condition(station):
        if task.done():
            error = None if task.cancelled() else task.exception()
            raise StationCrashedError(f"the station stopped before {what}") from error
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"no {what} within {timeout} s ({describe(station)})")
        await asyncio.sleep(POLL_S)
    return time.monotonic() - started


async def start_station(
    config: Config,
    *,
    ready: ReadyCheck | None = left_not_ready,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    ready_timeout: float = READY_TIMEOUT_S,
) -> tuple[Station, asyncio.Task[None]]:
    """A Station running in a task of the current loop: connected to its broker and, unless
    `ready` is None, until `ready(station)` holds. Stop it with `stop_station(task)`."""
    station = Station(config)
    task = asyncio.create_task(station.run(), name="csbridge-station")
    try:
        await wait_for_station(station, task, connected, connect_timeout, "broker connection")
        if ready is not None:
            await wait_for_station(station, task, ready, ready_timeout, "ready station")
    except BaseException:
        await _cancel(task)
        raise
    return station, task


async def _cancel(task: asyncio.Task[None]) -> BaseException | None:
    """Cancel and await; what the task raised other than the cancellation (None if nothing)."""
    task.cancel()
    (outcome,) = await asyncio.gather(task, return_exceptions=True)
    if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
        return outcome
    return None


async def stop_station(task: asyncio.Task[None]) -> None:
    """Stop a station started by `start_station`. A station that crashed while the test ran
    raises StationCrashedError here, so a failure in the background never passes unnoticed."""
    if task.done():
        if not task.cancelled() and task.exception() is not None:
            raise StationCrashedError("the station crashed during the test") from task.exception()
        return
    error = await _cancel(task)
    if error is not None:
        raise StationCrashedError("the station failed while stopping") from error


@contextlib.asynccontextmanager
async def running_station(
    config: Config,
    *,
    ready: ReadyCheck | None = left_not_ready,
    ready_timeout: float = READY_TIMEOUT_S,
) -> AsyncIterator[Station]:
    """`async with running_station(config) as station:` start_station .. stop_station."""
    station, task = await start_station(config, ready=ready, ready_timeout=ready_timeout)
    try:
        yield station
    finally:
        await stop_station(task)
