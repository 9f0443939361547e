"""When a computed EVSE snapshot becomes what Josev is told.

Decreases of a maximum (and increases of a minimum) and status changes go out at once. An
increase goes out only after it has stayed above the reported value by more than a hysteresis
for a settle time, and then at the lowest value seen during that time, so noise never flaps the
EV. An increase the caller knows to be good (`offer(..., known_good=True)`: a shared pool's
module confirmed connected and delivering, a deliberate change, not a fluctuating reading) goes
out at once like a decrease. Measured present values go out when they move past a deadband.
Everything that is not urgent waits for the per-EVSE rate cap; nothing urgent ever does. (What
the gate reports is what the power path follows at once; the updates that carry it to Josev are
paced after it, at most one of a kind per EVSE per 50 ms: engine/pacing.py.)

The gate works on rounded snapshots, so it reasons about exactly what Josev receives. Which
fields are maxima, minima, present values or exact, and what each measures, the model declares
(limits/model.py: `limit_fields`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from csbridge.limits.bounds import LimitSource
from csbridge.limits.model import (
    BLOCKS,
    PHASES,
    AcBptLimits,
    AcLimits,
    DcBptLimits,
    DcLimits,
    EvseSnapshot,
    LimitBlock,
    LimitField,
    PerPhase,
    Quantity,
    Role,
    limit_fields,
)

Leaf = tuple[str, str, str]
"""(block, field, phase): one number of a snapshot; the phase is "" outside per-phase fields."""


@dataclass(frozen=True, slots=True)
class GateSettings:
    settle_s: float = 1.0
    hysteresis_fraction: float = 0.02
    hysteresis_current: float = 1.0
    hysteresis_power: float = 500.0
    hysteresis_voltage: float = 1.0
    min_interval_s: float = 0.2
    present_voltage_deadband: float = 2.0
    present_current_deadband: float = 1.0

    def hysteresis(self, quantity: Quantity | None, reference: float) -> float:
        absolute = (
            self.hysteresis_power
            if quantity is Quantity.POWER
            else self.hysteresis_voltage
            if quantity is Quantity.VOLTAGE
            else self.hysteresis_current
        )
        return max(absolute, abs(reference) * self.hysteresis_fraction)

    def deadband(self, quantity: Quantity | None) -> float:
        return (
            self.present_voltage_deadband
            if quantity is Quantity.VOLTAGE
            else self.present_current_deadband
        )


@dataclass(slots=True)
class _Pending:
    since: float
    floor: float
    """The least loosened value seen while the loosening held: what is released."""


@dataclass(frozen=True, slots=True)
class Reported:
    limits: EvseSnapshot
    binding: dict[str, LimitSource]


@dataclass(frozen=True, slots=True)
class _Plan:
    """A block type's fields as the gate walks them."""

    gated: tuple[LimitField, ...]
    """Maxima, minima and present values."""
    exact: tuple[LimitField, ...]
    minima: tuple[LimitField, ...]


def _plan_of(block: type[LimitBlock]) -> _Plan:
    declared = limit_fields(block)
    return _Plan(
        gated=tuple(spec for spec in declared if spec.role is not Role.EXACT),
        exact=tuple(spec for spec in declared if spec.role is Role.EXACT),
        minima=tuple(spec for spec in declared if spec.role is Role.MINIMUM),
    )


_PLANS = {block: _plan_of(block) for block in (DcLimits, DcBptLimits, AcLimits, AcBptLimits)}


def _plan(block: type[LimitBlock]) -> _Plan:
    return _PLANS[block]


@dataclass(slots=True)
class _Walk:
    """What one offer's walk over the changed numbers found."""

    offered_binding: Mapping[str, LimitSource]
    binding: dict[str, LimitSource]
    """The binding to report: the reported one, with the offered source of each number taken."""
    known_good: bool = False
    """Loosenings are taken at once (no settle time), as urgent."""
    urgent: bool = False
    tightened: bool = False
    """Some number was tightened (a maximum lowered, a minimum raised)."""
    moved: bool = False
    released: list[Leaf] = field(default_factory=list)

    def take_binding(self, spec: LimitField) -> None:
        if spec.wire in self.offered_binding:
            self.binding[spec.wire] = self.offered_binding[spec.wire]


