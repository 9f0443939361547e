"""What Josev is told about one EVSE at one moment: status code and limit blocks, typed."""

from __future__ import annotations

import enum
from dataclasses import dataclass


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


@dataclass(frozen=True, slots=True)
class PerPhase:
    l1: float
    l2: float
    l3: float

    @classmethod
    def uniform(cls, value: float, phases: int) -> PerPhase:
        """`value` on each phase in use, 0 on the others."""
        return cls(value, value if phases >= 2 else 0.0, value if phases >= 3 else 0.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class DcLimits:
    present_voltage: float
    present_current: float
    max_current: float
    min_current: float
    max_voltage: float
    min_voltage: float
    max_power: float
    peak_current_ripple: float
    current_reg_tolerance: float | None = None
    energy_to_be_delivered: float | None = None
    power_ramp_limit: float | None = None
    isolation_status: IsolationStatus | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DcBptLimits:
    max_discharge_power: float
    min_discharge_power: float
    max_discharge_current: float
    min_discharge_current: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AcLimits:
    max_current: PerPhase
    nominal_voltage: float
    rcd_error: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AcBptLimits:
    max_discharge_power: PerPhase
    min_discharge_power: PerPhase


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
