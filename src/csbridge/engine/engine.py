"""The live limits engine: readings in, one reported snapshot per EVSE out, with its binding
sources.

Each reading is stored as its source's latest and its EVSE is evaluated at once (a hardware
change reaches Josev without waiting for a tick). A CAN bus that reads a burst of frames in one
callback stores each reading and evaluates each EVSE they touched once, at the end (see
`Ingest`). A periodic tick catches what silence changes (freshness deadlines, expiring external
limits, settling increases).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from csbridge.config import Config, EvseConfig, ReportingConfig
from csbridge.engine.latest import AsDocuments, Documents, Entry, Latest, LatestByEvse
from csbridge.engine.pacing import PacedUpdates
from csbridge.engine.payloads import wire_entry
from csbridge.engine.report import LimitsReport, report_document, source_report
from csbridge.engine.rounding import RoundedSnapshot, rounded
from csbridge.limits import (
    Composition,
    EvseComposer,
    EvseInputs,
    EvseSnapshot,
    GateSettings,
    PoolScope,
    UpdateGate,
)
from csbridge.messages import EvseStatusAndLimits
from csbridge.sources import (
    BoardReading,
    ExternalLimit,
    ImdReading,
    MeterSample,
    ModuleReading,
    OperatorCommand,
    SessionCondition,
    SourceReading,
    sanitized,
)
from csbridge.support import Clock, Counted, Counters

log = logging.getLogger("csbridge.engine")


def gate_settings(reporting: ReportingConfig) -> GateSettings:
    return GateSettings(
        settle_s=reporting.settle_s,
        hysteresis_fraction=reporting.hysteresis_fraction,
        hysteresis_current=reporting.hysteresis_current_a,
        hysteresis_power=reporting.hysteresis_power_w,
        hysteresis_voltage=reporting.hysteresis_voltage_v,
        min_interval_s=1.0 / reporting.max_updates_per_s,
        present_voltage_deadband=reporting.present_voltage_deadband_v,
        present_current_deadband=reporting.present_current_deadband_a,
    )


@dataclass(slots=True)
class _Evse:
    config: EvseConfig
    composer: EvseComposer
    gate: UpdateGate
    modules: dict[str, ModuleReading] = field(default_factory=dict)
    imd: ImdReading | None = None
    board: BoardReading | None = None
    external: ExternalLimit | None = None
    operator: OperatorCommand | None = None
    session: SessionCondition | None = None
    meter: MeterSample | None = None
    composition: Composition | None = None
    report_at: float = float("-inf")
    report_stale: bool = False
    """A reading the report shows but the limits do not (the session block) changed."""
    last_rounded: tuple[EvseSnapshot, RoundedSnapshot] | None = None
    """The last composed snapshot and its rounding: a tick usually composes the same again."""
    pool: PoolScope | None = None
    """A pooled EVSE's view of its pool; its `modules` are then the pool's (shared)."""
    connected: frozenset[str] = frozenset()
    """A pooled EVSE's modules on its bus now: its `inputs().modules`, whose readings give its
    present voltage and current (its power path drives only those serving it)."""
    pool_block: Mapping[str, Any] | None = None
    """A pooled EVSE's `pool` block of its limits report."""
    known_good: bool = False
    """The next evaluation's increases are the pool's confirmed moves: reported at once."""

    def inputs(self) -> EvseInputs:
        modules: Mapping[str, ModuleReading] = self.modules
        pool = None
        if self.pool is not None:
            modules = {name: r for name, r in self.modules.items() if name in self.connected}
            pool = replace(self.pool, readings=self.modules)
        return EvseInputs(
            modules,
            self.imd,
            self.board,
            self.external,
            self.operator,
            self.session,
            self.meter,
            pool,
        )

    def rounded(self, composed: EvseSnapshot) -> RoundedSnapshot:
        """`composed` rounded; equal snapshots round alike, so an equal one is not redone."""
        last = self.last_rounded
        if last is not None and last[0] == composed:
            return last[1]
        result = rounded(composed)
        self.last_rounded = (composed, result)
        return result

    def store(self, reading: SourceReading) -> bool:
        if isinstance(reading, ModuleReading):
            if reading.name not in self.composer.module_names:
                return False
            self.modules[reading.name] = reading
        elif isinstance(reading, ImdReading):
            self.imd = reading
        elif isinstance(reading, BoardReading):
            self.board = reading
        elif isinstance(reading, ExternalLimit):
            self.external = reading
        elif isinstance(reading, SessionCondition):
            previous = self.session
            self.report_stale |= previous is None or previous.report != reading.report
            self.session = reading
        elif isinstance(reading, MeterSample):
            if self.config.meter is None:
                return False
            self.meter = reading
        elif self.operator is None or not self.operator.station_stopping:
            # Once the station stops, no operator command brings the EVSE back.
            self.operator = reading
        return True


