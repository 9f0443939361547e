"""`csbridge replay`: CAN logs through the profiles and the limits engine on the log's own
clock; every message the bridge would publish, as one JSON line each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson

from csbridge.config import Config
from csbridge.engine import LimitsEngine
from csbridge.limits import Allocation, PoolScope
from csbridge.messages import (
    CsStatusAndLimitsUpdate,
    Direction,
    EnvelopeCodec,
    Message,
    SchemaRegistry,
    checked_payload,
)
from csbridge.protocol import SCHEMA_OF, Leaf, LocalTopics
from csbridge.session import idle_allocation
from csbridge.sources.can import DeviceRouter, merged_frames
from csbridge.support import Counters


@dataclass
class LogClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Publication:
    t: float
    topic: str
    payload: dict[str, Any]


@dataclass
class ReplayRun:
    config: Config
    clock: LogClock = field(default_factory=LogClock)
    counters: Counters = field(default_factory=Counters)
    registry: SchemaRegistry = field(default_factory=SchemaRegistry)

    def __post_init__(self) -> None:
        self.engine = LimitsEngine(self.config, self.counters, clock=self.clock)
        self.router = DeviceRouter(self.config, counters=self.counters, clock=self.clock)
        self.codec = EnvelopeCodec(self.registry, Direction.FROM_JOSEV, 1 << 24)
        self.local = LocalTopics(self.config.mqtt.local_prefix)
        self.frames = 0

    def publications(self, paths: Sequence[Path]) -> list[Publication]:
        out: list[Publication] = []
        tick = self.config.reporting.evaluate_every_s
        next_tick: float | None = None
        for timestamp, bus, frame in merged_frames(paths, self.config.bus):
            if next_tick is None:
                self.clock.now = timestamp
                self.engine.evaluate()
                out += self._drain(everything=True)
                next_tick = timestamp + tick
            while next_tick <= timestamp:
                self.clock.now = next_tick
                self.engine.evaluate()
                out += self._drain()
                next_tick += tick
            self.clock.now = timestamp
            self.frames += 1
            routed = self.router.route(bus, frame, timestamp)
            if routed is not None:
                self.engine.ingest(*routed)
                self._pools()
                out += self._drain()
        return out

    def allocations(self) -> dict[str, Allocation]:
        """Each shared pool's allocation at the log's time now; no session runs in a replay,
        so it is what each of its EVSEs would get if its session started now."""
        return {
            pool.name: idle_allocation(
                pool, self.engine.pool_readings(pool.evse_ids[0]), self.clock.now
            )
            for pool in self.config.pool
        }

    def _pools(self) -> None:
        """Each pooled EVSE counts what it would get, as a station without sessions reports
        (with no session anywhere, that is the whole pool it reaches: all of its installation
        limit)."""
        allocations = self.allocations()
        for pool in self.config.pool:
            heard = bool(self.engine.pool_readings(pool.evse_ids[0]))
            for evse_id in pool.evse_ids:
                share = allocations[pool.name].would_get[evse_id]
                scope = PoolScope(
                    pool.name,
                    frozenset(share.modules),
                    starting=not heard,
                    usable=len(share.modules),
                )
                self.engine.set_pool_scope(evse_id, scope, frozenset(), None)

    def _drain(self, *, everything: bool = False) -> list[Publication]:
        now = self.clock.now
        entries = self.engine.entries
        reports = self.engine.reports
        changed = (
            [(i, entries.get(i)) for i in entries.evse_ids]
            if everything
            else entries.drain_changed()
        )
        changed_reports = (
            [(i, reports.get(i)) for i in reports.evse_ids]
            if everything
            else reports.drain_changed()
        )
        if everything:
            entries.clear_changed()
            reports.clear_changed()
        out = []
        if changed:
            update = CsStatusAndLimitsUpdate.from_json({"evses": [e for _, e in changed]})
            payload = self.codec.encode(Message(update))  # the bridge's guard: never invalid
            out.append(Publication(now, self.config.mqtt.response_topic, orjson.loads(payload)))
        for evse_id, report in changed_reports:
            payload = checked_payload(self.registry, SCHEMA_OF[Leaf.LIMITS], report)
            topic = self.local.topic(evse_id, Leaf.LIMITS)
            out.append(Publication(now, topic, orjson.loads(payload)))
        return out


def write_lines(
    publications: Sequence[Publication], out: TextIO, *, only_topic: str | None = None
) -> int:
    written = 0
    for publication in publications:
        if only_topic is not None and publication.topic != only_topic:
            continue
        line = orjson.dumps(
            {"t": publication.t, "topic": publication.topic, "payload": publication.payload}
        )
        out.write(line.decode() + "\n")
        written += 1
    return written


def summary(run: ReplayRun) -> list[str]:
    lines = [f"frames: {run.frames}"]
    for (profile, outcome), count in sorted(run.router.outcomes.items()):
        lines.append(f"  {profile}: {outcome} {count}")
    for target in run.router.targets():
        seen = "seen" if target.frames else "NOT SEEN"
        lines.append(
            f"device {target.evse_id}/{target.name}: {seen}, {target.frames} frames decoded"
        )
    for name, allocation in run.allocations().items():
        lines.append(f"pool {name} ({allocation.policy.value}), no session: each EVSE would get")
        for evse_id, share in allocation.would_get.items():
            modules = ", ".join(share.modules) or "none"
            lines.append(f"  {evse_id}: {share.max_power_w:g} W from {modules}")
    return lines
