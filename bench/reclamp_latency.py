"""A limit lowered mid-charge to the modules' set-output frames with the lower current on the bus
(issue 14, item 3: within 50 ms, p99), next to the update that tells Josev of the same limit.

The station is examples/sim-station.toml (three simulated Infypower modules answering on
python-can's virtual bus, the simulated IMD and board), in this process against mosquitto. It is
driven into a running DC session as an EV and Josev would: plug in and the EV ready (the
station's simulate topic), HLC up, a cable check, precharge, then a setpoint of 400 V / 240 A,
which the stack carries at 80 A a module. Josev's emulator leaves once charging runs, so that
only the station and the measurement share the event loop.

Each sample publishes a lower `max_current` on csbridge/<evse_id>/external_limit (QoS 1), down
a staircase of 10 A steps from 230 A to 60 A (every module stays in the split, at a third of the
limit), and takes two times from the publish:

- csbridge: until every module's set-output frame (Infypower 0x1C) carries at most its third of
  the new limit, by the frames' own timestamps (python-can stamps a virtual frame as it is
  sent, so the sniffer's reading delay is not counted);
- baseline: until the cs_status_and_limits update carrying the new maximum reaches a subscriber
  through mosquitto: what Josev sees of the same change, in the same run.

At the foot of each staircase the limit is withdrawn (back to 240 A) and the next staircase
starts once the modules carry it again; those raises are not measured. Goal: p99 <= 50 ms.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import can
import orjson

from bench.can_to_update import Subscriber
from bench.common import (
    CS_STATUS_AND_LIMITS,
    broker,
    mqtt_client,
    print_latency_table,
    running_station,
    summary_dict,
    summary_row,
)
from bench.stats import Summary
from csbridge.config import Config
from csbridge.mqtt.link import QOS
from csbridge.protocol import Leaf, LocalTopics
from csbridge.service.station import Station
from csbridge.testing.can_tap import CanTap
from csbridge.testing.harness import isolated_config, wait_until
from csbridge.testing.josev import JosevClient

DC = "DE*CSB*E0001"
MODULE_ADDRESSES = (1, 2, 3)
SET_OUTPUT = 0x1C
FULL_A = 240.0
VOLTAGE_V = 400.0
STAIRCASE_A = tuple(float(amps) for amps in range(230, 50, -10))
"""The limits of one staircase, each a drop from the one before: 230 A ... 60 A."""
GOAL_P99_MS = 50.0
TOLERANCE_A = 0.01
"""A frame's current is in mA: a third of the limit may be rounded by that much."""
SAMPLE_TIMEOUT_S = 5.0


def set_output(frame: can.Message) -> tuple[int, float] | None:
    """(module address, current in A) of an Infypower set-output frame, else None."""
    if not frame.is_extended_id or (frame.arbitration_id >> 16) & 0x3F != SET_OUTPUT:
        return None
    return (frame.arbitration_id >> 8) & 0xFF, int.from_bytes(frame.data[4:8], "big") / 1000


@dataclass(slots=True)
class Samples:
    frames_all: list[float] = field(default_factory=list)
    """Publish -> the last module's first lowered frame."""
    frames_first: list[float] = field(default_factory=list)
    """Publish -> the first lowered frame of any module."""
    update: list[float] = field(default_factory=list)
    """Publish -> the update with the new maximum received (the baseline)."""


def update_for(response_topic: str, max_current: float) -> Callable[[str, bytes], bool]:
    """A cs_status_and_limits update that tells Josev the DC EVSE's new maximum current."""

    def matches(topic: str, payload: bytes) -> bool:
        if topic != response_topic:
            return False
        message = orjson.loads(payload)
        if message.get("name") != CS_STATUS_AND_LIMITS or message.get("type") != "update":
            return False
        return any(
            entry["evse_id"] == DC and entry.get("dc", {}).get("max_current") == max_current
            for entry in message["data"]["evses"]
        )

    return matches


async def lowered_frames(tap: CanTap, share_a: float, published_at: float) -> list[float]:
    """Seconds from `published_at` (time.time) to each module's first set-output frame with at
    most `share_a`, by the frames' timestamps, in module order."""
    first: dict[int, float] = {}
    async with asyncio.timeout(SAMPLE_TIMEOUT_S):
        while len(first) < len(MODULE_ADDRESSES):
            frame = await tap.recv(SAMPLE_TIMEOUT_S)
            if frame is None:
                continue
            decoded = set_output(frame)
            if decoded is None:
                continue
            address, current = decoded
            if current <= share_a + TOLERANCE_A and address not in first:
                first[address] = frame.timestamp - published_at
    return [first[address] for address in MODULE_ADDRESSES]


@dataclass(slots=True)
class Rig:
    station: Station
    client: aiomqtt.Client
    """The energy manager's MQTT client."""
    subscriber: Subscriber
    tap: CanTap
    limit_topic: str
    response_topic: str

    async def drop(self, limit_a: float, into: Samples) -> None:
        arrived = self.subscriber.expect(update_for(self.response_topic, limit_a))
        self.tap.drain()  # the keepalive's frames so far say nothing of this drop
        payload = orjson.dumps({"max_current": limit_a})
        published_wall = time.time()
        published = time.perf_counter()
        await self.client.publish(self.limit_topic, payload, qos=QOS)
        frames = await lowered_frames(self.tap, limit_a / len(MODULE_ADDRESSES), published_wall)
        received = await asyncio.wait_for(arrived, SAMPLE_TIMEOUT_S)
        into.frames_all.append(max(frames))
        into.frames_first.append(min(frames))
        into.update.append(received - published)

    async def back_to_full(self) -> None:
        """The limit withdrawn; once the modules carry the whole setpoint again."""
        await self.client.publish(self.limit_topic, b"{}", qos=QOS)

        def full() -> bool:
            commanded = self.station.session.power.commanded(DC)
            return commanded is not None and commanded.total_current >= FULL_A

        await wait_until(full, SAMPLE_TIMEOUT_S, "the modules back at the full setpoint")