@dataclass(frozen=True, slots=True)
class Ingest:
    """The engine's door for readings, which the station hands every source as its sink.

    Called, it stores one reading and evaluates its EVSE now. A bus that drains a burst of
    frames stores each reading (`store`) and then evaluates each EVSE they touched once
    (`evaluate`)."""

    store: Callable[[str, SourceReading], bool]
    """Keep a reading as its source's latest, not evaluated yet; False (counted) if no such EVSE
    or source is configured."""
    evaluate: Callable[[Iterable[str]], None]
    """Evaluate these EVSEs now."""

    def __call__(self, evse_id: str, reading: SourceReading) -> bool:
        """Take one reading and evaluate its EVSE now; False (counted) if no such EVSE or
        source is configured."""
        if not self.store(evse_id, reading):
            return False
        self.evaluate((evse_id,))
        return True


class LimitsEngine:
    """Owns the latest readings of every source and what each EVSE reports."""

    def __init__(
        self, config: Config, counters: Counters | None = None, clock: Clock = time.monotonic
    ) -> None:
        self.clock = clock
        self.counters = counters or Counters()
        self._report_every_s = config.reporting.limits_report_every_s
        self._tick_s = config.reporting.evaluate_every_s
        settings = gate_settings(config.reporting)
        self.observers: list[Callable[[str, EvseInputs, Composition | None], None]] = []
        """Called after every evaluation (the session watches CP, contactors and faults)."""
        self.ingest = Ingest(self._store, self.evaluate)
        self._reports_due: set[str] = set()
        self._josev: Mapping[str, Any] | None = None
        self._reports_scheduled = False
        pools = {evse_id: pool for pool in config.pool for evse_id in pool.evse_ids}
        shared: dict[str, dict[str, ModuleReading]] = {pool.name: {} for pool in config.pool}
        self._evses = {}
        for evse in config.evse:
            pool = pools.get(evse.evse_id)
            runtime = _Evse(
                evse,
                EvseComposer(evse, pool.module if pool is not None else ()),
                UpdateGate(settings),
            )
            if pool is not None:
                runtime.modules = shared[pool.name]  # one reading of a pool module for all
                runtime.pool = PoolScope(pool.name)
            self._evses[evse.evse_id] = runtime
        self._pool_siblings = {
            evse_id: tuple(e for e in pool.evse_ids if e != evse_id and e in self._evses)
            for evse_id, pool in pools.items()
        }
        self._pool_touched: set[str] = set()
        """Pooled EVSEs whose pool's module readings changed since they were last evaluated."""
        now = clock()
        self.snapshots = LatestByEvse(
            (evse_id, self._reported(runtime, now)) for evse_id, runtime in self._evses.items()
        )
        """What Josev is told about each EVSE, typed, as soon as it changes: the power path
        clamps to it at once, and its change marks drive the (paced) updates."""
        self._wire = AsDocuments(self.snapshots, wire_entry)
        self.wire_entries: Latest[EvseStatusAndLimits] = self._wire
        """`snapshots` as the entries of cs_status_and_limits, each made once, when first read:
        the bridge builds its response and updates from these."""
        self.updates: PacedUpdates[RoundedSnapshot, EvseStatusAndLimits] = PacedUpdates(
            self._wire, clock
        )
        """The entries due to go to Josev as updates: each EVSE at most once per 50 ms, a train
        of changes as one update at its latest value. Only the wire is paced: `snapshots` (which
        the power path follows) change at once."""
        self._entries = AsDocuments(self.snapshots, self._entry_document)
        self.entries: Documents = self._entries
        """The same entries as JSON documents (a setpoint is clamped to them, replay prints
        them), each made once from its message entry."""
        self._limits_reports = LatestByEvse(
            (evse_id, self._report(runtime, now)) for evse_id, runtime in self._evses.items()
        )
        self._reports = AsDocuments(self._limits_reports, self._report_document)

    def _entry_document(self, snapshot: RoundedSnapshot) -> Entry:
        return self._wire.document_of(snapshot.evse_id, snapshot).to_json()

    @property
    def limits_reports(self) -> LatestByEvse[LimitsReport]:
        """Each EVSE's limits report, typed; reading it builds any that are due first."""
        if self._reports_due:
            self.flush_reports()
        return self._limits_reports

    @property
    def reports(self) -> AsDocuments[LimitsReport, Entry]:
        """Each EVSE's limits report as its topic carries it; reading it builds any that are
        due first."""
        if self._reports_due:
            self.flush_reports()
        return self._reports

    @property
    def evse_ids(self) -> tuple[str, ...]:
        return tuple(self._evses)

    def _store(self, evse_id: str, reading: SourceReading) -> bool:
        runtime = self._evses.get(evse_id)
        if runtime is None:
            self.counters.add(Counted.READING_IGNORED, "unknown_evse")
            return False
        cleaned, changed = sanitized(reading)
        if changed:
            self.counters.add(Counted.READING_SANITIZED, type(reading).__name__)
        if not runtime.store(cleaned):
            self.counters.add(Counted.READING_IGNORED, "unknown_source")
            return False
        if isinstance(cleaned, ModuleReading) and runtime.pool is not None:
            self._pool_touched.update(self._pool_siblings.get(evse_id, ()))
        self.counters.add(Counted.READING_INGESTED, type(reading).__name__)
        return True

    def stop_serving(self, why: str) -> None:
        """Every EVSE to evse_shutdown (an emergency stays visible) with its maxima at 0."""
        now = self.clock()
        for evse_id in self._evses:
            self.ingest(
                evse_id, OperatorCommand(at=now, enabled=False, reason=why, station_stopping=True)
            )

    def evaluate(self, evse_ids: Iterable[str] | None = None) -> None:
        """Evaluate these EVSEs (by default every one) now, with the latest of every source."""
        now = self.clock()
        targets = list(self._evses if evse_ids is None else evse_ids)
        if self._pool_touched:
            # A pool module's reading counts for each EVSE of its pool.
            targets += [e for e in self._pool_touched if e not in targets]
            self._pool_touched.clear()
        for evse_id in targets:
            self._evaluate(evse_id, self._evses[evse_id], now)

    async def run(self) -> None:
        """Re-evaluate on a tick so silence, expiry and settling take effect; until cancelled."""
        while True:
            await asyncio.sleep(self._tick_s)
            self.evaluate()

    def inputs(self, evse_id: str) -> EvseInputs:
        """The latest reading of every source of one EVSE."""
        return self._evses[evse_id].inputs()

    def pool_readings(self, evse_id: str) -> Mapping[str, ModuleReading]:
        """The latest reading of every module of the pool that feeds the EVSE (none: not
        pooled)."""
        runtime = self._evses[evse_id]
        return dict(runtime.modules) if runtime.pool is not None else {}

    def set_pool_scope(
        self,
        evse_id: str,
        scope: PoolScope,
        connected: frozenset[str],
        block: Mapping[str, Any] | None,
        *,
        urgent: bool = False,
    ) -> None:
        """A pooled EVSE's view of its pool now, and its report's `pool` block; evaluated at
        once when its limits may change. `urgent` (a lowered share before a module moves, or
        a raised one once the moved modules deliver: the pool's own confirmed change, not a
        fluctuating reading): its increase skips the settle time, and its update goes to Josev
        at once, not after the update gap."""
        runtime = self._evses[evse_id]
        limits_change = runtime.pool != scope or runtime.connected != connected
        runtime.pool, runtime.connected = scope, connected
        if block != runtime.pool_block:
            runtime.pool_block = block
            runtime.report_stale = True
        if urgent:
            self.updates.release(evse_id)
        if limits_change or runtime.report_stale:
            runtime.known_good = urgent
            try:
                self.evaluate((evse_id,))
            finally:
                runtime.known_good = False

    def composition(self, evse_id: str) -> Composition | None:
        return self._evses[evse_id].composition

    def reported_binding(self, evse_id: str) -> dict[str, str]:
        reported = self._evses[evse_id].gate.reported
        return {} if reported is None else {k: v.value for k, v in reported.binding.items()}

    @staticmethod
    def _reported(runtime: _Evse, now: float) -> RoundedSnapshot:
        runtime.composition = runtime.composer.compose(runtime.inputs(), now)
        composition = runtime.composition
        runtime.gate.offer(
            runtime.rounded(composition.snapshot),
            composition.binding,
            now,
            known_good=runtime.known_good,
        )
        assert runtime.gate.reported is not None  # the first offer is always accepted
        # The gate only ever reports numbers of the rounded snapshots it was offered.
        return RoundedSnapshot(runtime.gate.reported.limits)

    def _evaluate(self, evse_id: str, runtime: _Evse, now: float) -> None:
        before = runtime.composition
        try:
            snapshot = self._reported(runtime, now)
        except ValueError as error:  # a number that cannot be reported: keep what was sent
            self.counters.add(Counted.EVALUATION_FAILED, evse_id)
            log.error("event=evaluation_failed evse=%s why=%s", evse_id, error)
            return
        self._note_disagreement(evse_id, before, runtime.composition)
        changed = self.snapshots.set(evse_id, snapshot)
        if changed and runtime.gate.last_tightened:
            self.updates.urgent(evse_id)  # a decrease never waits behind a routine update
        for observer in self.observers:
            observer(evse_id, runtime.inputs(), runtime.composition)
        # The report follows every change of what Josev is told at once; source values and
        # ages refresh on a slower beat, which is all a person watching needs.
        if changed or runtime.report_stale or now - runtime.report_at >= self._report_every_s:
            runtime.report_at = now
            runtime.report_stale = False
            self._report_soon(evse_id)

    def _note_disagreement(
        self, evse_id: str, before: Composition | None, after: Composition | None
    ) -> None:
        """Counted and logged when meter and modules start to disagree, not on every
        evaluation while they do."""
        if after is None:
            return
        started = after.meter_disagrees - (before.meter_disagrees if before else frozenset())
        for quantity in sorted(started):
            self.counters.add(Counted.METER_DISAGREEMENTS, f"{evse_id}/{quantity}")
            dc = after.snapshot.dc
            log.warning(
                "event=meter_disagrees evse=%s quantity=%s meter_present_voltage=%s"
                " meter_present_current=%s -- meter and modules differ beyond the tolerance",
                evse_id,
                quantity,
                dc.present_voltage if dc else None,
                dc.present_current if dc else None,
            )

    def _report_soon(self, evse_id: str) -> None:
        """The operator's report is built after the update to Josev has gone out (in the same
        loop pass): it costs as much as the update and nobody is waiting on it."""
        self._reports_due.add(evse_id)
        if self._reports_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (replay, scripts): build it now
            self.flush_reports()
            return
        self._reports_scheduled = True
        loop.call_soon(self.flush_reports)

    def flush_reports(self) -> None:
        """Build every report that is due."""
        self._reports_scheduled = False
        now = self.clock()
        while self._reports_due:
            evse_id = self._reports_due.pop()
            self._limits_reports.set(evse_id, self._report(self._evses[evse_id], now))

    def set_josev(self, block: Mapping[str, Any]) -> None:
        """What Josev says of itself (session/services.py): into every EVSE's next report."""
        self._josev = block
        for evse_id in self._evses:
            self._report_soon(evse_id)

    def _report(self, runtime: _Evse, now: float) -> LimitsReport:
        reported = runtime.gate.reported
        assert reported is not None
        return LimitsReport(
            limits=RoundedSnapshot(reported.limits),
            binding=reported.binding,
            sources=source_report(runtime.config, runtime.inputs(), runtime.composition, now),
            session=runtime.session.report if runtime.session is not None else None,
            josev=self._josev,
            pool=runtime.pool_block,
        )

    def _report_document(self, report: LimitsReport) -> Entry:
        """Its limits are the entry the update carried, made once for both."""
        limits = report.limits
        return report_document(report, self._entries.document_of(limits.evse_id, limits))
