"""The session's I/O under arbitrary sequences of what the devices report and Josev says: the
real SessionHandlers over a real LimitsEngine (the tests' station), simulated modules behind
their real driver, a recording board and a simulated IMD, every reading fed by hand on an
injected clock, the handlers called synchronously (no event loop, no network).

After every action, and at every command as it is given:
- no module current or voltage above zero and no contactor close outside cable_check,
  precharge and charging;
- the modules' summed current never above the max_current reported at that moment, their
  voltage never above the reported max_voltage nor the EV's maximum voltage;
- cable check and precharge at most 2 A, and no setpoint accepted before this session's cable
  check answered valid or warning;
- after the pilot goes to A: every module off and the contactors' last command open.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from csbridge.config import Config, load_config
from csbridge.engine import LimitsEngine
from csbridge.messages import (
    AuthorizationUpdate,
    CableCheckRequest,
    ChangeAvailabilityRequest,
    DcSetpoint,
    EvLimits,
    HlcChargingUpdate,
    Iso15118StateInfoUpdate,
    PowerElectronicsSetpointRequest,
    SlacStatusUpdate,
    StopChargingRequest,
    TokenType,
    TransactionStatusUpdate,
)
from csbridge.power import EvsePower, ModuleDriver, NoImdDriver, PowerOnReason, PowerStage
from csbridge.power.simulated import SimulatedModuleDriver
from csbridge.session import SessionHandlers
from csbridge.session.machine import ENERGY_STATES, State
from csbridge.sources import BoardReading, CpState, ExternalLimit
from csbridge.sources.simulated import SimulatedImd, SimulatedModule
from tests.support import FIXTURES, csbridge_logs_to_devnull, examples

DC = "DE*CSB*E0001"
AC = "DE*CSB*E0002"
CONFIG: Config = load_config(FIXTURES / "configs" / "reading-station.toml")
DC_CONFIG = next(evse for evse in CONFIG.evse if evse.evse_id == DC)
MODULES = tuple(module.name for module in DC_CONFIG.module)
LOW_CURRENT_A = 2.0
"""Cable check and precharge: the modules deliver at most this."""
EPSILON = 1e-6
REPORT_EVERY_S = 0.25
"""How often a device that is not silent reports while time passes (faster than any of the
tests' station's deadlines, as the real devices do)."""


# -- the world the handlers run in ------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True, slots=True)
class Sent:
    """One command as a driver received it, with the state and the reported limits of that
    moment."""

    what: Literal["module", "close", "open"]
    state: State
    max_current: float
    max_voltage: float
    module: str = ""
    voltage: float = 0.0
    current: float = 0.0


@dataclass(frozen=True, slots=True)
class _RecordedModule:
    """The real simulated module driver, each command recorded on its way."""

    inner: SimulatedModuleDriver
    name: str
    world: World

    @property
    def watchdog_s(self) -> float:
        return self.inner.watchdog_s

    @property
    def min_current_a(self) -> float:
        return self.inner.min_current_a

    def command(self, voltage: float, current: float, *, precharge: bool) -> None:
        self.world.record("module", self.name, voltage, current)
        self.inner.command(voltage, current, precharge=precharge)

    def switch_off(self) -> None:
        self.world.record("module", self.name, 0.0, 0.0)
        self.inner.switch_off()


@dataclass(slots=True)
class RecordingBoard:
    """The board: contactors that follow their command and report it (at once, or with the
    next reading), the pilot the EV sets, a PWM and a lock that obey."""

    world: World | None = None
    closed: bool = False
    contactor_commands: list[bool] = field(default_factory=list)

    def close_contactors(self, reason: PowerOnReason) -> None:
        self._switch(closed=True)

    def open_contactors(self) -> None:
        self._switch(closed=False)

    def drive_pwm(self, on: bool, duty_percent: float) -> bool:
        return True

    def lock(self) -> bool:
        return True

    def unlock(self) -> bool:
        return True

    def _switch(self, *, closed: bool) -> None:
        self.contactor_commands.append(closed)
        self.closed = closed
        if self.world is not None:
            self.world.record("close" if closed else "open")
            if self.world.immediate_feedback:
                self.world.report_board()


@dataclass(frozen=True, slots=True)
class _ImdDriver:
    imd: SimulatedImd
    clock: Clock

    def start_self_test(self, ev_max_voltage: float | None = None) -> None:
        self.imd.start_self_test(self.clock())


class World:
    """The DC EVSE's session with everything around it, driven by hand."""

    def __init__(self, *, immediate_feedback: bool) -> None:
        self.immediate_feedback = immediate_feedback
        self.clock = Clock()
        self.engine = LimitsEngine(CONFIG, clock=self.clock)
        self.modules = {
            module.name: SimulatedModule(evse_id=DC, config=module) for module in DC_CONFIG.module
        }
        assert DC_CONFIG.imd is not None
        self.imd = SimulatedImd(DC, DC_CONFIG.imd)
        self.board = RecordingBoard()
        self.cp = CpState.A
        self.silent: set[str] = set()
        self.sent: list[Sent] = []
        self.ev_max_v: float | None = None
        """The EV's maximum voltage of the setpoint running (the last accepted)."""
        self.isolation_checked = False
        """This session's cable check answered finished, valid or warning (and was not started
        again since)."""
        self.setpoint_accepted = False
        """The last setpoint was answered accepted."""
        self.session: SessionHandlers | None = None
        drivers: dict[str, ModuleDriver] = {
            name: _RecordedModule(SimulatedModuleDriver(module, clock=self.clock), name, self)
            for name, module in self.modules.items()
        }
        stage = PowerStage(
            {
                DC: EvsePower(drivers, self.board, _ImdDriver(self.imd, self.clock)),
                AC: EvsePower({}, RecordingBoard(), NoImdDriver()),
            }
        )
        self.session = SessionHandlers(CONFIG, self.engine, stage, self.clock)
        self.board.world = self

    @property
    def handlers(self) -> SessionHandlers:
        assert self.session is not None
        return self.session

    def state(self) -> State:
        return State.AVAILABLE if self.session is None else self.session.sessions[DC].state

    def reported(self) -> tuple[float, float]:
        """The max_current and max_voltage Josev is told now (0 where no DC block is)."""
        dc = self.engine.entries.get(DC).get("dc") or {}
        return float(dc.get("max_current", 0.0)), float(dc.get("max_voltage", 0.0))

    def record(
        self,
        what: Literal["module", "close", "open"],
        module: str = "",
        voltage: float = 0.0,
        current: float = 0.0,
    ) -> None:
        max_current, max_voltage = self.reported()
        self.sent.append(
            Sent(what, self.state(), max_current, max_voltage, module, voltage, current)
        )

    def report_board(self) -> None:
        reading = BoardReading(
            at=self.clock(),
            evse_temperature_c=30.0,
            plug_temperature_c=30.0,
            cp_state=self.cp,
            contactor_closed=self.board.closed,
        )
        self.engine.ingest(DC, reading)

    def report(self) -> None:
        """Every device that is not silent reports now."""
        now = self.clock()
        for name, module in self.modules.items():
            if name not in self.silent:
                self.engine.ingest(DC, module.reading(now))
        if "imd" not in self.silent:
            self.engine.ingest(DC, self.imd.reading(now))
        if "board" not in self.silent:
            self.report_board()


