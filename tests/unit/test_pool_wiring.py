"""The pieces that wire a shared module pool (issue 18): a pooled EVSE's limits from the modules
its pool counts for it, the pool's installation limit split, the `pool` binding source, the
view of the pool's drivers a pooled EVSE drives, the contactor matrix's signals, and the pacing
release of a pool decrease. All pure: no broker, no bus."""

from __future__ import annotations

import math
from typing import Any

import pytest

from csbridge.config import Config, load_config
from csbridge.config.pool import PoolSwitchingConfig
from csbridge.engine import LimitsEngine
from csbridge.limits import (
    Bound,
    DcLimits,
    Demand,
    EvseComposer,
    EvseInputs,
    LimitSource,
    PoolScope,
    Share,
    StatusCode,
)
from csbridge.power import (
    NoModuleDriver,
    PoolModules,
    SimulatedMatrixDriver,
    SwitchingSettings,
    matrix_contacts,
    pool_layout,
    pool_problems,
)
from csbridge.resources import example_config
from csbridge.session.pool import _below, _rated_maxima
from csbridge.sources import BoardReading, Capability, ImdReading, ModuleReading
from csbridge.sources.simulated import SimulatedDevices

NOW = 100.0
EVSE1 = "DE*CSB*E0001"
EVSE2 = "DE*CSB*E0002"
CONFIG: Config = load_config(example_config("shared-pool.toml"))
POOL = CONFIG.pool[0]


def _reading(name: str, *, current: float = 0.0, at: float = NOW) -> ModuleReading:
    """A module of the example: 100 A / 30 kW, 150-1000 V."""
    return ModuleReading(
        name=name,
        address=int(name[1:]),
        at=at,
        output_voltage=400.0 if current else 0.0,
        output_current=current,
        export=Capability(
            max_voltage=1000.0, min_voltage=150.0, max_current=100.0, max_power=30000.0
        ),
    )


READINGS = {f"m{i}": _reading(f"m{i}") for i in range(1, 7)}
IMD = ImdReading(at=NOW, resistance_ohm=5_000_000.0)
BOARD = BoardReading(at=NOW, evse_temperature_c=30.0, plug_temperature_c=30.0)


def _dc(composition: Any) -> DcLimits:
    snapshot = getattr(composition, "snapshot", composition)
    dc = snapshot.dc
    assert isinstance(dc, DcLimits)
    return dc


def _compose(scope: PoolScope, connected: frozenset[str] = frozenset()) -> Any:
    evse = CONFIG.evse[0]
    composer = EvseComposer(evse, POOL.module)
    inputs = EvseInputs(
        modules={n: r for n, r in READINGS.items() if n in connected},
        imd=IMD,
        board=BOARD,
        pool=scope,
    )
    return composer.compose(inputs, NOW)


def test_a_pooled_evse_reports_the_modules_its_pool_counts_for_it() -> None:
    three = PoolScope("cabinet", frozenset({"m1", "m2", "m3"}), READINGS, 0.5, False, 6)
    composition = _compose(three)
    dc = composition.snapshot.dc
    assert dc.max_power == 90000.0
    assert dc.max_current == 300.0
    assert composition.binding["max_power"] is LimitSource.POOL
    assert composition.binding["max_current"] is LimitSource.POOL
    assert composition.snapshot.status_code is StatusCode.EVSE_READY


def test_an_evse_counting_the_whole_pool_is_bound_by_the_hardware_as_a_stack_is() -> None:
    everything = frozenset(READINGS)
    composition = _compose(PoolScope("cabinet", everything, READINGS, 1.0, False, 6, whole=True))
    assert _dc(composition).max_power == 180000.0
    assert composition.binding["max_power"] is LimitSource.HARDWARE


def test_the_pools_installation_limit_is_split_in_the_allocations_proportion() -> None:
    # 200 kW at 95 %: 190 kW for the pool; a sixth of it for an EVSE holding one module of six.
    one = PoolScope("cabinet", frozenset({"m1", "m2", "m3", "m4"}), READINGS, 1 / 6, False, 6)
    composition = _compose(one)
    assert composition.snapshot.dc.max_power == pytest.approx(190000.0 / 6)
    assert composition.binding["max_power"] is LimitSource.INSTALLATION


