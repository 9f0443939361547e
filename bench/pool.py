"""A shared module pool's allocation decisions (issue 18, item 7): `csbridge run --config
examples/shared-pool.toml` (a process of its own: two DC EVSEs, six simulated 30 kW modules in a
full matrix, equal_share) on a mosquitto of the benchmark's own.

Both EVSEs are driven into charging sessions as the shared-pool scenario drives them (each EV
plugs in, is authorized, cable-checked, precharged, then asks for full power every 250 ms from
then on), so the pool splits 90 kW / 90 kW. Then, in interleaved rounds:

- decisions: an external limit of 30 kW on EVSE1 (csbridge/<evse_id>/external_limit), then its
  withdrawal. Each makes the allocation move two modules (EVSE1 -> EVSE2, and back).
- baseline: ordinary limits changes on the pool that move no module: EVSE1's limit at 85 kW,
  75 kW (two decreases), then withdrawn (an increase back to 90 kW); EVSE1 keeps its three
  modules throughout.

A subscriber in this process records, with time.time() as each message arrives, every
cs_status_and_limits update (Josev's topic) and every limits report (whose `pool` block gives
the decision's `decided_at` and `settled_at`, the station's time.time(); the same machine's
clock). Measured per decision:

- decision -> each EVSE's update: from `decided_at` to the arrival of the update that changed
  that EVSE's max_power to its new figure (the donor's lowered one, the receiver's raised one).
  That includes the broker hop to a subscriber, so it is an upper bound of the station's own
  time; an update sent before the decision was stamped counts as negative. "Both" is the
  later of the two EVSEs (goal p99 <= 5 ms).
- module move: `settled_at - decided_at`, from the decision until the receiving modules
  deliver (simulated hardware: the donor's ramp down, contactors, the module started).

Baselines: an ordinary change's publish -> its update's arrival (one broker hop more than the
decision's figure: the limit's way in), decreases and increases apart: the station reports a
decrease at once and holds an increase back until it has settled ([reporting] settle_s, 1 s by
default), and a decision's later update is the receiver's increase.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    bridge_args,
    broker,
    mqtt_client,
    payload_bytes,
    print_latency_table,
    python_process,
    summary_dict,
    summary_row,
)
from bench.stats import Summary
from csbridge.config import Config, load_config
from csbridge.mqtt.link import QOS
from csbridge.protocol import Leaf, LocalTopics
from csbridge.support.resources import example_config
from csbridge.testing.harness import wait_until
from csbridge.tools.emulator import JosevEmulator
from csbridge.tools.scenarios.common import SimulatedEvse
from csbridge.tools.scenarios.ev_loop import EvLoop
from csbridge.tools.scenarios.pool_view import (
    POWER_TOLERANCE_W,
    PoolView,
    TimedEntries,
    offered_w,
    told_at,
)

EXAMPLE = "shared-pool.toml"
GOAL_P99_MS = 5.0
MODULE_W = 30_000.0
HALF_W = 3 * MODULE_W
DECISION_LIMITS_W: tuple[float | None, ...] = (MODULE_W, None)
"""EVSE1's limit in one round's decisions: 30 kW (it gives two modules to EVSE2), withdrawn."""
BASELINE_LIMITS_W: tuple[float | None, ...] = (85_000.0, 75_000.0, None)
"""EVSE1's limit in one round's ordinary changes: each keeps its three modules."""
SAMPLE_TIMEOUT_S = 15.0
START_TIMEOUT_S = 30.0
EV_RATED = {"max_voltage": 500.0, "max_charge_current": 500.0, "max_charge_power": 350_000.0}


@dataclass(frozen=True, slots=True)
class Arrival:
    wall: float
    """time.time() on arrival."""
    topic: str
    document: dict[str, Any]


@dataclass
class Recorder:
    """Everything on Josev's response topic and the limits reports, stamped on arrival."""

    response_topic: str
    arrivals: list[Arrival] = field(default_factory=list)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The latest limits report per EVSE."""
    told_w: dict[str, float] = field(default_factory=dict)
    """The latest max_power Josev was told per EVSE."""
    limits_topics: tuple[str, str] = ("", "/limits")

    def take(self, topic: str, payload: bytes, wall: float) -> None:
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(document, dict):
            return
        head, tail = self.limits_topics
        if topic.startswith(head) and topic.endswith(tail):
            self.reports[topic.removeprefix(head).removesuffix(tail)] = document
        elif topic == self.response_topic and document.get("name") == "cs_status_and_limits":
            for entry in document["data"]["evses"]:
                told = offered_w(entry)
                if told is not None:
                    self.told_w[entry["evse_id"]] = told
        else:
            return
        self.arrivals.append(Arrival(wall, topic, document))

    def pool(self, evse_id: str) -> PoolView | None:
        return PoolView.of(self.reports.get(evse_id, {}))

    def updates(self, start: int) -> TimedEntries:
        """The cs_status_and_limits updates from index `start` of `arrivals` on."""
        return [
            (arrival.wall, arrival.document["data"]["evses"])
            for arrival in self.arrivals[start:]
            if arrival.topic == self.response_topic
        ]

    def told_at(self, start: int, evse_id: str, before: float | None, final: float) -> float:
        """When the update that told `evse_id`'s `final` power arrived (time.time()); NaN if
        none did (it was `final` all along)."""
        at = told_at(self.updates(start), evse_id, before, final)
        return math.nan if at is None else at


@contextlib.asynccontextmanager
async def recording(url: str, config: Config) -> AsyncIterator[Recorder]:
    prefix = config.mqtt.local_prefix
    recorder = Recorder(config.mqtt.response_topic, limits_topics=(f"{prefix}/", "/limits"))
    async with mqtt_client(url) as client:
        await client.subscribe(config.mqtt.response_topic, qos=QOS)
        await client.subscribe(f"{prefix}/+/limits", qos=QOS)

        async def read() -> None:
            async for message in client.messages:
                recorder.take(message.topic.value, payload_bytes(message), time.time())

        reader = asyncio.create_task(read(), name="pool-bench-recorder")
        try:
            yield recorder
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


@dataclass(slots=True)
class Samples:
    donor: list[float] = field(default_factory=list)
    """decided_at -> the update lowering the EVSE that gives modules away."""
    receiver: list[float] = field(default_factory=list)
    """decided_at -> the update raising the EVSE that gets them."""
    both: list[float] = field(default_factory=list)
    """decided_at -> the later of the two."""
    moved: list[float] = field(default_factory=list)
    """decided_at -> settled_at."""
    lowered: list[float] = field(default_factory=list)
    """An ordinary decrease's publish -> its update's arrival."""
    raised: list[float] = field(default_factory=list)
    """An ordinary increase's publish -> its update's arrival."""
    decisions: list[int] = field(default_factory=list)


@dataclass
class Rig:
    recorder: Recorder
    publish: Callable[[str, bytes], Any]
    limit_topic: str
    evse1: str
    evse2: str

    async def _limit(self, limit_w: float | None) -> tuple[int, float]:
        """Publish EVSE1's limit; (the recorder's index, time.time()) just before."""
        start, published = len(self.recorder.arrivals), time.time()
        payload = orjson.dumps({} if limit_w is None else {"max_power": limit_w})
        await self.publish(self.limit_topic, payload)
        return start, published

    def _decision(self) -> int:
        views = [self.recorder.pool(e) for e in (self.evse1, self.evse2)]
        return max((view.decision for view in views if view is not None), default=0)

    async def decide(self, limit_w: float | None, into: Samples | None) -> None:
        """A limit that moves modules; once both EVSEs' reports name the settled decision and
        Josev was told the new split, its times."""
        want = {self.evse1: limit_w or HALF_W, self.evse2: 2 * HALF_W - (limit_w or HALF_W)}
        before = dict(self.recorder.told_w)
        decision = self._decision()
        start, _ = await self._limit(limit_w)

        def settled() -> PoolView | None:
            """The decision both EVSEs' reports name, once it has settled and Josev was told
            the new split; None until then."""
            views = [self.recorder.pool(e) for e in (self.evse1, self.evse2)]
            found = [v for v in views if v is not None and v.decision > decision and v.settled]
            if len(found) < len(views) or len({v.decision for v in found}) > 1:
                return None
            told = self.recorder.told_w
            if any(abs(told.get(e, 0.0) - w) > POWER_TOLERANCE_W for e, w in want.items()):
                return None
            return found[0]

        await wait_until(
            lambda: settled() is not None, SAMPLE_TIMEOUT_S, f"limit {limit_w} settled"
        )
        view = settled()
        if into is None or view is None or view.settled_at is None or view.decided_at is None:
            return
        decided_at = view.decided_at
        told = {
            evse_id: self.recorder.told_at(start, evse_id, before.get(evse_id), power) - decided_at
            for evse_id, power in want.items()
        }
        lowered = [e for e in want if want[e] < before.get(e, 0.0)]
        raised = [e for e in want if want[e] > before.get(e, 0.0)]
        into.donor += [told[e] for e in lowered]
        into.receiver += [told[e] for e in raised]
        into.both.append(max(told.values()))
        into.moved.append(view.settled_at - decided_at)
        into.decisions.append(view.decision)

    async def ordinary(self, limit_w: float | None, into: Samples | None) -> None:
        """A limit that moves no module: its publish -> EVSE1's update with it."""
        want = limit_w or HALF_W
        before = self.recorder.told_w.get(self.evse1)
        start, published = await self._limit(limit_w)

        def told() -> bool:
            return abs(self.recorder.told_w.get(self.evse1, 0.0) - want) <= POWER_TOLERANCE_W

        await wait_until(told, SAMPLE_TIMEOUT_S, f"limit {limit_w} told")
        if into is not None:
            arrived = self.recorder.told_at(start, self.evse1, before, want)
            kind = into.lowered if want < (before or 0.0) else into.raised
            kind.append(arrived - published)


