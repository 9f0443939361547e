"""The broker killed (kill -9) ten times while an energy manager streams limit changes: the
station never stops, is connected again within 2 s of each return (the backoff's cap, jitter
included), republishes its whole state every time, and a Josev that has been listening since
the last return ends up seeing exactly what the station reports."""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from typing import Any

import aiomqtt
import orjson
import pytest

from csbridge.config import Config, broker_address
from csbridge.messages.envelope import Message
from csbridge.mqtt.link import TCP_NODELAY_OPTION
from csbridge.protocol.bridge import Bridge
from csbridge.service.station import Station
from csbridge.testing.brokers import MosquittoBroker
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from csbridge.tools.emulator import JosevEmulator
from tests.conftest import start_station, stop_bridge
from tests.support import station_config, unique_prefix

pytestmark = pytest.mark.soak

DOWNTIMES_S = (0.1, 0.3, 0.6, 1.0, 0.2, 2.5, 0.4, 1.5, 3.0, 0.8)
"""Short outages reconnect early in the backoff; the long ones reach its cap."""
RECONNECT_LIMIT_S = 2.0
"""The issue's bound; the backoff cap stays below it by the time a connect takes."""
STREAM_PERIOD_S = 0.02
FULL_STATE = "cs_status_and_limits/update"


class LimitStream:
    """An energy manager: a new external limit for one EVSE every STREAM_PERIOD_S, over a
    connection of its own that it re-opens whenever the broker has gone."""

    def __init__(self, config: Config, seed: int) -> None:
        self._config = config
        self._rng = random.Random(seed)
        self.sent = 0
        self.refused = 0

    def _change(self) -> tuple[str, dict[str, Any]]:
        dc, ac = (evse.evse_id for evse in self._config.evse)
        if self._rng.random() < 0.5:
            return dc, {"max_power": self._rng.choice(range(20_000, 150_001, 10_000))}
        return ac, {"max_current": float(self._rng.randint(6, 32))}

    async def run(self) -> None:
        host, port, _ = broker_address(self._config.mqtt.broker)
        while True:
            try:
                async with aiomqtt.Client(
                    host, port, socket_options=[TCP_NODELAY_OPTION], timeout=1
                ) as client:
                    while True:
                        evse_id, limit = self._change()
                        topic = f"{self._config.mqtt.local_prefix}/{evse_id}/external_limit"
                        await client.publish(topic, orjson.dumps(limit), qos=1, timeout=1)
                        self.sent += 1
                        await asyncio.sleep(STREAM_PERIOD_S)  # the energy manager's pace
            except aiomqtt.MqttError:
                self.refused += 1
                await asyncio.sleep(0.05)  # the energy manager's own retry


async def _seconds_until_connected(bridge: Bridge, before: int, since: float) -> float:
    """From `since` (the broker's return) until the bridge's next connect, polled every
    millisecond in a task of its own so nothing else the test awaits delays the reading."""
    await wait_until(
        lambda: bridge.link.connects != before,
        RECONNECT_LIMIT_S + 3,
        "the reconnect",
        every=0.001,
    )
    return time.monotonic() - since


def _whole_state(station: Station) -> Any:
    evse_ids = set(station.engine.evse_ids)

    def predicate(message: Message) -> bool:
        return {entry["evse_id"] for entry in message.data["evses"]} == evse_ids

    return predicate


async def _check_republished(
    station: Station, josev: JosevEmulator, *, listened_first: bool, updates_before: int
) -> None:
    """After a connect: the full state went out once more, both to Josev (an update naming
    every EVSE) and as retained reports and status, which a restarted broker without
    persistence can only have from the station."""
    config = station.config
    counters = station.bridge.counters
    await wait_until(
        lambda: counters.get("outbound_published", FULL_STATE) > updates_before,
        2,
        "no cs_status_and_limits update after the connect",
    )
    if listened_first:
        await josev.wait_update(_whole_state(station), timeout=2)
    assert await josev.first_message(config.mqtt.status_topic, timeout=2) == b"online"
    for evse_id in station.engine.evse_ids:
        topic = f"{config.mqtt.local_prefix}/{evse_id}/limits"
        report = orjson.loads(await josev.first_message(topic, timeout=2))
        assert report["limits"]["evse_id"] == evse_id


