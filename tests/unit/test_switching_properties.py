"""Properties of the switching sequencer (issue 18, item 4) against a world of its own written
here: modules whose current follows their EVSE's limit (ramping down at an arbitrary rate, or
never), sessions, contactors that obey after an arbitrary delay or stick, modules that keep
carrying current, will not start or are slow to switch off, and arbitrary new allocations at
arbitrary times. The modules are a full matrix (a contactor each) or banks switched together
(`[[pool.group]]`: one contactor per bank and EVSE), driven through the BankedSequencer as the
pool's coordinator drives it. On every tick: no module is connected to two EVSEs; no contactor
moves while its modules carry the threshold current or more together, or one of them is on; no
EVSE's limit takes in a module before it is connected to that EVSE alone (and on, where the EVSE
has a session), nor keeps it once it is not; a contactor that disagrees with its command for
longer than its time limit has taken its module out (`hardware_fault`). Without injected faults
nothing faults and every module ends where the last allocation put it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csbridge.config import BankTopology
from csbridge.power import BankedSequencer
from csbridge.power.switching import (
    EndSession,
    LimitEvse,
    ModuleFault,
    ModuleSense,
    SetContactor,
    SwitchingCommand,
    SwitchingInputs,
    SwitchingSettings,
    SwitchModule,
)
from tests.support import examples

SETTINGS = SwitchingSettings(
    current_threshold_a=1.0,
    contactor_time_limit_s=0.2,
    ramp_timeout_s=1.0,
    stop_timeout_s=0.5,
    start_timeout_s=0.5,
)
TICK_S = 0.05
HORIZON_S = 8.0
"""Long enough for the slowest move after the last new allocation (at 3 s): a ramp timeout,
the session's end, then both contactors."""
VOLTAGE = 400.0
EPSILON = 1e-9

Contact = tuple[str, str]
"""(bank, EVSE)."""


@dataclass(frozen=True)
class Scenario:
    evses: tuple[str, ...]
    banks: dict[str, tuple[str, ...]]
    """What one contactor switches: a module of its own name, or a group."""
    initial: dict[str, str | None]
    sessions: frozenset[str]
    retargets: tuple[tuple[float, dict[str, str | None]], ...]
    demand: dict[str, float]
    ramp: dict[str, float]
    """Amperes the module's current falls per tick once its EVSE's limit left it out (0: never)."""
    delay: dict[Contact, float]
    """Seconds a contactor takes to follow its command: within the time limit, but for a few
    (up to twice the limit)."""
    sticks: dict[Contact, float]
    """From this time on the contactor ignores its commands."""
    stuck_current: frozenset[str]
    dead_start: frozenset[str]
    off_lag: dict[str, float]
    """Seconds a module still reads on (and may carry current) after it is told off."""

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(module for modules in self.banks.values() for module in modules)

    @property
    def bank_of(self) -> dict[str, str]:
        return {module: bank for bank, modules in self.banks.items() for module in modules}

    @property
    def faults_injected(self) -> bool:
        return bool(
            self.sticks
            or self.stuck_current
            or self.dead_start
            or any(
                delay > SETTINGS.contactor_time_limit_s - 2 * TICK_S
                for delay in self.delay.values()
            )
        )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    evses = tuple(f"E{i}" for i in range(draw(st.integers(2, 3))))
    modules = tuple(f"m{i}" for i in range(draw(st.integers(1, 6))))
    banks = draw(st.just(None) | st.lists(st.integers(1, len(modules)), max_size=3))
    if banks is None:  # a full matrix
        partition: dict[str, tuple[str, ...]] = {module: (module,) for module in modules}
    else:  # consecutive groups
        edges = [0, *sorted(set(banks)), len(modules)]
        partition = {f"g{start}": modules[start:end] for start, end in itertools.pairwise(edges)}
        partition = {name: members for name, members in partition.items() if members}
    place = st.sampled_from((None, *evses))
    per_bank = st.fixed_dictionaries(dict.fromkeys(partition, place))
    allocation = per_bank.map(
        lambda where: {m: where[bank] for bank, members in partition.items() for m in members}
    )
    contacts = [(bank, evse) for bank in partition for evse in evses]
    rare: st.SearchStrategy[frozenset[str]] = st.frozensets(st.sampled_from(modules), max_size=1)
    return Scenario(
        evses=evses,
        banks=partition,
        initial=draw(allocation),
        sessions=draw(st.frozensets(st.sampled_from(evses))),
        retargets=tuple(
            sorted(
                draw(st.lists(st.tuples(st.floats(0.0, 3.0), allocation), max_size=4)),
                key=lambda retarget: retarget[0],
            )
        ),
        demand={module: draw(st.floats(0.0, 40.0)) for module in modules},
        ramp={module: draw(st.just(0.0) | st.floats(1.0, 40.0)) for module in modules},
        delay={contact: draw(st.floats(0.0, 0.1)) for contact in contacts}
        | draw(st.dictionaries(st.sampled_from(contacts), st.floats(0.1, 0.4), max_size=2)),
        sticks=draw(
            st.dictionaries(st.sampled_from(contacts), st.floats(0.0, 4.0), max_size=2)
            | st.just({})
        ),
        stuck_current=draw(rare),
        dead_start=draw(rare),
        off_lag={module: draw(st.sampled_from((0.0, TICK_S, 3 * TICK_S))) for module in modules},
    )


