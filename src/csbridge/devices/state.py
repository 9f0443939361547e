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
    name: str
    address: int
    values: dict[str, float] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)
    last_seen: float | None = None

    def apply(self, decoded: Decoded, at: float) -> ModuleReading:
        self.values.update(decoded.values)
        self.flags.update(decoded.flags)
        self.last_seen = at
        return self.reading(at)

    def reading(self, at: float) -> ModuleReading:
        flags = self.flags
        return ModuleReading(
            name=self.name,
            address=self.address,
            at=at,
            online=not flags.get("offline", False),
            output_voltage=self.values.get("output_voltage"),
            output_current=self.values.get("output_current"),
            export=_capability(self.values, "export"),
            import_=_capability(self.values, "import"),
            temperature_c=self.values.get("temperature_c"),
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