# -- what can happen ---------------------------------------------------------------------------


class Action:
    def apply(self, world: World) -> None:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Pilot(Action):
    """The EV at the pilot: A unplugged, B plugged, C S2 closed, E a short."""

    cp: CpState

    def apply(self, world: World) -> None:
        world.cp = self.cp
        world.report_board()


@dataclass(frozen=True, slots=True)
class Hlc(Action):
    on: bool

    def apply(self, world: World) -> None:
        world.handlers.hlc_charging(HlcChargingUpdate(evse_id=DC, status=self.on))


@dataclass(frozen=True, slots=True)
class Slac(Action):
    status: Literal["matching", "failed", "matched", "unmatched", "basic_charging"]

    def apply(self, world: World) -> None:
        world.handlers.slac_status(SlacStatusUpdate(evse_id=DC, run_id="run", status=self.status))


SessionStatus = Literal[
    "CableCheck", "PreCharge", "ChargingLoop", "WeldingDetection", "SessionStop", "Idle"
]
"""Some of the ISO 15118 states Josev reports, the two that end a session among them."""


@dataclass(frozen=True, slots=True)
class StateInfo(Action):
    status: SessionStatus

    def apply(self, world: World) -> None:
        world.handlers.state_info(Iso15118StateInfoUpdate(evse_id=DC, session_status=self.status))