async def test_broker_killed_ten_times_during_a_stream_of_limit_changes(
    own_mosquitto: MosquittoBroker,
) -> None:
    config = station_config(own_mosquitto.url, unique_prefix())
    station, task = await start_station(config)
    bridge = station.bridge
    stream = LimitStream(config, seed=11)
    streaming = asyncio.create_task(stream.run())
    reconnect_s: list[float] = []
    listened_first = 0
    async with contextlib.AsyncExitStack() as watchers:
        try:
            await wait_until(lambda: stream.sent >= 20, 5, "the stream did not start")
            for downtime in DOWNTIMES_S:
                await watchers.aclose()  # before the kill: the watcher cannot outlive it
                connects = bridge.link.connects
                updates = bridge.counters.get("outbound_published", FULL_STATE)
                own_mosquitto.kill()
                await asyncio.sleep(downtime)  # the outage itself
                assert not task.done(), "the station stopped while the broker was away"
                own_mosquitto.start()
                returned = time.monotonic()
                timing = asyncio.create_task(_seconds_until_connected(bridge, connects, returned))
                josev = await watchers.enter_async_context(JosevClient.for_config(config))
                first = bridge.link.connects == connects  # listening before the station is
                listened_first += first
                reconnect_s.append(await timing)
                assert bridge.link.connects == connects + 1
                await _check_republished(
                    station, josev, listened_first=first, updates_before=updates
                )
                taken = bridge.counters.get("inbound_accepted", "external_limit")
                await wait_until(
                    lambda t=taken: (
                        bridge.counters.get("inbound_accepted", "external_limit") >= t + 5
                    ),
                    3,
                    "the stream of limits did not reach the station again",
                )
                assert not task.done()

            # The last watcher has heard everything since the last return: let the stream
            # run on, stop it, and its view must settle on exactly what the station reports.
            await asyncio.sleep(1.5)  # the stream running on, with nobody killing the broker
            streaming.cancel()
            await asyncio.gather(streaming, return_exceptions=True)
            await wait_until(
                lambda: (
                    [josev.view.evses.get(e) for e in station.engine.evse_ids]
                    == station.engine.entries.values()
                ),
                5,
                "Josev's view never matched the station's state",
            )
            _, status = await josev.boot(timeout=5)
            assert status.data["evses"] == station.engine.entries.values()
            assert josev.problems == []
            assert not task.done(), "the station stopped"
            final_dc = station.engine.entries.values()[0]["dc"]["max_power"]
        finally:
            streaming.cancel()
            await asyncio.gather(streaming, return_exceptions=True)
            await stop_bridge(task)

    print(
        "\nreconnect after the broker's return, per round (s): "
        + ", ".join(f"{seconds:.3f}" for seconds in reconnect_s)
        + f"\nmin {min(reconnect_s):.3f} median {statistics.median(reconnect_s):.3f} "
        f"max {max(reconnect_s):.3f}; downtimes {DOWNTIMES_S}; the watcher listened first in "
        f"{listened_first}/{len(DOWNTIMES_S)} rounds; {stream.sent} limits streamed, "
        f"{bridge.counters.get('inbound_accepted', 'external_limit')} taken, the stream "
        f"was refused or cut off {stream.refused} times; final DC max_power {final_dc}"
    )
    assert bridge.link.connects == len(DOWNTIMES_S) + 1
    assert bridge.link.losses == len(DOWNTIMES_S)
    assert max(reconnect_s) <= RECONNECT_LIMIT_S, reconnect_s
    assert listened_first >= len(DOWNTIMES_S) // 2, "the full-state update was rarely seen"
    assert bridge.counters.total("handler_failed") == 0
