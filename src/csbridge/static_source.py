"""Limits straight from the configuration: the station before any live source reports."""

from __future__ import annotations

from csbridge.config import EvseConfig, Kind
from csbridge.model import (
    AcBptLimits,
    AcLimits,
    DcBptLimits,
    DcLimits,
    EvseSnapshot,
    IsolationStatus,
    PerPhase,
    StatusCode,
)


def static_snapshot(evse: EvseConfig) -> EvseSnapshot:
    """The configured limits, status evse_ready, nothing flowing, no IMD known."""
    if evse.kind is Kind.DC:
        return _dc_snapshot(evse)
    return _ac_snapshot(evse)


def _dc_snapshot(evse: EvseConfig) -> EvseSnapshot:
    limits = evse.dc_limits
    assert limits is not None  # guaranteed by EvseConfig's kind check
    dc = DcLimits(
        present_voltage=0.0,
        present_current=0.0,
        max_current=limits.max_current_a,
        min_current=limits.min_current_a,
        max_voltage=limits.max_voltage_v,
        min_voltage=limits.min_voltage_v,
        max_power=limits.max_power_w,
        peak_current_ripple=limits.peak_current_ripple_a,
        current_reg_tolerance=limits.current_reg_tolerance_a,
        energy_to_be_delivered=limits.energy_to_be_delivered_wh,
        power_ramp_limit=limits.power_ramp_limit_w_per_s,
        isolation_status=IsolationStatus.NO_IMD,
    )
    bpt = None
    if evse.dc_bpt_limits is not None:
        b = evse.dc_bpt_limits
        bpt = DcBptLimits(
            max_discharge_power=b.max_discharge_power_w,
            min_discharge_power=b.min_discharge_power_w,
            max_discharge_current=b.max_discharge_current_a,
            min_discharge_current=b.min_discharge_current_a,
        )
    return EvseSnapshot(evse_id=evse.evse_id, status_code=StatusCode.EVSE_READY, dc=dc, dc_bpt=bpt)


def _ac_snapshot(evse: EvseConfig) -> EvseSnapshot:
    limits = evse.ac_limits
    assert limits is not None  # EvseConfig's kind check
    assert evse.nominal_voltage is not None
    ac = AcLimits(
        max_current=PerPhase.uniform(limits.max_current_a, evse.phases),
        nominal_voltage=float(evse.nominal_voltage),
        rcd_error=False,
    )
    bpt = None
    if evse.ac_bpt_limits is not None:
        b = evse.ac_bpt_limits
        bpt = AcBptLimits(
            max_discharge_power=PerPhase.uniform(b.max_discharge_power_w, evse.phases),
            min_discharge_power=PerPhase.uniform(b.min_discharge_power_w, evse.phases),
        )
    return EvseSnapshot(evse_id=evse.evse_id, status_code=StatusCode.EVSE_READY, ac=ac, ac_bpt=bpt)