@dataclass(frozen=True, slots=True)
class Transaction(Action):
    status: Literal["started", "in_progress", "ended"]

    def apply(self, world: World) -> None:
        update = TransactionStatusUpdate(transaction_id="t-1", status=self.status, evse_id=DC)
        world.handlers.transaction_status(update)


REMOTE: TokenType = "central"
"""A remote start's token type (or its withdrawal)."""


@dataclass(frozen=True, slots=True)
class Authorization(Action):
    status: Literal["accepted", "rejected", "deauthorized"]

    def apply(self, world: World) -> None:
        update = AuthorizationUpdate(evse_id=DC, token_type=REMOTE, status=self.status)
        world.handlers.authorization.authorization_update(update)


@dataclass(frozen=True, slots=True)
class CableCheck(Action):
    action: Literal["start", "status"]

    def apply(self, world: World) -> None:
        request = CableCheckRequest(evse_id=DC, cable_check_action=self.action)
        answer = world.handlers.cable_check(request)
        assert answer is not None
        if self.action == "start":
            world.isolation_checked = False
        if answer.cable_check_status == "finished":
            world.isolation_checked = answer.isolation_level in ("valid", "warning")


@dataclass(frozen=True, slots=True)
class Setpoint(Action):
    voltage: float
    current: float
    precharge: bool
    ev_max_v: float

    def apply(self, world: World) -> None:
        request = PowerElectronicsSetpointRequest(
            evse_id=DC,
            ev_limits=EvLimits(maximum_voltage=self.ev_max_v),
            dc=DcSetpoint(voltage=self.voltage, charge_current=self.current),
            is_precharge=self.precharge,
        )
        answer = world.handlers.setpoint(request)
        assert answer is not None
        world.setpoint_accepted = answer.status == "accepted"
        if world.setpoint_accepted:
            world.ev_max_v = self.ev_max_v


@dataclass(frozen=True, slots=True)
class Stop(Action):
    def apply(self, world: World) -> None:
        world.handlers.stop_charging(StopChargingRequest(evse_id=DC))


@dataclass(frozen=True, slots=True)
class Limit(Action):
    """A site energy manager's limit (both None: withdrawn)."""

    max_current: float | None
    max_power: float | None

    def apply(self, world: World) -> None:
        now = world.clock()
        withdrawn = self.max_current is None and self.max_power is None
        limit = ExternalLimit(
            at=now,
            until=now if withdrawn else math.inf,
            max_current=self.max_current,
            max_power=self.max_power,
        )
        world.engine.ingest(DC, limit)


@dataclass(frozen=True, slots=True)
class Isolation(Action):
    """The IMD measures another resistance (and says so at once)."""

    resistance_ohm: float

    def apply(self, world: World) -> None:
        world.imd.resistance_ohm = self.resistance_ohm
        if "imd" not in world.silent:
            world.engine.ingest(DC, world.imd.reading(world.clock()))


@dataclass(frozen=True, slots=True)
class Silence(Action):
    """A device stops reporting (a module keeps obeying its commands) or reports again."""

    device: str
    silent: bool

    def apply(self, world: World) -> None:
        if self.silent:
            world.silent.add(self.device)
        else:
            world.silent.discard(self.device)


@dataclass(frozen=True, slots=True)
class Wait(Action):
    """Time passes; the devices that are not silent report on their way."""

    seconds: float

    def apply(self, world: World) -> None:
        left = self.seconds
        while left > 0:
            step = min(REPORT_EVERY_S, left)
            world.clock.now += step
            left -= step
            world.report()
        world.engine.evaluate()


@dataclass(frozen=True, slots=True)
class KeepAlive(Action):
    """The keepalive loop's resend: a session the limits no longer allow is switched off."""

    def apply(self, world: World) -> None:
        handlers = world.handlers
        for evse_id in handlers.sessions:
            if handlers.power.keep_alive(evse_id) is not None:
                handlers.switch_off(evse_id, "the setpoint is no longer allowed")


