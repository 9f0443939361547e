"""Properties of the pool's allocation over arbitrary pools (a matrix or banks, some modules
failed, partial reach), sessions, demands, minima, weights, limits and policies. Coverage and
the guaranteed minimum are recomputed here from their definitions, not by the function."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csbridge.config import Policy
from csbridge.limits import Allocation, Bank, Bound, Demand, EvseState, PoolModule, allocate
from tests.support import examples

EXAMPLES = settings(
    max_examples=examples(2000),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
EVSE_IDS = ("E1", "E2", "E3", "E4")
EPSILON = 1e-6

amounts = st.one_of(st.none(), st.floats(min_value=0, max_value=400_000))


@st.composite
def pools(draw: st.DrawFn, full_reach: bool = False, identical: bool = False) -> list[Bank]:
    """Up to nine modules, some failed; `identical`: one capability, all healthy, a matrix."""
    count = draw(st.integers(min_value=1, max_value=9))
    fixed = (draw(st.floats(10, 250)), draw(st.floats(5_000, 60_000)))
    modules = [
        PoolModule(
            f"m{i}",
            fixed[0] if identical else draw(st.floats(10, 250)),
            fixed[1] if identical else draw(st.floats(5_000, 60_000)),
            healthy=True if identical else draw(st.booleans()),
        )
        for i in range(count)
    ]
    # A matrix (one module a bank) or the modules cut into consecutive banks.
    cuts = [] if identical or count == 1 else draw(st.lists(st.integers(1, count - 1), max_size=3))
    edges = [0, *sorted(set(cuts)), count]
    evses = EVSE_IDS  # whichever of them the station has
    banks = []
    for start, end in itertools.pairwise(edges):
        if full_reach:
            reach = frozenset(evses)
        else:
            reach = frozenset(draw(st.lists(st.sampled_from(evses), min_size=1, unique=True)))
        banks.append(Bank(f"b{start}", tuple(modules[start:end]), reach))
    return banks


@st.composite
def stations(draw: st.DrawFn, minimum: bool = True, weights: bool = True) -> list[EvseState]:
    count = draw(st.integers(min_value=1, max_value=4))
    states = []
    for evse_id in EVSE_IDS[:count]:
        states.append(
            EvseState(
                evse_id,
                draw(st.one_of(st.none(), st.floats(0, 1e6))),
                Demand(draw(amounts), draw(amounts), draw(amounts), draw(amounts)),
                draw(st.floats(0, 200_000)) if minimum else 0.0,
                draw(st.floats(0.1, 10)) if weights else 1.0,
                draw(st.one_of(st.none(), st.floats(0, 1000))),
                draw(amounts),
            )
        )
    return states


policies = st.sampled_from(list(Policy))


@st.composite
def holders(draw: st.DrawFn, banks: list[Bank]) -> dict[str, str]:
    return {
        bank.name: draw(st.sampled_from(sorted(bank.reaches)))
        for bank in banks
        if draw(st.booleans())
    }


def _bound(*values: float | None) -> float:
    known = [value for value in values if value is not None]
    return min(known) if known else math.inf


def _need(state: EvseState) -> tuple[float, float]:
    demand = state.demand
    return (
        _bound(demand.current_a, demand.ev_max_current_a, state.limit_current_a),
        _bound(demand.power_w, demand.ev_max_power_w, state.limit_power_w),
    )


def _covers(current_a: float, power_w: float, need: tuple[float, float]) -> bool:
    need_current, need_power = need
    if math.isinf(need_current) and math.isinf(need_power):
        return False
    return (math.isinf(need_current) or current_a >= need_current) and (
        math.isinf(need_power) or power_w >= need_power
    )


def _guarantee(state: EvseState) -> float:
    return min(state.minimum_power_w, _need(state)[1])


def _usable(bank: Bank) -> list[PoolModule]:
    return [module for module in bank.modules if module.healthy]


def _power(bank: Bank) -> float:
    return sum(module.max_power_w for module in _usable(bank))


def _current(bank: Bank) -> float:
    return sum(module.max_current_a for module in _usable(bank))


def _banks_of(allocation: Allocation, banks: list[Bank], evse_id: str) -> list[Bank]:
    by_name = {bank.name: bank for bank in banks}
    return [by_name[name] for name in allocation.shares[evse_id].banks]


@EXAMPLES
@given(st.data(), pools(), stations(), policies)
def test_no_module_twice_and_never_more_than_the_pool(
    data: st.DataObject, banks: list[Bank], states: list[EvseState], policy: Policy
) -> None:
    allocation = allocate(banks, states, policy, data.draw(holders(banks)))
    modules = [m for a in allocation.assignments for m in a.modules]
    assert len(modules) == len(set(modules))
    assert len({a.bank for a in allocation.assignments}) == len(allocation.assignments)
    assert not {a.bank for a in allocation.assignments} & set(allocation.free)
    pool_power = sum(_power(bank) for bank in banks)
    pool_current = sum(_current(bank) for bank in banks)
    shares = allocation.shares.values()
    assert sum(share.max_power_w for share in shares) <= pool_power + EPSILON
    assert sum(share.max_current_a for share in shares) <= pool_current + EPSILON
    by_name = {bank.name: bank for bank in banks}
    for assignment in allocation.assignments:
        assert assignment.evse_id in by_name[assignment.bank].reaches
    for state in states:
        share = allocation.shares[state.evse_id]
        mine = _banks_of(allocation, banks, state.evse_id)
        assert math.isclose(share.max_power_w, sum(_power(b) for b in mine), abs_tol=EPSILON)
        assert math.isclose(share.max_current_a, sum(_current(b) for b in mine), abs_tol=EPSILON)
        if not state.in_session:
            assert share.banks == ()
            assert share.bound is Bound.IDLE


@EXAMPLES
@given(st.data(), pools(), stations(), policies)
def test_a_failed_module_is_never_allocated(
    data: st.DataObject, banks: list[Bank], states: list[EvseState], policy: Policy
) -> None:
    allocation = allocate(banks, states, policy, data.draw(holders(banks)))
    failed = {m.name for bank in banks for m in bank.modules if not m.healthy}
    named = {m for a in allocation.assignments for m in a.modules}
    named |= {m for share in allocation.shares.values() for m in share.modules}
    named |= {m for share in allocation.would_get.values() for m in share.modules}
    assert not named & failed
    dead = {bank.name for bank in banks if not _usable(bank)}
    assert not dead & ({a.bank for a in allocation.assignments} | set(allocation.free))


@EXAMPLES
@given(st.data(), pools(), stations(), policies)
def test_a_demand_below_the_allocation_gives_modules_back(
    data: st.DataObject, banks: list[Bank], states: list[EvseState], policy: Policy
) -> None:
    """No EVSE holds a bank without which its need and its minimum stay covered; an EVSE
    short of its need has no free bank that reaches it."""
    allocation = allocate(banks, states, policy, data.draw(holders(banks)))
    free = [bank for bank in banks if bank.name in allocation.free]
    for state in (s for s in states if s.in_session):
        mine = _banks_of(allocation, banks, state.evse_id)
        for bank in mine:
            rest = [other for other in mine if other is not bank]
            current, power = sum(map(_current, rest)), sum(map(_power, rest))
            assert not (_covers(current, power, _need(state)) and power >= _guarantee(state)), (
                f"{state.evse_id} keeps {bank.name} it does not need"
            )
        covered = _covers(sum(map(_current, mine)), sum(map(_power, mine)), _need(state))
        assert (allocation.shares[state.evse_id].bound is Bound.POOL) == (not covered)
        if not covered:
            assert not [bank for bank in free if state.evse_id in bank.reaches]


@EXAMPLES
@given(pools(full_reach=True), stations(weights=False), policies)
def test_every_session_gets_its_minimum_when_the_pool_allows(
    banks: list[Bank], states: list[EvseState], policy: Policy
) -> None:
    # Enough when each EVSE, overshooting its minimum by less than a bank, leaves the next
    # enough: the sum of minima plus a largest bank each fits in the pool.
    largest = max(_power(bank) for bank in banks)
    session = [s for s in states if s.in_session]
    pool_power = sum(_power(bank) for bank in banks)
    if sum(_guarantee(s) + largest for s in session) > pool_power:
        states = [dataclasses.replace(s, minimum_power_w=0.0) for s in states]
        session = [s for s in states if s.in_session]
    allocation = allocate(banks, states, policy)
    for state in session:
        assert allocation.shares[state.evse_id].max_power_w >= _guarantee(state) - EPSILON


@EXAMPLES
@given(pools(full_reach=True, identical=True), stations(weights=False), policies)
def test_identical_modules_meet_the_minima_whenever_the_count_allows(
    banks: list[Bank], states: list[EvseState], policy: Policy
) -> None:
    module_power = _power(banks[0])
    # Any minimum above zero takes a module, however small (a ratio may round to zero).
    counts = [
        max(1, math.ceil(_guarantee(s) / module_power)) if _guarantee(s) > 0 else 0
        for s in states
        if s.in_session
    ]
    allocation = allocate(banks, states, policy)
    if sum(counts) <= len(banks):
        for state in (s for s in states if s.in_session):
            assert allocation.shares[state.evse_id].max_power_w >= _guarantee(state) - EPSILON


@EXAMPLES
@given(st.data(), pools(), stations(), policies)
def test_an_idle_evse_would_get_what_it_gets_when_it_starts(
    data: st.DataObject, banks: list[Bank], states: list[EvseState], policy: Policy
) -> None:
    current = data.draw(holders(banks))
    allocation = allocate(banks, states, policy, current)
    idle = [s for s in states if not s.in_session]
    assert set(allocation.would_get) == {s.evse_id for s in idle}
    latest = max((s.session_since_s or 0.0 for s in states), default=0.0)
    for state in idle:
        started = dataclasses.replace(state, session_since_s=latest + 1.0, demand=Demand())
        now = allocate(banks, [started if s is state else s for s in states], policy, current)
        assert allocation.would_get[state.evse_id] == now.shares[state.evse_id]


@EXAMPLES
@given(
    st.data(),
    pools(full_reach=True),
    stations(minimum=False),
    st.sampled_from([Policy.EQUAL_SHARE, Policy.PRIORITY]),
)
def test_shares_are_equal_per_weight_within_one_bank(
    data: st.DataObject, banks: list[Bank], states: list[EvseState], policy: Policy
) -> None:
    """No EVSE holds more (per weight) than one bank above an EVSE still short of its need;
    under equal_share two EVSEs both short differ by at most one bank."""
    if policy is Policy.EQUAL_SHARE:
        states = [dataclasses.replace(s, weight=1.0) for s in states]
    allocation = allocate(banks, states, policy, data.draw(holders(banks)))
    largest = max(_power(bank) for bank in banks)
    session = [s for s in states if s.in_session]
    short = [s for s in session if allocation.shares[s.evse_id].bound is Bound.POOL]
    for low in short:
        low_share = allocation.shares[low.evse_id].max_power_w / low.weight
        for other in session:
            share = allocation.shares[other.evse_id].max_power_w / other.weight
            assert share <= low_share + largest / other.weight + EPSILON


@EXAMPLES
@given(pools(), stations(), policies)
def test_same_inputs_same_allocation(
    banks: list[Bank], states: list[EvseState], policy: Policy
) -> None:
    first = allocate(banks, states, policy)
    assert allocate(list(banks), list(states), policy) == first
    counted = Counter(a.evse_id for a in first.assignments)
    assert all(len(first.shares[evse_id].banks) == n for evse_id, n in counted.items())
