"""When a computed EVSE entry becomes what Josev is told.

Decreases of a maximum (and increases of a minimum) and status changes go out at once. An
increase goes out only after it has stayed above the reported value by more than a hysteresis
for a settle time, and then at the lowest value seen during that time, so noise never flaps the
EV. Measured present values go out when they move past a deadband. Everything that is not
urgent waits for the per-EVSE rate cap; nothing urgent ever does.

The gate works on the rounded JSON entry, so it reasons about exactly what Josev receives.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from csbridge.limits.bounds import LimitSource

Path = tuple[str, ...]
Entry = dict[str, Any]


class Role(enum.Enum):
    MAXIMUM = "maximum"
    MINIMUM = "minimum"
    PRESENT = "present"
    EXACT = "exact"


@functools.lru_cache(maxsize=512)
def _role(path: Path) -> Role:
    name = next((part for part in reversed(path) if part not in ("l1", "l2", "l3")), "")
    if name.startswith(("max_", "evse_max_")):
        return Role.MAXIMUM
    if name.startswith(("min_", "evse_min_")):
        return Role.MINIMUM
    if name.startswith("present_"):
        return Role.PRESENT
    return Role.EXACT


def binding_key(path: Path) -> str:
    """The limit a leaf belongs to: ("ac", "max_current", "l2") -> "max_current"."""
    return next(part for part in reversed(path) if part not in ("l1", "l2", "l3"))


def leaves(entry: Mapping[str, Any], prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    for key, value in entry.items():
        if isinstance(value, Mapping):
            yield from leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def _set(entry: Entry, path: Path, value: Any) -> None:
    target = entry
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def _copy(entry: Mapping[str, Any]) -> Entry:
    return {k: _copy(v) if isinstance(v, Mapping) else v for k, v in entry.items()}


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

    def hysteresis(self, path: Path, reference: float) -> float:
        name = binding_key(path)
        absolute = (
            self.hysteresis_power
            if "power" in name
            else self.hysteresis_voltage
            if "voltage" in name
            else self.hysteresis_current
        )
        return max(absolute, abs(reference) * self.hysteresis_fraction)

    def deadband(self, path: Path) -> float:
        return (
            self.present_voltage_deadband
            if "voltage" in path[-1]
            else self.present_current_deadband
        )


@dataclass(slots=True)
class _Pending:
    since: float
    floor: float
    """The least loosened value seen while the loosening held: what is released."""


@dataclass(frozen=True, slots=True)
class Reported:
    entry: Entry
    binding: dict[str, LimitSource]
    flat: dict[Path, Any] = field(default_factory=dict)
    """The entry's leaves by path, kept to compare the next offer against."""


@dataclass(slots=True)
class UpdateGate:
    settings: GateSettings = field(default_factory=GateSettings)
    reported: Reported | None = None
    last_sent: float = -math.inf
    _pending: dict[Path, _Pending] = field(default_factory=dict)

    def offer(
        self, entry: Mapping[str, Any], binding: Mapping[str, LimitSource], now: float
    ) -> Reported | None:
        """The new reported state if an update is due now, else None (keep what was sent)."""
        reported = self.reported
        if reported is not None and entry == reported.entry:
            # The usual tick: nothing moved. Nothing pending either, as in the walk below.
            self._pending.clear()
            return None
        offered = dict(leaves(entry))
        if reported is None or _shape_or_exact_changed(reported.flat, offered):
            self._pending.clear()
            return self._send(Reported(_copy(entry), dict(binding), offered), now)
        new_entry = _copy(reported.entry)
        new_flat = dict(reported.flat)
        new_binding = dict(reported.binding)
        urgent = False
        released: list[Path] = []
        moved = False
        for path, computed in offered.items():
            role = _role(path)
            current = reported.flat[path]
            if computed == current:
                self._pending.pop(path, None)
                continue
            if role is Role.MAXIMUM or role is Role.MINIMUM:
                tightened, value = self._limit(path, role, current, computed, now)
                if value is None:
                    continue
                _set(new_entry, path, value)
                new_flat[path] = value
                key = binding_key(path)
                if key in binding:
                    new_binding[key] = binding[key]
                if tightened:
                    urgent = True
                else:
                    released.append(path)
            elif role is Role.PRESENT and abs(computed - current) > self.settings.deadband(path):
                _set(new_entry, path, computed)
                new_flat[path] = computed
                moved = True
        urgent |= self._keep_minima_below_maxima(offered, new_entry, new_flat, new_binding, binding)
        due = urgent or (
            (released or moved) and now - self.last_sent >= self.settings.min_interval_s
        )
        if not due:
            return None
        for path in released:
            self._pending.pop(path, None)
        return self._send(Reported(new_entry, new_binding, new_flat), now)

    def _keep_minima_below_maxima(
        self,
        offered: Mapping[Path, Any],
        entry: Entry,
        flat: dict[Path, Any],
        binding: dict[str, LimitSource],
        offered_binding: Mapping[str, LimitSource],
    ) -> bool:
        """Never a minimum above its maximum in what is reported."""
        dragged = False
        for path, value in list(flat.items()):
            if _role(path) is not Role.MINIMUM:
                continue
            partner = _maximum_of(path)
            if partner in flat and value > flat[partner]:
                # Either the maximum fell at once, or its rise is held while the minimum rose:
                # the minimum follows, never above the maximum that is reported with it.
                coherent = min(offered[path], flat[partner])
                flat[path] = coherent
                _set(entry, path, coherent)
                self._pending.pop(path, None)
                key = binding_key(path)
                if key in offered_binding:
                    binding[key] = offered_binding[key]
                dragged = True
        return dragged

    def _limit(
        self, path: Path, role: Role, reported: float, computed: float, now: float
    ) -> tuple[bool, float | None]:
        """(tightened?, the value to report now or None to keep the reported one)."""
        sign = 1.0 if role is Role.MAXIMUM else -1.0
        loosening = (computed - reported) * sign
        if loosening < 0:
            self._pending.pop(path, None)
            return True, computed
        if loosening <= self.settings.hysteresis(path, reported):
            self._pending.pop(path, None)
            return False, None
        pending = self._pending.get(path)
        if pending is None:
            pending = self._pending[path] = _Pending(since=now, floor=computed)
        else:
            pending.floor = (
                min(pending.floor, computed) if sign > 0 else max(pending.floor, computed)
            )
        if now - pending.since >= self.settings.settle_s and pending.floor != reported:
            return False, pending.floor
        return False, None

    def _send(self, reported: Reported, now: float) -> Reported:
        self.reported = reported
        self.last_sent = now
        return reported


@functools.lru_cache(maxsize=512)
def _maximum_of(path: Path) -> Path:
    """("dc", "min_current") -> ("dc", "max_current"); ("ac_bpt", "evse_min_...", "l1") too."""
    return tuple(
        part.replace("min_", "max_", 1) if part.startswith(("min_", "evse_min_")) else part
        for part in path
    )


def _shape_or_exact_changed(reported: Mapping[Path, Any], offered: Mapping[Path, Any]) -> bool:
    if reported.keys() != offered.keys():
        return True
    return any(
        reported[path] != value for path, value in offered.items() if _role(path) is Role.EXACT
    )
