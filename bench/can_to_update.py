"""A CAN frame in to the cs_status_and_limits update it causes, out through mosquitto (QoS 1).

The station (4 DC EVSEs of 8 Infypower REG modules, each EVSE on a python-can virtual bus of its
own) runs in this process with its real codecs; the benchmark plays the modules: it tells every
module's capability once, then flips module m1 of the first EVSE between 80 A and 40 A, one
frame at a time, so each frame lowers or raises the EVSE's maximum current by 40 A. The config
reports every change at once (no settle time, no relative hysteresis; a pause of 51 ms between
frames keeps within the 20 updates/s per EVSE that the bridge never exceeds), so one frame is one
update.

Timestamps per frame: in the bridge's receive queue (python-can's virtual send has returned: its
deep copy of the frame is the sender's cost, not the bridge's); taken by the bridge (its bus
link's frame callback on the event loop, behind the reader thread a virtual bus needs); handed
to the MQTT link (a measuring shim on `bridge.link.publish`); received by a subscriber through
mosquitto. The bridge's share is queued -> handed to the link: the reader thread's hop (SocketCAN
has none: the socket is read on the loop), decoding, composing, gating, encoding and validating
the update.

Baseline in the same process and the same rounds: a bare forwarder, a python-can Notifier on
another virtual channel feeding an aiomqtt client that publishes each frame's data at QoS 1.
Goals: frame -> update received p99 <= 5 ms; the bridge's share p99 <= 1 ms.
"""

from __future__ import annotations

import asyncio
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import can
import orjson

from bench.common import (
    CS_STATUS_AND_LIMITS,
    PublishTap,
    StationSpec,
    broker,
    mqtt_client,
    payload_bytes,
    print_latency_table,
    running_station,
    summary_dict,
    summary_row,
)
from bench.decode_throughput import CONTROLLER, infy_id
from bench.stats import Summary
from csbridge.mqtt.link import QOS
from csbridge.service.station import Station

GOAL_P99_MS = 5.0
GOAL_SHARE_P99_MS = 1.0
EVSES, MODULES = 4, 8
CAPABILITY = 0x0A
HIGH_A, LOW_A = 80.0, 40.0
GAP_S = 0.051
"""Between frames: above the 50 ms an EVSE's updates are paced at, so no update is held back."""
FORWARD_TOPIC = "bench/forward"


def capability_frame(address: int, max_current_a: float) -> can.Message:
    """infypower-reg's read_capability reply: 1000 V max, 150 V min, the current, 40 kW."""
    data = struct.pack(">HHHH", 1000, 150, round(max_current_a * 10), 4000)
    return can.Message(
        arbitration_id=infy_id(CAPABILITY, CONTROLLER, address), is_extended_id=True, data=data
    )


@dataclass(slots=True)
class Expectation:
    matches: Callable[[str, bytes], bool]
    arrived: asyncio.Future[float]


@dataclass(slots=True)
class Subscriber:
    """Resolves the one outstanding expectation with the time its message arrived."""

    client: aiomqtt.Client
    current: Expectation | None = None

    def expect(self, matches: Callable[[str, bytes], bool]) -> asyncio.Future[float]:
        arrived = asyncio.get_running_loop().create_future()
        self.current = Expectation(matches, arrived)
        return arrived

    async def run(self) -> None:
        async for message in self.client.messages:
            now = time.perf_counter()
            current = self.current
            if current is not None and current.matches(message.topic.value, payload_bytes(message)):
                self.current = None
                current.arrived.set_result(now)


def update_with(evse_id: str, max_current: float) -> Callable[[str, bytes], bool]:
    """An update naming `evse_id` with that maximum current."""

    def matches(topic: str, payload: bytes) -> bool:
        if topic != "cs/josev":
            return False
        message = orjson.loads(payload)
        if message.get("name") != CS_STATUS_AND_LIMITS or message.get("type") != "update":
            return False
        return any(
            entry["evse_id"] == evse_id and entry.get("dc", {}).get("max_current") == max_current
            for entry in message["data"]["evses"]
        )

    return matches


@dataclass(slots=True)
class Samples:
    frame_in: list[float] = field(default_factory=list)
    handed: list[float] = field(default_factory=list)
    in_loop: list[float] = field(default_factory=list)
    received: list[float] = field(default_factory=list)