@dataclass(frozen=True, slots=True)
class HoldOff(Action):
    def apply(self, world: World) -> None:
        world.handlers.hold_off(world.clock())


@dataclass(frozen=True, slots=True)
class Availability(Action):
    operative: bool

    def apply(self, world: World) -> None:
        status: Literal["operative", "inoperative"] = (
            "operative" if self.operative else "inoperative"
        )
        request = ChangeAvailabilityRequest(operational_status=status, evse_id=DC)
        world.handlers.change_availability(request)


SETPOINTS = st.builds(
    Setpoint,
    st.floats(0.0, 1100.0),
    st.floats(0.0, 400.0),
    st.booleans(),
    st.floats(100.0, 1000.0),
)
LIMITS = st.builds(
    Limit,
    st.one_of(st.none(), st.floats(0.0, 300.0)),
    st.one_of(st.none(), st.floats(0.0, 200_000.0)),
)
ISOLATION = st.builds(Isolation, st.sampled_from([5_000_000.0, 400_000.0, 80_000.0, 10_000.0]))
SILENCE = st.builds(Silence, st.sampled_from([*MODULES, "imd", "board"]), st.booleans())
WAITS = st.builds(Wait, st.sampled_from([0.1, 0.25, 0.5, 1.0, 2.0, 3.5, 12.0]))

ACTIONS: st.SearchStrategy[Action] = st.one_of(
    st.builds(Pilot, st.sampled_from([CpState.A, CpState.B, CpState.C, CpState.E])),
    st.builds(Hlc, st.booleans()),
    st.builds(
        Slac, st.sampled_from(["matching", "failed", "matched", "unmatched", "basic_charging"])
    ),
    st.builds(
        StateInfo,
        st.sampled_from(
            ["CableCheck", "PreCharge", "ChargingLoop", "WeldingDetection", "SessionStop", "Idle"]
        ),
    ),
    st.builds(Transaction, st.sampled_from(["started", "in_progress", "ended"])),
    st.builds(Authorization, st.sampled_from(["accepted", "rejected", "deauthorized"])),
    st.builds(CableCheck, st.sampled_from(["start", "status"])),
    SETPOINTS,
    st.just(Stop()),
    LIMITS,
    ISOLATION,
    SILENCE,
    WAITS,
    st.just(KeepAlive()),
    st.just(HoldOff()),
    st.builds(Availability, st.booleans()),
)
"""Anything, in any order."""

WHILE_CHARGING: st.SearchStrategy[Action] = st.one_of(
    SETPOINTS,
    SETPOINTS,
    SETPOINTS,
    LIMITS,
    ISOLATION,
    SILENCE,
    st.builds(Wait, st.sampled_from([0.1, 0.25, 0.5, 1.0])),
    st.just(KeepAlive()),
    st.just(HoldOff()),
    st.builds(CableCheck, st.sampled_from(["start", "status"])),
)
"""What keeps a session going while it is tried: new setpoints, limits moving, devices falling
silent, time passing with or without the keepalive."""

TO_CHARGING: tuple[Action, ...] = (
    Wait(1.0),
    Pilot(CpState.B),
    Hlc(on=True),
    Pilot(CpState.C),
    CableCheck("start"),
    Wait(3.5),
    CableCheck("status"),
    Setpoint(400.0, 100.0, precharge=True, ev_max_v=800.0),
    Setpoint(400.0, 100.0, precharge=False, ev_max_v=800.0),
)
"""A DC session from plug-in to charging, as the tests' station takes it."""
TO_CABLE_CHECK = TO_CHARGING[:5]
"""The same session, its cable check started and not finished."""


@st.composite
def scripts(draw: st.DrawFn) -> list[Action]:
    """Arbitrary actions, often around the way into a charging session (random sequences
    alone rarely get that far)."""
    before = draw(st.lists(ACTIONS, max_size=12))
    into_session = draw(st.sampled_from([(), TO_CABLE_CHECK, TO_CHARGING, TO_CHARGING]))
    during = draw(st.lists(WHILE_CHARGING, max_size=12)) if into_session else []
    after = draw(st.lists(ACTIONS, max_size=30))
    return [*before, *into_session, *during, *after]


