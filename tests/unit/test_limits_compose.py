"""One EVSE composed from the example station's configuration and its sources at one moment."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from csbridge.config import Config, EvseConfig, ExternalDefaults, parse_config
from csbridge.engine.payloads import evse_entry
from csbridge.engine.rounding import rounded
from csbridge.limits.bounds import LimitSource
from csbridge.limits.compose import (
    Composition,
    EvseComposer,
    EvseInputs,
    external_in_force,
)
from csbridge.limits.model import IsolationStatus, PerPhase, StatusCode
from csbridge.sources.readings import (
    BoardReading,
    Capability,
    ExternalLimit,
    ImdReading,
    ModuleReading,
    OperatorCommand,
)
from tests.support import station_config

S = LimitSource
NOW = 1000.0
MODULE_DEADLINE = 3.0  # 3 poll periods of 1 s
IMD_DEADLINE = 5.0
BOARD_DEADLINE = 3.0
NAMES = ("m1", "m2", "m3")

CONFIG = station_config("mqtt://127.0.0.1:1883", "limits-compose")
DC = CONFIG.evse[0]
AC = CONFIG.evse[1]


def module(
    name: str,
    *,
    at: float = NOW,
    temperature_c: float | None = 35.0,
    fault: bool = False,
    over_temperature: bool = False,
    input_lost: bool = False,
    output_voltage: float = 0.0,
    output_current: float = 0.0,
) -> ModuleReading:
    """A module as the example station's simulated ones report: 80 A / 40 kW / 150-1000 V out,
    60 A / 30 kW in."""
    return ModuleReading(
        name=name,
        address=NAMES.index(name) + 1,
        at=at,
        output_voltage=output_voltage,
        output_current=output_current,
        export=Capability(max_voltage=1000, min_voltage=150, max_current=80, max_power=40_000),
        import_=Capability(max_voltage=1000, min_voltage=150, max_current=60, max_power=30_000),
        temperature_c=temperature_c,
        fault=fault,
        over_temperature=over_temperature,
        input_lost=input_lost,
    )


def dc_inputs(at: float = NOW, **changes: Any) -> EvseInputs:
    """Every DC source fresh at `at` and healthy, then `changes` (EvseInputs fields)."""
    inputs = EvseInputs(
        modules={name: module(name, at=at) for name in NAMES},
        imd=ImdReading(at=at, resistance_ohm=5_000_000.0),
        board=BoardReading(at=at, evse_temperature_c=30.0, plug_temperature_c=30.0),
    )
    return dataclasses.replace(inputs, **changes)


def with_module(inputs: EvseInputs, reading: ModuleReading) -> EvseInputs:
    return dataclasses.replace(inputs, modules={**inputs.modules, reading.name: reading})


def compose_dc(inputs: EvseInputs, now: float = NOW, config: EvseConfig = DC) -> Composition:
    return EvseComposer(config).compose(inputs, now)


def dc_of(composition: Composition) -> Any:
    dc = composition.snapshot.dc
    assert dc is not None
    return dc


def dc_bpt_of(composition: Composition) -> Any:
    bpt = composition.snapshot.dc_bpt
    assert bpt is not None
    return bpt


def assert_dc_maxima_zero(composition: Composition, source: LimitSource) -> None:
    dc = dc_of(composition)
    bpt = dc_bpt_of(composition)
    assert dc.max_current == 0.0
    assert dc.max_power == 0.0
    assert dc.min_current == 0.0
    assert bpt.max_discharge_current == 0.0
    assert bpt.max_discharge_power == 0.0
    assert bpt.min_discharge_current == 0.0
    assert bpt.min_discharge_power == 0.0
    for key in ("max_current", "max_power", "evse_max_discharge_current"):
        assert composition.binding[key] is source
    assert composition.binding["evse_max_discharge_power"] is source


def evse_config(toml_evse: str) -> EvseConfig:
    config: Config = parse_config(
        '[station]\nsw_version = "t"\nhw_version = "t"\n\n' + toml_evse, "<test>"
    )
    return config.evse[0]


# -- DC: everything fresh -------------------------------------------------------------------------


def test_dc_with_all_sources_fresh_is_ready_at_the_module_stack_limits() -> None:
    composition = compose_dc(dc_inputs())
    dc = dc_of(composition)
    assert composition.snapshot.status_code is StatusCode.EVSE_READY
    assert dc.max_current == 240.0
    assert dc.max_power == 120_000.0
    assert dc.max_voltage == 920.0
    assert dc.min_voltage == 150.0
    assert dc.min_current == 1.0
    assert dc.isolation_status is IsolationStatus.VALID
    assert composition.binding == {
        "max_current": S.HARDWARE,
        "max_power": S.HARDWARE,
        "max_voltage": S.HARDWARE,
        "min_voltage": S.HARDWARE,
        "min_current": S.HARDWARE,
        "evse_max_discharge_current": S.HARDWARE,
        "evse_max_discharge_power": S.HARDWARE,
    }


def test_dc_discharge_is_the_bidirectional_stack_bounded_by_the_nameplate() -> None:
    bpt = dc_bpt_of(compose_dc(dc_inputs()))
    # stack 3 x 60 A / 30 kW = 180 A / 90 kW; nameplate 150 A / 80 kW
    assert bpt.max_discharge_current == 150.0
    assert bpt.max_discharge_power == 80_000.0
    assert bpt.min_discharge_current == 1.0
    assert bpt.min_discharge_power == 0.0


def test_dc_entry_carries_the_rounded_limits_and_the_static_fields() -> None:
    entry = evse_entry(rounded(compose_dc(dc_inputs()).snapshot))
    assert entry["evse_id"] == "DE*CSB*E0001"
    assert entry["status_code"] == "evse_ready"
    assert entry["dc"]["max_current"] == 240.0
    assert entry["dc"]["max_power"] == 120_000
    assert entry["dc"]["peak_current_ripple"] == 2.0
    assert entry["dc"]["current_reg_tolerance"] == 5.0
    assert entry["dc"]["evse_power_ramp_limit"] == 10_000
    assert entry["dc"]["isolation_status"] == "valid"
    assert entry["dc_bpt"]["evse_max_discharge_power"] == 80_000


def test_dc_present_values_come_from_the_fresh_modules() -> None:
    inputs = dc_inputs()
    inputs = with_module(inputs, module("m1", output_voltage=400.0, output_current=60.0))
    inputs = with_module(inputs, module("m2", output_voltage=401.0, output_current=59.0))
    dc = dc_of(compose_dc(inputs))
    assert dc.present_voltage == 401.0
    assert dc.present_current == 119.0


# -- DC: limits that bind -------------------------------------------------------------------------


def test_one_stale_module_drops_the_dc_evse_to_160_a_binding_module_dropout() -> None:
    inputs = with_module(dc_inputs(), module("m2", at=NOW - MODULE_DEADLINE - 0.1))
    composition = compose_dc(inputs)
    dc = dc_of(composition)
    assert composition.snapshot.status_code is StatusCode.EVSE_READY
    assert dc.max_current == 160.0
    assert dc.max_power == 80_000.0
    assert composition.binding["max_current"] is S.MODULE_DROPOUT
    assert composition.binding["max_power"] is S.MODULE_DROPOUT
    bpt = dc_bpt_of(composition)
    assert bpt.max_discharge_current == 120.0
    assert composition.binding["evse_max_discharge_current"] is S.MODULE_DROPOUT


def test_a_module_exactly_at_its_deadline_still_counts_in_the_dc_stack() -> None:
    inputs = with_module(dc_inputs(), module("m2", at=NOW - MODULE_DEADLINE))
    composition = compose_dc(inputs)
    assert dc_of(composition).max_current == 240.0
    assert composition.binding["max_current"] is S.HARDWARE


def test_faulted_module_binds_module_dropout() -> None:
    composition = compose_dc(with_module(dc_inputs(), module("m3", fault=True)))
    assert dc_of(composition).max_current == 160.0
    assert composition.binding["max_current"] is S.MODULE_DROPOUT


def test_over_temperature_module_binds_temperature() -> None:
    composition = compose_dc(with_module(dc_inputs(), module("m1", over_temperature=True)))
    assert dc_of(composition).max_current == 160.0
    assert composition.binding["max_current"] is S.TEMPERATURE
    assert composition.binding["max_power"] is S.TEMPERATURE


def test_hot_module_derates_its_share_binding_temperature() -> None:
    composition = compose_dc(with_module(dc_inputs(), module("m2", temperature_c=75.0)))
    assert dc_of(composition).max_current == pytest.approx(210.0)
    assert composition.binding["max_current"] is S.TEMPERATURE
    assert composition.binding["max_power"] is S.HARDWARE  # no module power curve


def test_plug_at_80_degc_limits_the_dc_evse_to_150_a_binding_temperature() -> None:
    board = BoardReading(at=NOW, evse_temperature_c=30.0, plug_temperature_c=80.0)
    composition = compose_dc(dc_inputs(board=board))
    dc = dc_of(composition)
    assert dc.max_current == pytest.approx(150.0)
    assert composition.binding["max_current"] is S.TEMPERATURE
    assert dc.max_power == 120_000.0
    assert composition.binding["max_power"] is S.HARDWARE
    # discharge: plug 150 A ties the 150 A nameplate; temperature is named first
    assert dc_bpt_of(composition).max_discharge_current == pytest.approx(150.0)
    assert composition.binding["evse_max_discharge_current"] is S.TEMPERATURE


def test_plug_without_temperature_is_the_worst_case_of_its_curve() -> None:
    board = BoardReading(at=NOW, evse_temperature_c=30.0, plug_temperature_c=None)
    composition = compose_dc(dc_inputs(board=board))
    assert dc_of(composition).max_current == 50.0
    assert composition.binding["max_current"] is S.TEMPERATURE


def test_valid_external_power_limit_binds_and_lapses_at_its_until() -> None:
    external = ExternalLimit(at=NOW, until=NOW + 60.0, max_power=50_000.0)
    during = compose_dc(dc_inputs(external=external))
    assert dc_of(during).max_power == 50_000.0
    assert during.binding["max_power"] is S.EXTERNAL
    assert dc_of(during).max_current == 240.0
    assert dc_bpt_of(during).max_discharge_power == 50_000.0
    assert during.binding["evse_max_discharge_power"] is S.EXTERNAL

    later = NOW + 60.0
    after = compose_dc(dc_inputs(at=later, external=external), now=later)
    assert after.snapshot.status_code is StatusCode.EVSE_READY
    assert dc_of(after).max_power == 120_000.0
    assert after.binding["max_power"] is S.HARDWARE


def test_external_limit_equal_to_the_stack_is_named_external() -> None:
    external = ExternalLimit(at=NOW, until=NOW + 60.0, max_power=120_000.0, max_current=240.0)
    composition = compose_dc(dc_inputs(external=external))
    assert composition.binding["max_power"] is S.EXTERNAL
    assert composition.binding["max_current"] is S.EXTERNAL


def test_an_external_limit_holds_until_its_until_and_fills_gaps_from_the_default() -> None:
    defaults = ExternalDefaults(max_power_w=22_000.0, max_current_a=32.0)
    power_only = ExternalLimit(at=NOW, until=NOW + 60.0, max_power=11_000.0)
    valid = external_in_force(defaults, power_only, NOW + 59.0)
    assert valid.limit is power_only
    assert (valid.max_power, valid.max_current) == (11_000.0, 32.0)
    for lapsed in (
        external_in_force(defaults, power_only, NOW + 60.0),
        external_in_force(defaults, None, NOW),
    ):
        assert lapsed.limit is None
        assert (lapsed.max_power, lapsed.max_current) == (22_000.0, 32.0)
    assert external_in_force(ExternalDefaults(), None, NOW).max_power is None


def test_small_installation_binds_dc_power_through_its_efficiency() -> None:
    config = evse_config(
        """