async def charging(station: Station, config: Config) -> None:
    """The DC EVSE in a running session at 400 V / 240 A, as an EV and Josev take it there."""
    async with JosevClient.for_config(config) as josev:
        await josev.boot(timeout=5)
        await josev.simulate(DC, "plug_in")
        await josev.update("hlc_charging", {"evse_id": DC, "status": True})
        await josev.simulate(DC, "ev_ready")
        await wait_until(
            lambda: station.session.sessions[DC].state.value == "authorized",
            5,
            "the EVSE authorized at pilot C",
        )
        await josev.request("cable_check", {"evse_id": DC, "cable_check_action": "start"})

        async def checked() -> bool:
            answer = await josev.request(
                "cable_check", {"evse_id": DC, "cable_check_action": "status"}, timeout=5
            )
            return bool(answer.data["cable_check_status"] == "finished")

        await wait_until(checked, 15, "the cable check finished", every=0.2)
        for current, precharge in ((2.0, True), (FULL_A, False)):
            setpoint = {
                "evse_id": DC,
                "dc": {"voltage": VOLTAGE_V, "charge_current": current},
                "ev_limits": {"maximum_voltage": 500.0},
                "is_precharge": precharge,
            }
            answer = await josev.request("power_electronics_setpoint", setpoint, timeout=5)
            if answer.data["status"] != "accepted":
                raise RuntimeError(f"setpoint refused: {answer.data}")
        josev.assert_no_problems()
    if station.session.sessions[DC].state.value != "charging":
        raise RuntimeError(f"not charging: {station.session.sessions[DC].state}")


async def _measure(url: str, drops: int, warmup: int) -> Samples:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    config = isolated_config(None, url, prefix, settle_s=0.0)
    samples = Samples()
    async with running_station(config) as station:
        await wait_until(
            lambda: station.engine.entries.get(DC)["dc"]["max_current"] == FULL_A,
            15,
            "the full stack",
        )
        await charging(station, config)
        tap = CanTap(config.bus[0])
        try:
            async with mqtt_client(url) as energy_manager, mqtt_client(url) as listener:
                await listener.subscribe(config.mqtt.response_topic, qos=QOS)
                subscriber = Subscriber(listener)
                listening = asyncio.create_task(subscriber.run())
                rig = Rig(
                    station,
                    energy_manager,
                    subscriber,
                    tap,
                    LocalTopics(config.mqtt.local_prefix).topic(DC, Leaf.EXTERNAL_LIMIT),
                    config.mqtt.response_topic,
                )
                try:
                    await _staircases(rig, warmup, Samples())
                    await _staircases(rig, drops, samples)
                finally:
                    listening.cancel()
                    await asyncio.gather(listening, return_exceptions=True)
        finally:
            tap.close()
    return samples


async def _staircases(rig: Rig, drops: int, into: Samples) -> None:
    taken = 0
    while taken < drops:
        for limit in STAIRCASE_A[: drops - taken]:
            await rig.drop(limit, into)
            taken += 1
        await rig.back_to_full()


def run(quick: bool) -> dict[str, Any]:
    drops, warmup = (60, 10) if quick else (200, 20)
    with tempfile.TemporaryDirectory() as tmp, broker(Path(tmp)) as (url, broker_kind):
        samples = asyncio.run(_measure(url, drops, warmup))
    frames = Summary.of(samples.frames_all)
    first = Summary.of(samples.frames_first)
    update = Summary.of(samples.update)
    return {
        "benchmark": "external limit lowered mid-charge -> every module's lower set-output frame",
        "broker": broker_kind,
        "station": "examples/sim-station.toml, 3 infypower-reg modules simulated on the wire",
        "csbridge": {
            "limit_to_all_modules": summary_dict(frames),
            "limit_to_first_module": summary_dict(first),
        },
        "update_baseline": summary_dict(update),
        "goal_p99_ms": GOAL_P99_MS,
        "summary": [
            summary_row(
                "limit -> all modules lowered p50 ms (vs update received)",
                frames.p50_ms,
                update.p50_ms,
            ),
            summary_row(
                "limit -> all modules lowered p99 ms (vs update received)",
                frames.p99_ms,
                update.p99_ms,
                goal=f"<= {GOAL_P99_MS:g} ms",
                met=frames.p99_ms <= GOAL_P99_MS,
            ),
        ],
    }


def print_table(result: dict[str, Any]) -> None:
    bridge, update = result["csbridge"], result["update_baseline"]
    print(
        f"{result['benchmark']} ({result['broker']}, {result['station']}, {update['count']} drops)"
    )
    print_latency_table(
        [
            ("limit -> all modules", bridge["limit_to_all_modules"]),
            ("limit -> first module", bridge["limit_to_first_module"]),
            ("limit -> update received", update),
        ]
    )
