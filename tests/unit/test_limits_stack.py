"""A stack of parallel DC modules as one power source: sums, extremes, absences, present values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csbridge.limits.derating import DeratingCurve
from csbridge.limits.stack import Absence, ModuleSpec, compose_stack
from csbridge.sources.readings import Capability, ModuleReading
from tests.support import examples

NOW = 1000.0
DEADLINE = 3.0
NAMES = ("m1", "m2", "m3")
SPECS = tuple(ModuleSpec(name, DEADLINE, bidirectional=True) for name in NAMES)
MODULE_CURRENT = (DeratingCurve.of([[60, 80], [90, 20]]),)


def export(
    *,
    max_current: float = 80.0,
    max_power: float = 40_000.0,
    max_voltage: float = 1000.0,
    min_voltage: float = 150.0,
    min_current: float = 0.0,
) -> Capability:
    return Capability(
        max_voltage=max_voltage,
        min_voltage=min_voltage,
        max_current=max_current,
        max_power=max_power,
        min_current=min_current,
    )


IMPORT = export(max_current=60.0, max_power=30_000.0)


def module(
    name: str,
    *,
    at: float = NOW,
    capability: Capability | None = None,
    import_: Capability | None = IMPORT,
    no_export: bool = False,
    temperature_c: float | None = 35.0,
    online: bool = True,
    fault: bool = False,
    over_temperature: bool = False,
    input_lost: bool = False,
    output_voltage: float | None = None,
    output_current: float | None = None,
) -> ModuleReading:
    return ModuleReading(
        name=name,
        address=NAMES.index(name) + 1 if name in NAMES else 99,
        at=at,
        online=online,
        output_voltage=output_voltage,
        output_current=output_current,
        export=None if no_export else (capability or export()),
        import_=import_,
        temperature_c=temperature_c,
        fault=fault,
        over_temperature=over_temperature,
        input_lost=input_lost,
    )


def healthy_three() -> dict[str, ModuleReading]:
    return {name: module(name) for name in NAMES}


def test_three_healthy_modules_sum_current_and_power() -> None:
    stack = compose_stack(SPECS, healthy_three(), NOW, MODULE_CURRENT)
    assert stack.configured == 3
    assert stack.healthy == NAMES
    assert stack.absent == {}
    assert stack.seen == NAMES
    assert stack.export.max_current == 240.0
    assert stack.export.max_power == 120_000.0
    assert stack.export.rated_current == 240.0
    assert stack.export.rated_power == 120_000.0


def test_voltage_window_is_the_narrowest_module_window_and_min_current_the_sum() -> None:
    readings = {
        "m1": module("m1", capability=export(max_voltage=1000, min_voltage=150, min_current=1)),
        "m2": module("m2", capability=export(max_voltage=950, min_voltage=200, min_current=2)),
        "m3": module("m3", capability=export(max_voltage=980, min_voltage=100, min_current=0.5)),
    }
    stack = compose_stack(SPECS, readings, NOW)
    assert stack.export.max_voltage == 950.0
    assert stack.export.min_voltage == 200.0
    assert stack.export.min_current == 3.5


def test_unequal_modules_sum_their_own_capabilities() -> None:
    readings = {
        "m1": module("m1", capability=export(max_current=80, max_power=40_000)),
        "m2": module("m2", capability=export(max_current=50, max_power=25_000)),
        "m3": module("m3", capability=export(max_current=30, max_power=10_000)),
    }
    stack = compose_stack(SPECS, readings, NOW)
    assert stack.export.max_current == 160.0
    assert stack.export.max_power == 75_000.0


def test_module_exactly_at_its_deadline_is_still_fresh() -> None:
    readings = healthy_three() | {"m2": module("m2", at=NOW - DEADLINE)}
    stack = compose_stack(SPECS, readings, NOW)
    assert stack.healthy == NAMES
    assert stack.export.max_current == 240.0


def test_silent_module_drops_out_of_stack_just_past_its_deadline() -> None:
    readings = healthy_three() | {"m2": module("m2", at=NOW - DEADLINE)}
    stack = compose_stack(SPECS, readings, math.nextafter(NOW, math.inf))
    assert stack.healthy == ("m1", "m3")
    assert stack.absent == {"m2": Absence.STALE}
    assert stack.seen == NAMES
    assert stack.export.max_current == 160.0
    assert stack.export.max_power == 80_000.0


def test_each_module_keeps_its_own_deadline() -> None:
    specs = (ModuleSpec("m1", 1.0), ModuleSpec("m2", 10.0))
    readings = {"m1": module("m1", at=NOW - 5), "m2": module("m2", at=NOW - 5)}
    stack = compose_stack(specs, readings, NOW)
    assert stack.healthy == ("m2",)
    assert stack.absent == {"m1": Absence.STALE}


def test_faulted_module_drops_out_of_the_sums() -> None:
    readings = healthy_three() | {"m3": module("m3", fault=True)}
    stack = compose_stack(SPECS, readings, NOW)
    assert stack.absent == {"m3": Absence.FAULT}
    assert stack.export.max_current == 160.0
    assert stack.discharge.max_current == 120.0
    assert not stack.thermally_limited


def test_over_temperature_module_drops_out_and_marks_the_stack_thermally_limited() -> None:
    readings = healthy_three() | {"m1": module("m1", over_temperature=True)}
    stack = compose_stack(SPECS, readings, NOW)
    assert stack.absent == {"m1": Absence.OVER_TEMPERATURE}
    assert stack.thermally_limited
    assert stack.export.max_current == 160.0


def test_offline_module_drops_out() -> None:
    readings = healthy_three() | {"m1": module("m1", online=False)}
    stack = compose_stack(SPECS, readings, NOW)
    assert stack.absent == {"m1": Absence.OFFLINE}
    assert stack.export.max_power == 80_000.0


def test_module_without_export_capability_drops_out_of_both_directions() -> None:
    readings = healthy_three() | {"m2": module("m2", no_export=True)}
    stack = compose_stack(SPECS, readings, NOW)
    assert stack.absent == {"m2": Absence.NO_CAPABILITY}
    assert stack.export.max_current == 160.0
    assert stack.discharge.max_current == 120.0


def test_never_seen_module_is_absent_and_not_seen() -> None:
    readings = {"m1": module("m1"), "m3": module("m3")}
    stack = compose_stack(SPECS, readings, NOW)
    assert stack.absent == {"m2": Absence.NEVER_SEEN}
    assert stack.seen == ("m1", "m3")
    assert stack.ever_seen


def test_nothing_seen_gives_an_empty_stack() -> None:
    stack = compose_stack(SPECS, {}, NOW)
    assert not stack.ever_seen
    assert stack.healthy == ()
    assert stack.absent == dict.fromkeys(NAMES, Absence.NEVER_SEEN)
    assert stack.export.max_current == 0.0
    assert stack.export.max_voltage == 0.0
    assert stack.present_voltage == 0.0
    assert stack.present_current == 0.0
    assert not stack.input_lost


def test_one_module_of_each_absence_leaves_the_healthy_one_alone() -> None:
    specs = (*SPECS, ModuleSpec("m4", DEADLINE), ModuleSpec("m5", DEADLINE))
    readings = {
        "m1": module("m1", at=NOW - DEADLINE - 0.1),
        "m2": module("m2", fault=True),
        "m3": module("m3", over_temperature=True),
        "m4": module("m4", no_export=True),
        "m5": module("m5", capability=export(max_current=70, max_power=35_000)),
    }
    stack = compose_stack(specs, readings, NOW)
    assert stack.healthy == ("m5",)
    assert stack.absent == {
        "m1": Absence.STALE,
        "m2": Absence.FAULT,
        "m3": Absence.OVER_TEMPERATURE,
        "m4": Absence.NO_CAPABILITY,
    }
    assert stack.export.max_current == 70.0
    assert stack.export.max_power == 35_000.0


def test_staleness_outranks_any_flag_of_the_old_reading() -> None:
    old = module("m1", at=NOW - 10, fault=True, over_temperature=True, online=False)
    stack = compose_stack(SPECS[:1], {"m1": old}, NOW)
    assert stack.absent == {"m1": Absence.STALE}


def test_module_not_in_the_specs_is_ignored() -> None:
    readings = healthy_three()
    readings["x9"] = module(
        "x9",
        capability=export(max_current=500, max_voltage=100),
        input_lost=True,
        output_voltage=990.0,
        output_current=300.0,
    )
    stack = compose_stack(SPECS, readings, NOW)
    assert stack.configured == 3
    assert stack.seen == NAMES
    assert "x9" not in stack.healthy
    assert "x9" not in stack.absent
    assert stack.export.max_current == 240.0
    assert stack.export.max_voltage == 1000.0
    assert stack.present_voltage == 0.0
    assert stack.present_current == 0.0
    assert not stack.input_lost


def test_a_hot_module_loses_only_its_own_share() -> None:
    readings = healthy_three() | {"m2": module("m2", temperature_c=75.0)}
    stack = compose_stack(SPECS, readings, NOW, MODULE_CURRENT)
    assert stack.export.max_current == pytest.approx(80 + 50 + 80)
    assert stack.export.rated_current == 240.0
    assert stack.export.max_power == 120_000.0  # no power curve configured


def test_a_module_without_temperature_counts_at_its_curve_floor() -> None:
    readings = healthy_three() | {"m3": module("m3", temperature_c=None)}
    stack = compose_stack(SPECS, readings, NOW, MODULE_CURRENT)
    assert stack.export.max_current == pytest.approx(80 + 80 + 20)


def test_power_curves_limit_each_module_power_and_the_tightest_curve_wins() -> None:
    power = (DeratingCurve.of([[50, 40_000], [70, 10_000]]),)
    current = (
        DeratingCurve.of([[60, 80], [90, 20]]),
        DeratingCurve.of([[40, 100], [80, 30]]),
    )
    readings = healthy_three() | {"m1": module("m1", temperature_c=60.0)}
    stack = compose_stack(SPECS, readings, NOW, current, power)
    assert stack.export.max_power == pytest.approx(25_000 + 40_000 + 40_000)
    # m1 at 60 degC: min(80 rated, 80 first curve, 65 second curve)
    assert stack.export.max_current == pytest.approx(65 + 80 + 80)


def test_discharge_comes_only_from_bidirectional_modules() -> None:
    specs = (
        ModuleSpec("m1", DEADLINE, bidirectional=True),
        ModuleSpec("m2", DEADLINE, bidirectional=True),
        ModuleSpec("m3", DEADLINE, bidirectional=False),
    )
    stack = compose_stack(specs, healthy_three(), NOW)
    assert stack.export.max_current == 240.0
    assert stack.discharge.max_current == 120.0
    assert stack.discharge.max_power == 60_000.0


def test_bidirectional_module_without_import_capability_adds_no_discharge() -> None:
    readings = healthy_three() | {"m1": module("m1", import_=None)}
    stack = compose_stack(SPECS, readings, NOW)
    assert stack.healthy == NAMES
    assert stack.discharge.max_current == 120.0
    assert stack.discharge.max_power == 60_000.0


def test_no_bidirectional_module_gives_zero_discharge() -> None:
    specs = tuple(ModuleSpec(name, DEADLINE) for name in NAMES)
    stack = compose_stack(specs, healthy_three(), NOW)
    assert stack.discharge.max_current == 0.0
    assert stack.discharge.max_power == 0.0


def test_discharge_is_derated_by_each_module_curve_too() -> None:
    readings = healthy_three() | {"m2": module("m2", temperature_c=75.0)}
    stack = compose_stack(SPECS, readings, NOW, MODULE_CURRENT)
    # m2's import: min(60 rated, 50 at 75 degC)
    assert stack.discharge.max_current == pytest.approx(60 + 50 + 60)
    assert stack.discharge.rated_current == 180.0


def test_present_voltage_is_the_highest_fresh_output_and_current_the_sum() -> None:
    readings = {
        "m1": module("m1", output_voltage=400.0, output_current=50.0),
        "m2": module("m2", output_voltage=402.5, output_current=49.0),
        "m3": module("m3", output_voltage=None, output_current=None),
    }
    stack = compose_stack(SPECS, readings, NOW)
    assert stack.present_voltage == 402.5
    assert stack.present_current == 99.0


def test_present_current_includes_a_faulted_but_fresh_module_output() -> None:
    readings = {
        "m1": module("m1", output_voltage=400.0, output_current=50.0),
        "m2": module("m2", output_voltage=401.0, output_current=20.0, fault=True),
        "m3": module("m3", output_voltage=405.0, output_current=5.0, online=False),
    }
    stack = compose_stack(SPECS, readings, NOW)
    assert stack.healthy == ("m1",)
    assert stack.present_current == 75.0
    assert stack.present_voltage == 405.0


def test_present_values_leave_out_a_stale_module() -> None:
    readings = {
        "m1": module("m1", output_voltage=400.0, output_current=50.0),
        "m2": module("m2", at=NOW - 10, output_voltage=800.0, output_current=100.0),
    }
    stack = compose_stack(SPECS, readings, NOW)
    assert stack.present_voltage == 400.0
    assert stack.present_current == 50.0


def test_input_lost_on_any_fresh_module_is_reported_but_not_from_a_stale_one() -> None:
    fresh_lost = healthy_three() | {"m2": module("m2", input_lost=True, fault=True)}
    assert compose_stack(SPECS, fresh_lost, NOW).input_lost
    stale_lost = healthy_three() | {"m2": module("m2", at=NOW - 10, input_lost=True)}
    assert not compose_stack(SPECS, stale_lost, NOW).input_lost


# -- properties -----------------------------------------------------------------------------------

AMOUNTS = st.floats(min_value=0, max_value=1000, allow_nan=False)


@st.composite
def module_readings(draw: st.DrawFn, name: str) -> ModuleReading | None:
    if draw(st.integers(0, 5)) == 0:  # never seen
        return None
    low_v = draw(st.floats(min_value=0, max_value=500, allow_nan=False))
    capability = Capability(
        max_voltage=low_v + draw(st.floats(min_value=0, max_value=500, allow_nan=False)),
        min_voltage=low_v,
        max_current=draw(AMOUNTS),
        max_power=draw(AMOUNTS) * 100,
        min_current=draw(st.floats(min_value=0, max_value=5, allow_nan=False)),
    )
    return ModuleReading(
        name=name,
        address=0,
        at=NOW - draw(st.floats(min_value=0, max_value=2 * DEADLINE, allow_nan=False)),
        online=draw(st.booleans()),
        export=None if draw(st.integers(0, 9)) == 0 else capability,
        import_=capability if draw(st.booleans()) else None,
        temperature_c=draw(
            st.one_of(st.none(), st.floats(min_value=0, max_value=120, allow_nan=False))
        ),
        fault=draw(st.integers(0, 4)) == 0,
        over_temperature=draw(st.integers(0, 4)) == 0,
        output_voltage=draw(st.one_of(st.none(), AMOUNTS)),
        output_current=draw(st.one_of(st.none(), AMOUNTS)),
    )


@st.composite
def stacks(draw: st.DrawFn) -> tuple[tuple[ModuleSpec, ...], dict[str, ModuleReading]]:
    count = draw(st.integers(1, 6))
    specs = tuple(
        ModuleSpec(f"m{i}", DEADLINE, bidirectional=draw(st.booleans())) for i in range(count)
    )
    readings: dict[str, ModuleReading] = {}
    for spec in specs:
        reading = draw(module_readings(spec.name))
        if reading is not None:
            readings[spec.name] = reading
    return specs, readings


@settings(max_examples=examples(300))
@given(stacks(), st.booleans())
def test_stack_maxima_never_exceed_the_sums_over_healthy_modules(
    stack_input: tuple[tuple[ModuleSpec, ...], dict[str, ModuleReading]], derate: bool
) -> None:
    specs, readings = stack_input
    curves = MODULE_CURRENT if derate else ()
    stack = compose_stack(specs, readings, NOW, curves)
    healthy = [readings[name] for name in stack.healthy]
    assert set(stack.healthy).isdisjoint(stack.absent)
    assert set(stack.healthy) | set(stack.absent) == {spec.name for spec in specs}
    for reading in healthy:
        assert reading.export is not None
        assert NOW - reading.at <= DEADLINE
        assert reading.online
        assert not reading.fault
        assert not reading.over_temperature
    rated_current = sum(r.export.max_current for r in healthy if r.export is not None)
    rated_power = sum(r.export.max_power for r in healthy if r.export is not None)
    assert stack.export.max_current <= rated_current + 1e-9
    assert stack.export.max_power <= rated_power + 1e-9
    assert stack.export.rated_current == pytest.approx(rated_current)
    if not derate:
        assert stack.export.max_current == pytest.approx(rated_current)
    bidirectional = {spec.name for spec in specs if spec.bidirectional}
    import_current = sum(
        r.import_.max_current for r in healthy if r.import_ is not None and r.name in bidirectional
    )
    assert stack.discharge.max_current <= import_current + 1e-9
    if healthy:
        assert stack.export.max_voltage == min(
            r.export.max_voltage for r in healthy if r.export is not None
        )
