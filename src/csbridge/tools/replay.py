"""`csbridge replay`: CAN logs through the profiles and the limits engine on the log's own
clock; every message the bridge would publish, as one JSON line each."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import can
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
from csbridge.sources.can import BadLine, DeviceRouter, LogError, LogFeed, LogStats, error_classes
from csbridge.support import Counted, Counters

LONG_GAP_S = 60.0
"""Longer than any freshness deadline: a gap between frames is evaluated this far, then
skipped to the next frame."""
UNKNOWN_ID = ("-", "unknown_id")
"""The router's count of frames no profile on their bus knows."""


def _why_empty(source: str, stats: LogStats) -> str:
    bad = stats.bad_lines[source]
    why = stats.refused.get(source)
    if why is not None:
        return f"{source}: no frame could be read: {why}"
    if bad:
        return f"{source}: no frame could be read ({bad} line{'s' if bad > 1 else ''} not read)"
    return f"{source}: holds no frame"


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
    bus_map: dict[str, str] = field(default_factory=dict)
    on_bad_line: Callable[[BadLine], None] | None = None
    stdin: TextIO | None = None

    def __post_init__(self) -> None:
        self.engine = LimitsEngine(self.config, self.counters, clock=self.clock)
        self.router = DeviceRouter(self.config, counters=self.counters, clock=self.clock)
        self.codec = EnvelopeCodec(self.registry, Direction.FROM_JOSEV, 1 << 24)
        self.local = LocalTopics(self.config.mqtt.local_prefix)
        self.frames = 0
        self.stats = LogStats()
        self.unknown_ids: Counter[tuple[str, int]] = Counter()
        self.reported: dict[str, dict[str, Any]] = {}
        """Each EVSE's entry as Josev last got it."""

    def publications(self, sources: Sequence[str | Path]) -> list[Publication]:
        """Every publication of the logs, in time order. Raises LogError for a log that cannot
        be read at all, or from which no frame could be read."""
        return list(self.stream(sources))

    def stream(self, sources: Sequence[str | Path]) -> Iterator[Publication]:
        """The publications as they fall due: a live pipe's show as its frames arrive."""
        feed = LogFeed(
            sources,
            self.config.bus,
            bus_map=self.bus_map,
            on_bad_line=self.on_bad_line,
            counters=self.counters,
            stdin=self.stdin,
        )
        self.stats = feed.stats
        tick = self.config.reporting.evaluate_every_s
        next_tick: float | None = None
        for timestamp, bus, frame in feed.frames():
            self.frames += 1  # counted as read: an interrupted replay's summary counts it
            if next_tick is None:
                self.clock.now = timestamp
                self.engine.evaluate()
                yield from self._drain(everything=True)
                next_tick = timestamp + tick
            idle_ticks = 0
            while next_tick <= timestamp:
                self.clock.now = next_tick
                self.engine.evaluate()
                yield from self._drain()
                next_tick += tick
                idle_ticks += 1
                if idle_ticks * tick >= LONG_GAP_S:
                    # Nothing changes once every deadline has passed: a day between two logs
                    # costs a minute of ticks, not a million.
                    next_tick += math.floor((timestamp - next_tick) / tick) * tick
                    idle_ticks = 0
            self.clock.now = timestamp
            yield from self._frame(bus, frame, timestamp)
        empty = [source for source in feed.sources if not self.stats.frames_by_source[source]]
        if empty:
            raise LogError("; ".join(_why_empty(source, self.stats) for source in empty))

    def _frame(self, bus: str, frame: can.Message, timestamp: float) -> list[Publication]:
        if frame.is_error_frame:  # as on a live bus: counted by class, never decoded
            for name in error_classes(frame):
                self.counters.add(Counted.CAN_ERROR_FRAMES, f"{bus}/{name}")
            return []
        unknown_before = self.router.outcomes[UNKNOWN_ID]
        routed = self.router.route(bus, frame, timestamp)
        if self.router.outcomes[UNKNOWN_ID] > unknown_before:
            self.unknown_ids[(bus, frame.arbitration_id)] += 1
        if routed is None:
            return []
        self.engine.ingest(*routed)
        self._pools()
        return self._drain()

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
        for evse_id, entry in changed:
            self.reported[evse_id] = entry
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
