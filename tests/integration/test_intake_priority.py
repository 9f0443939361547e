"""Through a real mosquitto: a burst on csbridge's own topics beyond the intake's bound is
dropped and counted (events) or superseded by its newest message (state), and Josev's request
sent behind it is answered ahead of it."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

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
JOSEV_BURST = 1000
ANSWER_WITHIN_S = 1.5
"""The request still comes through mosquitto behind the whole burst on one connection, so it
waits for the burst to be read (0.3-0.7 s here), not for it to be handled: handling 5,000
external limits one by one, as an unbounded FIFO would before this request, takes about 3 s."""


@pytest.fixture
def config(config: Config) -> Config:
    raw = config.model_dump(mode="json", exclude_none=True)
    raw["mqtt"]["intake_queue_size"] = INTAKE_SIZE
    return Config.model_validate(raw)


async def _burst(raw_client: aiomqtt.Client, messages: list[tuple[str, bytes]]) -> None:
    sends = [raw_client.publish(topic, payload, qos=1) for topic, payload in messages]
    for start in range(0, len(sends), 500):
        await asyncio.gather(*sends[start : start + 500])


async def _answered_in(josev: JosevEmulator) -> float:
    asked = time.perf_counter()
    response = await josev.request("cs_status_and_limits", timeout=5)
    assert response.data["evses"]
    return time.perf_counter() - asked


async def test_local_burst_beyond_the_bound_is_counted_and_josev_goes_first(
    bridge: Bridge,
    josev: JosevEmulator,
    config: Config,
    raw_client: aiomqtt.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge.intake")
    assert bridge.intake.capacity[TopicClass.LOCAL] == INTAKE_SIZE // 4
    # Operator commands for BURST different EVSEs: each topic its own message, none supersedes.
    await _burst(
        raw_client,
        [
            (f"{config.mqtt.local_prefix}/X{n}/operator", orjson.dumps({"enabled": True}))
            for n in range(BURST)
        ],
    )
    await wait_until(
        lambda: bridge.counters.get("inbound_dropped", TopicClass.LOCAL) > 0,
        10,
        "the burst overflowing the local queue",
    )
    assert await _answered_in(josev) < ANSWER_WITHIN_S
    # Every local message was either handled or counted as dropped: none vanished unseen.
    await wait_until(
        lambda: (
            bridge.counters.get("inbound_rejected", "unknown_evse")
            + bridge.counters.get("inbound_accepted", "operator")
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


async def test_a_burst_of_limits_for_one_evse_keeps_only_the_newest_waiting(
    bridge: Bridge, josev: JosevEmulator, config: Config, raw_client: aiomqtt.Client
) -> None:
    topic = f"{config.mqtt.local_prefix}/{DC}/external_limit"
    await _burst(
        raw_client, [(topic, orjson.dumps({"max_power": 60_000 - n})) for n in range(BURST)]
    )
    assert await _answered_in(josev) < ANSWER_WITHIN_S
    await wait_until(
        lambda: (
            bridge.counters.get("inbound_accepted", "external_limit")
            + bridge.counters.get("inbound_superseded", TopicClass.LOCAL)
            == BURST
        ),
        30,
        "every limit handled or superseded by a newer one",
    )
    assert bridge.counters.get("inbound_dropped", TopicClass.LOCAL) == 0
    assert bridge.counters.get("inbound_superseded", TopicClass.LOCAL) > 0
    # The newest limit is the one that holds: none was lost to the burst.
    external = bridge.engine.inputs(DC).external
    assert external is not None
    assert external.max_power == 60_000 - (BURST - 1)


async def test_a_josev_burst_beyond_its_bound_is_held_at_the_broker_and_loses_nothing(
    bridge: Bridge, config: Config, raw_client: aiomqtt.Client
) -> None:
    """Josev's part of the intake is 20 here; 1,000 requests at once fill it many times over.
    Its requests wait in the broker's queue while csbridge holds back their acknowledgements
    (mosquitto then sends no more than its in-flight window): each is answered."""
    await raw_client.subscribe(config.mqtt.response_topic, qos=1)
    ids = [str(uuid.uuid4()) for _ in range(JOSEV_BURST)]
    answered: set[str] = set()

    async def collect() -> None:
        async for message in raw_client.messages:
            if isinstance(message.payload, bytes):
                document = orjson.loads(message.payload)
                if document.get("type") == "response":
                    answered.add(document["id"])

    collecting = asyncio.create_task(collect())
    try:
        await _burst(
            raw_client,
            [
                (
                    config.mqtt.request_topic,
                    orjson.dumps(
                        {"id": i, "name": "cs_status_and_limits", "type": "request", "data": {}}
                    ),
                )
                for i in ids
            ],
        )
        await wait_until(lambda: answered >= set(ids), 60, "every request of the burst answered")
    finally:
        collecting.cancel()
    assert bridge.counters.get("inbound_dropped", TopicClass.JOSEV) == 0
    assert bridge.counters.get("inbound_held") >= 1
    assert bridge.intake.holding == 0
