"""The station does not grow: after a warm-up of 10,000 messages, 100,000 more valid and invalid
ones (fresh request ids every time, so per-request state would show) leave the resident set of
the process the station runs in less than 5 MB larger.

That process is spawned for the measurement. In the test process itself, whatever earlier tests
allocated and freed stays resident (after the 100,000-message fuzz test, ~390 MiB): a leak would
first fill that free heap and never show in VmRSS."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import random
import sys
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from csbridge.config import Config, broker_address
from csbridge.messages.registry import Direction, SchemaRegistry
from csbridge.mqtt.link import TCP_NODELAY_OPTION
from csbridge.service.station import Station
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from tests.conftest import start_station, stop_bridge
from tests.support import Fuzzer, csbridge_logs_to_devnull, fixture_corpus

pytestmark = pytest.mark.soak

WARM_UP = 10_000
MEASURED = 100_000
GROWTH_LIMIT_BYTES = 5 * 1024 * 1024
BLOCK_GROWTH_LIMIT = MEASURED // 10
"""Python objects still allocated afterwards: a leak of one per ten messages would show."""
DRAIN_EVERY = 1_000
SEED = 7
MEASUREMENT_TIMEOUT_S = 90
CORPUS = fixture_corpus("messages", "messages-session", "invalid", "invalid-session")


@dataclass(frozen=True)
class Measurement:
    rss_before: int
    rss_after: int
    blocks_before: int
    blocks_after: int
    seconds: float
    heard: int
    counters: dict[str, int]
    errors: list[str]


def resident() -> tuple[int, int]:
    """(VmRSS in bytes, Python's allocated memory blocks) after a full collection."""
    gc.collect()
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024, sys.getallocatedblocks()
    raise AssertionError("no VmRSS in /proc/self/status")  # pragma: no cover


class Heard:
    """Counts what arrives on the response topic; keeps nothing, so it cannot grow itself."""

    def __init__(self) -> None:
        self.count = 0

    async def listen(self, client: aiomqtt.Client) -> None:
        async for _ in client.messages:
            self.count += 1


def _published_to_josev(station: Station, registry: SchemaRegistry) -> int:
    return sum(
        station.bridge.counters.get("outbound_published", f"{kind.name}/{kind.type}")
        for kind in registry.kinds.values()
        if kind.direction is Direction.TO_JOSEV
    )


async def _drive(station: Station, fuzzer: Fuzzer, count: int, heard: Heard) -> None:
    """`count` messages straight into Bridge.handle: the MQTT receive path would make this
    several times slower and is covered by test_reliability_fuzz.py. What the station answers
    goes out through the real broker, and every DRAIN_EVERY messages we wait until all of it has
    come back, so paho's outgoing queue cannot pile up (and count as growth) meanwhile."""
    registry = SchemaRegistry()
    for index in range(1, count + 1):
        topic, payload = fuzzer.next()
        await station.bridge.handle(topic, payload)
        if index % DRAIN_EVERY == 0:
            await wait_until(
                lambda: heard.count >= _published_to_josev(station, registry),
                10,
                "every answer heard back",
                every=0.001,  # the drive waits on this a hundred times: keep each wait short
            )


async def _measure(config: Config) -> Measurement:
    host, port, _ = broker_address(config.mqtt.broker)
    fuzzer = Fuzzer(random.Random(SEED), config, CORPUS)
    heard = Heard()
    with csbridge_logs_to_devnull() as errors:
        async with aiomqtt.Client(host, port, socket_options=[TCP_NODELAY_OPTION]) as client:
            await client.subscribe(config.mqtt.response_topic, qos=1)
            listener = asyncio.create_task(heard.listen(client))
            station, task = await start_station(config)
            try:
                await _drive(station, fuzzer, WARM_UP, heard)
                rss_before, blocks_before = resident()
                started = time.perf_counter()
                await _drive(station, fuzzer, MEASURED, heard)
                seconds = time.perf_counter() - started
                rss_after, blocks_after = resident()
                assert not task.done(), "the station stopped"
                async with JosevClient.for_config(config) as josev:
                    await josev.boot(timeout=10)
                    assert josev.problems == []
                counters = station.bridge.counters.snapshot()
            finally:
                await stop_bridge(task)
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
    return Measurement(
        rss_before,
        rss_after,
        blocks_before,
        blocks_after,
        seconds,
        heard.count,
        counters,
        errors,
    )


def _measure_in_this_process(raw_config: dict[str, Any], results: Connection) -> None:
    """The spawned process: measure, and send back the measurement or the traceback."""
    try:
        results.send(asyncio.run(_measure(Config.model_validate(raw_config))))
    except BaseException:  # everything goes back to the test, which raises it
        results.send(traceback.format_exc())
    finally:
        results.close()


async def _measure_in_a_fresh_process(config: Config) -> Measurement:
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(
        target=_measure_in_this_process,
        args=(config.model_dump(mode="json"), sending),
        name="csbridge-memory",
    )
    process.start()
    sending.close()
    try:
        arrived = await asyncio.to_thread(receiving.poll, MEASUREMENT_TIMEOUT_S)
        assert arrived, f"no measurement within {MEASUREMENT_TIMEOUT_S} s"
        result = receiving.recv()
    finally:
        receiving.close()
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
    assert isinstance(result, Measurement), f"the measuring process failed:\n{result}"
    return result


def _total(counters: dict[str, int], event: str) -> int:
    return sum(v for k, v in counters.items() if k == event or k.startswith(event + "{"))


async def test_resident_memory_stays_flat_over_a_hundred_thousand_messages(
    config: Config,
) -> None:
    measured = await _measure_in_a_fresh_process(config)
    growth = measured.rss_after - measured.rss_before
    blocks = measured.blocks_after - measured.blocks_before
    print(
        f"\nmemory: VmRSS {measured.rss_before / 2**20:.2f} MiB after {WARM_UP} warm-up "
        f"messages, {measured.rss_after / 2**20:.2f} MiB after {MEASURED} more "
        f"({growth / 2**20:+.2f} MiB; Python blocks {blocks:+d}) in {measured.seconds:.1f} s; "
        f"{measured.heard} messages came back on the response topic"
    )
    counters = measured.counters
    assert counters["inbound_received"] == WARM_UP + MEASURED + 2  # + the boot's two
    assert _total(counters, "handler_failed") == 0, measured.errors
    assert _total(counters, "inbound_accepted") > 20_000, "valid messages must be in the mix"
    assert _total(counters, "inbound_rejected") > 50_000, "invalid ones too"
    assert measured.heard > 10_000, "answers must have gone through the broker"
    assert growth < GROWTH_LIMIT_BYTES, f"grew {growth / 2**20:.2f} MiB"
    assert blocks < BLOCK_GROWTH_LIMIT, f"{blocks} more Python memory blocks"
