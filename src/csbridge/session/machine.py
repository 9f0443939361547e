"""One EVSE's charging state machine: a pure transition function over the table below.

Energy flows only in cable_check, precharge and charging, and only when the guards of those
states hold (the EV's pilot in C or D, the session authorized, HLC up for DC, the isolation
checked for precharge and charging, the EVSE operative and its limits ready). Every other path
switches the modules off and opens the contactors. `TABLE` is the whole behaviour: docs/session.md
shows it as rendered by `table_markdown()`, and a test keeps the two equal.

The machine knows nothing of MQTT, CAN or time: the session's I/O (session/handlers.py) turns
messages and readings into `Event`s, runs `step`, and carries out the `Command`s it returns.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal


class State(enum.StrEnum):
    AVAILABLE = "available"
    """Nothing plugged in."""
    OCCUPIED = "occupied"
    """An EV is plugged in (pilot B, C or D); no authorization yet."""
    AUTHORIZING = "authorizing"
    """A token was presented and its answer is awaited."""
    AUTHORIZED = "authorized"
    """Authorized: a DC session may start its cable check; an AC one charges at pilot C."""
    CABLE_CHECK = "cable_check"
    """Contactors closed for the IMD's test; modules at most at the test current."""
    PRECHARGE = "precharge"
    """Modules match the EV's voltage at no more than 2 A."""
    CHARGING = "charging"
    PAUSED = "paused"
    """The EV went back to pilot B during a session: everything off until it asks again."""
    STOPPING = "stopping"
    """Modules commanded off, contactors commanded open; waiting for their feedback."""
    FINISHING = "finishing"
    """Contactors open; welding detection, waiting for the output below 60 V."""
    FAULTED = "faulted"
    UNAVAILABLE = "unavailable"
    """Taken out of service (change_availability inoperative, kept across restarts)."""


class Event(enum.StrEnum):
    # the board
    CP_A = "cp_a"
    CP_B = "cp_b"
    CP_CD = "cp_cd"
    CP_EF = "cp_ef"
    FAULT = "fault"
    FAULT_CLEARED = "fault_cleared"
    CONTACTORS_OPEN = "contactors_open"
    DISCHARGED = "discharged"
    # Josev's updates
    HLC_ON = "hlc_on"
    HLC_OFF = "hlc_off"
    SESSION_STOP = "session_stop"
    TRANSACTION_ENDED = "transaction_ended"
    AUTH_PENDING = "auth_pending"
    AUTH_ACCEPTED = "auth_accepted"
    AUTH_REJECTED = "auth_rejected"
    DEAUTHORIZED = "deauthorized"
    # Josev's requests
    CABLE_CHECK_START = "cable_check_start"
    ISOLATION_OK = "isolation_ok"
    ISOLATION_FAILED = "isolation_failed"
    PRECHARGE_SETPOINT = "precharge_setpoint"
    CHARGE_SETPOINT = "charge_setpoint"
    STOP_CHARGING = "stop_charging"
    UNLOCK = "unlock"
    # the station
    LIMITS_READY = "limits_ready"
    LIMITS_NOT_READY = "limits_not_ready"
    OPERATIVE = "operative"
    INOPERATIVE = "inoperative"


ENERGY_STATES = frozenset({State.CABLE_CHECK, State.PRECHARGE, State.CHARGING})
"""The only states in which modules may be on and contactors closed."""
SESSION_STATES = frozenset(
    {
        State.AUTHORIZING,
        State.AUTHORIZED,
        State.CABLE_CHECK,
        State.PRECHARGE,
        State.CHARGING,
        State.PAUSED,
        State.STOPPING,
        State.FINISHING,
    }
)
"""A session runs: an `inoperative` waits for its end."""


class Pilot(enum.StrEnum):
    UNKNOWN = "unknown"
    A = "A"
    B = "B"
    CD = "C/D"
    EF = "E/F"


@dataclass(frozen=True, slots=True)
class Facts:
    """What the guards read: set by events whatever the state."""

    dc: bool
    pilot: Pilot = Pilot.UNKNOWN
    authorized: bool = False
    hlc: bool = False
    isolation_ok: bool = False
    operative: bool = True
    limits_ready: bool = False
    inoperative_pending: bool = False

    @property
    def plugged(self) -> bool:
        return self.pilot in (Pilot.B, Pilot.CD)


