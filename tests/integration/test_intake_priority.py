"""Through a real mosquitto: a burst on csbridge's own topics beyond the intake's bound is
dropped and counted, and Josev's request sent behind it is answered ahead of it."""

from __future__ import annotations

import asyncio
import logging
import time

import aiomqtt
import orjson
import pytest

from csbridge.config import Config
from csbridge.protocol.bridge import Bridge
from csbridge.protocol.intake import TopicClass
from csbridge.testing.harness import wait_until
from csbridge.tools.emulator import JosevEmulator

DC = "DE*CSB*E0001"
INTAKE_SIZE = 40
BURST = 5000
ANSWER_WITHIN_S = 1.5
"""The request still comes through mosquitto behind the whole burst on one connection, so it
waits for the burst to be read (0.3-0.7 s here), not for it to be handled: handling 5,000
external limits one by one, as an unbounded FIFO would before this request, takes about 3 s."""


@pytest.fixture
def config(config: Config) -> Config:
    raw = config.model_dump(mode="json", exclude_none=True)
    raw["mqtt"]["intake_queue_size"] = INTAKE_SIZE
    return Config.model_validate(raw)


async def test_local_burst_beyond_the_bound_is_counted_and_josev_goes_first(
    bridge: Bridge,
    josev: JosevEmulator,
    config: Config,
    raw_client: aiomqtt.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge.intake")
    assert bridge.intake.capacity[TopicClass.LOCAL] == INTAKE_SIZE // 4
    topic = f"{config.mqtt.local_prefix}/{DC}/external_limit"
    sends = [
        raw_client.publish(topic, orjson.dumps({"max_power": 60_000 + n}), qos=1)
        for n in range(BURST)
    ]
    for start in range(0, BURST, 500):
        await asyncio.gather(*sends[start : start + 500])
    await wait_until(
        lambda: bridge.counters.get("inbound_dropped", TopicClass.LOCAL) > 0,
        10,
        "the burst overflowing the local queue",
    )

    asked = time.perf_counter()
    response = await josev.request("cs_status_and_limits", timeout=5)
    answered_s = time.perf_counter() - asked
    assert response.data["evses"]
    assert answered_s < ANSWER_WITHIN_S

    # Every local message was either handled or counted as dropped: none vanished unseen.
    await wait_until(
        lambda: (
            bridge.counters.get("inbound_accepted", "external_limit")
            + bridge.counters.get("inbound_dropped", TopicClass.LOCAL)
            == BURST
        ),
        30,
        "every burst message handled or dropped",
    )
    assert bridge.counters.get("inbound_dropped", TopicClass.JOSEV) == 0
    lines = [r.getMessage() for r in caplog.records if "event=inbound_dropped" in r.getMessage()]
    assert len(lines) == 1  # one line a minute per class, however many were dropped
    assert "class=local" in lines[0]
