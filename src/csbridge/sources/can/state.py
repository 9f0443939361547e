"""A device's latest decoded values, gathered from its frames into one reading.

Modules answer in several frames (capability, status, voltage and current); each decoded frame
updates part of the state and marks the device alive. A capability is only reported once all
its parts are known. A board's status and capabilities come in separate frames too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from csbridge.sources.can.codec import Decoded
from csbridge.sources.readings import (
    BoardReading,
    Capability,
    CpState,
    ImdReading,
    LockState,
    ModuleReading,
)

CP_STATES = tuple(CpState)
"""A board's numeric CP state code: 0..5 for A..F."""
LOCK_STATES = (LockState.UNLOCKED, LockState.LOCKED, LockState.MOVING, LockState.FAULT)
"""A board's numeric lock feedback code: 0..3 (the generic board's LOCK_STATE)."""


def _capability(values: dict[str, float], prefix: str) -> Capability | None:
    try:
        return Capability(
            max_voltage=values[f"{prefix}.max_voltage"],
            min_voltage=values.get(f"{prefix}.min_voltage", 0.0),
            max_current=values[f"{prefix}.max_current"],
            max_power=values[f"{prefix}.max_power"],
            min_current=values.get(f"{prefix}.min_current", 0.0),
        )
    except KeyError:
        return None


@dataclass(slots=True)
class ModuleState:
    """Each value keeps the time it was decoded: a module that goes on answering some frames
    while others are refused (out of range) must not keep its last good values forever."""

    name: str
    address: int
    deadline_s: float = 3.0
    values: dict[str, tuple[float, float]] = field(default_factory=dict)
    """field -> (value, decoded at)."""
    flags: dict[str, bool] = field(default_factory=dict)

    def apply(self, decoded: Decoded, at: float) -> ModuleReading:
        for name, value in decoded.values.items():
            self.values[name] = (value, at)
        self.flags.update(decoded.flags)
        return self.reading(at)

    def _fresh_values(self, at: float) -> dict[str, float]:
        oldest = at - self.deadline_s
        return {name: value for name, (value, when) in self.values.items() if when >= oldest}

    def reading(self, at: float) -> ModuleReading:
        flags = self.flags
        values = self._fresh_values(at)
        return ModuleReading(
            name=self.name,
            address=self.address,
            at=at,
            online=not flags.get("offline", False),
            output_voltage=values.get("output_voltage"),
            output_current=values.get("output_current"),
            export=_capability(values, "export"),
            import_=_capability(values, "import"),
            temperature_c=values.get("temperature_c"),
            fault=flags.get("fault", False),
            derating=flags.get("derating", False),
            over_temperature=flags.get("over_temperature", False),
            input_lost=flags.get("input_lost", False),
        )


@dataclass(slots=True)
class ImdState:
    values: dict[str, float] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)

    def apply(self, decoded: Decoded, at: float) -> ImdReading:
        self.values.update(decoded.values)
        self.flags.update(decoded.flags)
        return ImdReading(
            at=at,
            resistance_ohm=self.values.get("resistance_ohm"),
            voltage=self.values.get("voltage"),
            self_test_running=self.flags.get("self_test_running", False),
            value_outdated=self.flags.get("value_outdated", False),
            device_fault=self.flags.get("device_fault", False),
        )


def cp_state_of(code: float | None) -> CpState | None:
    """The CP state a board's numeric code stands for; None for a code of none (an invalid or
    unmeasurable CP level, or nothing known)."""
    if code is None or not code.is_integer() or not 0 <= code < len(CP_STATES):
        return None
    return CP_STATES[int(code)]


def lock_state_of(code: float | None) -> LockState | None:
    """The lock state a board's numeric feedback code stands for; None for a code of none."""
    if code is None or not code.is_integer() or not 0 <= code < len(LOCK_STATES):
        return None
    return LOCK_STATES[int(code)]


@dataclass(slots=True)
class BoardState:
    """A control board's status (CP, contactor, connector lock, e-stop, RCD, fault,
    temperatures) and its capabilities, from separate cyclic frames.

    Each value and flag keeps the time it was decoded: past the deadline a value is unknown
    (None), the contactor feedback unknown, and a flag that went stale makes the board count as
    faulted (its status frames stopped while others still come). A board that states 0 phases
    states no AC capability: phases and both currents are then None."""

    deadline_s: float = 3.0
    values: dict[str, tuple[float, float]] = field(default_factory=dict)
    """field -> (value, decoded at)."""
    flags: dict[str, tuple[bool, float]] = field(default_factory=dict)
    """field -> (state, decoded at)."""

    def apply(self, decoded: Decoded, at: float) -> BoardReading:
        for name, value in decoded.values.items():
            self.values[name] = (value, at)
        for name, state in decoded.flags.items():
            self.flags[name] = (state, at)
        return self.reading(at)

    def _fresh_flags(self, at: float) -> tuple[dict[str, bool], bool]:
        """(the flags decoded within the deadline, whether any went stale)."""
        oldest = at - self.deadline_s
        fresh = {name: state for name, (state, when) in self.flags.items() if when >= oldest}
        return fresh, len(fresh) < len(self.flags)

    def pwm_on(self, at: float) -> bool | None:
        """Whether the board drives the CP PWM (None: not known)."""
        return self._fresh_flags(at)[0].get("pwm_on")

    def reading(self, at: float) -> BoardReading:
        oldest = at - self.deadline_s
        values = {name: value for name, (value, when) in self.values.items() if when >= oldest}
        flags, stale = self._fresh_flags(at)
        phases_code = values.get("phases")
        phases = int(phases_code) if phases_code is not None and phases_code >= 1 else None
        stated = phases is not None
        return BoardReading(
            at=at,
            evse_temperature_c=values.get("evse_temperature_c"),
            plug_temperature_c=values.get("plug_temperature_c"),
            rcd_error=flags.get("rcd_error", False),
            cp_state=cp_state_of(values.get("cp_state")),
            emergency_stop=flags.get("emergency_stop", False),
            contactor_closed=flags.get("contactor_closed"),
            fault=flags.get("fault", False) or stale,
            max_current_a=values.get("max_current_a") if stated else None,
            max_discharge_current_a=values.get("max_discharge_current_a") if stated else None,
            phases=phases,
            cable_max_current_a=values.get("cable_max_current_a") or None,
            lock=lock_state_of(values.get("lock_state")),
        )
