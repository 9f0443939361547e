"""Issue 20, EVerest item 7, end to end through a real mosquitto: the IMD's self-test runs at the
cable-check voltage EVerest's EvseManager computes for the EV's maximum voltage
(modules/EVSE/EvseManager/EvseManager.cpp, get_cable_check_voltage: IEC 61851-23:2023 CC.4.1.2,
formula CC.1), and the power supply's e2m/mode carries EVerest's ChargingPhase in the order of
a DC session (power_supply_DC_API.yaml: ModeRequest {mode, charging_phase}, charging_phase one
of Other, CableCheck, PreCharge, Charging)."""

from __future__ import annotations

from typing import Any

import pytest

from csbridge.service.station import Station
from csbridge.testing.harness import wait_until
from csbridge.tools.emulator import JosevEmulator
from tests.integration import test_everest_api
from tests.integration.test_dc_session import _finished_cable_check, _setpoint
from tests.integration.test_everest_api import EverestModules
from tests.support import ready_for_cable_check

EVSE = "DE*CSB*E0002"
EVSE_MAX_V = 1000.0
"""examples/everest-psu.toml's nameplate (and the supply's max_export_voltage_V)."""


# The EVerest station of the API tests, fixture for fixture: the same devices, the same Josev.
config = test_everest_api.config
modules = test_everest_api.modules
station = test_everest_api.station
josev = test_everest_api.josev


def everest_formula_cc1(ev_max: float, evse_max: float) -> float:
    """EVerest's get_cable_check_voltage, written here from its source, not imported."""
    if ev_max <= 500.0:
        return min(500.0, ev_max + 50.0, evse_max)
    return min(evse_max, 1.1 * ev_max)


async def _ev_rated_limits(station: Station, josev: JosevEmulator, max_voltage: float) -> None:
    """The EV's rated limits as Josev sends them after ChargeParameterDiscovery."""
    session = station.session.sessions[EVSE]
    limits = {"max_voltage": max_voltage, "max_charge_current": 200.0}
    await josev.update("ev_rated_limits", {"evse_id": EVSE, "dc_rated_limits": limits})
    await wait_until(lambda: session.ev_rated_limits is not None, 5, "the EV's rated limits")


async def _start_cable_check(josev: JosevEmulator) -> None:
    started = await josev.request(
        "cable_check", {"evse_id": EVSE, "cable_check_action": "start"}, timeout=5
    )
    assert started.data["cable_check_status"] == "ongoing"


@pytest.mark.parametrize(("ev_max", "expected"), [(920.0, 1000.0), (800.0, 880.0)])
async def test_the_self_test_runs_at_everests_cable_check_voltage_for_the_evs_maximum(
    josev: JosevEmulator, modules: EverestModules, station: Station, ev_max: float, expected: float
) -> None:
    assert everest_formula_cc1(ev_max, EVSE_MAX_V) == pytest.approx(expected)
    await ready_for_cable_check(station, josev, EVSE)
    await _ev_rated_limits(station, josev, ev_max)
    await _start_cable_check(josev)
    await wait_until(lambda: bool(modules.seen("e2m/start_self_test")), 5, "the self-test")
    assert modules.seen("e2m/start_self_test") == [pytest.approx(expected)]


def _phases(modes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(mode, charging_phase) of each e2m/mode, repeats of the one before left out."""
    phases: list[tuple[str, str]] = []
    for mode in modes:
        pair = (mode["mode"], mode["charging_phase"])
        if not phases or phases[-1] != pair:
            phases.append(pair)
    return phases


async def test_the_supplys_mode_carries_the_phases_of_a_dc_session_in_order(
    josev: JosevEmulator, modules: EverestModules, station: Station
) -> None:
    checking = {"mode": "Off", "charging_phase": "CableCheck"}
    await ready_for_cable_check(station, josev, EVSE)
    await _ev_rated_limits(station, josev, 800.0)
    await _start_cable_check(josev)
    # The session holds the supply off while the IMD tests itself: that Off says CableCheck.
    await wait_until(lambda: checking in modules.seen("e2m/mode"), 5, "an Off in CableCheck")
    await modules.imd("m2e/self_test_result", True)
    verdict = await _finished_cable_check(josev, EVSE, 5, every=0.1)
    assert verdict["isolation_level"] == "valid"
    for precharge, voltage, current in ((True, 400.0, 2.0), (False, 400.0, 100.0)):
        request = {**_setpoint(voltage, current, precharge=precharge), "evse_id": EVSE}
        answer = await josev.request("power_electronics_setpoint", request, timeout=5)
        assert answer.data["status"] == "accepted"
    await wait_until(
        lambda: modules.seen("e2m/mode")[-1:] == [{"mode": "Export", "charging_phase": "Charging"}],
        5,
        "the supply charging",
    )
    await josev.request("stop_charging", {"evse_id": EVSE}, timeout=5)
    await wait_until(lambda: modules.seen("e2m/mode")[-1]["mode"] == "Off", 5, "the supply off")

    phases = _phases(modules.seen("e2m/mode"))
    first_check = phases.index(("Off", "CableCheck"))
    assert set(phases[:first_check]) == {("Off", "Other")}  # idle before the session
    assert phases[first_check:] == [
        ("Off", "CableCheck"),
        ("Export", "PreCharge"),
        ("Export", "Charging"),
        ("Off", "Other"),
    ]
