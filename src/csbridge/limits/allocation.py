"""Which banks of a shared module pool serve which EVSE, and why: a pure function of the banks
(what switches as one, its healthy modules' capability, the EVSEs its contactors reach), each
EVSE's session, demand, guaranteed minimum, weight and limits, and the pool's policy.

The steps, each over the EVSEs in session in the policy's order (first_come: earliest session
first; priority: highest weight first; equal_share: earliest first, which only breaks ties):

1. minimum: each gets banks until its guaranteed minimum power (capped by what it needs) is met;
2. share: first_come serves each in turn until its need is covered; equal_share and priority
   give the next bank to the EVSE holding the least power per weight, until every need is
   covered or no free bank reaches the EVSEs still short;
3. give back: an EVSE holding a bank it can do without (its need stays covered) returns it,
   and step 2 runs again for the others.

A bank is picked so that moves stay few: banks the EVSE holds now first; among those, the
smallest bank that covers what is still missing, else the largest. An idle EVSE holds nothing;
what it would get is the same computation with it in session now, its EV's demand unknown.
Only moving whole banks, a module can never be on two EVSEs; a failed module is in no bank's
capability and named in no assignment.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from csbridge.config import BankTopology, Policy


@dataclass(frozen=True, slots=True)
class PoolModule:
    name: str
    max_current_a: float
    max_power_w: float
    healthy: bool = True

    @property
    def usable(self) -> bool:
        """Healthy, with a capability it can deliver (a non-finite or non-positive figure is
        no capability at all)."""
        return self.healthy and _positive(self.max_current_a) and _positive(self.max_power_w)


@dataclass(frozen=True, slots=True)
class Bank:
    """What switches as one: a module alone (a matrix) or a group; the EVSEs it can reach."""

    name: str
    modules: tuple[PoolModule, ...]
    reaches: frozenset[str]

    @property
    def usable_modules(self) -> tuple[PoolModule, ...]:
        return tuple(module for module in self.modules if module.usable)

    @property
    def current_a(self) -> float:
        return math.fsum(module.max_current_a for module in self.usable_modules)

    @property
    def power_w(self) -> float:
        return math.fsum(module.max_power_w for module in self.usable_modules)


def pool_banks(topology: Iterable[BankTopology], modules: Mapping[str, PoolModule]) -> list[Bank]:
    """A pool's banks (PoolConfig.banks()) with what each module can do now; a module without
    an entry (no fresh reading) counts as failed."""
    return [
        Bank(
            bank.name,
            tuple(
                modules.get(name, PoolModule(name, 0.0, 0.0, healthy=False))
                for name in bank.modules
            ),
            bank.evse_ids,
        )
        for bank in topology
    ]


@dataclass(frozen=True, slots=True)
class Demand:
    """What the EV asks for now and what it is rated for; None (or not a finite number): not
    known, no bound. `power_w` is its current request times its target voltage."""

    current_a: float | None = None
    power_w: float | None = None
    ev_max_current_a: float | None = None
    ev_max_power_w: float | None = None


@dataclass(frozen=True, slots=True)
class EvseState:
    evse_id: str
    session_since_s: float | None = None
    """When its session started (orders first_come); None: no session."""
    demand: Demand = field(default_factory=Demand)
    minimum_power_w: float = 0.0
    """Guaranteed while in session, as far as its need reaches."""
    weight: float = 1.0
    limit_current_a: float | None = None
    """The lowest external or operator limit in force on it; None: none."""
    limit_power_w: float | None = None

    @property
    def in_session(self) -> bool:
        return self.session_since_s is not None


class Why(enum.StrEnum):
    """Why a bank serves its EVSE."""

    MINIMUM = "minimum"
    """To meet the EVSE's guaranteed minimum."""
    SHARE = "share"
    """The EVSE's share under the policy."""


class Bound(enum.StrEnum):
    """What an EVSE's share stops at."""

    DEMAND = "demand"
    """Its EV's demand is covered."""
    LIMIT = "limit"
    """An external or operator limit below the EV's demand is covered."""
    POOL = "pool"
    """The pool, under the policy, has nothing more that reaches it."""
    IDLE = "idle"
    """No session: it holds nothing."""


@dataclass(frozen=True, slots=True)
class Assignment:
    bank: str
    modules: tuple[str, ...]
    """The bank's usable modules: a failed one is never named."""
    evse_id: str
    why: Why


@dataclass(frozen=True, slots=True)
class Share:
    evse_id: str
    banks: tuple[str, ...]
    modules: tuple[str, ...]
    max_current_a: float
    max_power_w: float
    bound: Bound