@dataclass
class World:
    """The hardware and the power path as the sequencer's commands leave them."""

    scenario: Scenario
    now: float = 0.0
    closed: set[Contact] = field(default_factory=set)
    commanded: dict[Contact, bool] = field(default_factory=dict)
    pending: list[tuple[float, Contact, bool]] = field(default_factory=list)
    disagree_since: dict[Contact, float] = field(default_factory=dict)
    on: set[str] = field(default_factory=set)
    off_due: dict[str, float] = field(default_factory=dict)
    current: dict[str, float] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)
    reported: dict[str, frozenset[str]] = field(default_factory=dict)
    faults: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        scenario = self.scenario
        self.sessions = set(scenario.sessions)
        bank_of = scenario.bank_of
        for module, evse in scenario.initial.items():
            self.current[module] = 0.0
            if evse is not None:
                self.closed.add((bank_of[module], evse))
                self.commanded[(bank_of[module], evse)] = True
                if evse in self.sessions:
                    self.on.add(module)
                    self.current[module] = scenario.demand[module]
        self.reported = {
            evse: frozenset(m for m, to in scenario.initial.items() if to == evse)
            for evse in scenario.evses
        }

    def connected_to(self, module: str) -> set[str]:
        bank = self.scenario.bank_of[module]
        return {evse for (b, evse) in self.closed if b == bank}

    def move_contactors(self) -> None:
        due = [item for item in self.pending if item[0] <= self.now + EPSILON]
        self.pending = [item for item in self.pending if item[0] > self.now + EPSILON]
        for _, contact, closed in due:
            stuck_at = self.scenario.sticks.get(contact)
            if stuck_at is not None and stuck_at <= self.now:
                continue
            if (contact in self.closed) != closed:
                members = self.scenario.banks[contact[0]]
                carried = sum(self.current[module] for module in members)
                assert carried < SETTINGS.current_threshold_a, (
                    f"{contact} {'closes' if closed else 'opens'} under {carried} A"
                )
                assert not self.on & set(members), f"{contact} moves while a module is on"
                (self.closed.add if closed else self.closed.discard)(contact)
        for module in self.scenario.modules:
            assert len(self.connected_to(module)) <= 1, f"{module} on {self.connected_to(module)}"
        for evse, modules in self.reported.items():
            for module in modules:
                assert self.connected_to(module) == {evse}, f"{evse} reports {module}, not on it"
        for contact in {*self.commanded, *self.closed}:
            if self.commanded.get(contact, False) != (contact in self.closed):
                self.disagree_since.setdefault(contact, self.now)
            else:
                self.disagree_since.pop(contact, None)

    def flow(self) -> None:
        for module, due in list(self.off_due.items()):
            if due <= self.now + EPSILON:
                self.on.discard(module)
                del self.off_due[module]
        for module in self.scenario.modules:
            evses = self.connected_to(module)
            evse = next(iter(evses), None)
            if evse is None:
                self.current[module] = 0.0
            elif module in self.scenario.stuck_current:
                if module in self.on:
                    self.current[module] = max(self.current[module], self.scenario.demand[module])
            elif module not in self.on or evse not in self.sessions:
                self.current[module] = 0.0
            elif module in self.reported[evse]:
                self.current[module] = self.scenario.demand[module]
            else:
                self.current[module] = max(0.0, self.current[module] - self.scenario.ramp[module])

    def readings(self) -> SwitchingInputs:
        return SwitchingInputs(
            now=self.now,
            modules={
                module: ModuleSense(
                    current_a=self.current[module],
                    output_on=module in self.on,
                    closed_to=frozenset(self.connected_to(module)),
                )
                for module in self.scenario.modules
            },
            setpoint_voltage=dict.fromkeys(self.sessions, VOLTAGE),
        )

    def obey(self, commands: list[SwitchingCommand], inputs: SwitchingInputs) -> None:
        for command in commands:
            match command:
                case LimitEvse(evse, modules):
                    self.check_raise(command, inputs)
                    self.reported[evse] = modules
                case EndSession(evse):
                    self.sessions.discard(evse)
                case SwitchModule(module, on, voltage):
                    if on:
                        assert voltage == VOLTAGE
                        self.off_due.pop(module, None)
                        if module not in self.scenario.dead_start:
                            self.on.add(module)
                    elif module in self.on:
                        self.off_due.setdefault(module, self.now + self.scenario.off_lag[module])
                case SetContactor(module, evse, closed):
                    contact = (module, evse)
                    self.commanded[contact] = closed
                    if (contact in self.closed) != closed:
                        self.disagree_since[contact] = self.now
                    else:
                        self.disagree_since.pop(contact, None)
                    self.pending.append((self.now + self.scenario.delay[contact], contact, closed))
                case ModuleFault(module):
                    self.faults.add(module)

    def check_raise(self, command: LimitEvse, inputs: SwitchingInputs) -> None:
        for module in command.modules:
            assert self.connected_to(module) == {command.evse}, (command, self.closed)
            added = module not in self.reported[command.evse]
            if added and command.evse in inputs.setpoint_voltage:
                assert module in self.on, (command, "raised before the module is on")

    def check_feedback_faults(self, sequencer: BankedSequencer) -> None:
        for (bank, evse), since in self.disagree_since.items():
            if set(self.scenario.banks[bank]) <= self.faults:
                continue
            overdue = self.now - since - SETTINGS.contactor_time_limit_s
            assert overdue <= EPSILON, f"{bank}->{evse} disagrees {overdue} s too long, no fault"
        assert sequencer.faulted == self.faults