[[evse]]
evse_id = "DC-SMALL"
kind = "dc"
network_interface = "eth0"
connectors = [{ id = 1, connector_type = "DC_core" }]

[evse.dc_limits]
max_current_a = 200.0
max_voltage_v = 500.0
max_power_w = 50000
peak_current_ripple_a = 1.0

[evse.installation]
max_power_w = 20000
efficiency = 0.9
"""
    )
    composition = compose_dc(EvseInputs(), config=config)
    dc = dc_of(composition)
    assert composition.snapshot.status_code is StatusCode.EVSE_READY
    assert dc.max_power == pytest.approx(18_000.0)
    assert composition.binding["max_power"] is S.INSTALLATION
    assert dc.max_current == 200.0
    assert composition.binding["max_current"] is S.HARDWARE
    assert dc.isolation_status is IsolationStatus.NO_IMD


def test_installation_current_becomes_grid_power_for_a_dc_evse() -> None:
    config = evse_config(
        """
[[evse]]
evse_id = "DC-GRID"
kind = "dc"
network_interface = "eth0"
connectors = [{ id = 1, connector_type = "DC_core" }]

[evse.dc_limits]
max_current_a = 200.0
max_voltage_v = 500.0
max_power_w = 50000
peak_current_ripple_a = 1.0

