"""The bridge survives its broker: reconnects with backoff, resubscribes, republishes the state."""

from __future__ import annotations

import asyncio

from csbridge.engine.engine import LimitsEngine
from csbridge.mqtt.link import BACKOFF_CAP_S
from csbridge.protocol.bridge import Bridge
from csbridge.testing.brokers import MosquittoBroker
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from tests.conftest import start_bridge, stop_bridge
from tests.support import station_config, unique_prefix

RECONNECT_BOUND_S = BACKOFF_CAP_S + 0.5


def _published_updates(bridge: Bridge) -> int:
    return bridge.counters.get("outbound_published", "cs_status_and_limits/update")


async def _connect_number(bridge: Bridge, count: int) -> float:
    """Seconds until the bridge's `count`th connect."""
    return await wait_until(
        lambda: bridge.link.connects >= count, RECONNECT_BOUND_S + 1, f"connect number {count}"
    )


async def test_broker_killed_and_back_bridge_reconnects_and_republishes(
    own_mosquitto: MosquittoBroker,
) -> None:
    config = station_config(own_mosquitto.url, unique_prefix())
    bridge, task = await start_bridge(config)
    try:
        await wait_until(lambda: _published_updates(bridge) == 1, 3, "the first full update")
        for round_number in range(2, 5):
            updates_before = _published_updates(bridge)
            own_mosquitto.kill()
            await asyncio.sleep(0.3)  # the outage itself: the broker stays away this long
            own_mosquitto.start()
            elapsed = await _connect_number(bridge, round_number)
            assert elapsed <= RECONNECT_BOUND_S
            await wait_until(
                lambda b=updates_before: _published_updates(bridge) == b + 1,
                3,
                "the full update after the reconnect",
            )
        async with JosevClient.for_config(config) as josev:
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
        # Three refused attempts (0.1 + 0.2 + 0.4 s of backoff): the bridge keeps trying.
        await wait_until(lambda: bridge.link.failed_connects >= 3, 5, "three failed connects")
        assert bridge.link.connects == 0
        assert not task.done(), "a missing broker must not end the bridge"
        own_mosquitto.start()
        elapsed = await _connect_number(bridge, 1)
        assert elapsed <= RECONNECT_BOUND_S
    finally:
        await stop_bridge(task)