class Forwarder:
    """The baseline: frames of one virtual channel published as they come, nothing else."""

    def __init__(self, channel: str, client: aiomqtt.Client) -> None:
        self.bus = can.Bus(channel=channel, interface="virtual")
        self.reader = can.AsyncBufferedReader()
        self.notifier = can.Notifier(self.bus, [self.reader], loop=asyncio.get_running_loop())
        self.client = client
        self.handed_at = 0.0

    async def run(self) -> None:
        async for frame in self.reader:
            self.handed_at = time.perf_counter()
            await self.client.publish(FORWARD_TOPIC, bytes(frame.data), qos=QOS)

    def close(self) -> None:
        self.notifier.stop(timeout=1.0)
        self.bus.shutdown()


@dataclass(slots=True)
class Rig:
    spec: StationSpec
    station: Station
    tap: PublishTap
    subscriber: Subscriber
    forwarder: Forwarder
    modules: list[can.BusABC]
    """The benchmark's end of each EVSE's bus: it plays the modules."""
    baseline_bus: can.BusABC
    frame_in_at: list[float]
    step: int = 0

    def _next_current(self) -> float:
        self.step += 1
        return LOW_A if self.step % 2 else HIGH_A

    async def bridge_sample(self, samples: Samples) -> None:
        current = self._next_current()
        expected = current + HIGH_A * (MODULES - 1)
        arrived = self.subscriber.expect(update_with(self.spec.evse_id(0), expected))
        start = len(self.tap.calls)
        self.modules[0].send(capability_frame(1, current))
        sent = time.perf_counter()
        received = await asyncio.wait_for(arrived, 5)
        handed = self.tap.since(start, lambda topic: topic == "cs/josev")[0].wall
        samples.frame_in.append(self.frame_in_at[-1] - sent)
        samples.handed.append(handed - sent)
        samples.in_loop.append(handed - self.frame_in_at[-1])
        samples.received.append(received - sent)

    async def baseline_sample(self, samples: Samples) -> None:
        frame = capability_frame(1, self._next_current())
        data = bytes(frame.data)
        arrived = self.subscriber.expect(
            lambda topic, payload: topic == FORWARD_TOPIC and payload == data
        )
        self.baseline_bus.send(frame)
        sent = time.perf_counter()
        received = await asyncio.wait_for(arrived, 5)
        samples.handed.append(self.forwarder.handed_at - sent)
        samples.received.append(received - sent)


def _observe_frames(station: Station, seen: list[float]) -> None:
    """Time each frame as the bridge's bus link takes it on the event loop."""
    for link in station.buses.links.values():
        original = link.on_frame

        def on_frame(
            frame: can.Message, original: Callable[[can.Message], str | None] = original
        ) -> str | None:
            seen.append(time.perf_counter())
            return original(frame)

        setattr(link, "on_frame", on_frame)  # noqa: B010 - a measuring shim on one instance


async def _tell_capabilities(
    station: Station, spec: StationSpec, modules: list[can.BusABC]
) -> None:
    """Every module's capability, again until every EVSE is ready (a frame sent before the
    station has opened its end of the bus is lost)."""
    async with asyncio.timeout(15):
        while any(
            station.engine.snapshots.get(spec.evse_id(index)).status_code != "evse_ready"
            for index in range(spec.evses)
        ):
            for bus in modules:
                for address in range(1, spec.modules + 1):
                    bus.send(capability_frame(address, HIGH_A))
            await asyncio.sleep(0.1)


