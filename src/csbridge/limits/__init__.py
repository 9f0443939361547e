"""Pure arithmetic that turns readings and configuration into what Josev is told: composition,
the module stack, derating, isolation, status, bounds, the update gate, setpoint clamps, the
snapshot model.

Imports sources (readings) and config.
"""

from __future__ import annotations

from csbridge.limits.compose import (
    Composition,
    EvseComposer,
    EvseInputs,
    ExternalInForce,
    external_in_force,
)
from csbridge.limits.gate import GateSettings, UpdateGate
from csbridge.limits.model import (
    AcBptLimits,
    AcLimits,
    DcBptLimits,
    DcLimits,
    EvseSnapshot,
    PerPhase,
    StatusCode,
)
from csbridge.limits.setpoint import (
    DcRequest,
    Refused,
    Setpoint,
    dc_setpoint,
    module_contacts,
    watchdog_or_default,
)
from csbridge.limits.stack import Absence

__all__ = [
    "Absence",
    "AcBptLimits",
    "AcLimits",
    "Composition",
    "DcBptLimits",
    "DcLimits",
    "DcRequest",
    "EvseComposer",
    "EvseInputs",
    "EvseSnapshot",
    "ExternalInForce",
    "GateSettings",
    "PerPhase",
    "Refused",
    "Setpoint",
    "StatusCode",
    "UpdateGate",
    "dc_setpoint",
    "external_in_force",
    "module_contacts",
    "watchdog_or_default",
]
