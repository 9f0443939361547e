"""The bridge survives its broker: reconnects with backoff, resubscribes, republishes the state."""

from __future__ import annotations

import asyncio
import time

from csbridge.engine.engine import LimitsEngine
from csbridge.mqtt.link import BACKOFF_CAP_S
from csbridge.protocol.bridge import Bridge
from csbridge.testing.brokers import MosquittoBroker
from csbridge.tools.emulator import JosevEmulator
from tests.conftest import start_bridge, stop_bridge
from tests.support import station_config, unique_prefix

RECONNECT_BOUND_S = BACKOFF_CAP_S + 0.5


async def _wait_for_connects(bridge: Bridge, count: int, timeout: float) -> float:
    started = time.monotonic()
    while bridge.link.connects < count:
        if time.monotonic() - started > timeout:
            raise AssertionError(f"only {bridge.link.connects} connects after {timeout} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_broker_killed_and_back_bridge_reconnects_and_republishes(
    own_mosquitto: MosquittoBroker,
) -> None:
    config = station_config(own_mosquitto.url, unique_prefix())
    bridge, task = await start_bridge(config)
    try:
        await _wait_until(
            lambda: bridge.counters.get("outbound_published", "cs_status_and_limits/update") == 1
        )
        for round_number in range(2, 5):
            updates_before = bridge.counters.get(
                "outbound_published", "cs_status_and_limits/update"
            )
            own_mosquitto.kill()
            await asyncio.sleep(0.3)
            own_mosquitto.start()
            elapsed = await _wait_for_connects(bridge, round_number, RECONNECT_BOUND_S)
            assert elapsed <= RECONNECT_BOUND_S
            await _wait_until(
                lambda b=updates_before: (
                    bridge.counters.get("outbound_published", "cs_status_and_limits/update")
                    == b + 1
                )
            )
        async with JosevEmulator.connect(
            config.mqtt.broker,
            request_topic=config.mqtt.request_topic,
            response_topic=config.mqtt.response_topic,
        ) as josev:
            await josev.boot(timeout=5)
            assert josev.problems == []
    finally:
        await stop_bridge(task)


async def test_broker_absent_at_start_is_waited_for(own_mosquitto: MosquittoBroker) -> None:
    own_mosquitto.kill()
    config = station_config(own_mosquitto.url, unique_prefix())
    bridge = Bridge(config, LimitsEngine(config))
    task = asyncio.create_task(bridge.run())
    try:
        await asyncio.sleep(1.0)
        assert bridge.link.connects == 0
        assert not task.done(), "a missing broker must not end the bridge"
        own_mosquitto.start()
        elapsed = await _wait_for_connects(bridge, 1, RECONNECT_BOUND_S)
        assert elapsed <= RECONNECT_BOUND_S
    finally:
        await stop_bridge(task)


async def _wait_until(condition: object, timeout: float = 3.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")  # pragma: no cover
        await asyncio.sleep(0.01)