class Guard(enum.StrEnum):
    """A condition a cell's move needs; the request is refused when it does not hold."""

    MAY_CHECK = "may_check"
    """DC, pilot C/D, authorized, HLC up, operative, limits ready."""
    MAY_CHARGE = "may_charge"
    """As may_check, and for DC the isolation checked (valid or warning)."""


class Outcome(enum.StrEnum):
    STAY = "stay"
    """Facts updated, state unchanged; a request is accepted."""
    REFUSE = "refuse"
    """State unchanged; a request is refused and nothing is commanded."""
    IDLE = "idle"
    """The resting state the facts give: unavailable, occupied or available."""
    DEFER = "defer"
    """inoperative during a session: taken when the session ends."""


@dataclass(frozen=True, slots=True)
class Cell:
    target: State | Outcome
    guard: Guard | None = None

    def __str__(self) -> str:
        target = self.target.value
        return f"{target} if {self.guard.value}" if self.guard is not None else target


@dataclass(frozen=True, slots=True)
class ByKind:
    """A cell that differs between a DC and an AC EVSE."""

    dc: Cell
    ac: Cell

    def __str__(self) -> str:
        return f"DC: {self.dc}; AC: {self.ac}"


Table = Mapping[State, Mapping[Event, Cell | ByKind]]


def _cells(**moves: Cell | ByKind | State | Outcome) -> dict[Event, Cell | ByKind]:
    return {
        Event(name): move if isinstance(move, Cell | ByKind) else Cell(move)
        for name, move in moves.items()
    }


REFUSED = Cell(Outcome.REFUSE)


_STOP_ENERGY = _cells(
    cp_a=Outcome.IDLE,
    cp_b=State.PAUSED,
    cp_ef=State.STOPPING,
    fault=State.FAULTED,
    hlc_off=State.STOPPING,
    session_stop=State.STOPPING,
    transaction_ended=State.STOPPING,
    auth_rejected=State.STOPPING,
    deauthorized=State.STOPPING,
    isolation_failed=State.STOPPING,
    stop_charging=State.STOPPING,
    unlock=Outcome.REFUSE,
    limits_not_ready=State.STOPPING,
    inoperative=Outcome.DEFER,
    cable_check_start=Outcome.REFUSE,
    precharge_setpoint=Outcome.REFUSE,
    charge_setpoint=Outcome.REFUSE,
)
"""What ends energy, common to the three energy states."""

