"""The pool's allocation, step by step through issue 18's scenario and per policy: which bank
serves which EVSE, why, and what an idle EVSE would get."""

from __future__ import annotations

import math

from csbridge.config import Policy, PoolConfig
from csbridge.limits import (
    Allocation,
    Bank,
    Bound,
    Demand,
    EvseState,
    PoolModule,
    Why,
    allocate,
    pool_banks,
)

BOTH = frozenset({"E1", "E2"})


def _matrix(count: int = 6, failed: tuple[int, ...] = ()) -> list[Bank]:
    """`count` 30 kW / 100 A modules, each with a contactor to both EVSEs."""
    return [
        Bank(f"m{i}", (PoolModule(f"m{i}", 100.0, 30_000.0, healthy=i not in failed),), BOTH)
        for i in range(1, count + 1)
    ]


def _held(allocation: Allocation, evse_id: str) -> set[str]:
    return set(allocation.shares[evse_id].modules)


def _now(allocation: Allocation) -> dict[str, str]:
    return {a.bank: a.evse_id for a in allocation.assignments}


def test_the_shared_pool_scenario_under_equal_share() -> None:
    banks = _matrix()
    # EV1 alone takes everything; E2, idle, would get half.
    alone = allocate(banks, [EvseState("E1", 10.0), EvseState("E2")])
    assert alone.shares["E1"].max_power_w == 180_000.0
    assert alone.shares["E1"].bound is Bound.POOL
    assert alone.shares["E2"].bound is Bound.IDLE
    assert alone.shares["E2"].banks == ()
    assert alone.would_get["E2"].max_power_w == 90_000.0
    assert alone.would_get["E2"].bound is Bound.POOL
    # EV2 arrives: 90 kW each, and only the three modules that must move do.
    both = allocate(banks, [EvseState("E1", 10.0), EvseState("E2", 20.0)], current=_now(alone))
    assert [both.shares[e].max_power_w for e in ("E1", "E2")] == [90_000.0, 90_000.0]
    assert _held(both, "E1") < _held(alone, "E1")
    assert both.would_get == {}
    # EV2 asks for 30 kW: its spare modules go back to EV1.
    low = Demand(current_a=75.0, power_w=30_000.0)
    settled = allocate(
        banks, [EvseState("E1", 10.0), EvseState("E2", 20.0, low)], current=_now(both)
    )
    assert len(settled.shares["E2"].modules) == 1
    assert settled.shares["E2"].bound is Bound.DEMAND
    assert _held(settled, "E2") < _held(both, "E2")
    assert settled.shares["E1"].max_power_w == 150_000.0
    # One module (one of EV1's) fails: it is nobody's.
    broken = next(iter(sorted(_held(settled, "E1"))))
    failed = int(broken.removeprefix("m"))
    faulty = allocate(
        _matrix(failed=(failed,)),
        [EvseState("E1", 10.0), EvseState("E2", 20.0, low)],
        current=_now(settled),
    )
    assert faulty.evse_of(broken) is None
    assert broken not in faulty.free
    assert faulty.shares["E1"].max_power_w == 120_000.0
    assert _held(faulty, "E2") == _held(settled, "E2")
    # EV1 leaves, EV2 asks for everything again: it gets all five healthy modules.
    last = allocate(
        _matrix(failed=(failed,)), [EvseState("E1"), EvseState("E2", 20.0)], current=_now(faulty)
    )
    assert last.shares["E2"].max_power_w == 150_000.0
    assert last.would_get["E1"].max_power_w == 60_000.0  # 5 modules: the newcomer has 2


def test_first_come_serves_the_earliest_session_first() -> None:
    wants_90 = Demand(current_a=300.0, power_w=90_000.0)
    allocation = allocate(
        _matrix(),
        [EvseState("E1", 20.0), EvseState("E2", 10.0, wants_90)],
        Policy.FIRST_COME,
    )
    assert allocation.shares["E2"].max_power_w == 90_000.0
    assert allocation.shares["E2"].bound is Bound.DEMAND
    assert allocation.shares["E1"].max_power_w == 90_000.0
    assert allocation.shares["E1"].bound is Bound.POOL
    everything = allocate(
        _matrix(), [EvseState("E1", 20.0), EvseState("E2", 10.0)], Policy.FIRST_COME
    )
    assert everything.shares["E2"].max_power_w == 180_000.0
    assert everything.shares["E1"].banks == ()


def test_the_guaranteed_minimum_holds_under_first_come() -> None:
    allocation = allocate(
        _matrix(),
        [EvseState("E1", 20.0, minimum_power_w=45_000.0), EvseState("E2", 10.0)],
        Policy.FIRST_COME,
    )
    late = [a for a in allocation.assignments if a.evse_id == "E1"]
    assert [a.why for a in late] == [Why.MINIMUM, Why.MINIMUM]
    assert allocation.shares["E2"].max_power_w == 120_000.0
    # An idle EVSE's minimum is part of what it would get.
    idle = allocate(
        _matrix(),
        [EvseState("E1", minimum_power_w=45_000.0), EvseState("E2", 10.0)],
        Policy.FIRST_COME,
    )
    assert idle.would_get["E1"].max_power_w == 60_000.0
    assert idle.shares["E2"].max_power_w == 180_000.0


def test_a_minimum_beyond_the_evs_demand_is_not_held() -> None:
    small = Demand(current_a=20.0, power_w=8_000.0)
    allocation = allocate(
        _matrix(), [EvseState("E1", 10.0, small, minimum_power_w=60_000.0), EvseState("E2", 20.0)]
    )
    assert allocation.shares["E1"].max_power_w == 30_000.0
    assert allocation.shares["E2"].max_power_w == 150_000.0


