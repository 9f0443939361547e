"""A device's latest decoded values, gathered from its frames into one reading.

Modules answer in several frames (capability, status, voltage and current); each decoded frame
updates part of the state and marks the device alive. A capability is only reported once all
its parts are known.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from csbridge.devices.codec import Decoded
from csbridge.readings import Capability, ImdReading, ModuleReading


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
    last_seen: float | None = None

    def apply(self, decoded: Decoded, at: float) -> ModuleReading:
        for name, value in decoded.values.items():
            self.values[name] = (value, at)
        self.flags.update(decoded.flags)
        self.last_seen = at
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
