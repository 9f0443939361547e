"""Boot request to response through mosquitto at QoS 1: the bridge against a bare echo responder.

Both responders run as processes of their own, driven by the same requester, in interleaved
rounds so machine noise falls on both alike. Goal: bridge p50 / echo p50 <= 1.5.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import orjson

from bench.stats import Summary
from csbridge.config import broker_address
from csbridge.mqtt_link import QOS, TCP_NODELAY_OPTION
from csbridge.resources import example_config
from csbridge.testing.brokers import MosquittoBroker, ThreadedEmbeddedBroker, find_mosquitto

GOAL_P50_RATIO = 1.5


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    request_topic: str
    response_topic: str


@contextlib.contextmanager
def _broker(workdir: Path) -> Iterator[tuple[str, str]]:
    if find_mosquitto():
        broker = MosquittoBroker(workdir)
        broker.start()
        try:
            yield broker.url, "mosquitto"
        finally:
            broker.stop()
    else:
        embedded = ThreadedEmbeddedBroker()
        embedded.start()
        try:
            yield embedded.url, "amqtt (no mosquitto installed: figures not comparable)"
        finally:
            embedded.stop()


def _static_station(workdir: Path) -> Path:
    text = example_config("sim-station.toml").read_text(encoding="utf-8")
    path = workdir / "bench-station.toml"
    path.write_text(text.replace("simulated = true", "simulated = false"), encoding="utf-8")
    return path


@contextlib.contextmanager
def _process(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.asynccontextmanager
async def _client(url: str) -> AsyncIterator[aiomqtt.Client]:
    host, port, _ = broker_address(url)
    async with aiomqtt.Client(host, port, socket_options=[TCP_NODELAY_OPTION]) as client:
        yield client


async def _wait_retained(client: aiomqtt.Client, topic: str, expected: bytes) -> None:
    await client.subscribe(topic, qos=QOS)
    async with asyncio.timeout(15):
        async for message in client.messages:
            if message.topic.value == topic and message.payload == expected:
                await client.unsubscribe(topic)
                return


async def _round_trips(client: aiomqtt.Client, target: Target, count: int) -> list[float]:
    """Sequential requests: each waits for its own response, as Josev's boot does."""
    samples: list[float] = []
    messages = aiter(client.messages)
    for _ in range(count):
        request_id = str(uuid.uuid4())
        payload = orjson.dumps(
            {"id": request_id, "name": "cs_status_and_limits", "type": "request", "data": {}}
        )
        started = time.perf_counter()
        await client.publish(target.request_topic, payload, qos=QOS)
        while True:
            message = await anext(messages)
            if message.topic.value == target.response_topic and request_id.encode() in bytes(
                message.payload if isinstance(message.payload, bytes | bytearray) else b""
            ):
                break
        samples.append(time.perf_counter() - started)
    return samples


async def measure(
    url: str, station: Path, rounds: int, per_round: int, warmup: int
) -> dict[str, Summary]:
    bridge = Target("csbridge", "josev/cs", "cs/josev")
    echo = Target("echo", "bench/echo/josev/cs", "bench/echo/cs/josev")
    samples: dict[str, list[float]] = {bridge.name: [], echo.name: []}
    with (
        _process("-m", "csbridge", "run", "--config", str(station), "--broker", url),
        _process(
            "-m",
            "bench.echo_responder",
            "--broker",
            url,
            "--request-topic",
            echo.request_topic,
            "--response-topic",
            echo.response_topic,
        ),
    ):
        async with _client(url) as client:
            await _wait_retained(client, "csbridge/status", b"online")
            await _wait_retained(client, f"{echo.request_topic}/ready", b"1")
            for target in (bridge, echo):
                await client.subscribe(target.response_topic, qos=QOS)
                await _round_trips(client, target, warmup)
            for _ in range(rounds):
                for target in (bridge, echo):
                    samples[target.name] += await _round_trips(client, target, per_round)
            async with _client(url) as cleaner:
                await cleaner.publish(f"{echo.request_topic}/ready", b"", qos=QOS, retain=True)
    return {name: Summary.of(values) for name, values in samples.items()}


def run(quick: bool) -> dict[str, object]:
    rounds, per_round, warmup = (4, 125, 50) if quick else (10, 300, 200)
    with tempfile.TemporaryDirectory() as tmp, _broker(Path(tmp)) as (url, broker_kind):
        summaries = asyncio.run(measure(url, _static_station(Path(tmp)), rounds, per_round, warmup))
    bridge, echo = summaries["csbridge"], summaries["echo"]
    return {
        "benchmark": "boot request -> response through the broker, QoS 1",
        "broker": broker_kind,
        "csbridge": _as_dict(bridge),
        "echo_baseline": _as_dict(echo),
        "ratio_p50": bridge.p50_ms / echo.p50_ms,
        "ratio_p99": bridge.p99_ms / echo.p99_ms,
        "goal_ratio_p50": GOAL_P50_RATIO,
        "goal_met": bridge.p50_ms / echo.p50_ms <= GOAL_P50_RATIO,
    }


def _as_dict(summary: Summary) -> dict[str, float]:
    return {field: getattr(summary, field) for field in Summary.__slots__}