async def _charging(josev: JosevEmulator, config: Config, rig: Rig) -> list[EvLoop]:
    """Both EVs charging at full demand, the pool split in halves."""
    loops = []
    for evse_id in (rig.evse1, rig.evse2):
        evse = SimulatedEvse(josev, config.mqtt.local_prefix, evse_id)
        await evse.start_dc_session()
        loop = EvLoop(evse)
        loop.start()
        await loop.ask(1000.0, EV_RATED)
        loops.append(loop)

    def halves() -> bool:
        return all(
            abs(rig.recorder.told_w.get(e, 0.0) - HALF_W) <= POWER_TOLERANCE_W
            for e in (rig.evse1, rig.evse2)
        )

    await wait_until(halves, START_TIMEOUT_S, "the pool split in halves")
    return loops


async def _round(rig: Rig, into: Samples | None) -> None:
    for limit in DECISION_LIMITS_W:
        await rig.decide(limit, into)
    for limit in BASELINE_LIMITS_W:
        await rig.ordinary(limit, into)


async def _measure(url: str, rounds: int, warmup: int) -> Samples:
    path = example_config(EXAMPLE)
    config = load_config(path)
    samples = Samples()
    with python_process(*bridge_args(path, url)):
        async with (
            recording(url, config) as recorder,
            mqtt_client(url) as manager,
            JosevEmulator.connect(
                url,
                request_topic=config.mqtt.request_topic,
                response_topic=config.mqtt.response_topic,
            ) as josev,
        ):

            def pooled() -> list[str]:
                return sorted(e for e in recorder.reports if recorder.pool(e) is not None)

            await wait_until(lambda: len(pooled()) >= 2, START_TIMEOUT_S, "two pooled EVSEs")
            await josev.boot()
            evse1, evse2 = pooled()[:2]

            async def publish(topic: str, payload: bytes) -> None:
                await manager.publish(topic, payload, qos=QOS)

            rig = Rig(
                recorder,
                publish,
                LocalTopics(config.mqtt.local_prefix).topic(evse1, Leaf.EXTERNAL_LIMIT),
                evse1,
                evse2,
            )
            loops = await _charging(josev, config, rig)
            try:
                for _ in range(warmup):
                    await _round(rig, None)
                for _ in range(rounds):
                    await _round(rig, samples)
                for loop in loops:
                    loop.check()
            finally:
                for loop in loops:
                    await loop.stop()
                for evse_id in (evse1, evse2):
                    with contextlib.suppress(Exception):
                        await josev.request("stop_charging", {"evse_id": evse_id}, timeout=5)
    return samples