TABLE: Table = {
    State.AVAILABLE: _cells(
        cp_b=State.OCCUPIED,
        cp_cd=State.OCCUPIED,
        fault=State.FAULTED,
        inoperative=State.UNAVAILABLE,
        auth_pending=Outcome.REFUSE,
        auth_accepted=Outcome.REFUSE,
        cable_check_start=Outcome.REFUSE,
        precharge_setpoint=Outcome.REFUSE,
        charge_setpoint=Outcome.REFUSE,
    ),
    State.OCCUPIED: _cells(
        cp_a=Outcome.IDLE,
        fault=State.FAULTED,
        inoperative=State.UNAVAILABLE,
        auth_pending=State.AUTHORIZING,
        auth_accepted=State.AUTHORIZED,
        cable_check_start=Outcome.REFUSE,
        precharge_setpoint=Outcome.REFUSE,
        charge_setpoint=Outcome.REFUSE,
    ),
    State.AUTHORIZING: _cells(
        cp_a=Outcome.IDLE,
        fault=State.FAULTED,
        inoperative=Outcome.DEFER,
        auth_accepted=State.AUTHORIZED,
        auth_rejected=State.OCCUPIED,
        deauthorized=State.OCCUPIED,
        transaction_ended=State.OCCUPIED,
        cable_check_start=Outcome.REFUSE,
        precharge_setpoint=Outcome.REFUSE,
        charge_setpoint=Outcome.REFUSE,
    ),
    State.AUTHORIZED: _cells(
        cp_a=Outcome.IDLE,
        fault=State.FAULTED,
        inoperative=Outcome.DEFER,
        auth_rejected=State.OCCUPIED,
        deauthorized=State.OCCUPIED,
        transaction_ended=State.OCCUPIED,
        cp_cd=ByKind(dc=Cell(Outcome.STAY), ac=Cell(State.CHARGING, Guard.MAY_CHARGE)),
        cable_check_start=ByKind(dc=Cell(State.CABLE_CHECK, Guard.MAY_CHECK), ac=REFUSED),
        precharge_setpoint=Outcome.REFUSE,
        charge_setpoint=ByKind(dc=REFUSED, ac=Cell(State.CHARGING, Guard.MAY_CHARGE)),
    ),
    State.CABLE_CHECK: {
        **_STOP_ENERGY,
        **_cells(
            cable_check_start=Cell(State.CABLE_CHECK, Guard.MAY_CHECK),
            precharge_setpoint=Cell(State.PRECHARGE, Guard.MAY_CHARGE),
            charge_setpoint=Cell(State.CHARGING, Guard.MAY_CHARGE),
        ),
    },
    State.PRECHARGE: {
        **_STOP_ENERGY,
        **_cells(
            precharge_setpoint=Cell(State.PRECHARGE, Guard.MAY_CHARGE),
            charge_setpoint=Cell(State.CHARGING, Guard.MAY_CHARGE),
        ),
    },
    State.CHARGING: {
        **_STOP_ENERGY,
        **_cells(charge_setpoint=Cell(State.CHARGING, Guard.MAY_CHARGE)),
    },
    State.PAUSED: _cells(
        cp_a=Outcome.IDLE,
        cp_cd=ByKind(dc=Cell(State.AUTHORIZED), ac=Cell(State.CHARGING, Guard.MAY_CHARGE)),
        fault=State.FAULTED,
        inoperative=Outcome.DEFER,
        session_stop=State.FINISHING,
        transaction_ended=State.FINISHING,
        stop_charging=State.FINISHING,
        auth_rejected=State.FINISHING,
        deauthorized=State.FINISHING,
        cable_check_start=Outcome.REFUSE,
        precharge_setpoint=Outcome.REFUSE,
        charge_setpoint=Outcome.REFUSE,
    ),
    State.STOPPING: _cells(
        cp_a=Outcome.IDLE,
        fault=State.FAULTED,
        inoperative=Outcome.DEFER,
        contactors_open=State.FINISHING,
        unlock=Outcome.REFUSE,
        cable_check_start=Outcome.REFUSE,
        precharge_setpoint=Outcome.REFUSE,
        charge_setpoint=Outcome.REFUSE,
    ),
    State.FINISHING: _cells(
        cp_a=Outcome.IDLE,
        fault=State.FAULTED,
        inoperative=Outcome.DEFER,
        discharged=Outcome.IDLE,
        unlock=Outcome.REFUSE,
        cable_check_start=Outcome.REFUSE,
        precharge_setpoint=Outcome.REFUSE,
        charge_setpoint=Outcome.REFUSE,
    ),
    State.FAULTED: _cells(
        fault_cleared=Outcome.IDLE,
        auth_pending=Outcome.REFUSE,
        auth_accepted=Outcome.REFUSE,
        cable_check_start=Outcome.REFUSE,
        precharge_setpoint=Outcome.REFUSE,
        charge_setpoint=Outcome.REFUSE,
    ),
    State.UNAVAILABLE: _cells(
        fault=State.FAULTED,
        operative=Outcome.IDLE,
        auth_pending=Outcome.REFUSE,
        auth_accepted=Outcome.REFUSE,
        cable_check_start=Outcome.REFUSE,
        precharge_setpoint=Outcome.REFUSE,
        charge_setpoint=Outcome.REFUSE,
    ),
}
"""state -> event -> what happens; an event a state does not name is STAY there (its facts are
still taken). An AC EVSE has no cable check or precharge: pilot C starts its charge, and its
guard asks no isolation or HLC; a DC EVSE back from a pause checks its cable again."""

STAY = Cell(Outcome.STAY)


# -- commands ----------------------------------------------------------------------------------


class Command(enum.StrEnum):
    ALL_OFF = "all_off"
    """Modules off and contactors open."""
    CLOSE_FOR_CABLE_CHECK = "close_for_cable_check"
    CLOSE_FOR_PRECHARGE = "close_for_precharge"
    CLOSE_FOR_CHARGING = "close_for_charging"
    START_SELF_TEST = "start_self_test"
    LOCK = "lock"
    UNLOCK = "unlock"
    OFFER_AUTHORIZATION = "offer_authorization"
    """An EV plugged in and nobody authorized it: free mode authorizes it now."""


CLOSING = frozenset(
    {Command.CLOSE_FOR_CABLE_CHECK, Command.CLOSE_FOR_PRECHARGE, Command.CLOSE_FOR_CHARGING}
)
_CLOSE_FOR = {
    State.CABLE_CHECK: Command.CLOSE_FOR_CABLE_CHECK,
    State.PRECHARGE: Command.CLOSE_FOR_PRECHARGE,
    State.CHARGING: Command.CLOSE_FOR_CHARGING,
}