# -- what must hold --------------------------------------------------------------------------


def _check_sent(sent: Sent, ev_max_v: float | None) -> None:
    if sent.what == "close":
        assert sent.state in ENERGY_STATES, f"contactors closed in {sent.state}"
        return
    if sent.what != "module" or (sent.current <= 0.0 and sent.voltage <= 0.0):
        return
    assert sent.state in ENERGY_STATES, f"{sent.module} commanded on in {sent.state}: {sent}"
    assert sent.current <= sent.max_current + EPSILON, sent
    assert sent.voltage <= sent.max_voltage + EPSILON, sent
    assert ev_max_v is not None, sent
    assert sent.voltage <= ev_max_v + EPSILON, (sent, ev_max_v)


def check(world: World, action: Action, sent_before: int, ev_max_before: float | None) -> None:
    state = world.state()
    if isinstance(action, Setpoint) and world.setpoint_accepted:
        assert world.isolation_checked, f"{action} accepted without a passed cable check"
    if state not in ENERGY_STATES:
        world.isolation_checked = False  # the session's check ends with its energy
    # A setpoint's own commands answer to its EV maximum; any other action's to the running one.
    running_ev_max = world.ev_max_v if isinstance(action, Setpoint) else ev_max_before
    for sent in world.sent[sent_before:]:
        _check_sent(sent, running_ev_max)
    currents = [module.output_current for module in world.modules.values()]
    voltages = [module.output_voltage for module in world.modules.values()]
    if state not in ENERGY_STATES:
        assert currents == [0.0] * len(currents), (state, currents)
        assert voltages == [0.0] * len(voltages), (state, voltages)
        assert not world.board.closed, f"contactors closed in {state}"
    max_current, max_voltage = world.reported()
    assert sum(currents) <= max_current + EPSILON, (currents, max_current)
    if any(currents) or any(voltages):
        assert max(voltages) <= max_voltage + EPSILON, (voltages, max_voltage)
        assert world.ev_max_v is not None
        assert max(voltages) <= world.ev_max_v + EPSILON, (voltages, world.ev_max_v)
    if state in (State.CABLE_CHECK, State.PRECHARGE):
        assert sum(currents) <= LOW_CURRENT_A + EPSILON, (state, currents)
    if isinstance(action, Pilot) and action.cp is CpState.A:
        assert currents == [0.0] * len(currents)
        assert not world.board.closed
        commands = world.board.contactor_commands
        assert not commands or commands[-1] is False, "the last contactor command opens"


@settings(
    max_examples=examples(2_000),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(script=scripts(), immediate_feedback=st.booleans())
def test_energy_flows_only_inside_a_session_whatever_happens(
    script: list[Action], immediate_feedback: bool
) -> None:
    with csbridge_logs_to_devnull() as errors:
        world = World(immediate_feedback=immediate_feedback)
        world.report()
        reached: set[State] = {world.state()}
        for action in script:
            sent_before = len(world.sent)
            ev_max_before = world.ev_max_v
            action.apply(world)
            reached.add(world.state())
            check(world, action, sent_before, ev_max_before)
    for state in sorted(reached & ENERGY_STATES):
        event(f"reached {state}")
    assert errors == [], "nothing here is an error"


def test_the_way_into_a_session_reaches_charging_and_its_end_switches_everything_off() -> None:
    """The script the property test builds on does reach charging (so the property is tested
    where energy flows), and unplugging ends it."""
    world = World(immediate_feedback=True)
    world.report()
    for action in TO_CHARGING:
        sent_before, ev_max_before = len(world.sent), world.ev_max_v
        action.apply(world)
        check(world, action, sent_before, ev_max_before)
    assert world.state() is State.CHARGING
    assert sum(module.output_current for module in world.modules.values()) > 0.0
    assert world.board.closed
    unplug = Pilot(CpState.A)
    sent_before, ev_max_before = len(world.sent), world.ev_max_v
    unplug.apply(world)
    check(world, unplug, sent_before, ev_max_before)
    assert world.state() is State.AVAILABLE
