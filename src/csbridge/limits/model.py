"""What Josev is told about one EVSE at one moment: status code and limit blocks, typed.

Each limit field declares its role for the update gate (maximum, minimum with the maximum it
belongs to, present value, exact), what it measures and Josev's name for it, once, in its
dataclass field's metadata; `limit_fields` reads them.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field, fields


class StatusCode(enum.StrEnum):
    """ISO 15118 EVSEStatusCode as Josev spells it."""

    EVSE_NOT_READY = "evse_not_ready"
    """No data yet since start: the station cannot tell what it can deliver."""
    EVSE_READY = "evse_ready"
    """Ready to charge within the reported limits."""
    EVSE_SHUTDOWN = "evse_shutdown"
    """Disabled by the operator."""
    EVSE_UTILITY_INTERRUPT_EVENT = "evse_utility_interrupt_event"
    """Grid input lost."""
    EVSE_ISOLATION_MONITORING_ACTIVE = "evse_isolation_monitoring_active"
    """The IMD is running its self-test."""
    EVSE_EMERGENCY_SHUTDOWN = "evse_emergency_shutdown"
    """E-stop pressed or an isolation fault."""
    EVSE_MALFUNCTION = "evse_malfunction"
    """A device is faulty or has gone silent."""


class IsolationStatus(enum.StrEnum):
    """ISO 15118 IsolationLevel as Josev spells it."""

    INVALID = "invalid"
    """No fresh verdict: before the first sample, or the latest one is stale."""
    VALID = "valid"
    WARNING = "warning"
    FAULT = "fault"
    NO_IMD = "no_imd"
    """No insulation monitor is configured for this EVSE."""


class Role(enum.Enum):
    """How the update gate treats a limit field (see limits/gate.py)."""

    MAXIMUM = "maximum"
    """A fall goes out at once; a rise waits above a hysteresis for the settle time."""
    MINIMUM = "minimum"
    """A rise goes out at once; a fall waits; never reported above its maximum."""
    PRESENT = "present"
    """A measured value: goes out when it moves past a deadband."""
    EXACT = "exact"
    """Any change goes out at once, with the whole snapshot as computed."""


class Quantity(enum.Enum):
    """What a maximum, minimum or present value measures: it picks the hysteresis or deadband."""

    CURRENT = "current"
    VOLTAGE = "voltage"
    POWER = "power"


@dataclass(frozen=True, slots=True)
class LimitField:
    """One field of a limit block, declared once, on the block's dataclass field."""

    name: str
    """The attribute."""
    wire: str
    """Josev's name for it; the binding of a limit is keyed by it too."""
    role: Role
    quantity: Quantity | None = None
    maximum: str | None = None
    """For a minimum: the attribute of the maximum it never exceeds."""


_LIMIT = "csbridge.limit"


def _declared(
    role: Role,
    quantity: Quantity | None = None,
    *,
    maximum: str | None = None,
    wire: str | None = None,
) -> dict[str, LimitField]:
    """Field metadata; the name is filled in from the field by `limit_fields`."""
    return {_LIMIT: LimitField("", wire or "", role, quantity, maximum)}


def _maximum(quantity: Quantity, wire: str | None = None) -> dict[str, LimitField]:
    return _declared(Role.MAXIMUM, quantity, wire=wire)


def _minimum(quantity: Quantity, maximum: str, wire: str | None = None) -> dict[str, LimitField]:
    return _declared(Role.MINIMUM, quantity, maximum=maximum, wire=wire)


def _present(quantity: Quantity) -> dict[str, LimitField]:
    return _declared(Role.PRESENT, quantity)


def _exact(wire: str | None = None) -> dict[str, LimitField]:
    return _declared(Role.EXACT, wire=wire)


@dataclass(frozen=True, slots=True)
class PerPhase:
    l1: float
    l2: float
    l3: float

    @classmethod
    def uniform(cls, value: float, phases: int) -> PerPhase:
        """`value` on each phase in use, 0 on the others."""
        return cls(value, value if phases >= 2 else 0.0, value if phases >= 3 else 0.0)