@dataclass(frozen=True, slots=True)
class Machine:
    """One EVSE's state and the facts its guards read."""

    state: State
    facts: Facts

    @classmethod
    def start(cls, *, dc: bool, operative: bool = True) -> Machine:
        state = State.AVAILABLE if operative else State.UNAVAILABLE
        return cls(state, Facts(dc=dc, operative=operative))

    @property
    def energy_allowed(self) -> bool:
        return self.state in ENERGY_STATES


@dataclass(frozen=True, slots=True)
class Step:
    machine: Machine
    commands: tuple[Command, ...]
    accepted: bool
    """False: the event was a request the state refuses; nothing was commanded."""
    why: str = ""
    """For a refusal, or a move: the rule that decided."""


def guard_holds(guard: Guard, facts: Facts) -> bool:
    ready = facts.authorized and facts.operative and facts.limits_ready
    if facts.pilot is not Pilot.CD or not ready:
        return False
    if not facts.dc:
        return guard is Guard.MAY_CHARGE
    if not facts.hlc:
        return False
    return guard is Guard.MAY_CHECK or facts.isolation_ok


def cell_for(state: State, event: Event, *, dc: bool) -> Cell:
    cell = TABLE[state].get(event, STAY)
    if isinstance(cell, ByKind):
        return cell.dc if dc else cell.ac
    return cell


def step(machine: Machine, event: Event) -> Step:
    """The next state and what to command for `event`."""
    facts = _take(machine.facts, event)
    cell = cell_for(machine.state, event, dc=facts.dc)
    # A refusal changes nothing, not even the facts: the request never happened.
    if cell.target is Outcome.REFUSE:
        return Step(machine, (), accepted=False, why="not in this state")
    if cell.guard is not None and not guard_holds(cell.guard, facts):
        return Step(machine, (), accepted=False, why=_unmet(cell.guard, facts))
    target = _resolve(machine.state, cell.target, facts)
    if target is None:  # DEFER: in service until the session ends
        facts = replace(facts, operative=True, inoperative_pending=True)
        target = machine.state
    if machine.state in SESSION_STATES and target not in SESSION_STATES:
        # The session is over: its authorization and its checks go with it.
        facts = replace(facts, authorized=False, isolation_ok=False)
        if facts.inoperative_pending:
            facts = replace(facts, operative=False, inoperative_pending=False)
            if target in (State.AVAILABLE, State.OCCUPIED):
                target = State.UNAVAILABLE
    if target not in ENERGY_STATES:
        facts = replace(facts, isolation_ok=False)  # a verdict counts only in its own session
    after = Machine(target, facts)
    return Step(after, _commands(machine, after, event), accepted=True)


_FACTS_OF: Mapping[Event, Mapping[str, Any]] = {
    Event.CP_A: {"pilot": Pilot.A, "authorized": False, "hlc": False, "isolation_ok": False},
    Event.CP_B: {"pilot": Pilot.B},
    Event.CP_CD: {"pilot": Pilot.CD},
    Event.CP_EF: {"pilot": Pilot.EF},
    Event.HLC_ON: {"hlc": True},
    Event.HLC_OFF: {"hlc": False},
    Event.SESSION_STOP: {"hlc": False},
    Event.AUTH_ACCEPTED: {"authorized": True},
    Event.AUTH_REJECTED: {"authorized": False},
    Event.DEAUTHORIZED: {"authorized": False},
    Event.TRANSACTION_ENDED: {"authorized": False},
    Event.ISOLATION_OK: {"isolation_ok": True},
    Event.ISOLATION_FAILED: {"isolation_ok": False},
    Event.CABLE_CHECK_START: {"isolation_ok": False},
    Event.LIMITS_READY: {"limits_ready": True},
    Event.LIMITS_NOT_READY: {"limits_ready": False},
    Event.OPERATIVE: {"operative": True, "inoperative_pending": False},
    Event.INOPERATIVE: {"operative": False},
}
"""What each event tells, whatever the state does with it."""


def _take(facts: Facts, event: Event) -> Facts:
    changes = _FACTS_OF.get(event)
    return replace(facts, **changes) if changes else facts


def _resolve(state: State, target: State | Outcome, facts: Facts) -> State | None:
    if isinstance(target, State):
        return target
    match target:
        case Outcome.STAY:
            return state
        case Outcome.DEFER:
            return None
        case _:  # IDLE
            if not facts.operative:
                return State.UNAVAILABLE
            return State.OCCUPIED if facts.plugged else State.AVAILABLE


