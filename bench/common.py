"""What several benchmarks share: the broker, MQTT clients, the bridge as a child process or in
this process with its publishes observed, generated stations, boot round trips, and the rows of
the summary table."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import orjson

from bench.stats import Summary
from csbridge.config import Config, broker_address, parse_config
from csbridge.mqtt.link import QOS, TCP_NODELAY_OPTION
from csbridge.service.station import Station
from csbridge.testing.brokers import MosquittoBroker, ThreadedEmbeddedBroker, find_mosquitto

RESULTS = Path(__file__).resolve().parent / "results"
CS_STATUS_AND_LIMITS = "cs_status_and_limits"


@dataclass(frozen=True, slots=True)
class Target:
    """A responder as a requester sees it: where to ask, where the answer comes."""

    name: str
    request_topic: str
    response_topic: str


BRIDGE = Target("csbridge", "josev/cs", "cs/josev")
ECHO = Target("echo", "bench/echo/josev/cs", "bench/echo/cs/josev")


# -- the broker and clients ------------------------------------------------------------------


@contextlib.contextmanager
def broker(workdir: Path) -> Iterator[tuple[str, str]]:
    """(url, kind): a mosquitto of our own, so no earlier run's retained messages are seen."""
    if find_mosquitto():
        mosquitto = MosquittoBroker(workdir)
        mosquitto.start()
        try:
            yield mosquitto.url, "mosquitto"
        finally:
            mosquitto.stop()
    else:
        embedded = ThreadedEmbeddedBroker()
        embedded.start()
        try:
            yield embedded.url, "amqtt (no mosquitto installed: figures not comparable)"
        finally:
            embedded.stop()


@contextlib.asynccontextmanager
async def mqtt_client(url: str) -> AsyncIterator[aiomqtt.Client]:
    """TCP_NODELAY like the bridge's own link, so the requester adds no delayed-ACK stalls."""
    host, port, _ = broker_address(url)
    async with aiomqtt.Client(host, port, socket_options=[TCP_NODELAY_OPTION]) as client:
        yield client


