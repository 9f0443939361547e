"""When a computed entry becomes what Josev is told: at once, after settling, or not at all."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csbridge.engine.payloads import evse_entry
from csbridge.engine.rounding import RoundedSnapshot, rounded
from csbridge.limits.bounds import LimitSource
from csbridge.limits.compose import EvseComposer, EvseInputs
from csbridge.limits.gate import GateSettings, Reported, UpdateGate
from csbridge.limits.model import (
    AcLimits,
    DcBptLimits,
    DcLimits,
    EvseSnapshot,
    IsolationStatus,
    PerPhase,
    Quantity,
    StatusCode,
)
from csbridge.sources.readings import (
    BoardReading,
    Capability,
    ExternalLimit,
    ImdReading,
    ModuleReading,
)
from tests.support import examples, station_config

S = LimitSource
Entry = dict[str, Any]

SETTINGS = GateSettings(
    settle_s=1.0,
    hysteresis_fraction=0.02,
    hysteresis_current=1.0,
    hysteresis_power=500.0,
    hysteresis_voltage=1.0,
    min_interval_s=0.25,  # binary-exact, so time differences compare exactly
    present_voltage_deadband=2.0,
    present_current_deadband=1.0,
)
BINDING = {
    "max_current": S.HARDWARE,
    "max_power": S.HARDWARE,
    "max_voltage": S.HARDWARE,
    "min_voltage": S.HARDWARE,
    "min_current": S.HARDWARE,
}
T0 = 10.0


def dc_entry(status: str = "evse_ready", **dc: Any) -> RoundedSnapshot:
    """A snapshot as the engine offers it (rounded), for a DC EVSE; max_current 200 A unless
    told. Fields as cs_status_and_limits names them."""
    block: Entry = {
        "present_voltage": 0.0,
        "present_current": 0.0,
        "max_current": 200.0,
        "min_current": 1.0,
        "max_voltage": 920.0,
        "min_voltage": 150.0,
        "max_power": 100_000,
        "peak_current_ripple": 2.0,
        "current_reg_tolerance": 5.0,
        "isolation_status": "valid",
    }
    block.update(dc)
    block["isolation_status"] = IsolationStatus(block["isolation_status"])
    return RoundedSnapshot(
        EvseSnapshot(evse_id="DE*CSB*E0001", status_code=StatusCode(status), dc=DcLimits(**block))
    )


def ac_entry(l1: float = 32.0, l2: float = 32.0, l3: float = 32.0) -> RoundedSnapshot:
    return RoundedSnapshot(
        EvseSnapshot(
            evse_id="DE*CSB*E0002",
            status_code=StatusCode.EVSE_READY,
            ac=AcLimits(max_current=PerPhase(l1, l2, l3), nominal_voltage=230.0, rcd_error=False),
        )
    )


def entry_of(reported: Reported) -> Entry:
    """What Josev is told: the reported snapshot as its cs_status_and_limits entry."""
    return evse_entry(RoundedSnapshot(reported.limits))


def binding(**changes: LimitSource) -> dict[str, LimitSource]:
    return {**BINDING, **changes}


def started(entry: RoundedSnapshot | None = None, at: float = T0) -> UpdateGate:
    gate = UpdateGate(SETTINGS)
    assert gate.offer(entry or dc_entry(), BINDING, at) is not None
    return gate


def reported_dc(gate: UpdateGate) -> Entry:
    assert gate.reported is not None
    block: Entry = entry_of(gate.reported)["dc"]
    return block


def sent(result: Reported | None) -> Reported:
    assert result is not None, "expected an update to go out"
    return result


# -- first offer, urgent changes ------------------------------------------------------------------


def test_first_offer_is_always_sent_as_given() -> None:
    gate = UpdateGate(SETTINGS)
    entry = dc_entry(status="evse_not_ready", max_current=0.0)
    reported = sent(gate.offer(entry, BINDING, T0))
    assert reported.limits == entry
    assert reported.binding == BINDING
    assert gate.reported == reported
    assert gate.last_sent == T0


def test_first_offer_is_a_copy_of_the_computed_entry() -> None:
    gate = UpdateGate(SETTINGS)
    entry = dc_entry()
    gate.offer(entry, BINDING, T0)
    # Snapshots are frozen: what the gate keeps cannot change behind its back.
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(entry.dc, "max_current", 1.0)  # noqa: B010 - the attempt is the test
    assert reported_dc(gate)["max_current"] == 200.0


def test_identical_offer_sends_nothing() -> None:
    gate = started()
    for step in range(1, 20):
        assert gate.offer(dc_entry(), BINDING, T0 + step * 0.5) is None


def test_decrease_of_a_maximum_is_sent_at_once_even_within_the_rate_cap() -> None:
    gate = started()
    reported = sent(gate.offer(dc_entry(max_current=150.0), binding(max_current=S.EXTERNAL), 10.01))
    assert entry_of(reported)["dc"]["max_current"] == 150.0
    assert reported.binding["max_current"] is S.EXTERNAL
    assert gate.last_sent == 10.01


def test_tiny_decrease_inside_the_hysteresis_is_still_sent_at_once() -> None:
    gate = started()
    reported = sent(gate.offer(dc_entry(max_current=199.9), BINDING, 10.01))
    assert entry_of(reported)["dc"]["max_current"] == 199.9


def test_back_to_back_decreases_are_never_delayed() -> None:
    gate = started()
    for index, value in enumerate((190.0, 180.0, 170.0, 160.0)):
        now = T0 + (index + 1) * 0.001
        assert (
            entry_of(sent(gate.offer(dc_entry(max_current=value), BINDING, now)))["dc"][
                "max_current"
            ]
            == value
        )


def test_increase_of_a_minimum_is_sent_at_once() -> None:
    gate = started()
    reported = sent(gate.offer(dc_entry(min_voltage=200.0), BINDING, 10.01))
    assert entry_of(reported)["dc"]["min_voltage"] == 200.0


def test_ac_decrease_on_one_phase_is_sent_at_once() -> None:
    gate = started(ac_entry())
    reported = sent(gate.offer(ac_entry(l2=16.0), {"max_current": S.TEMPERATURE}, 10.01))
    assert entry_of(reported)["ac"]["max_current"] == {"l1": 32.0, "l2": 16.0, "l3": 32.0}
    assert reported.binding["max_current"] is S.TEMPERATURE


def test_urgent_update_carries_only_settled_or_tightened_limits() -> None:
    gate = started()
    assert gate.offer(dc_entry(max_current=230.0), BINDING, 10.5) is None
    reported = sent(gate.offer(dc_entry(max_current=230.0, max_power=90_000), BINDING, 10.6))
    assert entry_of(reported)["dc"]["max_power"] == 90_000
    assert entry_of(reported)["dc"]["max_current"] == 200.0  # still settling


# -- increases: hysteresis and settling -----------------------------------------------------------


def test_increase_within_the_hysteresis_is_never_sent() -> None:
    gate = started()  # hysteresis at 200 A: max(1 A, 2 % of 200 A) = 4 A
    for step in range(1, 100):
        assert gate.offer(dc_entry(max_current=204.0), BINDING, T0 + step * 0.25) is None
    assert reported_dc(gate)["max_current"] == 200.0


def test_power_increase_within_its_absolute_hysteresis_is_never_sent() -> None:
    gate = started(dc_entry(max_power=10_000))  # max(500 W, 200 W) = 500 W
    for step in range(1, 20):
        assert gate.offer(dc_entry(max_power=10_500), BINDING, T0 + step * 0.5) is None


def test_increase_beyond_hysteresis_is_held_for_settle_s_then_released_at_its_minimum() -> None:
    gate = started()
    assert gate.offer(dc_entry(max_current=230.0), BINDING, 11.0) is None
    assert gate.offer(dc_entry(max_current=215.0), BINDING, 11.25) is None
    assert gate.offer(dc_entry(max_current=240.0), BINDING, 11.5) is None
    assert gate.offer(dc_entry(max_current=240.0), BINDING, 11.75) is None
    assert gate.offer(dc_entry(max_current=240.0), BINDING, 11.9375) is None
    reported = sent(gate.offer(dc_entry(max_current=235.0), BINDING, 12.0))
    assert entry_of(reported)["dc"]["max_current"] == 215.0
    # the next step up settles from the new reported value
    assert gate.offer(dc_entry(max_current=235.0), BINDING, 12.25) is None
    assert gate.offer(dc_entry(max_current=235.0), BINDING, 13.0) is None
    later = sent(gate.offer(dc_entry(max_current=235.0), BINDING, 13.25))
    assert entry_of(later)["dc"]["max_current"] == 235.0


def test_increase_that_dips_back_inside_the_hysteresis_restarts_the_settle_clock() -> None:
    gate = started()
    assert gate.offer(dc_entry(max_current=230.0), BINDING, 11.0) is None
    assert gate.offer(dc_entry(max_current=203.0), BINDING, 11.25) is None  # inside 4 A
    assert gate.offer(dc_entry(max_current=230.0), BINDING, 11.5) is None  # clock restarts
    assert gate.offer(dc_entry(max_current=230.0), BINDING, 12.0) is None  # old clock: due
    assert gate.offer(dc_entry(max_current=230.0), BINDING, 12.25) is None
    reported = sent(gate.offer(dc_entry(max_current=230.0), BINDING, 12.5))
    assert entry_of(reported)["dc"]["max_current"] == 230.0


def test_increase_interrupted_by_a_decrease_restarts_the_settle_clock() -> None:
    gate = started()
    assert gate.offer(dc_entry(max_current=230.0), BINDING, 11.0) is None
    assert (
        entry_of(sent(gate.offer(dc_entry(max_current=190.0), BINDING, 11.5)))["dc"]["max_current"]
        == 190.0
    )
    assert gate.offer(dc_entry(max_current=230.0), BINDING, 11.75) is None
    assert gate.offer(dc_entry(max_current=230.0), BINDING, 12.5) is None
    assert (
        entry_of(sent(gate.offer(dc_entry(max_current=230.0), BINDING, 12.75)))["dc"]["max_current"]
        == 230.0
    )


def test_settled_increase_waits_for_the_rate_cap_and_keeps_its_minimum() -> None:
    gate = started()
    assert gate.offer(dc_entry(max_current=230.0), BINDING, 11.0) is None
    assert sent(gate.offer(dc_entry(max_current=230.0, max_power=90_000), BINDING, 11.875))
    # settled at 12.0, but the last send was at 11.875: rate-capped until 12.125
    assert gate.offer(dc_entry(max_current=225.0, max_power=90_000), BINDING, 12.0) is None
    reported = sent(gate.offer(dc_entry(max_current=240.0, max_power=90_000), BINDING, 12.125))
    assert entry_of(reported)["dc"]["max_current"] == 225.0


def test_decrease_of_a_minimum_is_held_and_released_at_the_highest_value_seen() -> None:
    gate = started()  # min_voltage 150 V, hysteresis max(1 V, 3 V) = 3 V
    assert gate.offer(dc_entry(min_voltage=147.0), BINDING, 10.5) is None  # inside 3 V
    assert gate.offer(dc_entry(min_voltage=100.0), BINDING, 11.0) is None
    assert gate.offer(dc_entry(min_voltage=120.0), BINDING, 11.5) is None
    reported = sent(gate.offer(dc_entry(min_voltage=90.0), BINDING, 12.0))
    assert entry_of(reported)["dc"]["min_voltage"] == 120.0


def test_hysteresis_grows_with_the_reported_value() -> None:
    gate = started(dc_entry(max_power=100_000))  # 2 % of 100 kW = 2 kW
    assert gate.offer(dc_entry(max_power=102_000), BINDING, 11.0) is None
    assert gate.offer(dc_entry(max_power=102_000), BINDING, 12.5) is None
    assert gate.offer(dc_entry(max_power=102_001), BINDING, 13.0) is None
    released = sent(gate.offer(dc_entry(max_power=102_001), BINDING, 14.0))
    assert entry_of(released)["dc"]["max_power"] == 102_001


def test_zero_settle_time_releases_an_increase_at_once() -> None:
    gate = UpdateGate(dataclasses.replace(SETTINGS, settle_s=0.0))
    gate.offer(dc_entry(), BINDING, T0)
    reported = sent(gate.offer(dc_entry(max_current=230.0), BINDING, 11.0))
    assert entry_of(reported)["dc"]["max_current"] == 230.0


# -- status and exact fields ----------------------------------------------------------------------


def test_status_change_is_sent_at_once_with_the_full_computed_entry() -> None:
    gate = started()
    assert sent(gate.offer(dc_entry(max_current=150.0), BINDING, 10.0625))
    assert gate.offer(dc_entry(max_current=230.0), BINDING, 10.09375) is None  # settling
    computed = dc_entry(
        status="evse_isolation_monitoring_active",
        max_current=300.0,
        present_current=0.5,
        isolation_status="invalid",
    )
    new_binding = binding(max_current=S.CABLE)
    reported = sent(gate.offer(computed, new_binding, 10.125))
    assert reported.limits == computed
    assert reported.binding == new_binding
    assert gate.last_sent == 10.125


def test_status_change_clears_pending_increases() -> None:
    gate = started()
    assert gate.offer(dc_entry(max_current=230.0), BINDING, 11.0) is None
    sent(gate.offer(dc_entry(status="evse_shutdown", max_current=0.0), BINDING, 11.5))
    sent(gate.offer(dc_entry(max_current=230.0), BINDING, 11.75))  # status back: full entry
    assert reported_dc(gate)["max_current"] == 230.0


@pytest.mark.parametrize(
    ("field", "value"),
    [("isolation_status", "warning"), ("peak_current_ripple", 3.0), ("current_reg_tolerance", 1.0)],
)
def test_exact_field_change_is_sent_at_once(field: str, value: Any) -> None:
    gate = started()
    computed = dc_entry(max_current=230.0, **{field: value})
    reported = sent(gate.offer(computed, BINDING, 10.01))
    assert reported.limits == computed


def test_shape_change_is_sent_at_once_as_computed() -> None:
    gate = started()
    bpt = DcBptLimits(
        max_discharge_power=50_000,
        min_discharge_power=0,
        max_discharge_current=100.0,
        min_discharge_current=1.0,
    )
    computed = RoundedSnapshot(dataclasses.replace(dc_entry(), dc_bpt=bpt))
    assert sent(gate.offer(computed, BINDING, 10.01)).limits == computed


# -- present values -------------------------------------------------------------------------------


def test_present_values_inside_the_deadband_are_not_sent() -> None:
    gate = started()
    assert gate.offer(dc_entry(present_current=0.9, present_voltage=1.9), BINDING, 11.0) is None
    assert gate.offer(dc_entry(present_current=1.0, present_voltage=2.0), BINDING, 12.0) is None
    assert reported_dc(gate)["present_current"] == 0.0


def test_present_value_beyond_the_deadband_is_sent_subject_to_the_rate_cap() -> None:
    gate = started()
    reported = sent(gate.offer(dc_entry(present_current=1.5), BINDING, 10.5))
    assert entry_of(reported)["dc"]["present_current"] == 1.5
    assert gate.offer(dc_entry(present_current=5.0), BINDING, 10.625) is None  # rate cap
    reported = sent(
        gate.offer(dc_entry(present_current=5.0, present_voltage=400.0), BINDING, 10.75)
    )
    assert entry_of(reported)["dc"]["present_current"] == 5.0
    assert entry_of(reported)["dc"]["present_voltage"] == 400.0


def test_present_value_drift_is_measured_from_what_was_reported() -> None:
    gate = started()
    assert gate.offer(dc_entry(present_voltage=1.0), BINDING, 11.0) is None
    assert gate.offer(dc_entry(present_voltage=2.0), BINDING, 12.0) is None
    reported = sent(gate.offer(dc_entry(present_voltage=2.5), BINDING, 13.0))
    assert entry_of(reported)["dc"]["present_voltage"] == 2.5


def test_present_value_rides_along_with_an_urgent_update() -> None:
    gate = started()
    reported = sent(gate.offer(dc_entry(max_current=100.0, present_current=50.0), BINDING, 10.01))
    assert entry_of(reported)["dc"]["present_current"] == 50.0


# -- binding --------------------------------------------------------------------------------------


def test_binding_of_a_held_field_stays_the_previously_reported_binding() -> None:
    gate = started()
    held = binding(max_current=S.EXTERNAL)
    assert gate.offer(dc_entry(max_current=230.0), held, 11.0) is None
    assert gate.reported is not None
    assert gate.reported.binding["max_current"] is S.HARDWARE

    urgent = binding(max_current=S.TEMPERATURE, max_power=S.INSTALLATION)
    reported = sent(gate.offer(dc_entry(max_current=230.0, max_power=90_000), urgent, 11.5))
    assert entry_of(reported)["dc"]["max_current"] == 200.0
    assert reported.binding["max_current"] is S.HARDWARE
    assert reported.binding["max_power"] is S.INSTALLATION

    released = sent(gate.offer(dc_entry(max_current=230.0, max_power=90_000), held, 12.0))
    assert entry_of(released)["dc"]["max_current"] == 230.0
    assert released.binding["max_current"] is S.EXTERNAL


def test_binding_change_without_a_reportable_value_change_is_not_sent() -> None:
    gate = started()
    assert gate.offer(dc_entry(max_current=202.0), binding(max_current=S.CABLE), 11.0) is None
    assert gate.reported is not None
    assert gate.reported.binding["max_current"] is S.HARDWARE


def test_gate_never_reports_a_minimum_above_its_maximum() -> None:
    gate = started()
    reported = sent(gate.offer(dc_entry(max_current=0.5, min_current=0.5), BINDING, 10.5))
    assert entry_of(reported)["dc"]["min_current"] <= entry_of(reported)["dc"]["max_current"]


# -- with composed entries ------------------------------------------------------------------------

NOW = 1000.0
DC = station_config("mqtt://127.0.0.1:1883", "limits-gate").evse[0]


def _module(name: str, at: float) -> ModuleReading:
    return ModuleReading(
        name=name,
        address=int(name[1:]),
        at=at,
        output_voltage=0.0,
        output_current=0.0,
        export=Capability(max_voltage=1000, min_voltage=150, max_current=80, max_power=40_000),
        import_=Capability(max_voltage=1000, min_voltage=150, max_current=60, max_power=30_000),
        temperature_c=35.0,
    )


def _composed(
    now: float, m2_at: float, external: ExternalLimit | None = None
) -> tuple[RoundedSnapshot, dict[str, LimitSource]]:
    inputs = EvseInputs(
        modules={"m1": _module("m1", now), "m2": _module("m2", m2_at), "m3": _module("m3", now)},
        imd=ImdReading(at=now, resistance_ohm=5_000_000.0),
        board=BoardReading(at=now, plug_temperature_c=30.0, evse_temperature_c=30.0),
        external=external,
    )
    composition = EvseComposer(DC).compose(inputs, now)
    return rounded(composition.snapshot), dict(composition.binding)


def test_module_dropout_goes_out_at_once_and_its_return_only_after_settling() -> None:
    gate = UpdateGate(SETTINGS)
    entry, bound = _composed(NOW, NOW)
    assert entry_of(sent(gate.offer(entry, bound, NOW)))["dc"]["max_current"] == 240.0

    entry, bound = _composed(NOW + 0.125, NOW - 3.5)  # m2 silent past its 3 s deadline
    dropped = sent(gate.offer(entry, bound, NOW + 0.125))
    assert entry_of(dropped)["dc"]["max_current"] == 160.0
    assert entry_of(dropped)["dc_bpt"]["evse_max_discharge_current"] == 120.0
    assert dropped.binding["max_current"] is S.MODULE_DROPOUT

    for step in (0.5, 1.0, 1.25):
        entry, bound = _composed(NOW + step, NOW + 0.5)
        assert gate.offer(entry, bound, NOW + step) is None
        assert gate.reported is not None
        assert gate.reported.binding["max_current"] is S.MODULE_DROPOUT

    entry, bound = _composed(NOW + 1.5, NOW + 1.5)
    back = sent(gate.offer(entry, bound, NOW + 1.5))
    assert entry_of(back)["dc"]["max_current"] == 240.0
    assert back.binding["max_current"] is S.HARDWARE


def test_external_pause_never_leaves_a_minimum_above_its_maximum() -> None:
    gate = UpdateGate(SETTINGS)
    pause = ExternalLimit(at=NOW, until=NOW + 100.0, max_current=0.0)
    for step in range(40):
        now = NOW + step * 0.5
        entry, bound = _composed(now, now, pause if step else None)
        gate.offer(entry, bound, now)
    dc = reported_dc(gate)
    assert dc["max_current"] == 0.0
    assert dc["min_current"] <= dc["max_current"]
    assert gate.reported is not None
    bpt = entry_of(gate.reported)["dc_bpt"]
    assert bpt["evse_min_discharge_current"] <= bpt["evse_max_discharge_current"]


# -- properties -----------------------------------------------------------------------------------

STEPS = st.lists(
    st.tuples(
        st.floats(min_value=0.001, max_value=2.0, allow_nan=False),
        st.floats(min_value=0.0, max_value=300.0, allow_nan=False),
        st.floats(min_value=0.0, max_value=300.0, allow_nan=False),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=examples(300))
@given(st.floats(min_value=0.0, max_value=300.0, allow_nan=False), STEPS)
def test_reported_limits_are_never_looser_than_the_latest_computed_ones(
    first: float, steps: list[tuple[float, float, float]]
) -> None:
    gate = UpdateGate(SETTINGS)
    now = T0
    gate.offer(dc_entry(max_current=first, min_voltage=first), BINDING, now)
    computed_maxima = {first}
    computed_minima = {first}
    for delay, maximum, minimum in steps:
        now += delay
        gate.offer(dc_entry(max_current=maximum, min_voltage=minimum), BINDING, now)
        computed_maxima.add(maximum)
        computed_minima.add(minimum)
        block = reported_dc(gate)
        assert block["max_current"] <= maximum
        assert block["min_voltage"] >= minimum
        assert block["max_current"] in computed_maxima
        assert block["min_voltage"] in computed_minima


@settings(max_examples=examples(200))
@given(STEPS)
def test_a_maximum_rises_only_after_settle_s_above_the_hysteresis(
    steps: list[tuple[float, float, float]],
) -> None:
    gate = UpdateGate(SETTINGS)
    now = T0
    gate.offer(dc_entry(), BINDING, now)
    history: list[tuple[float, float]] = [(now, 200.0)]
    for delay, maximum, _ in steps:
        now += delay
        before = reported_dc(gate)["max_current"]
        gate.offer(dc_entry(max_current=maximum), BINDING, now)
        history.append((now, maximum))
        after = reported_dc(gate)["max_current"]
        if after > before:
            window = [value for at, value in history if at >= now - SETTINGS.settle_s]
            assert min(window) >= after
            assert after - before > SETTINGS.hysteresis(Quantity.CURRENT, before)


def test_offered_entries_are_not_mutated() -> None:
    gate = started()
    entry = dc_entry(max_current=230.0, present_current=10.0)
    snapshot = copy.deepcopy(entry)
    gate.offer(entry, BINDING, 11.0)
    gate.offer(entry, BINDING, 12.0)
    assert entry == snapshot


# -- known-good increases (a shared pool's confirmed module move, issue 18) ----------------------


def test_a_known_good_increase_goes_out_at_once_even_within_the_rate_cap() -> None:
    gate = started(dc_entry(max_power=90_000, max_current=225.0))
    reported = sent(
        gate.offer(dc_entry(max_power=120_000, max_current=300.0), BINDING, 10.01, known_good=True)
    )
    assert reported_dc(gate)["max_power"] == 120_000
    assert reported_dc(gate)["max_current"] == 300.0
    assert entry_of(reported)["dc"]["max_power"] == 120_000
    assert not gate.last_tightened, "a raise: a decrease after it need not wait behind it"


def test_a_known_good_increase_takes_a_held_one_with_it_at_its_latest_value() -> None:
    gate = started(dc_entry(max_power=90_000))
    # An ordinary increase from a reading is held for the settle time...
    assert gate.offer(dc_entry(max_power=120_000), BINDING, 10.5) is None
    # ...and the pool's confirmed raise to 150 kW goes out at once, at 150 kW (not 120 kW).
    sent(gate.offer(dc_entry(max_power=150_000), BINDING, 10.6, known_good=True))
    assert reported_dc(gate)["max_power"] == 150_000
    # Afterwards increases from readings settle again.
    assert gate.offer(dc_entry(max_power=160_000), BINDING, 10.7) is None
    assert gate.offer(dc_entry(max_power=160_000), BINDING, 11.6) is None
    sent(gate.offer(dc_entry(max_power=160_000), BINDING, 11.7))
    assert not gate.last_tightened


def test_an_increase_does_not_tighten_and_a_decrease_does() -> None:
    gate = started()
    sent(gate.offer(dc_entry(max_current=150.0), BINDING, 10.01))
    assert gate.last_tightened
    assert gate.offer(dc_entry(max_current=200.0), BINDING, 10.5) is None
    sent(gate.offer(dc_entry(max_current=200.0), BINDING, 11.5))
    assert not gate.last_tightened
    sent(gate.offer(dc_entry(status="evse_not_ready"), BINDING, 11.6))
    assert gate.last_tightened
