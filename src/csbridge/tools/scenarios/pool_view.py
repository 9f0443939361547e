"""What the shared-pool scenario reads and checks, without I/O: the `pool` block of an EVSE's
limits report (csbridge/<evse_id>/limits), what a step expects of the pool and of Josev's view,
and the times from an allocation decision to each EVSE's update and to the modules moved.

Times: `decided_at` and `settled_at` are the station's time.time(); an update's arrival is
this process's time.time() when the emulator received it (the same machine's clock).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from csbridge.messages import Message
from csbridge.tools.emulator import Exchange

POWER_TOLERANCE_W = 1.0
"""Reported powers are rounded by the station: this much off still counts as the figure."""


@dataclass(frozen=True, slots=True)
class PooledModule:
    name: str
    phase: str
    target: str | None
    """The EVSE the allocation gives it to, or None (free, or out of the pool)."""
    serving: bool
    """Connected to its target alone and counted in its limits (a module that dropped out is
    not, even where its contactor is still closed)."""
    absent: str | None = None
    """Why it dropped out of the allocation (stale, offline, fault, ...); None: it has not."""


@dataclass(frozen=True, slots=True)
class PoolView:
    """One EVSE's report of its pool, as the limits report's `pool` block says it: the modules
    it lists are those allocated to that EVSE or still on its bus."""

    name: str
    policy: str
    decision: int
    decided_at: float | None
    """None before the pool's first decision."""
    settled: bool
    settled_at: float | None
    share_w: float
    why: str
    modules: tuple[PooledModule, ...]

    @classmethod
    def of(cls, report: Mapping[str, Any]) -> PoolView | None:
        """The report's pool block; None when it has none or one this reader cannot use."""
        block = report.get("pool")
        if not isinstance(block, dict):
            return None
        try:
            modules = tuple(
                PooledModule(
                    str(module["name"]),
                    str(module["phase"]),
                    None if module["target"] is None else str(module["target"]),
                    bool(module["serving"]),
                    None if module.get("absent") is None else str(module["absent"]),
                )
                for module in block["modules"]
            )
            decided_at, settled_at = block.get("decided_at"), block.get("settled_at")
            return cls(
                name=str(block["name"]),
                policy=str(block["policy"]),
                decision=int(block["decision"]),
                decided_at=None if decided_at is None else float(decided_at),
                settled=bool(block["settled"]),
                settled_at=None if settled_at is None else float(settled_at),
                share_w=float(block["share_w"]),
                why=str(block["why"]),
                modules=modules,
            )
        except (KeyError, TypeError, ValueError):
            return None

    def serving(self, evse_id: str) -> tuple[str, ...]:
        """The modules connected to `evse_id` alone, by name."""
        return tuple(m.name for m in self.modules if m.target == evse_id and m.serving)

    def module(self, name: str) -> PooledModule | None:
        return next((m for m in self.modules if m.name == name), None)


@dataclass(frozen=True, slots=True)
class Expected:
    """What one step expects of one EVSE once the pool has settled: the power Josev is told
    (its cs_status_and_limits dc.max_power), the share the pool block names, and how many
    modules serve it. None: not checked."""

    power_w: float | None
    modules: int | None = None


def mismatch(
    views: Mapping[str, PoolView | None],
    entries: Mapping[str, Mapping[str, Any]],
    expected: Mapping[str, Expected],
    after_decision: int,
) -> str | None:
    """Why the station is not (yet) where a step expects it, or None when it is: every EVSE's
    pool block from a decision later than `after_decision`, the same decision and settled in
    each, and each EVSE's share, modules and Josev's figure as `expected` says."""
    decisions = set()
    for evse_id, want in expected.items():
        view = views.get(evse_id)
        if view is None:
            return f"{evse_id}: no pool block in its limits report"
        decisions.add(view.decision)
        if view.decision <= after_decision:
            return f"{evse_id}: still decision {view.decision}"
        if not view.settled:
            return f"{evse_id}: decision {view.decision} not settled"
        if want.modules is not None and len(view.serving(evse_id)) != want.modules:
            return f"{evse_id}: {len(view.serving(evse_id))} modules serve it, not {want.modules}"
        if want.power_w is None:
            continue
        if abs(view.share_w - want.power_w) > POWER_TOLERANCE_W:
            return f"{evse_id}: pool share {view.share_w:.0f} W, not {want.power_w:.0f} W"
        told = offered_w(entries.get(evse_id))
        if told is None or abs(told - want.power_w) > POWER_TOLERANCE_W:
            return f"{evse_id}: Josev was told {told} W, not {want.power_w:.0f} W"
    if len(decisions) > 1:
        return f"the EVSEs' reports name decisions {sorted(decisions)}"
    return None


def offered_w(entry: Mapping[str, Any] | None) -> float | None:
    """The DC maximum power of a cs_status_and_limits entry, if it has one."""
    dc = entry.get("dc") if entry is not None else None
    power = dc.get("max_power") if isinstance(dc, dict) else None
    return float(power) if isinstance(power, int | float) else None


def arrivals(
    updates: Sequence[Message], exchanges: Sequence[Exchange], wall_offset: float
) -> list[tuple[float, Message]]:
    """Each update with its arrival as time.time(): the emulator stamps what it receives with
    perf_counter, and `wall_offset` is time.time() - perf_counter() of this process."""
    received = {e.id: e.at for e in exchanges if not e.outgoing and e.type == "update"}
    return [
        (received[message.id] + wall_offset, message)
        for message in updates
        if message.id in received
    ]