def test_present_values_come_from_the_modules_connected_not_those_counted() -> None:
    # Counted: the three it would get; connected: none, though m1 delivers to another EVSE.
    readings = dict(READINGS, m1=_reading("m1", current=50.0))
    scope = PoolScope("cabinet", frozenset({"m1", "m2", "m3"}), readings, 0.5, False, 6)
    composer = EvseComposer(CONFIG.evse[0], POOL.module)
    composition = composer.compose(EvseInputs(modules={}, imd=IMD, board=BOARD, pool=scope), NOW)
    assert _dc(composition).present_current == 0.0
    assert _dc(composition).max_power == 90000.0


def test_a_pool_not_heard_from_yet_is_waiting_and_one_with_no_module_left_is_lost() -> None:
    waiting = _compose(PoolScope("cabinet", starting=True))
    assert waiting.snapshot.status_code is StatusCode.EVSE_NOT_READY
    lost = _compose(PoolScope("cabinet", readings=READINGS, starting=False, usable=0))
    assert lost.snapshot.status_code is StatusCode.EVSE_MALFUNCTION
    assert lost.snapshot.dc.max_power == 0.0


def test_a_pooled_evse_drives_only_the_modules_serving_it() -> None:
    drivers = {f"m{i}": NoModuleDriver() for i in range(1, 4)}
    view = PoolModules(drivers)
    assert list(view) == []
    assert len(view) == 0
    view.serving = frozenset({"m3", "m1"})
    assert list(view) == ["m1", "m3"]  # configuration order
    assert view["m1"] is drivers["m1"]
    with pytest.raises(KeyError):
        view["m2"]
    assert set(view.every) == {"m1", "m2", "m3"}


def test_each_contactor_of_the_example_is_one_contact_of_the_matrix() -> None:
    layout = pool_layout(POOL)
    by_pair, by_feedback, problems = matrix_contacts(POOL, layout)
    assert problems == []
    # Bit 4*m + b: module index m (from 0), bus b (EVSE1: 0, EVSE2: 1).
    assert by_pair[("m1", EVSE1)] == (0, 0)
    assert by_pair[("m6", EVSE2)] == (5, 1)
    assert len(set(by_pair.values())) == 12
    assert by_feedback[(2, 1)] == ("m3", EVSE2)
    assert pool_problems(CONFIG) == []


def test_a_contactor_whose_signals_name_two_contacts_or_none_is_refused() -> None:
    pool = POOL.model_copy(
        update={
            "contactor": [
                POOL.contactor[0].model_copy(update={"feedback": "CLOSED_M01_B0"}),
                POOL.contactor[1].model_copy(update={"command": "K_NOWHERE"}),
                *POOL.contactor[2:],
            ]
        }
    )
    problems = matrix_contacts(pool, pool_layout(pool))[2]
    assert problems == [
        "pool cabinet contactor[0]: CLOSE_M00_B0 and CLOSED_M01_B0 are different contacts",
        "pool cabinet contactor[1].command: K_NOWHERE is no signal of contactor-matrix",
    ]


def test_the_simulated_board_obeys_after_its_delay_and_the_feedback_says_so() -> None:
    now = [0.0]
    driver = SimulatedMatrixDriver(POOL, clock=lambda: now[0])
    assert driver.feedback() == {}
    driver.command("m2", EVSE2, closed=True)
    assert driver.feedback() == {}  # not yet: 20 ms
    now[0] = 0.021
    assert driver.feedback() == {"m2": frozenset({EVSE2})}
    driver.command("m2", EVSE2, closed=False)
    now[0] = 0.05
    assert driver.feedback() == {}


