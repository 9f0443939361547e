"""Issue 17's discharge side outside the power path: a DC EVSE advertises BPT only with a stack
that can import (configuration and check-config), the discharge limits' own bounds (the
installation's export limit, the outside discharge limit), and the discharge clamp."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from csbridge.config import ConfigError, EvseConfig, parse_config
from csbridge.limits import AcDischargeRequest, DcRequest, Refused, ac_discharge_power
from csbridge.limits.bounds import LimitSource
from csbridge.limits.compose import EvseComposer, EvseInputs
from csbridge.limits.setpoint import ModuleContact, Refusal, dc_setpoint
from csbridge.sources.can import DeviceRouter
from csbridge.sources.readings import (
    BoardReading,
    Capability,
    ExternalLimit,
    ImdReading,
    ModuleReading,
    SessionCondition,
)
from tests.support import small_station, station_config

NOW = 1000.0
CONFIG = station_config("mqtt://127.0.0.1:1883", "bpt-limits")
DC: EvseConfig = CONFIG.evse[0]


def with_bpt_limits(text: str) -> str:
    return (
        text
        + "\n[evse.dc_bpt_limits]\nmax_discharge_current_a = 100\nmax_discharge_power_w = 50000\n"
    )


def problems(text: str) -> list[str]:
    try:
        parse_config(text, "test.toml")
    except ConfigError as error:
        return error.problems
    return []


BUS = '[[bus]]\nname = "can0"\ninterface = "virtual"\nbitrate = 125000\n'


def module_table(profile: str, *, bidirectional: bool) -> str:
    return (
        f'[[evse.module]]\nname = "m1"\naddress = 1\nbidirectional = {str(bidirectional).lower()}\n'
        f'can = {{ profile = "{profile}", bus = "can0" }}\n'
    )


def bpt_station(profile: str, *, bidirectional: bool) -> str:
    text = small_station(("DE*CSB*E0001", module_table(profile, bidirectional=bidirectional)))
    text = text.replace('kind = "dc"', 'kind = "dc"\nbpt = true', 1)
    return BUS + with_bpt_limits(text)


def test_bpt_on_a_dc_evse_without_a_bidirectional_module_is_refused() -> None:
    found = problems(bpt_station("infypower-reg", bidirectional=False))
    assert any("needs a bidirectional module stack" in problem for problem in found), found


def test_a_bidirectional_module_whose_profile_cannot_import_is_refused_by_the_profiles() -> None:
    config = parse_config(bpt_station("infypower-reg", bidirectional=True), "test.toml")
    with pytest.raises(ConfigError) as refused:
        DeviceRouter(config)
    assert any(
        "module[0].bidirectional: infypower-reg cannot import" in problem
        for problem in refused.value.problems
    ), refused.value.problems


def test_a_beg_stack_may_advertise_bpt() -> None:
    config = parse_config(bpt_station("infypower-beg", bidirectional=True), "test.toml")
    DeviceRouter(config)  # no problem
    assert config.evse[0].bpt


# -- the discharge limits' own bounds --------------------------------------------------------------


def module(name: str) -> ModuleReading:
    return ModuleReading(
        name=name,
        address=int(name[1]),
        at=NOW,
        export=Capability(max_voltage=1000, min_voltage=150, max_current=80, max_power=40_000),
        import_=Capability(max_voltage=1000, min_voltage=150, max_current=60, max_power=30_000),
        temperature_c=35.0,
    )


def inputs(**changes: Any) -> EvseInputs:
    defaults: dict[str, Any] = {
        "modules": {name: module(name) for name in ("m1", "m2", "m3")},
        "imd": ImdReading(at=NOW, resistance_ohm=5_000_000.0),
        "board": BoardReading(at=NOW, evse_temperature_c=30.0, plug_temperature_c=30.0),
    }
    return EvseInputs(**{**defaults, **changes})


def evse_with(**changes: Any) -> EvseConfig:
    raw = DC.model_dump(mode="json", exclude_none=True)
    for table, values in changes.items():
        raw.setdefault(table, {}).update(values)
    return EvseConfig.model_validate(raw)


def test_the_installation_export_limit_bounds_discharge_and_not_charging() -> None:
    config = evse_with(installation={"max_export_power_w": 11_000})
    composition = EvseComposer(config).compose(inputs(), NOW)
    bpt = composition.snapshot.dc_bpt
    dc = composition.snapshot.dc
    assert bpt is not None
    assert dc is not None
    assert bpt.max_discharge_power == 11_000.0
    assert composition.binding["evse_max_discharge_power"] is LimitSource.INSTALLATION
    assert dc.max_power == 120_000.0  # three modules of 40 kW: the export limit is not for charging


def test_an_outside_discharge_limit_binds_discharge_only() -> None:
    limit = ExternalLimit(at=NOW, until=NOW + 60.0, max_discharge_power=7_000.0)
    composition = EvseComposer(DC).compose(inputs(external=limit), NOW)
    bpt = composition.snapshot.dc_bpt
    dc = composition.snapshot.dc
    assert bpt is not None
    assert dc is not None
    assert bpt.max_discharge_power == 7_000.0
    assert composition.binding["evse_max_discharge_power"] is LimitSource.EXTERNAL
    assert dc.max_power == 120_000.0


def test_an_outside_power_limit_without_a_discharge_value_binds_both() -> None:
    limit = ExternalLimit(at=NOW, until=NOW + 60.0, max_power=9_000.0)
    composition = EvseComposer(DC).compose(inputs(external=limit), NOW)
    assert composition.snapshot.dc_bpt is not None
    assert composition.snapshot.dc is not None
    assert composition.snapshot.dc_bpt.max_discharge_power == 9_000.0
    assert composition.snapshot.dc.max_power == 9_000.0


# -- the discharge clamp ---------------------------------------------------------------------------


ENTRY = {
    "status_code": "evse_ready",
    "dc": {
        "max_current": 200.0,
        "max_power": 100_000.0,
        "max_voltage": 900.0,
        "min_voltage": 150.0,
    },
    "dc_bpt": {"evse_max_discharge_current": 90.0, "evse_max_discharge_power": 30_000.0},
}
CONTACTS = [
    ModuleContact("m1", True, bidirectional=True),
    ModuleContact("m2", True, bidirectional=True),
    ModuleContact("m3", True, bidirectional=False),
]


def test_a_discharge_runs_on_the_bidirectional_modules_within_dc_bpt() -> None:
    request = DcRequest(voltage=400.0, ev_max_voltage=800.0, discharge_current=120.0)
    result = dc_setpoint(ENTRY, request, CONTACTS)
    assert not isinstance(result, Refused)
    assert result.import_
    assert result.total_current == 75.0  # 30 kW at 400 V, below the 90 A
    assert [m.name for m in result.modules] == ["m1", "m2"]
    assert result.module_current == 37.5


def test_a_discharge_is_held_to_the_evs_own_maximum() -> None:
    request = DcRequest(
        voltage=400.0, ev_max_voltage=800.0, discharge_current=60.0, ev_max_discharge_current=20.0
    )
    result = dc_setpoint(ENTRY, request, CONTACTS)
    assert not isinstance(result, Refused)
    assert result.total_current == 20.0


@pytest.mark.parametrize(
    ("entry", "request_", "reason"),
    [
        (
            {k: v for k, v in ENTRY.items() if k != "dc_bpt"},
            DcRequest(voltage=400.0, ev_max_voltage=800.0, discharge_current=10.0),
            Refusal.NO_DC_BPT_LIMITS,
        ),
        (
            ENTRY,
            DcRequest(voltage=400.0, ev_max_voltage=800.0, current=5.0, discharge_current=10.0),
            Refusal.INVALID_REQUEST,
        ),
        (
            ENTRY,
            DcRequest(voltage=400.0, ev_max_voltage=800.0, discharge_current=10.0, precharge=True),
            Refusal.INVALID_REQUEST,
        ),
        (
            ENTRY,
            DcRequest(voltage=400.0, ev_max_voltage=800.0, discharge_power=-1.0),
            Refusal.INVALID_REQUEST,
        ),
    ],
    ids=["no_dc_bpt", "both_directions", "in_precharge", "negative"],
)
def test_a_discharge_that_cannot_be_served_is_refused(
    entry: dict[str, Any], request_: DcRequest, reason: Refusal
) -> None:
    result = dc_setpoint(entry, request_, CONTACTS)
    assert isinstance(result, Refused)
    assert result.reason is reason


def test_a_discharge_without_a_bidirectional_module_is_refused() -> None:
    request = DcRequest(voltage=400.0, ev_max_voltage=800.0, discharge_current=10.0)
    result = dc_setpoint(ENTRY, request, [ModuleContact("m1", True)])
    assert isinstance(result, Refused)
    assert result.reason is Refusal.NO_HEALTHY_MODULE


def test_an_everest_module_cannot_be_bidirectional() -> None:
    table = '[[evse.module]]\nname = "m1"\nbidirectional = true\neverest = { module_id = "psu1" }\n'
    found = problems(small_station(("DE*CSB*E0001", table)))
    assert any("cannot be bidirectional" in problem for problem in found), found


# -- AC discharge (the EV's inverter does the work) ------------------------------------------------

AC_ENTRY = {
    "status_code": "evse_ready",
    "ac": {"max_current": {"l1": 16.0, "l2": 16.0, "l3": 16.0}},
    "ac_bpt": {
        "evse_max_discharge_power": {"l1": 3680.0, "l2": 3680.0, "l3": 3680.0},
        "evse_min_discharge_power": {"l1": 0.0, "l2": 0.0, "l3": 0.0},
    },
}


@pytest.mark.parametrize(
    ("request_", "allowed"),
    [
        (AcDischargeRequest(active_power=11_040.0), 11_040.0),
        (AcDischargeRequest(active_power=5_000.0), 5_000.0),
        (AcDischargeRequest(current=10.0), 10.0 * 230.0 * 3),
    ],
    ids=["at_the_maximum", "below", "by_current"],
)
def test_an_ac_discharge_within_ac_bpt_is_allowed(
    request_: AcDischargeRequest, allowed: float
) -> None:
    assert ac_discharge_power(AC_ENTRY, request_, 230.0) == pytest.approx(allowed)


@pytest.mark.parametrize(
    ("entry", "request_", "reason"),
    [
        (AC_ENTRY, AcDischargeRequest(active_power=11_041.0), Refusal.ABOVE_LIMITS),
        (AC_ENTRY, AcDischargeRequest(current=16.1), Refusal.ABOVE_LIMITS),
        (
            AC_ENTRY,
            AcDischargeRequest(active_power=1_000.0, charging=True),
            Refusal.INVALID_REQUEST,
        ),
        (
            {k: v for k, v in AC_ENTRY.items() if k != "ac_bpt"},
            AcDischargeRequest(active_power=1_000.0),
            Refusal.NO_AC_BPT_LIMITS,
        ),
        (
            {**AC_ENTRY, "status_code": "evse_shutdown"},
            AcDischargeRequest(active_power=1_000.0),
            Refusal.NOT_READY,
        ),
    ],
    ids=["power_above", "current_above", "both_directions", "no_ac_bpt", "not_ready"],
)
def test_an_ac_discharge_beyond_ac_bpt_is_refused(
    entry: dict[str, Any], request_: AcDischargeRequest, reason: Refusal
) -> None:
    result = ac_discharge_power(entry, request_, 230.0)
    assert isinstance(result, Refused)
    assert result.reason is reason


def test_the_present_current_is_negative_while_the_modules_import() -> None:
    delivering = {
        name: dataclasses.replace(module(name), output_voltage=400.0, output_current=12.5)
        for name in ("m1", "m2", "m3")
    }
    charging = EvseComposer(DC).compose(inputs(modules=delivering), NOW)
    importing = EvseComposer(DC).compose(
        inputs(modules=delivering, session=SessionCondition(at=NOW, importing=True)), NOW
    )
    assert charging.snapshot.dc is not None
    assert importing.snapshot.dc is not None
    assert charging.snapshot.dc.present_current == 37.5
    assert importing.snapshot.dc.present_current == -37.5
