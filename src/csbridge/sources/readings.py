"""What device sources report, typed. Every reading carries the monotonic time it was taken.

A source that cannot fill a field leaves it None: the limits engine treats None as the worst
case, never as "no limit".
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload


@dataclass(frozen=True, slots=True, kw_only=True)
class Capability:
    """What a power module can do in one direction (export: to the EV; import: from the EV)."""

    max_voltage: float
    min_voltage: float
    max_current: float
    max_power: float
    min_current: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleReading:
    """One DC power module of a stack."""

    name: str
    address: int
    at: float
    online: bool = True
    """The module answers and its output stage is available (not switched off by a fault)."""
    output_voltage: float | None = None
    output_current: float | None = None
    export: Capability | None = None
    import_: Capability | None = None
    """Only bidirectional modules report it."""
    temperature_c: float | None = None
    fault: bool = False
    derating: bool = False
    """The module limits its own output (thermal or input); its capability shows how much."""
    over_temperature: bool = False
    input_lost: bool = False
    """The module's AC input flags say the grid is gone (phase lost, under-voltage, PFC off)."""
    stops_evse: bool = False
    """The source says this fault ends the session for the whole EVSE, not just this module's
    share (EVerest's power_supply_DC: every error but VendorWarning)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ImdReading:
    """The insulation monitoring device of one EVSE."""

    at: float
    resistance_ohm: float | None = None
    voltage: float | None = None
    self_test_running: bool = False
    value_outdated: bool = False
    device_fault: bool = False


class CpState(enum.StrEnum):
    """Control pilot state per IEC 61851-1."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"
    E = "E"
    F = "F"


class LockState(enum.StrEnum):
    """The connector lock as the board reports it: at rest unlocked or locked, moving between the
    two (the actuator's travel), or faulted (jammed, or its feedback makes no sense)."""

    UNLOCKED = "unlocked"
    LOCKED = "locked"
    MOVING = "moving"
    FAULT = "fault"