def test_a_pool_decrease_goes_to_josev_at_once_whatever_the_update_gap() -> None:
    now = [NOW]
    engine = LimitsEngine(CONFIG, clock=lambda: now[0])
    updates = engine.updates
    engine.ingest(EVSE1, IMD)
    engine.ingest(EVSE1, BOARD)
    for reading in READINGS.values():
        engine.ingest(EVSE1, reading)
    three = PoolScope("cabinet", frozenset({"m1", "m2", "m3"}), {}, 1.0, False, 6)
    engine.set_pool_scope(EVSE1, three, frozenset(), None)
    assert _dc(engine.snapshots.get(EVSE1)).max_power == 90000.0
    updates.told_all()  # just sent: the next change would wait 50 ms
    two = PoolScope("cabinet", frozenset({"m1", "m2"}), {}, 1.0, False, 6)
    engine.set_pool_scope(EVSE1, two, frozenset(), None)
    assert updates.take_due() == []  # a plain decrease is held within the gap
    one = PoolScope("cabinet", frozenset({"m1"}), {}, 1.0, False, 6)
    engine.set_pool_scope(EVSE1, one, frozenset(), None, urgent=True)
    due = dict(updates.take_due())
    assert EVSE1 in due
    assert due[EVSE1].to_json()["dc"]["max_power"] == 30000


def test_a_pool_module_reading_counts_for_every_evse_of_the_pool() -> None:
    engine = LimitsEngine(CONFIG, clock=lambda: NOW)
    engine.ingest(EVSE1, READINGS["m4"])
    assert set(engine.pool_readings(EVSE2)) == {"m4"}
    assert engine.inputs(EVSE2).modules == {}  # nothing connected to its bus


def test_demand_below_a_share_and_the_evs_rated_maxima() -> None:
    share = Share(EVSE1, ("m1",), ("m1",), 100.0, 30000.0, Bound.POOL)
    assert _below(Demand(current_a=50.0, power_w=20000.0), share)
    assert not _below(Demand(), share)
    assert not _below(Demand(current_a=150.0, power_w=60000.0), share)
    assert _below(Demand(ev_max_power_w=10000.0), share)
    rated = {"ev_max_current": 200, "ev_max_power": 50000.0, "ev_max_discharge_power": 1.0}
    assert _rated_maxima(rated) == (200.0, 50000.0)
    assert _rated_maxima({"ev_max_power": math.inf, "ev_max_current": True}) == (None, None)
    assert _rated_maxima(None) == (None, None)


def test_a_pool_of_one_evse_reports_exactly_what_its_own_stack_would() -> None:
    own = CONFIG.evse[0].model_copy(update={"module": list(POOL.module)})
    connected = {name: _reading(name, current=20.0) for name in READINGS}
    stack = EvseComposer(own).compose(EvseInputs(modules=connected, imd=IMD, board=BOARD), NOW)
    everything = frozenset(READINGS)
    scope = PoolScope("cabinet", everything, connected, 1.0, False, 6, whole=True)
    pooled = EvseComposer(CONFIG.evse[0], POOL.module).compose(
        EvseInputs(modules=connected, imd=IMD, board=BOARD, pool=scope), NOW
    )
    assert pooled.snapshot == stack.snapshot
    assert pooled.binding == stack.binding


def test_any_evse_of_the_pool_can_silence_a_simulated_pool_module() -> None:
    engine = LimitsEngine(CONFIG, clock=lambda: NOW)
    devices = SimulatedDevices.from_config(CONFIG, engine.ingest, lambda: NOW)
    assert devices.apply(EVSE2, {"action": "silence_module", "module": "m3"}) is None
    assert devices.modules[(EVSE1, "m3")].silent
    assert devices.apply(EVSE1, {"action": "restore_module", "module": "m3"}) is None
    assert not devices.modules[(EVSE1, "m3")].silent
    assert devices.apply(EVSE2, {"action": "silence_module", "module": "m9"}) is not None


def test_the_configured_switching_defaults_are_the_sequencers() -> None:
    assert SwitchingSettings(**PoolSwitchingConfig().model_dump()) == SwitchingSettings()
    assert POOL.switching == PoolSwitchingConfig()