[evse.installation]
max_power_w = 40000
max_current_a = 16.0
"""
    )
    composition = compose_dc(EvseInputs(), config=config)
    # 16 A x 230 V x 3 phases = 11040 W at the grid, x 0.95 to the EV
    assert dc_of(composition).max_power == pytest.approx(10_488.0)
    assert composition.binding["max_power"] is S.INSTALLATION


# -- DC: statuses ---------------------------------------------------------------------------------


def test_operator_disable_shuts_the_dc_evse_down_at_zero_binding_operator() -> None:
    composition = compose_dc(dc_inputs(operator=OperatorCommand(at=NOW, enabled=False)))
    assert composition.snapshot.status_code is StatusCode.EVSE_SHUTDOWN
    assert_dc_maxima_zero(composition, S.OPERATOR)


def test_operator_enable_leaves_the_dc_evse_ready() -> None:
    composition = compose_dc(dc_inputs(operator=OperatorCommand(at=NOW, enabled=True)))
    assert composition.snapshot.status_code is StatusCode.EVSE_READY
    assert dc_of(composition).max_current == 240.0


def test_emergency_stop_is_an_emergency_shutdown_at_zero() -> None:
    board = BoardReading(at=NOW, plug_temperature_c=30.0, emergency_stop=True)
    composition = compose_dc(
        dc_inputs(board=board, operator=OperatorCommand(at=NOW, enabled=False))
    )
    assert composition.snapshot.status_code is StatusCode.EVSE_EMERGENCY_SHUTDOWN
    assert_dc_maxima_zero(composition, S.SAFETY)


def test_imd_below_100_kohm_is_an_isolation_fault_and_emergency_shutdown() -> None:
    composition = compose_dc(dc_inputs(imd=ImdReading(at=NOW, resistance_ohm=99_999.0)))
    assert dc_of(composition).isolation_status is IsolationStatus.FAULT
    assert composition.snapshot.status_code is StatusCode.EVSE_EMERGENCY_SHUTDOWN
    assert_dc_maxima_zero(composition, S.SAFETY)


def test_imd_at_100_kohm_is_valid_under_the_2023_rule() -> None:
    composition = compose_dc(dc_inputs(imd=ImdReading(at=NOW, resistance_ohm=100_000.0)))
    assert dc_of(composition).isolation_status is IsolationStatus.VALID
    assert composition.snapshot.status_code is StatusCode.EVSE_READY


def test_imd_self_test_reports_isolation_monitoring_with_energy_still_allowed() -> None:
    imd = ImdReading(at=NOW, self_test_running=True)
    composition = compose_dc(dc_inputs(imd=imd))
    dc = dc_of(composition)
    assert composition.snapshot.status_code is StatusCode.EVSE_ISOLATION_MONITORING_ACTIVE
    assert dc.isolation_status is IsolationStatus.INVALID
    assert dc.max_current == 240.0
    assert dc.max_power == 120_000.0
    assert dc_bpt_of(composition).max_discharge_power > 0


def test_imd_silent_after_being_seen_is_a_malfunction() -> None:
    imd = ImdReading(at=NOW - IMD_DEADLINE - 0.1, resistance_ohm=5_000_000.0)
    composition = compose_dc(dc_inputs(imd=imd))
    assert composition.snapshot.status_code is StatusCode.EVSE_MALFUNCTION
    assert dc_of(composition).isolation_status is IsolationStatus.INVALID
    assert_dc_maxima_zero(composition, S.SAFETY)


def test_imd_device_fault_is_a_malfunction() -> None:
    imd = ImdReading(at=NOW, resistance_ohm=5_000_000.0, device_fault=True)
    composition = compose_dc(dc_inputs(imd=imd))
    assert composition.snapshot.status_code is StatusCode.EVSE_MALFUNCTION
    assert dc_of(composition).isolation_status is IsolationStatus.INVALID


def test_all_modules_stale_after_being_seen_is_a_malfunction() -> None:
    stale = {name: module(name, at=NOW - MODULE_DEADLINE - 0.1) for name in NAMES}
    composition = compose_dc(dc_inputs(modules=stale))
    assert composition.snapshot.status_code is StatusCode.EVSE_MALFUNCTION
    assert_dc_maxima_zero(composition, S.SAFETY)
    assert dc_of(composition).max_voltage == 0.0


def test_all_modules_faulted_is_a_malfunction() -> None:
    faulted = {name: module(name, fault=True) for name in NAMES}
    composition = compose_dc(dc_inputs(modules=faulted))
    assert composition.snapshot.status_code is StatusCode.EVSE_MALFUNCTION


def test_board_silent_after_being_seen_is_a_malfunction() -> None:
    board = BoardReading(at=NOW - BOARD_DEADLINE - 0.1, plug_temperature_c=30.0)
    composition = compose_dc(dc_inputs(board=board))
    assert composition.snapshot.status_code is StatusCode.EVSE_MALFUNCTION


def test_nothing_seen_yet_is_not_ready_at_zero() -> None:
    composition = compose_dc(EvseInputs())
    dc = dc_of(composition)
    assert composition.snapshot.status_code is StatusCode.EVSE_NOT_READY
    assert dc.isolation_status is IsolationStatus.INVALID
    assert_dc_maxima_zero(composition, S.SAFETY)
    entry = evse_entry(rounded(composition.snapshot))
    assert entry["dc"]["max_current"] == 0.0
    assert entry["dc"]["max_power"] == 0


@pytest.mark.parametrize("missing", ["modules", "imd", "board"])
def test_one_source_never_seen_keeps_the_dc_evse_not_ready(missing: str) -> None:
    empty: dict[str, Any] = {"modules": {}, "imd": None, "board": None}
    composition = compose_dc(dc_inputs(**{missing: empty[missing]}))
    assert composition.snapshot.status_code is StatusCode.EVSE_NOT_READY
    assert dc_of(composition).max_current == 0.0


def test_module_input_lost_is_a_utility_interrupt_at_zero() -> None:
    composition = compose_dc(with_module(dc_inputs(), module("m2", input_lost=True)))
    assert composition.snapshot.status_code is StatusCode.EVSE_UTILITY_INTERRUPT_EVENT
    assert_dc_maxima_zero(composition, S.SAFETY)


def test_emergency_outranks_malfunction_outranks_shutdown() -> None:
    silent_imd = ImdReading(at=NOW - 60.0, resistance_ohm=5_000_000.0)
    disabled = OperatorCommand(at=NOW, enabled=False)
    malfunction = compose_dc(dc_inputs(imd=silent_imd, operator=disabled))
    assert malfunction.snapshot.status_code is StatusCode.EVSE_MALFUNCTION
    estop = BoardReading(at=NOW, plug_temperature_c=30.0, emergency_stop=True)
    emergency = compose_dc(dc_inputs(imd=silent_imd, operator=disabled, board=estop))
    assert emergency.snapshot.status_code is StatusCode.EVSE_EMERGENCY_SHUTDOWN


def _dc_2014() -> EvseConfig:
    raw = CONFIG.model_dump(mode="json", exclude_none=True)
    raw["evse"][0]["imd"]["rule"] = "iec61851-23:2014"
    return Config.model_validate(raw).evse[0]


def test_2014_rule_measures_against_920_v_with_a_healthy_stack() -> None:
    config = _dc_2014()
    fault = compose_dc(dc_inputs(imd=ImdReading(at=NOW, resistance_ohm=91_999.0)), config=config)
    assert dc_of(fault).isolation_status is IsolationStatus.FAULT
    assert fault.snapshot.status_code is StatusCode.EVSE_EMERGENCY_SHUTDOWN
    warn = compose_dc(dc_inputs(imd=ImdReading(at=NOW, resistance_ohm=300_000.0)), config=config)
    assert dc_of(warn).isolation_status is IsolationStatus.WARNING
    assert warn.snapshot.status_code is StatusCode.EVSE_READY


def test_2014_rule_still_reports_an_isolation_fault_when_the_modules_are_gone() -> None:
    stale = {name: module(name, at=NOW - MODULE_DEADLINE - 0.1) for name in NAMES}
    inputs = dc_inputs(modules=stale, imd=ImdReading(at=NOW, resistance_ohm=0.0))
    composition = compose_dc(inputs, config=_dc_2014())
    assert dc_of(composition).isolation_status is IsolationStatus.FAULT
    assert composition.snapshot.status_code is StatusCode.EVSE_EMERGENCY_SHUTDOWN


# -- AC -------------------------------------------------------------------------------------------


def ac_board(at: float = NOW, **changes: Any) -> BoardReading:
    board = BoardReading(
        at=at,
        evse_temperature_c=30.0,
        plug_temperature_c=30.0,
        max_current_a=32.0,
        max_discharge_current_a=16.0,
        phases=3,
    )
    return dataclasses.replace(board, **changes)


def compose_ac(inputs: EvseInputs, now: float = NOW) -> Composition:
    return EvseComposer(AC).compose(inputs, now)


def ac_current(composition: Composition) -> PerPhase:
    ac = composition.snapshot.ac
    assert ac is not None
    return ac.max_current


def ac_discharge(composition: Composition) -> PerPhase:
    bpt = composition.snapshot.ac_bpt
    assert bpt is not None
    return bpt.max_discharge_power


def test_ac_installation_current_binds_below_the_32_a_nameplate() -> None:
    composition = compose_ac(EvseInputs(board=ac_board()))
    assert composition.snapshot.status_code is StatusCode.EVSE_READY
    assert ac_current(composition) == PerPhase(25.0, 25.0, 25.0)
    assert composition.binding["max_current"] is S.INSTALLATION
    ac = composition.snapshot.ac
    assert ac is not None
    assert ac.nominal_voltage == 230.0
    assert not ac.rcd_error
    assert composition.snapshot.dc is None


def test_ac_external_power_limit_becomes_per_phase_current_binding_external() -> None:
    external = ExternalLimit(at=NOW, until=NOW + 60.0, max_power=11_000.0)
    composition = compose_ac(EvseInputs(board=ac_board(), external=external))
    per_phase = 11_000.0 / (230.0 * 3)
    assert ac_current(composition).l1 == pytest.approx(per_phase)
    assert ac_current(composition) == PerPhase(per_phase, per_phase, per_phase)
    assert composition.binding["max_current"] is S.EXTERNAL
    entry = evse_entry(rounded(composition.snapshot))
    assert entry["ac"]["max_current"] == {"l1": 15.9, "l2": 15.9, "l3": 15.9}
    # discharge: the same per-phase current at 230 V
    assert ac_discharge(composition).l1 == pytest.approx(11_000.0 / 3)
    assert composition.binding["evse_max_discharge_power"] is S.EXTERNAL


def test_ac_single_phase_board_zeroes_l2_and_l3() -> None:
    composition = compose_ac(EvseInputs(board=ac_board(phases=1)))
    assert ac_current(composition) == PerPhase(25.0, 0.0, 0.0)
    assert ac_discharge(composition) == PerPhase(3680.0, 0.0, 0.0)
    entry = evse_entry(rounded(composition.snapshot))
    assert entry["ac"]["max_current"] == {"l1": 25.0, "l2": 0.0, "l3": 0.0}


def test_ac_single_phase_spreads_an_external_power_over_one_phase() -> None:
    external = ExternalLimit(at=NOW, until=NOW + 60.0, max_power=4_600.0)
    composition = compose_ac(EvseInputs(board=ac_board(phases=1), external=external))
    current = ac_current(composition)
    assert current.l1 == pytest.approx(20.0)
    assert (current.l2, current.l3) == (0.0, 0.0)
    assert composition.binding["max_current"] is S.EXTERNAL


def test_ac_board_capability_binds_when_below_the_installation() -> None:
    composition = compose_ac(EvseInputs(board=ac_board(max_current_a=20.0)))
    assert ac_current(composition).l1 == 20.0
    assert composition.binding["max_current"] is S.HARDWARE


def test_ac_discharge_is_bounded_by_the_bpt_nameplate() -> None:
    composition = compose_ac(EvseInputs(board=ac_board(max_discharge_current_a=None)))
    bpt = composition.snapshot.ac_bpt
    assert bpt is not None
    # installation 25 A x 230 V = 5750 W per phase, nameplate 3680 W per phase
    assert bpt.max_discharge_power == PerPhase(3680.0, 3680.0, 3680.0)
    assert bpt.min_discharge_power == PerPhase(0.0, 0.0, 0.0)
    assert composition.binding["evse_max_discharge_power"] is S.HARDWARE


def test_ac_discharge_is_bounded_by_the_board_discharge_capability() -> None:
    composition = compose_ac(EvseInputs(board=ac_board(max_discharge_current_a=10.0)))
    assert ac_discharge(composition).l1 == pytest.approx(2300.0)
    assert composition.binding["evse_max_discharge_power"] is S.HARDWARE


def test_ac_operator_disable_zeroes_current_and_discharge() -> None:
    inputs = EvseInputs(board=ac_board(), operator=OperatorCommand(at=NOW, enabled=False))
    composition = compose_ac(inputs)
    assert composition.snapshot.status_code is StatusCode.EVSE_SHUTDOWN
    assert ac_current(composition) == PerPhase(0.0, 0.0, 0.0)
    assert ac_discharge(composition) == PerPhase(0.0, 0.0, 0.0)
    assert composition.binding["max_current"] is S.OPERATOR
    assert composition.binding["evse_max_discharge_power"] is S.OPERATOR


def test_ac_rcd_error_is_an_emergency_shutdown_reported_in_the_ac_block() -> None:
    composition = compose_ac(EvseInputs(board=ac_board(rcd_error=True)))
    assert composition.snapshot.status_code is StatusCode.EVSE_EMERGENCY_SHUTDOWN
    ac = composition.snapshot.ac
    assert ac is not None
    assert ac.rcd_error
    assert ac_current(composition) == PerPhase(0.0, 0.0, 0.0)
    assert ac_discharge(composition) == PerPhase(0.0, 0.0, 0.0)
    assert composition.binding["max_current"] is S.SAFETY


@pytest.mark.parametrize(
    ("inputs", "status"),
    [
        (EvseInputs(), StatusCode.EVSE_NOT_READY),
        (
            EvseInputs(board=ac_board(at=NOW - BOARD_DEADLINE - 0.1)),
            StatusCode.EVSE_MALFUNCTION,
        ),
        (EvseInputs(board=ac_board(fault=True)), StatusCode.EVSE_MALFUNCTION),
        (EvseInputs(board=ac_board(emergency_stop=True)), StatusCode.EVSE_EMERGENCY_SHUTDOWN),
    ],
    ids=["not_ready", "board_silent", "board_fault", "estop"],
)
def test_ac_non_ready_statuses_zero_current_and_discharge(
    inputs: EvseInputs, status: StatusCode
) -> None:
    composition = compose_ac(inputs)
    assert composition.snapshot.status_code is status
    assert ac_current(composition) == PerPhase(0.0, 0.0, 0.0)
    assert ac_discharge(composition) == PerPhase(0.0, 0.0, 0.0)
    bpt = composition.snapshot.ac_bpt
    assert bpt is not None
    assert bpt.min_discharge_power == PerPhase(0.0, 0.0, 0.0)
    assert composition.binding["max_current"] is S.SAFETY


@pytest.mark.parametrize(
    "changes",
    [
        {"operator": OperatorCommand(at=NOW, enabled=False)},
        {"imd": ImdReading(at=NOW, resistance_ohm=10.0)},
        {"imd": ImdReading(at=NOW - 60.0, resistance_ohm=5_000_000.0)},
        {"modules": {}, "imd": None, "board": None},
        {"board": BoardReading(at=NOW, plug_temperature_c=30.0, emergency_stop=True)},
    ],
    ids=["shutdown", "isolation_fault", "imd_silent", "not_ready", "estop"],
)
def test_dc_non_ready_statuses_zero_the_discharge_maxima_too(changes: dict[str, Any]) -> None:
    composition = compose_dc(dc_inputs(**changes))
    assert composition.snapshot.status_code not in (
        StatusCode.EVSE_READY,
        StatusCode.EVSE_ISOLATION_MONITORING_ACTIVE,
    )
    bpt = dc_bpt_of(composition)
    assert bpt.max_discharge_current == 0.0
    assert bpt.max_discharge_power == 0.0
