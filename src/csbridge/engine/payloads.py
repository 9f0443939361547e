"""The data of cs_parameters and cs_status_and_limits, built from config and snapshots.

Limits are rounded here, on the way out, to the safe side (see rounding.py); optional fields
that have no value are left out, never sent as null.
"""

from __future__ import annotations

from typing import Any

from csbridge.config import Config, EvseConfig, Kind
from csbridge.engine.rounding import (
    CURRENT_STEP,
    POWER_STEP,
    VOLTAGE_STEP,
    ceil_to,
    floor_to,
    nearest,
)
from csbridge.limits import AcBptLimits, AcLimits, DcBptLimits, DcLimits, EvseSnapshot, PerPhase

JsonObject = dict[str, Any]


def cs_parameters_data(config: Config) -> JsonObject:
    parameters = [_evse_parameters(evse) for evse in config.evse]
    return {
        "sw_version": config.station.sw_version,
        "hw_version": config.station.hw_version,
        "number_of_evses": len(parameters),
        "parameters": parameters,
    }


def _evse_parameters(evse: EvseConfig) -> JsonObject:
    return {
        "evse_id": evse.evse_id,
        "supports_eim": evse.supports_eim,
        "network_interface": evse.network_interface,
        "connectors": [
            {"id": connector.id, "services": _services(evse, connector.connector_type)}
            for connector in evse.connectors
        ],
    }


def _services(evse: EvseConfig, connector_type: str) -> JsonObject:
    key = "ac" if evse.kind is Kind.AC else "dc"
    base: JsonObject = {"connector_type": connector_type}
    if evse.kind is Kind.AC:
        base["nominal_voltage"] = evse.nominal_voltage
    if evse.control_mode is not None:
        base["control_mode"] = evse.control_mode
    services: JsonObject = {key: base}
    if evse.bpt:
        bpt = dict(base)
        for field in ("bpt_channel", "generator_mode", "grid_island_detection_mode"):
            value = getattr(evse, field)
            if value is not None:
                bpt[field] = value
        services[f"{key}_bpt"] = bpt
    return services


def evse_entry(snapshot: EvseSnapshot) -> JsonObject:
    entry: JsonObject = {"evse_id": snapshot.evse_id, "status_code": snapshot.status_code.value}
    if snapshot.ac is not None:
        entry["ac"] = _ac(snapshot.ac)
    if snapshot.ac_bpt is not None:
        entry["ac_bpt"] = _ac_bpt(snapshot.ac_bpt)
    if snapshot.dc is not None:
        entry["dc"] = _dc(snapshot.dc)
    if snapshot.dc_bpt is not None:
        entry["dc_bpt"] = _dc_bpt(snapshot.dc_bpt)
    return entry


def _max_min(maximum: float, minimum: float, step: Any) -> tuple[float, float]:
    """Round a max/min pair to the safe side without letting the minimum pass the maximum."""
    high = floor_to(maximum, step)
    low = ceil_to(minimum, step)
    return high, min(low, high)


def _dc(dc: DcLimits) -> JsonObject:
    max_current, min_current = _max_min(dc.max_current, dc.min_current, CURRENT_STEP)
    max_voltage, min_voltage = _max_min(dc.max_voltage, dc.min_voltage, VOLTAGE_STEP)
    block: JsonObject = {
        "present_voltage": nearest(dc.present_voltage, VOLTAGE_STEP),
        "present_current": nearest(dc.present_current, CURRENT_STEP),
        "max_current": max_current,
        "min_current": min_current,
        "max_voltage": max_voltage,
        "min_voltage": min_voltage,
        "max_power": floor_to(dc.max_power, POWER_STEP),
        # Ripple and tolerance are promises about our own regulation: a larger figure is the
        # honest side, so they round up.
        "peak_current_ripple": ceil_to(dc.peak_current_ripple, CURRENT_STEP),
    }
    if dc.current_reg_tolerance is not None:
        block["current_reg_tolerance"] = ceil_to(dc.current_reg_tolerance, CURRENT_STEP)
    if dc.energy_to_be_delivered is not None:
        block["energy_to_be_delivered"] = floor_to(dc.energy_to_be_delivered, POWER_STEP)
    if dc.power_ramp_limit is not None:
        block["evse_power_ramp_limit"] = floor_to(dc.power_ramp_limit, POWER_STEP)
    if dc.isolation_status is not None:
        block["isolation_status"] = dc.isolation_status.value
    return block


def _dc_bpt(bpt: DcBptLimits) -> JsonObject:
    max_power, min_power = _max_min(bpt.max_discharge_power, bpt.min_discharge_power, POWER_STEP)
    max_current, min_current = _max_min(
        bpt.max_discharge_current, bpt.min_discharge_current, CURRENT_STEP
    )
    return {
        "evse_max_discharge_power": max_power,
        "evse_min_discharge_power": min_power,
        "evse_max_discharge_current": max_current,
        "evse_min_discharge_current": min_current,
    }


def _phases(values: PerPhase, rounder: Any, step: Any) -> JsonObject:
    return {
        "l1": rounder(values.l1, step),
        "l2": rounder(values.l2, step),
        "l3": rounder(values.l3, step),
    }


def _ac(ac: AcLimits) -> JsonObject:
    return {
        "max_current": _phases(ac.max_current, floor_to, CURRENT_STEP),
        "nominal_voltage": nearest(ac.nominal_voltage, VOLTAGE_STEP),
        "rcd_error": ac.rcd_error,
    }


def _ac_bpt(bpt: AcBptLimits) -> JsonObject:
    maximum = _phases(bpt.max_discharge_power, floor_to, POWER_STEP)
    minimum = _phases(bpt.min_discharge_power, ceil_to, POWER_STEP)
    return {
        "evse_max_discharge_power": maximum,
        "evse_min_discharge_power": {
            phase: min(minimum[phase], maximum[phase]) for phase in maximum
        },
    }