@dataclass(frozen=True, slots=True)
class Allocation:
    policy: Policy
    assignments: tuple[Assignment, ...]
    shares: Mapping[str, Share]
    """Every EVSE's share now (an idle one's is empty)."""
    would_get: Mapping[str, Share]
    """Each idle EVSE's share if its session started now."""
    free: tuple[str, ...]
    """Usable banks serving no one."""

    def evse_of(self, module: str) -> str | None:
        for assignment in self.assignments:
            if module in assignment.modules:
                return assignment.evse_id
        return None


@dataclass(frozen=True, slots=True)
class _Need:
    current_a: float
    power_w: float

    def covered_by(self, banks: Iterable[Bank]) -> bool:
        """The banks deliver all the EV can draw. A quantity without a bound leaves the other
        to bound the draw; with neither bounded, nothing covers it."""
        held = tuple(banks)
        if math.isinf(self.current_a) and math.isinf(self.power_w):
            return False
        return (
            math.fsum(bank.current_a for bank in held) >= self.current_a
            or math.isinf(self.current_a)
        ) and (math.fsum(bank.power_w for bank in held) >= self.power_w or math.isinf(self.power_w))

    def less(self, banks: Iterable[Bank]) -> _Need:
        held = tuple(banks)
        return _Need(
            max(0.0, self.current_a - math.fsum(bank.current_a for bank in held)),
            max(0.0, self.power_w - math.fsum(bank.power_w for bank in held)),
        )


_Give = Callable[[str, Why, _Need], bool]
"""Gives the EVSE a free bank toward what it misses, for a reason; False if none reaches it."""


def allocate(
    banks: Sequence[Bank],
    evses: Sequence[EvseState],
    policy: Policy = Policy.EQUAL_SHARE,
    current: Mapping[str, str] | None = None,
) -> Allocation:
    """The allocation now. `current` (bank -> EVSE) is who holds what before this decision: a
    bank stays where it is when the policy allows, so that few move. An EVSE id given twice
    counts once (the first); a bank's name likewise."""
    usable = _unique_banks(banks)
    states = _unique_states(evses)
    held_now = dict(current or {})
    assignments = _assign(usable, states, policy, held_now)
    shares = _shares(usable, states, assignments)
    would_get: dict[str, Share] = {}
    for state in states:
        if state.in_session:
            continue
        started = replace(state, session_since_s=math.inf, demand=Demand())
        others = [started if other is state else other for other in states]
        hypothetical = _assign(usable, others, policy, held_now)
        would_get[state.evse_id] = _shares(usable, others, hypothetical)[state.evse_id]
    taken = {assignment.bank for assignment in assignments}
    return Allocation(
        policy,
        tuple(assignments),
        shares,
        would_get,
        tuple(bank.name for bank in usable if bank.name not in taken),
    )


def _unique_banks(banks: Sequence[Bank]) -> list[Bank]:
    seen: set[str] = set()
    usable = []
    for bank in banks:
        if bank.name not in seen and bank.usable_modules and bank.reaches:
            usable.append(bank)
        seen.add(bank.name)
    return usable


def _unique_states(evses: Sequence[EvseState]) -> list[EvseState]:
    seen: set[str] = set()
    states = []
    for state in evses:
        if state.evse_id not in seen:
            states.append(state)
        seen.add(state.evse_id)
    return states


def _assign(
    banks: list[Bank], states: list[EvseState], policy: Policy, held_now: Mapping[str, str]
) -> list[Assignment]:
    order = sorted(
        (state for state in states if state.in_session), key=lambda s: _order_key(s, policy)
    )
    needs = {state.evse_id: _need(state) for state in order}
    held: dict[str, list[Bank]] = {state.evse_id: [] for state in order}
    why: dict[str, Why] = {}
    free = list(banks)

    def give(evse_id: str, reason: Why, missing: _Need) -> bool:
        bank = _pick(free, evse_id, missing, held_now)
        if bank is None:
            return False
        free.remove(bank)
        held[evse_id].append(bank)
        why[bank.name] = reason
        return True

    minima = {
        state.evse_id: _Need(
            0.0, min(_bound_or_zero(state.minimum_power_w), needs[state.evse_id].power_w)
        )
        for state in order
    }
    for state in order:
        minimum = minima[state.evse_id]
        while not minimum.covered_by(held[state.evse_id]):
            if not give(state.evse_id, Why.MINIMUM, minimum.less(held[state.evse_id])):
                break
    # Each round a newly covered EVSE gives back; one holds a bank to give: few rounds.
    for _ in range(len(banks) + 1):
        _share(order, needs, held, give, policy)
        if not _give_back(order, needs, minima, held, free):
            break
    return [
        Assignment(
            bank.name,
            tuple(module.name for module in bank.usable_modules),
            evse_id,
            why[bank.name],
        )
        for evse_id, holding in held.items()
        for bank in holding
    ]


