"""What the bridge builds from config and snapshots meets Josev's rules for every EVSE variant."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from csbridge.config import Config
from csbridge.engine.engine import LimitsEngine
from csbridge.engine.payloads import cs_parameters_data, evse_entry
from csbridge.engine.rounding import rounded
from csbridge.limits.model import (
    AcBptLimits,
    AcLimits,
    DcBptLimits,
    DcLimits,
    EvseSnapshot,
    PerPhase,
    StatusCode,
)
from csbridge.messages.envelope import MessageType, check_document, new_message_id
from csbridge.messages.registry import SchemaRegistry
from tests.support import examples, station_config, walk

REGISTRY = SchemaRegistry()


def _as_message(name: str, message_type: MessageType, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": new_message_id(), "name": name, "type": message_type.value, "data": data}


def _config() -> Config:
    return station_config("mqtt://127.0.0.1:1883", "unit")


def test_cs_parameters_counts_its_evses_and_pairs_bpt_with_its_twin() -> None:
    data = cs_parameters_data(_config())
    assert data["number_of_evses"] == len(data["parameters"]) == 2
    dc_services = data["parameters"][0]["connectors"][0]["services"]
    ac_services = data["parameters"][1]["connectors"][0]["services"]
    assert dc_services["dc"] == {"connector_type": "DC_extended", "control_mode": "dynamic"}
    assert dc_services["dc_bpt"]["bpt_channel"] == "unified"
    assert ac_services["ac"]["nominal_voltage"] == 230
    assert "ac_bpt" in ac_services
    check_document(REGISTRY, _as_message("cs_parameters", MessageType.RESPONSE, data))


def test_no_null_anywhere_in_what_is_sent() -> None:
    config = _config()
    entries = LimitsEngine(config).entries.values()
    for data in (cs_parameters_data(config), {"evses": entries}):
        assert all(value is not None for _, value in walk(data))


def test_single_phase_ac_reports_zero_on_unused_phases() -> None:
    snapshot = EvseSnapshot(
        evse_id="AC1",
        status_code=StatusCode.EVSE_READY,
        ac=AcLimits(max_current=PerPhase.uniform(16.0, 1), nominal_voltage=230.0, rcd_error=False),
    )
    assert evse_entry(rounded(snapshot))["ac"]["max_current"] == {"l1": 16.0, "l2": 0.0, "l3": 0.0}


limits = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
# Drawn by the composite below: built once here, not again for every draw (hypothesis checks
# each new strategy before its first use).
kinds = st.sampled_from(["ac", "ac_bpt", "dc", "dc_bpt"])
statuses = st.sampled_from(list(StatusCode))
present_currents = st.floats(-1e4, 1e4)
maybe_limits = st.none() | limits
phases = st.builds(PerPhase, limits, limits, limits)
flags = st.booleans()


@st.composite
def snapshots(draw: st.DrawFn) -> EvseSnapshot:
    kind = draw(kinds)
    status = draw(statuses)
    if kind.startswith("dc"):
        dc = DcLimits(
            present_voltage=draw(limits),
            present_current=draw(present_currents),
            max_current=draw(limits),
            min_current=draw(limits),
            max_voltage=draw(limits),
            min_voltage=draw(limits),
            max_power=draw(limits),
            peak_current_ripple=draw(limits),
            current_reg_tolerance=draw(maybe_limits),
            energy_to_be_delivered=draw(maybe_limits),
        )
        bpt = None
        if kind == "dc_bpt":
            bpt = DcBptLimits(
                max_discharge_power=draw(limits),
                min_discharge_power=draw(limits),
                max_discharge_current=draw(limits),
                min_discharge_current=draw(limits),
            )
        return EvseSnapshot(evse_id="DC", status_code=status, dc=dc, dc_bpt=bpt)
    ac = AcLimits(max_current=draw(phases), nominal_voltage=draw(limits), rcd_error=draw(flags))
    ac_bpt = (
        AcBptLimits(max_discharge_power=draw(phases), min_discharge_power=draw(phases))
        if kind == "ac_bpt"
        else None
    )
    return EvseSnapshot(evse_id="AC", status_code=status, ac=ac, ac_bpt=ac_bpt)


@settings(max_examples=examples(2000), deadline=None)
@given(snapshots())
def test_every_snapshot_becomes_a_valid_message_rounded_to_the_safe_side(
    snapshot: EvseSnapshot,
) -> None:
    entry = evse_entry(rounded(snapshot))
    for message_type in (MessageType.RESPONSE, MessageType.UPDATE):
        check_document(
            REGISTRY, _as_message("cs_status_and_limits", message_type, {"evses": [entry]})
        )
    if snapshot.dc is not None:
        dc = entry["dc"]
        assert dc["max_current"] <= snapshot.dc.max_current
        assert dc["max_voltage"] <= snapshot.dc.max_voltage
        assert dc["max_power"] <= snapshot.dc.max_power
        assert dc["min_current"] <= dc["max_current"]
        assert dc["min_voltage"] <= dc["max_voltage"]
    if snapshot.dc_bpt is not None:
        bpt = entry["dc_bpt"]
        assert bpt["evse_max_discharge_power"] <= snapshot.dc_bpt.max_discharge_power
        assert bpt["evse_max_discharge_current"] <= snapshot.dc_bpt.max_discharge_current
        assert bpt["evse_min_discharge_current"] <= bpt["evse_max_discharge_current"]
    if snapshot.ac is not None:
        for phase in ("l1", "l2", "l3"):
            assert entry["ac"]["max_current"][phase] <= getattr(snapshot.ac.max_current, phase)
    if snapshot.ac_bpt is not None:
        for phase in ("l1", "l2", "l3"):
            maximum = entry["ac_bpt"]["evse_max_discharge_power"][phase]
            assert maximum <= getattr(snapshot.ac_bpt.max_discharge_power, phase)
            assert entry["ac_bpt"]["evse_min_discharge_power"][phase] <= maximum