def _summary(samples: list[float]) -> Summary:
    usable = [s for s in samples if not math.isnan(s)]  # NaN: an update never found
    return Summary.of(usable) if usable else Summary(0, *(float("nan"),) * 4)


def run(quick: bool) -> dict[str, Any]:
    rounds, warmup = (10, 1) if quick else (50, 2)
    with tempfile.TemporaryDirectory() as tmp, broker(Path(tmp)) as (url, broker_kind):
        samples = asyncio.run(_measure(url, rounds, warmup))
    both, donor, moved = _summary(samples.both), _summary(samples.donor), _summary(samples.moved)
    lowered, raised = _summary(samples.lowered), _summary(samples.raised)
    missing = sum(1 for s in samples.both if math.isnan(s))
    return {
        "benchmark": "shared pool: allocation decision -> both EVSEs' updates; a module move",
        "broker": broker_kind,
        "station": f"examples/{EXAMPLE}: 2 DC EVSEs, 6 simulated 30 kW modules",
        "note": (
            "decision -> update is decided_at (the station's clock) to the arrival at a "
            "subscriber on the same machine: it includes the broker hop, an upper bound"
        ),
        "csbridge": {
            "decision_to_both_updates": summary_dict(both),
            "decision_to_donor_update": summary_dict(donor),
            "decision_to_receiver_update": summary_dict(_summary(samples.receiver)),
            "module_move": summary_dict(moved),
            "updates_not_found": missing,
            "decisions": len(samples.decisions),
        },
        "baseline_ordinary_decrease": summary_dict(lowered),
        "baseline_ordinary_increase": summary_dict(raised),
        "goal_p99_ms": GOAL_P99_MS,
        "summary": [
            summary_row(
                "decision -> both updates received p50 ms (vs ordinary increase)",
                both.p50_ms,
                raised.p50_ms,
            ),
            summary_row(
                "decision -> both updates received p99 ms (vs ordinary increase)",
                both.p99_ms,
                raised.p99_ms,
                goal=f"<= {GOAL_P99_MS:g} ms",
                met=both.p99_ms <= GOAL_P99_MS and missing == 0,
            ),
            summary_row(
                "decision -> donor's lowered update p99 ms (vs ordinary decrease)",
                donor.p99_ms,
                lowered.p99_ms,
            ),
            summary_row("module move, decision -> delivering p50 ms", moved.p50_ms, None),
            summary_row("module move, decision -> delivering p99 ms", moved.p99_ms, None),
        ],
    }


def print_table(result: dict[str, Any]) -> None:
    bridge = result["csbridge"]
    print(f"{result['benchmark']} ({result['broker']}, {result['station']})")
    print(f"  {bridge['decisions']} decisions")
    print(f"  {result['note']}")
    print_latency_table(
        [
            ("decision -> both updates", bridge["decision_to_both_updates"]),
            ("decision -> donor update", bridge["decision_to_donor_update"]),
            ("decision -> receiver upd.", bridge["decision_to_receiver_update"]),
            ("decision -> modules moved", bridge["module_move"]),
            ("ordinary decrease -> upd.", result["baseline_ordinary_decrease"]),
            ("ordinary increase -> upd.", result["baseline_ordinary_increase"]),
        ]
    )
    if bridge["updates_not_found"]:
        print(f"  {bridge['updates_not_found']} decisions without an update found for an EVSE")