def payload_bytes(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    return bytes(payload) if isinstance(payload, bytes | bytearray) else b""


def boot_request(request_id: str) -> bytes:
    return orjson.dumps(
        {"id": request_id, "name": CS_STATUS_AND_LIMITS, "type": "request", "data": {}}
    )


async def round_trips(
    client: aiomqtt.Client, request_topic: str, response_topic: str, count: int
) -> list[float]:
    """Sequential boot requests, each waiting for its own response as Josev's boot does;
    seconds each. The client must already be subscribed to `response_topic`."""
    samples: list[float] = []
    messages = aiter(client.messages)
    for _ in range(count):
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        await client.publish(request_topic, boot_request(request_id), qos=QOS)
        while True:
            message = await anext(messages)
            if message.topic.value == response_topic and request_id.encode() in payload_bytes(
                message
            ):
                break
        samples.append(time.perf_counter() - started)
    return samples


# -- child processes ---------------------------------------------------------------------------

profile_bridge_to: Path | None = None
"""Set by `python -m bench --profile NAME`: bridge processes then run under pyinstrument and
leave their session here (the bridge's own process is what the profile should show)."""


@contextlib.contextmanager
def python_process(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        # SIGTERM: the bridge says goodbye and exits 0 (and pyinstrument writes its session).
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def bridge_args(config: Path, url: str) -> list[str]:
    """`python -m csbridge run`, under pyinstrument when a profile is asked for."""
    run = ["-m", "csbridge", "run", "--config", str(config), "--broker", url]
    if profile_bridge_to is None:
        return run
    # pyinstrument's own options go before -m: what follows the module name is the module's.
    sampler = ["-m", "pyinstrument", "-i", "0.0002", "-r", "pyisession"]
    return [*sampler, "-o", str(profile_bridge_to), *run]


# -- generated stations ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StationSpec:
    """A station of `evses` DC EVSEs with `modules` Infypower REG modules each.

    wire: each EVSE's modules on a virtual CAN bus of its own with the infypower-reg profile,
    so the real codecs run; else the modules hand readings to the engine directly.
    simulated: the station's own simulators play the modules (on the wire they answer polls);
    else (wire only) the benchmark plays them by sending their frames itself.
    fast_reporting: no settle time, no relative hysteresis, 100 updates/s: every change of a
    limit becomes an update at once, so one driven change is one measured update.
    """

    evses: int
    modules: int = 8
    wire: bool = True
    simulated: bool = True
    fast_reporting: bool = False
    broker: str = "mqtt://127.0.0.1:1883"
    client_id: str = "csbridge-bench"
    channel_prefix: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")
    poll_period_s: float = 1.0
    deadline_s: float | None = None
    evaluate_every_s: float = 0.1

    def evse_id(self, index: int) -> str:
        return f"DE*CSB*E{index + 1:04d}"

    def bus_name(self, index: int) -> str:
        return f"can{index}"

    def channel(self, index: int) -> str:
        return f"{self.channel_prefix}-can{index}"

    def toml(self) -> str:
        reporting = (
            "settle_s = 0.0\nhysteresis_fraction = 0.0\nmax_updates_per_s = 100.0\n"
            if self.fast_reporting
            else ""
        )
        lines = [
            '[station]\nsw_version = "csbridge-bench"\nhw_version = "bench"\n',
            f'[mqtt]\nbroker = "{self.broker}"\nclient_id = "{self.client_id}"\n',
            f"[reporting]\n{reporting}evaluate_every_s = {self.evaluate_every_s}\n",
        ]
        if self.wire:
            lines += [
                f'[[bus]]\nname = "{self.bus_name(index)}"\ninterface = "virtual"\n'
                f'channel = "{self.channel(index)}"\nbitrate = 125000\n'
                for index in range(self.evses)
            ]
        for index in range(self.evses):
            lines.append(self._evse(index))
        return "\n".join(lines)

    def _evse(self, index: int) -> str:
        text = (
            f'[[evse]]\nevse_id = "{self.evse_id(index)}"\nkind = "dc"\n'
            f'network_interface = "eth{index}"\n'
            'connectors = [{ id = 1, connector_type = "DC_extended" }]\n\n'
            "[evse.dc_limits]\nmin_current_a = 1.0\nmin_voltage_v = 150.0\n"
            "peak_current_ripple_a = 2.0\n"
        )
        for address in range(1, self.modules + 1):
            text += (
                f'\n[[evse.module]]\nname = "m{address}"\naddress = {address}\n'
                f"poll_period_s = {self.poll_period_s}\n"
            )
            if self.deadline_s is not None:
                text += f"deadline_s = {self.deadline_s}\n"
            if self.wire:
                text += f'can = {{ profile = "infypower-reg", bus = "{self.bus_name(index)}" }}\n'
            if self.simulated:
                text += (
                    "simulated = { max_voltage_v = 1000, min_voltage_v = 150, "
                    "max_current_a = 80, max_power_w = 40000 }\n"
                )
        return text

    def config(self) -> Config:
        return parse_config(self.toml(), "<bench station>")

    def write(self, path: Path) -> Path:
        path.write_text(self.toml(), encoding="utf-8")
        return path


# -- the bridge in this process, its publishes observed -------------------------------------


@dataclass(frozen=True, slots=True)
class Published:
    topic: str
    wall: float
    """perf_counter when the bridge handed the message to its link."""
    cpu: float
    """process_time once the link had taken it."""


@dataclass(slots=True)
class _Waiter:
    matches: Callable[[str], bool]
    start: int
    count: int
    done: asyncio.Future[None]


class PublishTap:
    """Wraps a station's `bridge.link.publish`: a measuring shim that records each call's time
    and wakes whoever waits for a number of publishes on the topics it names."""

    def __init__(self, station: Station) -> None:
        self.calls: list[Published] = []
        self._waiters: list[_Waiter] = []
        link = station.bridge.link
        original = link.publish

        async def publish(topic: str, payload: bytes, *, retain: bool = False) -> bool:
            wall = time.perf_counter()
            sent = await original(topic, payload, retain=retain)
            self.calls.append(Published(topic, wall, time.process_time()))
            if self._waiters:
                self._wake()
            return sent

        # An instance attribute shadows the method for every caller inside the bridge.
        setattr(link, "publish", publish)  # noqa: B010 - mypy refuses assigning to a method

    def expect(self, matches: Callable[[str], bool], count: int) -> asyncio.Future[None]:
        """Resolves once `count` publishes whose topic `matches` are recorded from now on."""
        done = asyncio.get_running_loop().create_future()
        self._waiters.append(_Waiter(matches, len(self.calls), count, done))
        return done

    def since(self, start: int, matches: Callable[[str], bool]) -> list[Published]:
        return [call for call in self.calls[start:] if matches(call.topic)]

    def _wake(self) -> None:
        waiting = []
        for waiter in self._waiters:
            if waiter.done.done():
                continue
            if len(self.since(waiter.start, waiter.matches)) >= waiter.count:
                waiter.done.set_result(None)
            else:
                waiting.append(waiter)
        self._waiters = waiting


@contextlib.asynccontextmanager
async def running_station(
    config: Config, prepare: Callable[[Station], None] | None = None
) -> AsyncIterator[Station]:
    """The whole station in this event loop, from its first full state published until the
    block ends. `prepare` sees it before it starts (a bus reader binds its callback then)."""
    station = Station(config)
    if prepare is not None:
        prepare(station)
    task = asyncio.create_task(station.run(), name="bench-station")
    try:
        async with asyncio.timeout(20):
            await station.bridge.state_published.wait()
        yield station
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# -- results ---------------------------------------------------------------------------------


def summary_dict(summary: Summary) -> dict[str, float]:
    return {name: getattr(summary, name) for name in Summary.__slots__}


def print_latency_table(rows: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """p50/p99/mean/max of each summary_dict, one line each."""
    print(f"{'':26}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'max ms':>10}")
    for name, row in rows:
        print(
            f"{name:26}{row['p50_ms']:10.3f}{row['p99_ms']:10.3f}"
            f"{row['mean_ms']:10.3f}{row['max_ms']:10.3f}"
        )


def summary_row(
    metric: str,
    csbridge: float,
    baseline: float | None,
    *,
    goal: str = "-",
    met: bool | None = None,
    ratio: float | None = None,
) -> dict[str, Any]:
    """One line of the closing table; `met` None: informative, no goal to meet."""
    if ratio is None and baseline:
        ratio = csbridge / baseline
    return {
        "metric": metric,
        "csbridge": csbridge,
        "baseline": baseline,
        "ratio": ratio,
        "goal": goal,
        "verdict": "-" if met is None else ("met" if met else "MISSED"),
    }