def _unmet(guard: Guard, facts: Facts) -> str:
    missing = [
        name
        for name, holds in (
            ("pilot C/D", facts.pilot is Pilot.CD),
            ("authorization", facts.authorized),
            ("operative", facts.operative),
            ("limits ready", facts.limits_ready),
            ("HLC", facts.hlc or not facts.dc),
            ("isolation checked", facts.isolation_ok or not facts.dc or guard is Guard.MAY_CHECK),
        )
        if not holds
    ]
    return "needs " + ", ".join(missing)


def _commands(before: Machine, after: Machine, event: Event) -> tuple[Command, ...]:
    commands: list[Command] = []
    energy_before = before.state in ENERGY_STATES
    energy_after = after.state in ENERGY_STATES
    if (energy_before and not energy_after) or after.state in _ALWAYS_OFF_IN:
        commands.append(Command.ALL_OFF)
    if energy_after:
        if after.state is State.CABLE_CHECK and event is Event.CABLE_CHECK_START:
            commands += [Command.LOCK, Command.CLOSE_FOR_CABLE_CHECK, Command.START_SELF_TEST]
        elif after.state is not before.state or event in _SETPOINTS:
            if not after.facts.dc and after.state is State.CHARGING:
                commands.append(Command.LOCK)
            commands.append(_CLOSE_FOR[after.state])
    plugged_in = before.state is State.AVAILABLE and after.state is State.OCCUPIED
    if plugged_in and not after.facts.dc:
        commands.append(Command.LOCK)  # an AC socket holds the plug from the start
    if after.state is State.OCCUPIED and before.state in _FRESH:
        commands.append(Command.OFFER_AUTHORIZATION)
    ended = after.state in _RESTING and before.state not in _RESTING
    if ended or event is Event.UNLOCK or event is Event.CP_A:
        commands.append(Command.UNLOCK)
    return tuple(commands)


_SETPOINTS = frozenset({Event.PRECHARGE_SETPOINT, Event.CHARGE_SETPOINT})
_ALWAYS_OFF_IN = frozenset(
    {
        State.AVAILABLE,
        State.STOPPING,
        State.FINISHING,
        State.FAULTED,
        State.UNAVAILABLE,
        State.PAUSED,
    }
)
"""Entering (or staying in) these re-commands all off: an extra off is free, a missed one not."""
_FRESH = frozenset({State.AVAILABLE, State.UNAVAILABLE, State.FAULTED})
"""Occupied from these, the EV has had no session yet: authorization is offered. One plug-in,
one authorization: back in occupied after a session (or a refusal), a new one needs a token,
Josev's word, or the EV plugged in again."""
_RESTING = frozenset({State.AVAILABLE, State.OCCUPIED, State.UNAVAILABLE, State.FAULTED})


# -- the table, written down -------------------------------------------------------------------

ConnectorStatus = Literal["available", "occupied", "unavailable", "reserved", "faulted"]
ChargingStatus = Literal["ev_connected", "suspended_ev", "suspended_evse", "charging", "idle"]


def connector_status(machine: Machine) -> ConnectorStatus:
    """OCPP's connector status for `connector_and_charging`."""
    match machine.state:
        case State.AVAILABLE:
            return "available"
        case State.UNAVAILABLE:
            return "unavailable"
        case State.FAULTED:
            return "faulted"
    return "occupied"


def charging_status(machine: Machine) -> ChargingStatus:
    """OCPP's charging state for `connector_and_charging`."""
    match machine.state:
        case State.CHARGING:
            return "charging"
        case State.PAUSED:
            return "suspended_ev"
        case State.AVAILABLE | State.UNAVAILABLE:
            return "idle"
        case State.FAULTED:
            return "suspended_evse" if machine.facts.plugged else "idle"
    return "ev_connected"


def table_markdown() -> str:
    """TABLE as docs/session.md shows it: one row per state, one column per event that any
    state does something with; a blank cell is `stay`."""
    events = [event for event in Event if any(event in row for row in TABLE.values())]
    header = "| state | " + " | ".join(f"`{event.value}`" for event in events) + " |"
    rule = "|---|" + "---|" * len(events)
    rows = [
        f"| **{state.value}** | "
        + " | ".join(str(TABLE[state][event]) if event in TABLE[state] else "" for event in events)
        + " |"
        for state in State
    ]
    return "\n".join([header, rule, *rows])
