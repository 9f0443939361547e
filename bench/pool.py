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
the decision's `decided_at` and `settled_at`: the station's own time.time(), the same machine's
clock). The safe switching sequence raises the receiver's limit only once its modules deliver,
so what csbridge controls is measured apart from the move itself:

- (a) decision -> donor's update: `decided_at` to the arrival of the update lowering the EVSE
  that gives modules away (goal p99 <= 5 ms);
- (b) modules delivering -> receiver's update: `settled_at` (the decision's last module serving
  its new EVSE) to the arrival of the update raising the EVSE that gets them (goal p99 <= 5 ms);
- (c) decision -> both updates: the later of the two, which is the move (d) plus (b); held to no
  goal of its own (the issue's 5 ms cannot include a move of the hardware);
- (d) module move: `settled_at - decided_at`, the decision until the receiving modules deliver
  (simulated hardware: the donor's ramp down, contactors, the module started).

(a) and (b) run from the station's own timestamps to the arrival at a subscriber: they include
one broker hop, measured in the same run (the bench's own publish -> its arrival through the
same broker) and printed beside them. Baselines: an ordinary change's publish -> its update's
arrival (two broker hops: the limit's way in and the update's way out), decreases and increases
apart; a decrease that follows another within the 50 ms pacing gap (a train of decreases, told
once per gap by design against update storms) apart from one that does not.
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
HOP_TOPIC = "bench/pool/hop"
HOPS_PER_DECISION = 3
STATION_TIME_WAIT_S = 2.0
"""How long a decision's station-side times may take to show in the limits reports."""
"""Broker hops measured after each decision: the bench's own publish -> its arrival."""
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
    hops: list[float] = field(default_factory=list)
    """Seconds from the bench's own publish on HOP_TOPIC to its arrival here."""

    def take(self, topic: str, payload: bytes, wall: float) -> None:
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(document, dict):
            return
        if topic == HOP_TOPIC:
            sent = document.get("at")
            if isinstance(sent, float):
                self.hops.append(wall - sent)
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
        await client.subscribe(HOP_TOPIC, qos=QOS)

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
    """(a) decided_at -> the update lowering the EVSE that gives modules away."""
    delivered: list[float] = field(default_factory=list)
    """(b) settled_at (its modules deliver) -> the update raising the EVSE that gets them."""
    receiver: list[float] = field(default_factory=list)
    """decided_at -> the update raising the EVSE that gets them."""
    both: list[float] = field(default_factory=list)
    """(c) decided_at -> the later of the two."""
    moved: list[float] = field(default_factory=list)
    """(d) decided_at -> settled_at."""
    lowered: list[float] = field(default_factory=list)
    """An ordinary decrease's publish -> its update's arrival, no decrease just before it."""
    lowered_in_train: list[float] = field(default_factory=list)
    """The same for a decrease published as soon as the one before it was told."""
    raised: list[float] = field(default_factory=list)
    """An ordinary increase's publish -> its update's arrival."""
    hops: list[float] = field(default_factory=list)
    """The bench's own publish -> its arrival through the same broker."""
    donor_station: list[float] = field(default_factory=list)
    """(a) on the station's own clock: the decision -> the donor's update taken to go out."""
    donor_told_before: int = 0
    """Donors whose lowered figure their own external limit told before the decision."""
    delivered_station: list[float] = field(default_factory=list)
    """(b) on the station's own clock: the step finding the modules delivering -> the
    receiver's update taken to go out."""
    decisions: list[int] = field(default_factory=list)


@dataclass
class Rig:
    recorder: Recorder
    publish: Callable[[str, bytes], Any]
    limit_topic: str
    evse1: str
    evse2: str
    after_decrease: bool = False
    """The latest change was an ordinary decrease (the next one is a train's second)."""

    async def hops(self, count: int) -> list[float]:
        """`count` broker hops measured: the bench's own publish -> its arrival."""
        start = len(self.recorder.hops)
        for index in range(count):
            await self.publish(HOP_TOPIC, orjson.dumps({"at": time.time()}))
            await wait_until(
                lambda n=start + index: len(self.recorder.hops) > n, SAMPLE_TIMEOUT_S, "hop"
            )
        return self.recorder.hops[start:]

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
        self.after_decrease = False
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
        moved = view.settled_at - decided_at
        into.donor += [told[e] for e in lowered]
        into.receiver += [told[e] for e in raised]
        into.delivered += [told[e] - moved for e in raised]
        into.both.append(max(told.values()))
        into.moved.append(moved)
        into.decisions.append(view.decision)
        await self._station_times(view.decision, lowered, raised, into)
        into.hops += await self.hops(HOPS_PER_DECISION)

    def _told(self, evse_id: str, decision: int, after: str) -> float | None:
        """The station's own time of the decision's update of `evse_id` (its report's
        `pool.told`), once its report has it."""
        block = self.recorder.reports.get(evse_id, {}).get("pool") or {}
        told = block.get("told")
        if not isinstance(told, dict) or told.get("decision") != decision:
            return None
        if told.get("after") != after:
            return None
        seconds = told.get("s")
        return float(seconds) if isinstance(seconds, int | float) else None

    async def _station_times(
        self, decision: int, lowered: list[str], raised: list[str], into: Samples
    ) -> None:
        """(a) and (b) from the station's own clock. A donor whose lowered figure its external
        limit told before the decision has none: counted apart."""
        wanted = [(e, "decision") for e in lowered] + [(e, "delivering") for e in raised]
        with contextlib.suppress(TimeoutError):
            await wait_until(
                lambda: all(self._told(e, decision, a) is not None for e, a in wanted),
                STATION_TIME_WAIT_S,
                "the station's own times",
            )
        for evse_id, after in wanted:
            seconds = self._told(evse_id, decision, after)
            if seconds is None and after == "decision":
                into.donor_told_before += 1
            elif seconds is None:
                into.delivered_station.append(math.nan)
            elif after == "decision":
                into.donor_station.append(seconds)
            else:
                into.delivered_station.append(seconds)

    async def ordinary(self, limit_w: float | None, into: Samples | None) -> None:
        """A limit that moves no module: its publish -> EVSE1's update with it."""
        want = limit_w or HALF_W
        before = self.recorder.told_w.get(self.evse1)
        start, published = await self._limit(limit_w)

        def told() -> bool:
            return abs(self.recorder.told_w.get(self.evse1, 0.0) - want) <= POWER_TOLERANCE_W

        await wait_until(told, SAMPLE_TIMEOUT_S, f"limit {limit_w} told")
        decrease = want < (before or 0.0)
        in_train, self.after_decrease = self.after_decrease, decrease
        if into is not None:
            arrived = self.recorder.told_at(start, self.evse1, before, want)
            if not decrease:
                into.raised.append(arrived - published)
            elif in_train:
                into.lowered_in_train.append(arrived - published)
            else:
                into.lowered.append(arrived - published)


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


def _goal(summary: Summary, missing: int = 0) -> bool:
    return summary.p99_ms <= GOAL_P99_MS and missing == 0


def run(quick: bool) -> dict[str, Any]:
    rounds, warmup = (10, 1) if quick else (50, 2)
    with tempfile.TemporaryDirectory() as tmp, broker(Path(tmp)) as (url, broker_kind):
        samples = asyncio.run(_measure(url, rounds, warmup))
    both, donor, moved = _summary(samples.both), _summary(samples.donor), _summary(samples.moved)
    delivered, receiver = _summary(samples.delivered), _summary(samples.receiver)
    lowered, raised = _summary(samples.lowered), _summary(samples.raised)
    in_train = _summary(samples.lowered_in_train)
    hop = _summary(samples.hops)
    donor_own, delivered_own = _summary(samples.donor_station), _summary(samples.delivered_station)
    own_missing = sum(1 for s in samples.delivered_station if math.isnan(s))
    missing = sum(1 for s in samples.both if math.isnan(s))
    goal = f"<= {GOAL_P99_MS:g} ms"
    return {
        "benchmark": "shared pool: allocation decision -> each EVSE's update; a module move",
        "broker": broker_kind,
        "station": f"examples/{EXAMPLE}: 2 DC EVSEs, 6 simulated 30 kW modules",
        "note": (
            "(a), (b) held to the goal: the station's own clock, from the decision (a) or the "
            "step that found the modules delivering (b) to the update taken to go to Josev "
            "(its report's pool.told). Beside them, the same at a subscriber on the same "
            "machine: from decided_at / settled_at to the update's arrival, one broker hop "
            "included (measured in this run). Baselines: publish -> arrival, two hops"
        ),
        "csbridge": {
            "a_decision_to_donor_update_station": summary_dict(donor_own),
            "a_donors_told_before_the_decision": samples.donor_told_before,
            "b_delivering_to_receiver_update_station": summary_dict(delivered_own),
            "b_station_times_not_found": own_missing,
            "a_decision_to_donor_update": summary_dict(donor),
            "b_delivering_to_receiver_update": summary_dict(delivered),
            "c_decision_to_both_updates": summary_dict(both),
            "d_module_move": summary_dict(moved),
            "decision_to_receiver_update": summary_dict(receiver),
            "broker_hop": summary_dict(hop),
            "broker_hops_measured": len(samples.hops),
            "updates_not_found": missing,
            "decisions": len(samples.decisions),
        },
        "baseline_ordinary_decrease": summary_dict(lowered),
        "baseline_ordinary_decrease_in_a_train": summary_dict(in_train),
        "baseline_ordinary_increase": summary_dict(raised),
        "goal_p99_ms": GOAL_P99_MS,
        "goals": {
            "a_decision_to_donor_update_station": goal,
            "b_delivering_to_receiver_update_station": goal,
            "a_decision_to_donor_update": "none (the station's figure plus a broker hop)",
            "b_delivering_to_receiver_update": "none (the station's figure plus a broker hop)",
            "c_decision_to_both_updates": "none of its own: (d) + (b)",
            "d_module_move": "none (recorded)",
        },
        "summary": [
            summary_row(
                "(a) decision -> donor's update taken, station clock, p99 ms",
                donor_own.p99_ms,
                None,
                goal=goal,
                met=_goal(donor_own),
            ),
            summary_row(
                "(b) modules delivering -> receiver's update taken, station clock, p99 ms",
                delivered_own.p99_ms,
                None,
                goal=goal,
                met=_goal(delivered_own, own_missing),
            ),
            summary_row(
                "(a) at a subscriber (+1 hop) p99 ms (vs ordinary decrease)",
                donor.p99_ms,
                lowered.p99_ms,
            ),
            summary_row("(b) at a subscriber (+1 hop) p99 ms", delivered.p99_ms, None),
            summary_row(
                "(c) decision -> both updates p50 ms (= (d) + (b); vs ordinary increase)",
                both.p50_ms,
                raised.p50_ms,
            ),
            summary_row("(c) decision -> both updates p99 ms", both.p99_ms, raised.p99_ms),
            summary_row("(d) module move, decision -> delivering p50 ms", moved.p50_ms, None),
            summary_row("(d) module move, decision -> delivering p99 ms", moved.p99_ms, None),
            summary_row("broker hop (included in (a), (b)) p99 ms", hop.p99_ms, None),
            summary_row(
                "ordinary decrease -> update p50 ms (in a train: baseline)",
                lowered.p50_ms,
                in_train.p50_ms,
            ),
        ],
    }


def print_table(result: dict[str, Any]) -> None:
    bridge = result["csbridge"]
    goals = result["goals"]
    print(f"{result['benchmark']} ({result['broker']}, {result['station']})")
    print(f"  {bridge['decisions']} decisions, {bridge['broker_hops_measured']} broker hops")
    told_before = bridge["a_donors_told_before_the_decision"]
    print(
        f"  {told_before} donors told their lowered figure by their own limit, before the decision"
    )
    print(f"  {result['note']}")
    for key, goal in goals.items():
        print(f"  {key}: goal {goal}")
    print_latency_table(
        [
            ("(a) station: -> donor upd.", bridge["a_decision_to_donor_update_station"]),
            ("(b) station: -> recv upd.", bridge["b_delivering_to_receiver_update_station"]),
            ("(a) decision -> donor upd.", bridge["a_decision_to_donor_update"]),
            ("(b) delivering -> recv upd.", bridge["b_delivering_to_receiver_update"]),
            ("(c) decision -> both upd.", bridge["c_decision_to_both_updates"]),
            ("(d) decision -> moved", bridge["d_module_move"]),
            ("decision -> receiver upd.", bridge["decision_to_receiver_update"]),
            ("broker hop", bridge["broker_hop"]),
            ("ordinary decrease -> upd.", result["baseline_ordinary_decrease"]),
            ("  2nd of a train -> upd.", result["baseline_ordinary_decrease_in_a_train"]),
            ("ordinary increase -> upd.", result["baseline_ordinary_increase"]),
        ]
    )
    if bridge["updates_not_found"]:
        print(f"  {bridge['updates_not_found']} decisions without an update found for an EVSE")