@overload
def cp_status(state: CpState, pwm_on: bool) -> str: ...
@overload
def cp_status(state: None, pwm_on: bool) -> None: ...
def cp_status(state: CpState | None, pwm_on: bool) -> str | None:
    """The CP state as Josev's CpStatusUpdate names it (IEC 61851-1): A to D with the PWM told
    apart, 1 without it and 2 with it (A1, B2, ...); E and F carry no PWM digit. None: not
    known."""
    if state is None:
        return None
    if state in (CpState.E, CpState.F):
        return state.value
    return f"{state.value}{2 if pwm_on else 1}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardReading:
    """The charger's control board for one EVSE."""

    at: float
    evse_temperature_c: float | None = None
    plug_temperature_c: float | None = None
    rcd_error: bool = False
    cp_state: CpState | None = None
    emergency_stop: bool = False
    contactor_closed: bool | None = None
    fault: bool = False
    max_current_a: float | None = None
    """AC: the board's hardware capability per phase (import)."""
    max_discharge_current_a: float | None = None
    """AC BPT: the board's hardware capability per phase (export to the grid)."""
    phases: int | None = None
    cable_max_current_a: float | None = None
    """The plugged cable's ampacity from its proximity (PP) resistance; None: no cable coded."""
    lock: LockState | None = None
    """The connector lock's feedback; None: the board reports none (no lock, or not known)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalLimit:
    """A limit from outside (site energy manager); expires at `until` (monotonic)."""

    at: float
    until: float
    max_power: float | None = None
    max_current: float | None = None
    max_discharge_power: float | None = None
    """Discharge (DC bpt) power, W; None: max_power bounds discharge too."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorCommand:
    """The operator's enable/disable of an EVSE; csbridge gives itself one when it stops."""

    at: float
    enabled: bool
    reason: str = ""
    station_stopping: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionCondition:
    """What the session knows of the EVSE that the limits must follow: whether it is in
    service (change_availability), and which modules deliver output while commanded off."""

    at: float
    operative: bool = True
    stray_output: frozenset[str] = frozenset()
    report: Mapping[str, Any] | None = None
    """The `session` block of the EVSE's limits report, JSON-ready."""
    importing: bool = False
    """The modules are commanded in import mode (a discharge): the present current the
    modules measure, a magnitude, is reported negative."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterSample:
    """One reading of an EVSE's energy meter. Energies are the meter's own registers (never
    integrated here); a quantity the meter does not measure is None, never made up."""

    at: float
    energy_import_wh: float | None = None
    """Energy delivered to the EV (active, import register), Wh."""
    energy_export_wh: float | None = None
    """Energy taken back from the EV (active, export register), Wh."""
    voltage_v: tuple[float | None, float | None, float | None] | None = None
    """AC: phase-to-neutral voltage of L1, L2, L3."""
    current_a: tuple[float | None, float | None, float | None] | None = None
    """AC: current of L1, L2, L3."""
    power_factor: float | None = None
    frequency_hz: float | None = None
    dc_voltage_v: float | None = None
    dc_current_a: float | None = None
    """Signed: negative while energy flows back from the EV."""
    power_w: float | None = None
    """Active power, signed like the current."""


SourceReading = (
    ModuleReading
    | ImdReading
    | BoardReading
    | ExternalLimit
    | OperatorCommand
    | SessionCondition
    | MeterSample
)
_R = TypeVar("_R", ModuleReading, ImdReading, BoardReading, ExternalLimit, MeterSample)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _non_negative(value: float | None) -> float | None:
    value = _finite(value)
    return value if value is not None and value >= 0 else None


def _capability(capability: Capability | None) -> Capability | None:
    if capability is None:
        return None
    values = (
        capability.max_voltage,
        capability.min_voltage,
        capability.max_current,
        capability.max_power,
        capability.min_current,
    )
    if any(_non_negative(v) is None for v in values):
        return None
    return capability


def sanitized(reading: SourceReading) -> tuple[SourceReading, bool]:
    """The reading with every non-finite or impossible number replaced by None (the worst case),
    and whether anything had to be replaced. A clean reading comes back as it is (the common
    case, on every frame: no copy)."""
    cleaned: SourceReading
    if isinstance(reading, ModuleReading):
        cleaned = _replaced(
            reading,
            output_voltage=_finite(reading.output_voltage),
            output_current=_finite(reading.output_current),
            export=_capability(reading.export),
            import_=_capability(reading.import_),
            temperature_c=_finite(reading.temperature_c),
        )
    elif isinstance(reading, ImdReading):
        cleaned = _replaced(
            reading,
            resistance_ohm=_non_negative(reading.resistance_ohm),
            voltage=_finite(reading.voltage),
        )
    elif isinstance(reading, BoardReading):
        cleaned = _replaced(
            reading,
            evse_temperature_c=_finite(reading.evse_temperature_c),
            plug_temperature_c=_finite(reading.plug_temperature_c),
            max_current_a=_non_negative(reading.max_current_a),
            max_discharge_current_a=_non_negative(reading.max_discharge_current_a),
            cable_max_current_a=_non_negative(reading.cable_max_current_a),
        )
    elif isinstance(reading, ExternalLimit):
        # A nonsensical external limit must not vanish into "no limit": zero is the safe side.
        cleaned = _replaced(
            reading,
            max_power=None
            if reading.max_power is None
            else _non_negative(reading.max_power) or 0.0,
            max_current=None
            if reading.max_current is None
            else _non_negative(reading.max_current) or 0.0,
        )
    elif isinstance(reading, MeterSample):
        cleaned = _replaced(
            reading,
            energy_import_wh=_non_negative(reading.energy_import_wh),
            energy_export_wh=_non_negative(reading.energy_export_wh),
            voltage_v=_phases(reading.voltage_v),
            current_a=_phases(reading.current_a),
            power_factor=_power_factor(reading.power_factor),
            frequency_hz=_non_negative(reading.frequency_hz),
            dc_voltage_v=_finite(reading.dc_voltage_v),
            dc_current_a=_finite(reading.dc_current_a),
            power_w=_finite(reading.power_w),
        )
    else:
        cleaned = reading
    return cleaned, cleaned is not reading


def _phases(
    values: tuple[float | None, float | None, float | None] | None,
) -> tuple[float | None, float | None, float | None] | None:
    if values is None:
        return None
    l1, l2, l3 = values
    return (_finite(l1), _finite(l2), _finite(l3))


def _power_factor(value: float | None) -> float | None:
    value = _finite(value)
    return value if value is not None and -1.0 <= value <= 1.0 else None


def _replaced(reading: _R, **fields: Any) -> _R:
    changed: dict[str, Any] = {
        name: value
        for name, value in fields.items()
        if not (value is getattr(reading, name) or value == getattr(reading, name))
    }
    return dataclasses.replace(reading, **changed) if changed else reading


ReadingSink = Callable[[str, SourceReading], object]
"""Where a source hands its readings: (evse_id, reading); the engine's ingest."""