def _share(
    order: list[EvseState],
    needs: Mapping[str, _Need],
    held: dict[str, list[Bank]],
    give: _Give,
    policy: Policy,
) -> None:
    if policy is Policy.FIRST_COME:
        for state in order:
            need = needs[state.evse_id]
            while not need.covered_by(held[state.evse_id]):
                if not give(state.evse_id, Why.SHARE, need.less(held[state.evse_id])):
                    break
        return
    short = [state for state in order if not needs[state.evse_id].covered_by(held[state.evse_id])]
    while short:
        # The least power per weight first; the policy's order breaks ties (min keeps the first).
        state = min(
            short,
            key=lambda s: math.fsum(b.power_w for b in held[s.evse_id]) / _weight(s),
        )
        need = needs[state.evse_id]
        if not give(state.evse_id, Why.SHARE, need.less(held[state.evse_id])) or need.covered_by(
            held[state.evse_id]
        ):
            short.remove(state)


def _give_back(
    order: list[EvseState],
    needs: Mapping[str, _Need],
    minima: Mapping[str, _Need],
    held: dict[str, list[Bank]],
    free: list[Bank],
) -> bool:
    """Each EVSE returns the banks it can do without (its need and its minimum stay covered),
    smallest first; True if any came back."""
    returned = False
    for state in order:
        holding = held[state.evse_id]
        for bank in sorted(holding, key=lambda b: (b.power_w, b.current_a, b.name)):
            rest = [other for other in holding if other is not bank]
            if needs[state.evse_id].covered_by(rest) and minima[state.evse_id].covered_by(rest):
                holding.remove(bank)
                free.append(bank)
                returned = True
    return returned


def _pick(
    free: list[Bank], evse_id: str, missing: _Need, held_now: Mapping[str, str]
) -> Bank | None:
    reaching = [bank for bank in free if evse_id in bank.reaches]
    kept = [bank for bank in reaching if held_now.get(bank.name) == evse_id]
    candidates = kept or reaching
    if not candidates:
        return None
    covering = [bank for bank in candidates if missing.covered_by((bank,))]
    if covering:
        return min(covering, key=lambda b: (b.power_w, b.current_a, b.name))
    return max(candidates, key=lambda b: (b.power_w, b.current_a, _reverse(b.name)))


def _reverse(name: str) -> tuple[int, ...]:
    # max() with names ascending: the lexically first of equal banks.
    return tuple(-ord(char) for char in name)


def _shares(
    banks: list[Bank], states: list[EvseState], assignments: list[Assignment]
) -> dict[str, Share]:
    by_name = {bank.name: bank for bank in banks}
    shares = {}
    for state in states:
        mine = [by_name[a.bank] for a in assignments if a.evse_id == state.evse_id]
        shares[state.evse_id] = Share(
            state.evse_id,
            tuple(bank.name for bank in mine),
            tuple(module.name for bank in mine for module in bank.usable_modules),
            math.fsum(bank.current_a for bank in mine),
            math.fsum(bank.power_w for bank in mine),
            _bound(state, mine),
        )
    return shares


def _bound(state: EvseState, held: list[Bank]) -> Bound:
    if not state.in_session:
        return Bound.IDLE
    need = _need(state)
    if not need.covered_by(held):
        return Bound.POOL
    asked = _demand_need(state.demand)
    if need.current_a < asked.current_a or need.power_w < asked.power_w:
        return Bound.LIMIT
    return Bound.DEMAND


def _need(state: EvseState) -> _Need:
    asked = _demand_need(state.demand)
    return _Need(
        min(asked.current_a, _bound_or_inf(state.limit_current_a)),
        min(asked.power_w, _bound_or_inf(state.limit_power_w)),
    )


def _demand_need(demand: Demand) -> _Need:
    return _Need(
        min(_bound_or_inf(demand.current_a), _bound_or_inf(demand.ev_max_current_a)),
        min(_bound_or_inf(demand.power_w), _bound_or_inf(demand.ev_max_power_w)),
    )


def _order_key(state: EvseState, policy: Policy) -> tuple[float, float, str]:
    since = _finite_or(state.session_since_s, math.inf)
    rank = -_weight(state) if policy is Policy.PRIORITY else 0.0
    return (rank, since, state.evse_id)


def _weight(state: EvseState) -> float:
    return state.weight if _positive(state.weight) else 1.0


def _bound_or_inf(value: float | None) -> float:
    """A bound as given; none, NaN or infinite: no bound; below zero: nothing."""
    if value is None or not math.isfinite(value):
        return math.inf
    return max(0.0, value)


def _bound_or_zero(value: float) -> float:
    return value if _positive(value) else 0.0


def _finite_or(value: float | None, default: float) -> float:
    return value if value is not None and math.isfinite(value) else default


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0