@dataclass(slots=True)
class UpdateGate:
    settings: GateSettings = field(default_factory=GateSettings)
    reported: Reported | None = None
    last_sent: float = -math.inf
    last_tightened: bool = False
    """The latest report tightened a limit or changed the status or shape: its update must not
    wait behind a routine one (engine/pacing.py); a known-good increase does not count."""
    _pending: dict[Leaf, _Pending] = field(default_factory=dict)

    def offer(
        self,
        limits: EvseSnapshot,
        binding: Mapping[str, LimitSource],
        now: float,
        *,
        known_good: bool = False,
    ) -> Reported | None:
        """The new reported state if an update is due now, else None (keep what was sent).
        `known_good`: every increase offered is deliberate and confirmed (a pool module that
        delivers), reported at once without the settle time or the rate cap."""
        reported = self.reported
        if reported is not None and (limits is reported.limits or limits == reported.limits):
            # The usual tick: nothing moved. Nothing pending either, as in the walk below.
            self._pending.clear()
            return None
        if reported is None or _shape_or_exact_changed(reported.limits, limits):
            self._pending.clear()
            return self._send(Reported(limits, dict(binding)), now, tightened=True)
        walk = _Walk(binding, dict(reported.binding), known_good=known_good)
        blocks: dict[str, Any] = {}
        as_offered = True
        """Every number is reported as offered: the offered snapshot itself is reported."""
        for name in BLOCKS:
            was: LimitBlock | None = getattr(reported.limits, name)
            offered: LimitBlock | None = getattr(limits, name)
            if was is None or offered is None:
                continue  # the shapes agree: both are absent
            if offered == was:
                block = was
                if self._pending:
                    self._forget(name, was)
            else:
                block = self._walk_block(name, was, offered, now, walk)
            block = self._keep_minima_below_maxima(name, block, offered, walk)
            if block is not was:
                blocks[name] = block
            as_offered = as_offered and (block is offered or (block is was and offered == was))
        due = walk.urgent or (
            (walk.released or walk.moved) and now - self.last_sent >= self.settings.min_interval_s
        )
        if not due:
            return None
        for leaf in walk.released:
            self._pending.pop(leaf, None)
        if not as_offered:
            limits = dataclasses.replace(reported.limits, **blocks)
        return self._send(Reported(limits, walk.binding), now, tightened=walk.tightened)

    def _forget(self, name: str, block: LimitBlock) -> None:
        """Nothing of `block` is held back any more: what is computed is what was reported."""
        for spec in _plan(type(block)).gated:
            if isinstance(getattr(block, spec.name), PerPhase):
                for phase in PHASES:
                    self._pending.pop((name, spec.name, phase), None)
            else:
                self._pending.pop((name, spec.name, ""), None)

    def _walk_block(
        self, name: str, was: LimitBlock, offered: LimitBlock, now: float, walk: _Walk
    ) -> LimitBlock:
        """`was` with each number that is due now taken from `offered`."""
        changes: dict[str, Any] = {}
        behind = False
        """Some number stays behind what was offered."""
        for spec in _plan(type(offered)).gated:
            current = getattr(was, spec.name)
            computed = getattr(offered, spec.name)
            if isinstance(current, PerPhase):
                wanted = _numbers(computed)
                phases = [
                    self._number((name, spec.name, phase), spec, old, new, now=now, walk=walk)
                    for phase, old, new in zip(PHASES, _numbers(current), wanted, strict=True)
                ]
                behind = behind or phases != wanted
                if phases != _numbers(current):
                    changes[spec.name] = PerPhase(*phases)
            else:
                value = self._number(
                    (name, spec.name, ""), spec, current, computed, now=now, walk=walk
                )
                behind = behind or value != computed
                if value != current:
                    changes[spec.name] = value
        if not behind:
            return offered  # the usual urgent update: every number as offered, nothing to build
        return dataclasses.replace(was, **changes) if changes else was

    def _number(
        self,
        leaf: Leaf,
        spec: LimitField,
        current: float,
        computed: float,
        *,
        now: float,
        walk: _Walk,
    ) -> float:
        """The value to report for one number (`current`: keep what was reported)."""
        if computed == current:
            self._pending.pop(leaf, None)
            return current
        if spec.role is Role.PRESENT:
            if abs(computed - current) > self.settings.deadband(spec.quantity):
                walk.moved = True
                return computed
            return current
        tightened, value = self._limit(
            leaf, spec, current, computed, now, known_good=walk.known_good
        )
        if value is None:
            return current
        walk.take_binding(spec)
        if tightened:
            walk.urgent = walk.tightened = True
        elif walk.known_good:
            walk.urgent = True  # taken at once: not held for the rate cap either
        else:
            walk.released.append(leaf)
        return value

    def _keep_minima_below_maxima(
        self, name: str, block: LimitBlock, offered: LimitBlock, walk: _Walk
    ) -> LimitBlock:
        """Never a minimum above its maximum in what is reported."""
        changes: dict[str, Any] = {}
        for spec in _plan(type(block)).minima:
            assert spec.maximum is not None  # the model names every minimum's maximum
            minimum = getattr(block, spec.name)
            maximum = getattr(block, spec.maximum)
            computed = getattr(offered, spec.name)
            if isinstance(minimum, PerPhase):
                lows, highs = _numbers(minimum), _numbers(maximum)
                coherent = [
                    self._coherent(
                        (name, spec.name, phase), spec, low, high, computed=wanted, walk=walk
                    )
                    for phase, low, high, wanted in zip(
                        PHASES, lows, highs, _numbers(computed), strict=True
                    )
                ]
                if coherent != lows:
                    changes[spec.name] = PerPhase(*coherent)
            else:
                value = self._coherent(
                    (name, spec.name, ""), spec, minimum, maximum, computed=computed, walk=walk
                )
                if value != minimum:
                    changes[spec.name] = value
        return dataclasses.replace(block, **changes) if changes else block

    def _coherent(
        self,
        leaf: Leaf,
        spec: LimitField,
        minimum: float,
        maximum: float,
        *,
        computed: float,
        walk: _Walk,
    ) -> float:
        if not minimum > maximum:
            return minimum
        # Either the maximum fell at once, or its rise is held while the minimum rose: the
        # minimum follows, never above the maximum that is reported with it.
        self._pending.pop(leaf, None)
        walk.take_binding(spec)
        walk.urgent = walk.tightened = True
        return min(computed, maximum)

    def _limit(
        self,
        leaf: Leaf,
        spec: LimitField,
        reported: float,
        computed: float,
        now: float,
        *,
        known_good: bool = False,
    ) -> tuple[bool, float | None]:
        """(tightened?, the value to report now or None to keep the reported one); a
        known-good loosening is taken at once."""
        sign = 1.0 if spec.role is Role.MAXIMUM else -1.0
        loosening = (computed - reported) * sign
        if loosening < 0:
            self._pending.pop(leaf, None)
            return True, computed
        if loosening <= self.settings.hysteresis(spec.quantity, reported):
            self._pending.pop(leaf, None)
            return False, None
        if known_good:
            self._pending.pop(leaf, None)
            return False, computed
        pending = self._pending.get(leaf)
        if pending is None:
            pending = self._pending[leaf] = _Pending(since=now, floor=computed)
        else:
            pending.floor = (
                min(pending.floor, computed) if sign > 0 else max(pending.floor, computed)
            )
        if now - pending.since >= self.settings.settle_s and pending.floor != reported:
            return False, pending.floor
        return False, None

    def _send(self, reported: Reported, now: float, *, tightened: bool) -> Reported:
        self.reported = reported
        self.last_sent = now
        self.last_tightened = tightened
        return reported


def _numbers(values: PerPhase) -> list[float]:
    return [values.l1, values.l2, values.l3]


def _shape_or_exact_changed(reported: EvseSnapshot, offered: EvseSnapshot) -> bool:
    if reported.evse_id != offered.evse_id or reported.status_code != offered.status_code:
        return True
    for name in BLOCKS:
        was: LimitBlock | None = getattr(reported, name)
        new: LimitBlock | None = getattr(offered, name)
        if was is None or new is None:
            if was is not new:
                return True
            continue
        if any(
            getattr(was, spec.name) != getattr(new, spec.name) for spec in _plan(type(new)).exact
        ):
            return True
    return False
