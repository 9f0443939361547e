"""No update storms through a real mosquitto: an external limit falling 1 W per message, at
50 and at 5,000 messages a second, reaches Josev as at most 20 updates a second per EVSE, the
final value within 50 ms of the bridge taking in the last message, and every request Josev asks
meanwhile is answered.

The 20 a second are counted where the bridge sends each update (its pacing's clock): times taken
where Josev receives them carry the broker's and the event loop's jitter, which on a loaded
machine bunched 21 updates sent 50 ms apart into 0.99 s. What Josev receives is checked to be no
more than what the bridge sent.

The flood comes from a thread of its own (a paho client), so it is offered at its rate whatever
the station's event loop is doing."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from csbridge.config import Config, broker_address
from csbridge.engine import UPDATE_GAP_S
from csbridge.limits import Composition, EvseInputs
from csbridge.messages import Message
from csbridge.service.station import Station
from csbridge.testing.brokers import Broker
from csbridge.testing.harness import wait_until
from csbridge.tools.emulator import EmulatorError, JosevEmulator

DC = "DE*CSB*E0001"
START_W = 110_000
"""Below the DC EVSE's 120 kW, so the external limit is what binds max_power."""
TRANSIT_S = 0.01
"""What mosquitto and the emulator's reading add to a measured time, on this loaded machine
at most: the 50 ms are the bridge's, the rest is the wire's."""
WINDOW_S = 1.0 - 1e-6
"""A second, less a hair for the float sums of the pacing's due times."""


@contextlib.contextmanager
def _flood(broker: Broker, topic: str, rate: int, count: int) -> Iterator[threading.Event]:
    """`count` external limits, 1 W lower each, at `rate` a second from a thread; the event is
    set once the last one is published."""
    host, port, _ = broker_address(broker.url)
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect(host, port)
    client.loop_start()
    done = threading.Event()

    def publish() -> None:
        start = time.perf_counter()
        for index in range(count):
            ahead = start + index / rate - time.perf_counter()
            if ahead > 0.001:
                time.sleep(ahead)  # the offered rate, not a wait for the station
            client.publish(topic, orjson.dumps({"max_power": START_W - index}), qos=0)
        done.set()

    thread = threading.Thread(target=publish, name=f"flood-{rate}", daemon=True)
    thread.start()
    try:
        yield done
    finally:
        thread.join(timeout=30)
        client.loop_stop()
        client.disconnect()


def _tells(message: Message, max_power_w: float) -> bool:
    return any(
        entry["evse_id"] == DC and entry["dc"]["max_power"] == max_power_w
        for entry in message.data["evses"]
        if message.name == "cs_status_and_limits"
    )


def _most_in_a_window(times: list[float]) -> int:
    most, first = 0, 0
    for last, at in enumerate(times):
        while times[first] <= at - WINDOW_S:
            first += 1
        most = max(most, last - first + 1)
    return most


@pytest.mark.parametrize(("rate", "seconds"), [(50, 2.0), (5000, 1.0)])
async def test_a_falling_limit_makes_no_update_storm(
    station: Station,
    josev: JosevEmulator,
    config: Config,
    broker: Broker,
    rate: int,
    seconds: float,
) -> None:
    await josev.boot(timeout=5)
    topic = f"{config.mqtt.local_prefix}/{DC}/external_limit"
    count = int(rate * seconds)
    final_w = START_W - (count - 1)
    taken_at: dict[float, float] = {}
    """Each external max_power the engine evaluated, and when it first did."""

    def observe(evse_id: str, inputs: EvseInputs, _: Composition | None) -> None:
        if evse_id == DC and inputs.external is not None and inputs.external.max_power:
            taken_at.setdefault(inputs.external.max_power, time.perf_counter())

    sent_at: list[float] = []
    """When the bridge took each of DC's updates to go to Josev, on its pacing's clock."""

    def sent(evse_id: str, at: float) -> None:
        if evse_id == DC:
            sent_at.append(at)

    station.engine.observers.append(observe)
    station.engine.updates.taken.append(sent)
    seen = len(josev.exchanges)
    updates_seen = len(josev.updates)
    asked = answered = 0

    async def ask_meanwhile(stop: asyncio.Event) -> None:
        nonlocal asked, answered
        while not stop.is_set():
            asked += 1
            with contextlib.suppress(EmulatorError):
                await josev.request("cs_status_and_limits", timeout=20)
                answered += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):  # a request every 50 ms or so
                    await stop.wait()

    stop = asyncio.Event()
    asker = asyncio.create_task(ask_meanwhile(stop))
    with _flood(broker, topic, rate, count) as flooded:
        await wait_until(flooded.is_set, 30, "the flood published")
        await wait_until(lambda: final_w in taken_at, 30, f"the bridge took in {final_w} W")
        await josev.wait_update(lambda message: _tells(message, final_w), 5, since=updates_seen)
    stop.set()
    await asker

    updates = [
        (exchange.at, entry)
        for exchange in josev.exchanges[seen:]
        if exchange.name == "cs_status_and_limits" and exchange.type == "update"
        for entry in exchange.data["evses"]
        if entry["evse_id"] == DC
    ]
    span_s = max(sent_at[-1] - sent_at[0], 1.0)
    assert _most_in_a_window(sent_at) <= 20, f"{len(sent_at)} updates sent in {span_s:.2f} s"
    assert len(updates) <= len(sent_at), f"{len(updates)} updates received, {len(sent_at)} sent"
    told_at, last = updates[-1]
    assert last["dc"]["max_power"] == final_w
    lag_s = told_at - taken_at[final_w]
    assert lag_s <= UPDATE_GAP_S + TRANSIT_S, f"the final value told {lag_s * 1000:.1f} ms late"
    assert all(entry["dc"]["max_power"] < START_W + 1 for _, entry in updates)
    assert asked > 0
    assert answered == asked, f"{asked - answered} of {asked} requests unanswered"
    assert josev.problems == []
