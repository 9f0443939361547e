"""Pure arithmetic that turns readings and configuration into what Josev is told: composition,
the module stack, derating, isolation, status, bounds, the update gate, setpoint clamps, the
snapshot model, the pilot's duty cycle, a shared module pool's allocation.

Imports sources (readings) and config.
"""

from __future__ import annotations

from csbridge.limits.allocation import (
    Allocation,
    Assignment,
    Bank,
    Bound,
    Demand,
    EvseState,
    PoolModule,
    Share,
    Why,
    allocate,
    pool_banks,
)
from csbridge.limits.bounds import LimitSource
from csbridge.limits.compose import (
    Composition,
    EvseComposer,
    EvseInputs,
    ExternalInForce,
    external_in_force,
    fresh_meter,
)
from csbridge.limits.gate import GateSettings, UpdateGate
from csbridge.limits.model import (
    BLOCKS,
    PHASES,
    AcBptLimits,
    AcLimits,
    DcBptLimits,
    DcLimits,
    EvseSnapshot,
    IsolationStatus,
    LimitBlock,
    LimitField,
    PerPhase,
    Quantity,
    Role,
    StatusCode,
    limit_fields,
)
from csbridge.limits.pilot import duty_percent, offered_current_a
from csbridge.limits.pool_scope import PoolScope
from csbridge.limits.ramp import ZERO, Ceilings, Step, ramp_step
from csbridge.limits.setpoint import (
    DEFAULT_WATCHDOG_S,
    AcDischargeRequest,
    DcRequest,
    Refused,
    Setpoint,
    ac_discharge_power,
    dc_setpoint,
    direction_ceiling,
    fewest_modules,
    module_contacts,
    watchdog_or_default,
)
from csbridge.limits.stack import Absence

__all__ = [
    "BLOCKS",
    "DEFAULT_WATCHDOG_S",
    "PHASES",
    "ZERO",
    "Absence",
    "AcBptLimits",
    "AcDischargeRequest",
    "AcLimits",
    "Allocation",
    "Assignment",
    "Bank",
    "Bound",
    "Ceilings",
    "Composition",
    "DcBptLimits",
    "DcLimits",
    "DcRequest",
    "Demand",
    "EvseComposer",
    "EvseInputs",
    "EvseSnapshot",
    "EvseState",
    "ExternalInForce",
    "GateSettings",
    "IsolationStatus",
    "LimitBlock",
    "LimitField",
    "LimitSource",
    "PerPhase",
    "PoolModule",
    "PoolScope",
    "Quantity",
    "Refused",
    "Role",
    "Setpoint",
    "Share",
    "StatusCode",
    "Step",
    "UpdateGate",
    "Why",
    "ac_discharge_power",
    "allocate",
    "dc_setpoint",
    "direction_ceiling",
    "duty_percent",
    "external_in_force",
    "fewest_modules",
    "fresh_meter",
    "limit_fields",
    "module_contacts",
    "offered_current_a",
    "pool_banks",
    "ramp_step",
    "watchdog_or_default",
]
