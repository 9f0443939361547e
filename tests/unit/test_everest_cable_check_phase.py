"""The cable check through the power stage to EVerest API devices (issue 20, item 7): the EV's
maximum voltage reaches the IMD's self-test through the driver protocol, and the supply's
ChargingPhase follows the session's cable check, not the IMD (EVerest/EVerest
modules/EVSE/EvseManager/EvseManager.cpp: the phase is CableCheck from start_cable_check, and
powersupply_DC_off sends Off in the phase it is in, then the phase is Other). Pure: the sources
publish into a list on a hand-moved clock."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from csbridge.engine.engine import LimitsEngine
from csbridge.messages import EvRatedLimitsUpdate, StopChargingRequest
from csbridge.power import (
    EvsePower,
    NoBoardDriver,
    NoImdDriver,
    NoModuleDriver,
    PhasedModule,
    PowerStage,
)
from csbridge.power.everest import EverestApiImd, EverestApiModule
from csbridge.session import SessionHandlers
from csbridge.sources.readings import CpState, ImdReading
from tests.session_rig import DC, START_S, TICK_S, SessionRig
from tests.unit.test_everest_api_facts import EVSE, IMD, PSU, Rig, everest_config, rig

OFF_CHECKING = {"mode": "Off", "charging_phase": "CableCheck"}
OFF_IDLE = {"mode": "Off", "charging_phase": "Other"}


def stage_of(r: Rig, *, everest_imd: bool = True) -> PowerStage:
    imd = EverestApiImd(r.sources, EVSE) if everest_imd else NoImdDriver()
    modules = {"psu1": EverestApiModule(r.sources, EVSE, "psu1")}
    return PowerStage({EVSE: EvsePower(modules, NoBoardDriver(), imd)})


def test_only_a_supply_whose_commands_carry_a_phase_is_told_of_the_cable_check() -> None:
    assert isinstance(EverestApiModule(rig().sources, EVSE, "psu1"), PhasedModule)
    assert not isinstance(NoModuleDriver(), PhasedModule)


@pytest.mark.parametrize(("ev_max", "volts"), [(920.0, 1000.0), (400.0, 450.0), (None, 500.0)])
def test_the_cable_check_self_test_runs_at_the_voltage_for_the_evs_maximum(
    ev_max: float | None, volts: float
) -> None:
    # EVerest's get_cable_check_voltage for an EVSE of 1000 V: > 500 V: min(1000, 1.1 x EV max);
    # <= 500 V: min(500, EV max + 50); no EV maximum: 500 V assumed.
    r = rig(everest_config(communication_check_s=0))
    stage_of(r).start_cable_check(EVSE, ev_max)
    assert r.on(f"{IMD}/e2m/start_self_test") == [pytest.approx(volts)]


def test_offs_during_the_cable_check_say_cable_check_until_it_ends() -> None:
    r = rig(everest_config(communication_check_s=0))
    stage = stage_of(r)
    stage.start_cable_check(EVSE, 800.0)
    stage.switch_off(EVSE)  # the session's hold-off while the IMD tests itself
    r.send(f"{IMD}/m2e/self_test_result", True)
    stage.switch_off(EVSE)  # ... and while it waits for a sample after the test
    assert r.on(f"{PSU}/e2m/mode") == [OFF_CHECKING, OFF_CHECKING]
    stage.switch_off(EVSE)  # the failed check's Off, sent before the check ends
    stage.end_cable_check(EVSE)
    stage.switch_off(EVSE)
    assert r.on(f"{PSU}/e2m/mode")[-2:] == [OFF_CHECKING, OFF_IDLE]


def test_the_phase_follows_the_session_when_the_imd_is_not_everests() -> None:
    r = rig(everest_config(communication_check_s=0))
    stage = stage_of(r, everest_imd=False)
    stage.start_cable_check(EVSE, 800.0)
    stage.switch_off(EVSE)
    assert r.on(f"{PSU}/e2m/mode") == [OFF_CHECKING]
    assert r.on(f"{IMD}/e2m/start_self_test") == []


def test_a_precharge_setpoint_ends_the_cable_check_phase() -> None:
    r = rig(everest_config(communication_check_s=0))
    stage = stage_of(r)
    stage.start_cable_check(EVSE, 800.0)
    r.send(f"{IMD}/m2e/self_test_result", True)
    module = stage.evses[EVSE].modules["psu1"]
    module.command(400.0, 2.0, precharge=True)
    module.command(400.0, 100.0, precharge=False)
    stage.switch_off(EVSE)
    assert r.on(f"{PSU}/e2m/mode") == [
        {"mode": "Export", "charging_phase": "PreCharge"},
        {"mode": "Export", "charging_phase": "Charging"},
        OFF_IDLE,
    ]


def test_a_charging_setpoint_straight_after_the_check_is_phase_charging() -> None:
    r = rig(everest_config(communication_check_s=0))
    stage = stage_of(r)
    stage.start_cable_check(EVSE, 800.0)
    r.send(f"{IMD}/m2e/self_test_result", True)
    stage.evses[EVSE].modules["psu1"].command(500.0, 100.0, precharge=False)
    stage.switch_off(EVSE)
    assert r.on(f"{PSU}/e2m/mode") == [
        {"mode": "Export", "charging_phase": "Charging"},
        OFF_IDLE,
    ]


def test_a_reset_self_test_is_no_cable_check() -> None:
    r = rig(everest_config(communication_check_s=0))
    stage = stage_of(r)
    stage.start_imd_self_test(EVSE)
    stage.switch_off(EVSE)
    assert r.on(f"{IMD}/e2m/start_self_test") == [pytest.approx(500.0)]
    assert r.on(f"{PSU}/e2m/mode") == [OFF_IDLE]


# -- the session: which EV maximum it passes ---------------------------------------------------


@dataclass
class RecordingImd:
    """An IMD driver that keeps the EV maximum voltage each self-test was asked with."""

    asked: list[float | None] = field(default_factory=list)

    def start_self_test(self, ev_max_voltage: float | None = None) -> None:
        self.asked.append(ev_max_voltage)


def session_with(imd: RecordingImd) -> SessionRig:
    """SessionRig.ready's station, on an engine of its own, its DC EVSE's IMD the recording one."""
    config = SessionRig.ready().config
    ticks = itertools.count()
    engine = LimitsEngine(config, clock=lambda: START_S + next(ticks) * TICK_S)
    drivers = {evse.evse_id: EvsePower({}, NoBoardDriver(), NoImdDriver()) for evse in config.evse}
    drivers[DC] = EvsePower({}, NoBoardDriver(), imd)
    rig = SessionRig(config, engine, SessionHandlers(config, engine, PowerStage(drivers)))
    for module in config.evse[0].module:
        rig.module(module.name)
    engine.ingest(DC, ImdReading(at=engine.clock(), resistance_ohm=5_000_000.0))
    rig.board()
    return rig


def rated(max_voltage: float | str) -> EvRatedLimitsUpdate:
    return EvRatedLimitsUpdate(evse_id=DC, dc_rated_limits={"max_voltage": max_voltage})


@pytest.mark.parametrize(
    ("told", "asked"),
    [(920.0, 920.0), (400, 400.0), (-5.0, None), (0.0, None), (True, None), ("800", None)],
)
def test_the_cable_check_asks_the_imd_with_the_evs_rated_maximum_when_usable(
    told: float | str, asked: float | None
) -> None:
    imd = RecordingImd()
    rig = session_with(imd)
    rig.pilot(CpState.B)
    rig.session.ev_rated_limits(rated(told))
    rig.into_cable_check()
    assert imd.asked == [asked]


def test_an_ev_that_tells_no_maximum_is_not_tested_for_the_last_evs() -> None:
    imd = RecordingImd()
    rig = session_with(imd)
    rig.pilot(CpState.B)
    rig.session.ev_rated_limits(rated(920.0))
    rig.into_cable_check()
    rig.session.stop_charging(StopChargingRequest(evse_id=DC))
    rig.unplug()
    rig.into_cable_check()
    assert imd.asked == [920.0, None]
