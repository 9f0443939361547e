"""The data of cs_parameters and cs_status_and_limits, built from config and rounded snapshots.

This is the edge: a rounded snapshot (see rounding.py) becomes a JSON entry only here, when a
message for the wire is built. Optional fields that have no value are left out, never sent as
null.
"""

from __future__ import annotations

from typing import Any

import csbridge.messages as wire
from csbridge.config import Config, EvseConfig, Kind
from csbridge.engine.rounding import RoundedSnapshot
from csbridge.limits import AcBptLimits, AcLimits, DcBptLimits, DcLimits, PerPhase
from csbridge.messages import ABSENT, Absent

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


def wire_entry(snapshot: RoundedSnapshot) -> wire.EvseStatusAndLimits:
    """The snapshot as its cs_status_and_limits entry: Josev's names, optional fields that have
    no value absent (left out of the JSON, never sent as null)."""
    return wire.EvseStatusAndLimits(
        evse_id=snapshot.evse_id,
        status_code=snapshot.status_code.value,
        ac=_ac(snapshot.ac) if snapshot.ac is not None else ABSENT,
        ac_bpt=_ac_bpt(snapshot.ac_bpt) if snapshot.ac_bpt is not None else ABSENT,
        dc=_dc(snapshot.dc) if snapshot.dc is not None else ABSENT,
        dc_bpt=_dc_bpt(snapshot.dc_bpt) if snapshot.dc_bpt is not None else ABSENT,
    )


def evse_entry(snapshot: RoundedSnapshot) -> JsonObject:
    """The snapshot's cs_status_and_limits entry as the JSON document the wire carries."""
    return wire_entry(snapshot).to_json()


def _absent_if_none(value: float | None) -> float | Absent:
    return ABSENT if value is None else value


def _dc(dc: DcLimits) -> wire.DcLimits:
    return wire.DcLimits(
        present_voltage=dc.present_voltage,
        present_current=dc.present_current,
        max_current=dc.max_current,
        min_current=dc.min_current,
        max_voltage=dc.max_voltage,
        min_voltage=dc.min_voltage,
        max_power=dc.max_power,
        peak_current_ripple=dc.peak_current_ripple,
        current_reg_tolerance=_absent_if_none(dc.current_reg_tolerance),
        energy_to_be_delivered=_absent_if_none(dc.energy_to_be_delivered),
        evse_power_ramp_limit=_absent_if_none(dc.power_ramp_limit),
        isolation_status=(dc.isolation_status.value if dc.isolation_status is not None else ABSENT),
    )


def _dc_bpt(bpt: DcBptLimits) -> wire.DcBptLimits:
    return wire.DcBptLimits(
        evse_max_discharge_power=bpt.max_discharge_power,
        evse_min_discharge_power=bpt.min_discharge_power,
        evse_max_discharge_current=bpt.max_discharge_current,
        evse_min_discharge_current=bpt.min_discharge_current,
    )


def _phases(values: PerPhase) -> wire.PerPhase:
    return wire.PerPhase(l1=values.l1, l2=values.l2, l3=values.l3)


def _ac(ac: AcLimits) -> wire.AcLimits:
    return wire.AcLimits(
        max_current=_phases(ac.max_current),
        nominal_voltage=ac.nominal_voltage,
        rcd_error=ac.rcd_error,
    )


def _ac_bpt(bpt: AcBptLimits) -> wire.AcBptLimits:
    return wire.AcBptLimits(
        evse_max_discharge_power=_phases(bpt.max_discharge_power),
        evse_min_discharge_power=_phases(bpt.min_discharge_power),
    )