def test_priority_shares_in_proportion_to_weight() -> None:
    allocation = allocate(
        _matrix(),
        [EvseState("E1", 10.0, weight=1.0), EvseState("E2", 20.0, weight=2.0)],
        Policy.PRIORITY,
    )
    assert allocation.shares["E2"].max_power_w == 120_000.0
    assert allocation.shares["E1"].max_power_w == 60_000.0


def test_an_external_limit_gives_modules_to_the_other_evse() -> None:
    allocation = allocate(
        _matrix(), [EvseState("E1", 10.0, limit_power_w=45_000.0), EvseState("E2", 20.0)]
    )
    assert allocation.shares["E1"].max_power_w == 60_000.0
    assert allocation.shares["E1"].bound is Bound.LIMIT
    assert allocation.shares["E2"].max_power_w == 120_000.0
    current_limited = allocate(
        _matrix(), [EvseState("E1", 10.0, limit_current_a=100.0), EvseState("E2", 20.0)]
    )
    assert current_limited.shares["E1"].modules == ("m1",)


def test_ev_rated_limits_bound_the_demand() -> None:
    rated = Demand(ev_max_current_a=150.0, ev_max_power_w=50_000.0)
    allocation = allocate(_matrix(), [EvseState("E1", 10.0, rated), EvseState("E2", 20.0)])
    assert allocation.shares["E1"].max_power_w == 60_000.0
    assert allocation.shares["E1"].bound is Bound.DEMAND
    assert allocation.shares["E2"].max_power_w == 120_000.0


def test_a_bank_moves_whole_and_names_only_its_healthy_modules() -> None:
    def bank(name: str, *modules: PoolModule) -> Bank:
        return Bank(name, modules, BOTH)

    banks = [
        bank("a", PoolModule("a1", 100.0, 30_000.0), PoolModule("a2", 100.0, 30_000.0, False)),
        bank("b", PoolModule("b1", 100.0, 30_000.0), PoolModule("b2", 100.0, 30_000.0)),
        bank("c", PoolModule("c1", 100.0, 30_000.0, False)),
    ]
    allocation = allocate(banks, [EvseState("E1", 1.0), EvseState("E2", 2.0)])
    assert allocation.shares["E1"].modules == ("b1", "b2")
    assert allocation.shares["E2"].modules == ("a1",)
    assert [(a.bank, a.modules) for a in allocation.assignments] == [
        ("b", ("b1", "b2")),
        ("a", ("a1",)),
    ]
    assert allocation.free == ()


def test_a_bank_serves_only_the_evses_it_reaches() -> None:
    banks = [
        Bank("base", (PoolModule("base", 100.0, 30_000.0),), frozenset({"E1"})),
        Bank("m1", (PoolModule("m1", 100.0, 30_000.0),), BOTH),
    ]
    allocation = allocate(banks, [EvseState("E1"), EvseState("E2", 1.0)])
    assert allocation.shares["E2"].banks == ("m1",)
    assert allocation.free == ("base",)
    assert allocation.would_get["E1"].banks == ("base",)
    assert allocation.would_get["E1"].bound is Bound.POOL


def test_bad_figures_count_as_nothing_and_a_repeated_evse_once() -> None:
    banks = [
        Bank("nan", (PoolModule("nan", math.nan, 30_000.0),), BOTH),
        Bank("neg", (PoolModule("neg", 100.0, -1.0),), BOTH),
        *_matrix(2),
    ]
    garbled = Demand(current_a=math.nan, power_w=math.inf, ev_max_power_w=-5.0)
    allocation = allocate(
        banks,
        [
            EvseState("E1", math.nan, weight=math.nan, minimum_power_w=math.nan),
            EvseState("E2", 2.0, garbled),
            EvseState("E1", 3.0),
        ],
    )
    assert allocation.evse_of("nan") is None
    assert allocation.evse_of("neg") is None
    assert allocation.shares["E2"].banks == ()  # its EV may draw nothing
    assert allocation.shares["E2"].bound is Bound.DEMAND
    assert allocation.shares["E1"].modules == ("m1", "m2")
    assert [a.evse_id for a in allocation.assignments] == ["E1", "E1"]


def test_a_configured_pool_becomes_banks_and_a_module_without_reading_is_failed() -> None:
    simulated = {"max_voltage_v": 1000, "max_current_a": 100, "max_power_w": 30000}
    pool = PoolConfig.model_validate(
        {
            "name": "cabinet",
            "evse": [{"evse_id": "E1"}, {"evse_id": "E2"}],
            "module": [{"name": n, "simulated": simulated} for n in ("a1", "a2", "m3")],
            "group": [{"name": "a", "modules": ["a1", "a2"]}],
            "contactor": [
                {"group": "a", "evse": "E1", "command": "KA1", "feedback": "KA1_FB"},
                {"group": "a", "evse": "E2", "command": "KA2", "feedback": "KA2_FB"},
                {"module": "m3", "evse": "E2", "command": "K3", "feedback": "K3_FB"},
            ],
        }
    )
    readings = {name: PoolModule(name, 100.0, 30_000.0) for name in ("a1", "m3")}
    banks = pool_banks(pool.banks(), readings)
    assert [(b.name, [m.healthy for m in b.modules], b.reaches) for b in banks] == [
        ("a", [True, False], BOTH),
        ("m3", [True], frozenset({"E2"})),
    ]
    allocation = allocate(banks, [EvseState("E1", 1.0), EvseState("E2", 2.0)], pool.policy)
    assert allocation.shares["E1"].modules == ("a1",)
    assert allocation.shares["E2"].modules == ("m3",)