async def _measure(url: str, rounds: int, per_round: int, warmup: int) -> dict[str, Samples]:
    spec = StationSpec(
        evses=EVSES,
        modules=MODULES,
        simulated=False,
        fast_reporting=True,
        broker=url,
        # The benchmark is the modules: a slow poll keeps the station's requests out of the
        # way, and a long deadline keeps modules told once from going stale.
        poll_period_s=60.0,
        deadline_s=600.0,
    )
    frame_in_at: list[float] = []
    modules = [can.Bus(channel=spec.channel(i), interface="virtual") for i in range(EVSES)]
    baseline_bus = can.Bus(channel=f"{spec.channel_prefix}-forward", interface="virtual")
    samples = {"csbridge": Samples(), "forwarder": Samples()}
    try:
        async with (
            running_station(
                spec.config(), prepare=lambda s: _observe_frames(s, frame_in_at)
            ) as station,
            mqtt_client(url) as listener,
            mqtt_client(url) as forwarding,
        ):
            await listener.subscribe("cs/josev", qos=QOS)
            await listener.subscribe(FORWARD_TOPIC, qos=QOS)
            subscriber = Subscriber(listener)
            forwarder = Forwarder(f"{spec.channel_prefix}-forward", forwarding)
            tasks = [asyncio.create_task(subscriber.run()), asyncio.create_task(forwarder.run())]
            try:
                await _tell_capabilities(station, spec, modules)
                rig = Rig(
                    spec,
                    station,
                    PublishTap(station),
                    subscriber,
                    forwarder,
                    modules,
                    baseline_bus,
                    frame_in_at,
                )
                for round_index in range(rounds + 1):
                    count = warmup if round_index == 0 else per_round
                    into = (
                        samples if round_index else {"csbridge": Samples(), "forwarder": Samples()}
                    )
                    for _ in range(count):
                        await rig.bridge_sample(into["csbridge"])
                        await asyncio.sleep(GAP_S)
                    for _ in range(count):
                        await rig.baseline_sample(into["forwarder"])
                        await asyncio.sleep(GAP_S)
            finally:
                forwarder.close()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for bus in (*modules, baseline_bus):
            bus.shutdown()
    return samples


def run(quick: bool) -> dict[str, Any]:
    rounds, per_round, warmup = (3, 60, 20) if quick else (10, 150, 50)
    with tempfile.TemporaryDirectory() as tmp, broker(Path(tmp)) as (url, broker_kind):
        samples = asyncio.run(_measure(url, rounds, per_round, warmup))
    bridge, forwarder = samples["csbridge"], samples["forwarder"]
    end_to_end = Summary.of(bridge.received)
    share = Summary.of(bridge.handed)
    floor_end_to_end = Summary.of(forwarder.received)
    floor_share = Summary.of(forwarder.handed)
    return {
        "benchmark": "CAN frame in (virtual bus) -> cs_status_and_limits update out, QoS 1",
        "broker": broker_kind,
        "station": f"{EVSES} DC EVSEs x {MODULES} infypower-reg modules, a virtual bus each",
        "csbridge": {
            "frame_to_received": summary_dict(end_to_end),
            "frame_to_publish_call": summary_dict(share),
            "frame_to_bridge_callback": summary_dict(Summary.of(bridge.frame_in)),
            "bridge_callback_to_publish_call": summary_dict(Summary.of(bridge.in_loop)),
        },
        "forwarder_baseline": {
            "frame_to_received": summary_dict(floor_end_to_end),
            "frame_to_publish_call": summary_dict(floor_share),
        },
        "goal_p99_ms": GOAL_P99_MS,
        "goal_share_p99_ms": GOAL_SHARE_P99_MS,
        "summary": [
            summary_row(
                "frame -> update received p50 ms (vs forwarder)",
                end_to_end.p50_ms,
                floor_end_to_end.p50_ms,
            ),
            summary_row(
                "frame -> update received p99 ms (vs forwarder)",
                end_to_end.p99_ms,
                floor_end_to_end.p99_ms,
                goal=f"<= {GOAL_P99_MS:g} ms",
                met=end_to_end.p99_ms <= GOAL_P99_MS,
            ),
            summary_row(
                "bridge share: frame -> publish call p99 ms",
                share.p99_ms,
                floor_share.p99_ms,
                goal=f"<= {GOAL_SHARE_P99_MS:g} ms",
                met=share.p99_ms <= GOAL_SHARE_P99_MS,
            ),
        ],
    }


def print_table(result: dict[str, Any]) -> None:
    bridge, floor = result["csbridge"], result["forwarder_baseline"]
    print(
        f"{result['benchmark']} ({result['broker']}, {result['station']}, "
        f"{bridge['frame_to_received']['count']} frames each)"
    )
    print_latency_table(
        [
            ("csbridge frame->received", bridge["frame_to_received"]),
            ("forwarder frame->received", floor["frame_to_received"]),
            ("csbridge frame->publish", bridge["frame_to_publish_call"]),
            ("forwarder frame->publish", floor["frame_to_publish_call"]),
            ("  frame->bridge callback", bridge["frame_to_bridge_callback"]),
            ("  callback->publish", bridge["bridge_callback_to_publish_call"]),
        ]
    )