TimedEntries = Sequence[tuple[float, Sequence[Mapping[str, Any]]]]
"""cs_status_and_limits updates in order of arrival: (time.time() received, its EVSE entries)."""


def status_updates(timed: Sequence[tuple[float, Message]], since: float) -> TimedEntries:
    """The cs_status_and_limits updates among `timed` received at or after `since`."""
    return [
        (at, message.data["evses"])
        for at, message in timed
        if at >= since and message.name == "cs_status_and_limits"
    ]


def told_at(
    updates: TimedEntries, evse_id: str, before: float | None, final: float
) -> float | None:
    """When Josev was told `evse_id`'s power `final` for good: the arrival of the last update
    in `updates` that changed its max_power (from `before`, what it was told earlier) to
    `final`. None when no update changed it to `final` (it was `final` all along, or never
    became it). Updates that repeat the figure (a present value moved) do not count."""
    told, last = before, None
    for at, entries in updates:
        for entry in entries:
            power = offered_w(entry) if entry.get("evse_id") == evse_id else None
            if power is None:
                continue
            if abs(power - final) <= POWER_TOLERANCE_W and not _same(told, final):
                last = at
            told = power
    return last if _same(told, final) else None


def _same(told: float | None, final: float) -> bool:
    return told is not None and abs(told - final) <= POWER_TOLERANCE_W


@dataclass(frozen=True, slots=True)
class MoveTiming:
    """One allocation decision as the scenario measured it: seconds from `decided_at` to each
    EVSE's update with its new figure (None: its figure did not change, no update due; NaN:
    none found), and to the modules moved (`settled_at`)."""

    decision: int
    updates_s: Mapping[str, float | None]
    moved_s: float | None
    decided: bool = True
    """False: the step's cause made no decision (no target changed); the times run from the
    cause instead."""
    roles: Mapping[str, str] = field(default_factory=dict)
    """Per EVSE whose figure changed: `donor` (lowered: it gives modules away) or `receiver`."""

    def detail(self, names: Mapping[str, str]) -> str:
        """The scenario's table cell: decision -> the donor's update, -> the receiver's update
        (and how long after its modules delivered), -> the modules moved. E.g. `decision 3:
        EV2 donor +4 ms, EV1 receiver +150 ms (+2 ms after delivering), moved +148 ms`."""
        head = f"decision {self.decision}" if self.decided else "no decision, from the cause"
        parts = []
        for evse_id, seconds in self.updates_s.items():
            name = names.get(evse_id, evse_id)
            role = self.roles.get(evse_id)
            if seconds is None or role is None:
                parts.append(f"{name} unchanged")
                continue
            part = f"{name} {role} {_ms(seconds)}"
            if role == "receiver" and self.moved_s is not None and not math.isnan(seconds):
                part += f" ({_ms(seconds - self.moved_s)} after delivering)"
            parts.append(part)
        moved = "moved: -" if self.moved_s is None else f"moved {_ms(self.moved_s)}"
        return f"{head}: " + ", ".join([*parts, moved])

    def describe(self, names: Mapping[str, str]) -> str:
        """E.g. `decision 3: EV1 update +4 ms, EV2 update +31 ms, moved +212 ms`."""
        head = f"decision {self.decision}" if self.decided else "no decision, from the cause"
        parts = [
            f"{names.get(evse_id, evse_id)} "
            + ("unchanged" if seconds is None else f"update {_ms(seconds)}")
            for evse_id, seconds in self.updates_s.items()
        ]
        moved = "moved: -" if self.moved_s is None else f"moved {_ms(self.moved_s)}"
        return f"{head}: " + ", ".join([*parts, moved])


def timing(
    view: PoolView,
    updates: TimedEntries,
    told_before: Mapping[str, float | None],
    final: Mapping[str, float],
    cause: float | None = None,
) -> MoveTiming:
    """The decision `view` names, timed: for each EVSE of `final` (its power now), from
    `decided_at` to the update that told Josev that power (`told_at`, over `updates` since
    the step's start, from `told_before`). An update that came before `decided_at` (an
    earlier decision of the same step told it) shows as negative; NaN: none found although
    the figure changed. `cause` (time.time()): the step made no decision, time from then."""
    if cause is not None:
        from_cause = timing(
            replace(view, decided_at=cause, settled_at=None), updates, told_before, final
        )
        return replace(from_cause, decided=False)
    decided_at = math.nan if view.decided_at is None else view.decided_at
    timed: dict[str, float | None] = {}
    roles: dict[str, str] = {}
    for evse_id, power_w in final.items():
        before = told_before.get(evse_id)
        if not _same(before, power_w):
            roles[evse_id] = "donor" if before is not None and power_w < before else "receiver"
        at = told_at(updates, evse_id, before, power_w)
        if at is not None:
            timed[evse_id] = at - decided_at
        else:
            timed[evse_id] = None if _same(before, power_w) else math.nan
    moved = None
    if view.settled_at is not None and view.decided_at is not None:
        moved = view.settled_at - view.decided_at
    return MoveTiming(view.decision, timed, moved, roles=roles)


def _ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "not found"
    return f"{seconds * 1000:+.0f} ms"