PHASES = ("l1", "l2", "l3")
"""PerPhase's fields, as Josev names them too."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DcLimits:
    present_voltage: float = field(metadata=_present(Quantity.VOLTAGE))
    present_current: float = field(metadata=_present(Quantity.CURRENT))
    max_current: float = field(metadata=_maximum(Quantity.CURRENT))
    min_current: float = field(metadata=_minimum(Quantity.CURRENT, "max_current"))
    max_voltage: float = field(metadata=_maximum(Quantity.VOLTAGE))
    min_voltage: float = field(metadata=_minimum(Quantity.VOLTAGE, "max_voltage"))
    max_power: float = field(metadata=_maximum(Quantity.POWER))
    peak_current_ripple: float = field(metadata=_exact())
    current_reg_tolerance: float | None = field(default=None, metadata=_exact())
    energy_to_be_delivered: float | None = field(default=None, metadata=_exact())
    power_ramp_limit: float | None = field(
        default=None, metadata=_exact(wire="evse_power_ramp_limit")
    )
    isolation_status: IsolationStatus | None = field(default=None, metadata=_exact())


@dataclass(frozen=True, slots=True, kw_only=True)
class DcBptLimits:
    max_discharge_power: float = field(
        metadata=_maximum(Quantity.POWER, wire="evse_max_discharge_power")
    )
    min_discharge_power: float = field(
        metadata=_minimum(Quantity.POWER, "max_discharge_power", wire="evse_min_discharge_power")
    )
    max_discharge_current: float = field(
        metadata=_maximum(Quantity.CURRENT, wire="evse_max_discharge_current")
    )
    min_discharge_current: float = field(
        metadata=_minimum(
            Quantity.CURRENT, "max_discharge_current", wire="evse_min_discharge_current"
        )
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AcLimits:
    max_current: PerPhase = field(metadata=_maximum(Quantity.CURRENT))
    nominal_voltage: float = field(metadata=_exact())
    rcd_error: bool = field(metadata=_exact())


@dataclass(frozen=True, slots=True, kw_only=True)
class AcBptLimits:
    max_discharge_power: PerPhase = field(
        metadata=_maximum(Quantity.POWER, wire="evse_max_discharge_power")
    )
    min_discharge_power: PerPhase = field(
        metadata=_minimum(Quantity.POWER, "max_discharge_power", wire="evse_min_discharge_power")
    )


LimitBlock = DcLimits | DcBptLimits | AcLimits | AcBptLimits

BLOCKS = ("ac", "ac_bpt", "dc", "dc_bpt")
"""EvseSnapshot's limit blocks, in the order Josev's entry carries them."""


def limit_fields(block: type[LimitBlock]) -> tuple[LimitField, ...]:
    """The fields of a limit block with what each declares, in declaration (and wire) order."""
    return _LIMIT_FIELDS[block]


def _read_declarations(block: type[LimitBlock]) -> tuple[LimitField, ...]:
    declared = []
    for each in fields(block):
        spec: LimitField = each.metadata[_LIMIT]
        declared.append(dataclasses.replace(spec, name=each.name, wire=spec.wire or each.name))
    return tuple(declared)


_LIMIT_FIELDS: dict[type[LimitBlock], tuple[LimitField, ...]] = {
    block: _read_declarations(block) for block in (DcLimits, DcBptLimits, AcLimits, AcBptLimits)
}


@dataclass(frozen=True, slots=True, kw_only=True)
class EvseSnapshot:
    """Everything cs_status_and_limits says about one EVSE. BPT blocks go with their twin."""

    evse_id: str
    status_code: StatusCode
    dc: DcLimits | None = None
    dc_bpt: DcBptLimits | None = None
    ac: AcLimits | None = None
    ac_bpt: AcBptLimits | None = None

    def __post_init__(self) -> None:
        if self.dc is None and self.ac is None:
            msg = f"EVSE {self.evse_id}: needs an ac or a dc block"
            raise ValueError(msg)
        if self.dc_bpt is not None and self.dc is None:
            msg = f"EVSE {self.evse_id}: dc_bpt never travels without dc"
            raise ValueError(msg)
        if self.ac_bpt is not None and self.ac is None:
            msg = f"EVSE {self.evse_id}: ac_bpt never travels without ac"
            raise ValueError(msg)
