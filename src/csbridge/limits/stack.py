"""A stack of DC power modules in parallel, as one power source.

Maximum current and power are sums over the healthy, fresh modules (each first limited by its
own temperature curve); maximum voltage is the lowest module maximum and minimum voltage the
highest module minimum; the minimum current is the sum of the module minima, because setpoints
are split equally. Discharge comes from the import capability of bidirectional modules only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from csbridge.limits.derating import DeratingCurve
from csbridge.sources import Capability, ModuleReading


class Absence(enum.StrEnum):
    """Why a configured module does not count in the stack."""

    NEVER_SEEN = "never_seen"
    STALE = "stale"
    OFFLINE = "offline"
    FAULT = "fault"
    OVER_TEMPERATURE = "over_temperature"
    NO_CAPABILITY = "no_capability"


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    """What the engine needs to know of one configured module."""

    name: str
    deadline_s: float
    bidirectional: bool = False


@dataclass(frozen=True, slots=True)
class DirectionTotals:
    max_current: float = 0.0
    max_power: float = 0.0
    rated_current: float = 0.0
    """The sum before each module's temperature curve."""
    rated_power: float = 0.0
    max_voltage: float = 0.0
    min_voltage: float = 0.0
    min_current: float = 0.0


@dataclass(frozen=True, slots=True)
class StackState:
    configured: int
    healthy: tuple[str, ...]
    absent: Mapping[str, Absence]
    seen: tuple[str, ...]
    """Modules that reported at least once since start."""
    export: DirectionTotals
    discharge: DirectionTotals
    present_voltage: float
    present_current: float
    input_lost: bool

    @property
    def ever_seen(self) -> bool:
        return bool(self.seen)

    @property
    def starting(self) -> bool:
        """No module has told its capability yet: waiting, not lost."""
        return not self.healthy and all(
            reason in (Absence.NEVER_SEEN, Absence.NO_CAPABILITY) for reason in self.absent.values()
        )

    @property
    def thermally_limited(self) -> bool:
        return any(reason is Absence.OVER_TEMPERATURE for reason in self.absent.values())


def _absence(spec: ModuleSpec, reading: ModuleReading | None, now: float) -> Absence | None:
    if reading is None:
        return Absence.NEVER_SEEN
    if now - reading.at > spec.deadline_s:
        return Absence.STALE
    if reading.fault:
        return Absence.FAULT
    if reading.over_temperature:
        return Absence.OVER_TEMPERATURE
    if not reading.online:
        return Absence.OFFLINE
    if reading.export is None:
        return Absence.NO_CAPABILITY
    return None


def _totals(
    capabilities: Sequence[tuple[Capability, float | None]],
    current_curves: Sequence[DeratingCurve],
    power_curves: Sequence[DeratingCurve],
) -> DirectionTotals:
    if not capabilities:
        return DirectionTotals()
    current = power = 0.0
    for capability, temperature in capabilities:
        current += min([capability.max_current, *(c.limit_at(temperature) for c in current_curves)])
        power += min([capability.max_power, *(c.limit_at(temperature) for c in power_curves)])
    return DirectionTotals(
        max_current=current,
        max_power=power,
        rated_current=sum(c.max_current for c, _ in capabilities),
        rated_power=sum(c.max_power for c, _ in capabilities),
        max_voltage=min(c.max_voltage for c, _ in capabilities),
        min_voltage=max(c.min_voltage for c, _ in capabilities),
        min_current=sum(c.min_current for c, _ in capabilities),
    )


def compose_stack(
    specs: Sequence[ModuleSpec],
    readings: Mapping[str, ModuleReading],
    now: float,
    current_curves: Sequence[DeratingCurve] = (),
    power_curves: Sequence[DeratingCurve] = (),
) -> StackState:
    """The stack at `now`: only configured modules count, each by its latest reading."""
    healthy: list[ModuleReading] = []
    absent: dict[str, Absence] = {}
    fresh: list[ModuleReading] = []
    for spec in specs:
        reading = readings.get(spec.name)
        reason = _absence(spec, reading, now)
        if reading is not None and reason is not Absence.STALE:
            fresh.append(reading)
        if reason is None and reading is not None:
            healthy.append(reading)
        elif reason is not None:
            absent[spec.name] = reason
    bidirectional = {spec.name for spec in specs if spec.bidirectional}
    export = _totals(
        [(r.export, r.temperature_c) for r in healthy if r.export is not None],
        current_curves,
        power_curves,
    )
    discharge = _totals(
        [
            (r.import_, r.temperature_c)
            for r in healthy
            if r.import_ is not None and r.name in bidirectional
        ],
        current_curves,
        power_curves,
    )
    voltages = [r.output_voltage for r in fresh if r.output_voltage is not None]
    return StackState(
        configured=len(specs),
        healthy=tuple(r.name for r in healthy),
        absent=absent,
        seen=tuple(spec.name for spec in specs if spec.name in readings),
        export=export,
        discharge=discharge,
        present_voltage=max(voltages, default=0.0),
        present_current=sum((r.output_current for r in fresh if r.output_current is not None), 0.0),
        input_lost=any(r.input_lost for r in fresh),
    )