def run(scenario: Scenario) -> tuple[World, BankedSequencer]:
    world = World(scenario)
    banks = [
        BankTopology(name, members, frozenset(scenario.evses), wired=False)
        for name, members in scenario.banks.items()
    ]
    sequencer = BankedSequencer(scenario.evses, banks, scenario.initial, SETTINGS, now=0.0)
    retargets = list(scenario.retargets)
    ticks = round(HORIZON_S / TICK_S)
    for tick in range(ticks + 1):
        world.now = tick * TICK_S
        while retargets and retargets[0][0] <= world.now:
            sequencer.retarget(retargets.pop(0)[1])
        world.move_contactors()
        world.flow()
        inputs = world.readings()
        world.obey(sequencer.step(inputs), inputs)
        world.check_feedback_faults(sequencer)
    return world, sequencer


@settings(
    max_examples=examples(2000),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_switching_is_safe_under_arbitrary_allocations_demands_faults_and_delays(
    scenario: Scenario,
) -> None:
    world, sequencer = run(scenario)
    if scenario.faults_injected:
        return
    assert world.faults == set()
    assert sequencer.settled
    final = scenario.retargets[-1][1] if scenario.retargets else scenario.initial
    for module, evse in final.items():
        assert world.connected_to(module) == ({evse} if evse else set())
        if evse is not None:
            assert module in world.reported[evse]
