"""Two links on one client id, on a real mosquitto: the broker closes the older connection each
time the other connects. Before, two bridges flipped 125 times each in 20 s; now each
recognises the loop after three quick losses, says so in one error line, counts it, and waits
2 s doubling to 30 s between reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid

import pytest

from csbridge.config import MqttConfig
from csbridge.mqtt.link import TAKEOVER_BACKOFF_START_S, MqttLink, Subscription
from csbridge.support import Counted, Counters
from csbridge.testing.brokers import MosquittoBroker
from csbridge.testing.harness import wait_until

OBSERVED_S = 6.0
"""How long the two links share the id; before the fix, about 37 flips each."""
MAX_LOSSES = 8
"""Three quick losses to recognise the loop, then at most one per wait of 1, 2, 4 s (the
jittered 2, 4, 8 s) on either side: a handful."""


class Twin:
    """One link, and when it lost its connection after it had recognised the loop."""

    def __init__(self, config: MqttConfig) -> None:
        self.lost_in_loop_at: list[float] = []
        self.counters = Counters()
        self.link = MqttLink(
            config,
            [Subscription(f"{config.local_prefix}/#")],
            on_message=self._ignore,
            on_connected=self._nothing,
            on_lost=self._lost,
            counters=self.counters,
        )
        self.stalled_s = 0.0

    def _lost(self) -> None:
        if self.link.takeovers.looping:
            self.lost_in_loop_at.append(time.monotonic())

    async def _ignore(self, topic: str, payload: bytes, retained: bool) -> None:
        return None

    async def _nothing(self) -> None:
        return None

    def sample(self) -> bool:
        """Record how stalled the watchdog would find the link; never done."""
        self.stalled_s = max(self.stalled_s, self.link.stalled_for(time.monotonic()))
        return False


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_two_links_on_one_client_id_back_off_instead_of_flipping(
    own_mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="csbridge.mqtt")
    config = MqttConfig(
        broker=own_mosquitto.url,
        client_id=f"twin-{uuid.uuid4().hex[:8]}",
        local_prefix=f"twin-{uuid.uuid4().hex[:8]}",
    )
    first, second = Twin(config), Twin(config)
    tasks = [asyncio.create_task(first.link.run())]
    try:
        await wait_until(first.link.connected.is_set, 5, "the first link connected")
        tasks.append(asyncio.create_task(second.link.run()))
        started = time.monotonic()
        await wait_until(
            lambda: first.link.takeovers.looping and second.link.takeovers.looping,
            OBSERVED_S,
            "both links recognise the loop",
        )
        with contextlib.suppress(TimeoutError):  # the sampling never ends by itself
            await wait_until(
                lambda: first.sample() or second.sample(),
                max(0.0, OBSERVED_S - (time.monotonic() - started)),
                "the observed time to pass",
            )
    finally:
        for task in tasks:
            await _stop(task)

    for twin in (first, second):
        assert twin.link.losses <= MAX_LOSSES
        assert twin.counters.get(Counted.MQTT_TAKEOVER_LOOPS) == 1
        # Once recognised, never a loss (modules switched off) sooner than the shortest wait.
        looping = twin.lost_in_loop_at
        gaps = [later - earlier for earlier, later in itertools.pairwise(looping)]
        assert all(gap >= TAKEOVER_BACKOFF_START_S / 2 for gap in gaps), gaps
        # A deliberate wait is no stall: the watchdog keeps being fed.
        assert twin.stalled_s < 1.0
    messages = [record.getMessage() for record in caplog.records]
    loop_lines = [line for line in messages if line.startswith("event=mqtt_takeover_loop ")]
    assert len(loop_lines) == 2, loop_lines  # one per link, not one per flip
    record = next(r for r in caplog.records if r.getMessage() in loop_lines)
    assert record.levelno == logging.ERROR
    assert f"client_id={config.client_id}" in loop_lines[0]
    assert "another client connects with this client id" in loop_lines[0]
    # The losses before the loop was recognised are ordinary warnings; none after it.
    lost_lines = [line for line in messages if line.startswith("event=mqtt_lost ")]
    assert len(lost_lines) <= 4, lost_lines


async def test_a_broker_restarting_quickly_is_no_takeover_loop(
    own_mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Three losses in a few seconds, but each reconnect is refused first: ordinary losses,
    reconnected within the usual backoff, nothing counted."""
    caplog.set_level(logging.INFO, logger="csbridge.mqtt")
    twin = Twin(MqttConfig(broker=own_mosquitto.url, client_id=f"one-{uuid.uuid4().hex[:8]}"))
    task = asyncio.create_task(twin.link.run())
    try:
        await wait_until(twin.link.connected.is_set, 5, "connected")
        for round_number in range(1, 4):
            refused = twin.link.failed_connects
            own_mosquitto.kill()
            await wait_until(lambda r=refused: twin.link.failed_connects > r, 3, "a refusal")
            own_mosquitto.start()
            await wait_until(
                lambda n=round_number: twin.link.connects == n + 1 and twin.link.connected.is_set(),
                3,
                f"reconnect {round_number}",
            )
    finally:
        await _stop(task)
    assert twin.link.losses == 3
    assert not twin.link.takeovers.looping
    assert twin.counters.get(Counted.MQTT_TAKEOVER_LOOPS) == 0
    assert not any("mqtt_takeover_loop" in r.getMessage() for r in caplog.records)
