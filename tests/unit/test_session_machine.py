"""The charging state machine on its own: energy only inside a valid session, every way out
switching everything off, and docs/session.md showing exactly the table the code holds."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csbridge.session.machine import (
    CLOSING,
    ENERGY_STATES,
    Command,
    Event,
    Machine,
    Pilot,
    State,
    Step,
    step,
    table_markdown,
)
from tests.support import REPO, examples

DC_READY = (Event.LIMITS_READY, Event.CP_B, Event.AUTH_ACCEPTED, Event.HLC_ON, Event.CP_CD)
"""A DC EV plugged in, authorized, its HLC session up and S2 closed."""


def run(events: Sequence[Event], *, dc: bool = True) -> list[Step]:
    machine = Machine.start(dc=dc)
    steps = []
    for event in events:
        result = step(machine, event)
        steps.append(result)
        machine = result.machine
    return steps


def last(events: Sequence[Event], *, dc: bool = True) -> Step:
    return run(events, dc=dc)[-1]


# -- a whole session ---------------------------------------------------------------------------


def test_a_dc_session_goes_through_its_states_and_ends_with_everything_off() -> None:
    events = [
        *DC_READY,
        Event.CABLE_CHECK_START,
        Event.ISOLATION_OK,
        Event.PRECHARGE_SETPOINT,
        Event.CHARGE_SETPOINT,
        Event.STOP_CHARGING,
        Event.CONTACTORS_OPEN,
        Event.DISCHARGED,
        Event.CP_A,
    ]
    steps = run(events)
    states = [s.machine.state for s in steps]
    assert states[4:] == [
        State.AUTHORIZED,
        State.CABLE_CHECK,
        State.CABLE_CHECK,
        State.PRECHARGE,
        State.CHARGING,
        State.STOPPING,
        State.FINISHING,
        State.OCCUPIED,
        State.AVAILABLE,
    ]
    assert steps[5].commands == (
        Command.LOCK,
        Command.CLOSE_FOR_CABLE_CHECK,
        Command.START_SELF_TEST,
    )
    assert Command.CLOSE_FOR_PRECHARGE in steps[7].commands
    assert Command.CLOSE_FOR_CHARGING in steps[8].commands
    assert Command.ALL_OFF in steps[9].commands
    assert Command.UNLOCK in steps[11].commands
    assert all(s.accepted for s in steps)


def test_an_ac_session_charges_at_pilot_c_without_a_cable_check() -> None:
    steps = run([Event.LIMITS_READY, Event.CP_B, Event.AUTH_ACCEPTED, Event.CP_CD], dc=False)
    assert Command.LOCK in steps[1].commands  # an AC socket holds the plug from the start
    assert steps[-1].machine.state is State.CHARGING
    assert Command.CLOSE_FOR_CHARGING in steps[-1].commands
    paused = step(steps[-1].machine, Event.CP_B)
    assert paused.machine.state is State.PAUSED
    assert Command.ALL_OFF in paused.commands
    assert not step(steps[-1].machine, Event.CABLE_CHECK_START).accepted


# -- the hostile cases of issue 14 -------------------------------------------------------------

CHARGED = [*DC_READY, Event.CABLE_CHECK_START, Event.ISOLATION_OK, Event.CHARGE_SETPOINT]


@pytest.mark.parametrize(
    ("case", "events"),
    [
        ("before plug-in", [Event.LIMITS_READY]),
        ("plugged, before the cable check", [*DC_READY]),
        ("during the cable check, before its verdict", [*DC_READY, Event.CABLE_CHECK_START]),
        ("after stop_charging", [*CHARGED, Event.STOP_CHARGING]),
        ("after SessionStop", [*CHARGED, Event.SESSION_STOP]),
        ("after the transaction ended", [*CHARGED, Event.TRANSACTION_ENDED]),
        ("after the plug was pulled", [*CHARGED, Event.CP_A]),
        (
            "after a failed cable check",
            [*DC_READY, Event.CABLE_CHECK_START, Event.ISOLATION_FAILED],
        ),
        ("unauthorized", [Event.LIMITS_READY, Event.CP_B, Event.HLC_ON, Event.CP_CD]),
        ("after deauthorization", [*CHARGED, Event.DEAUTHORIZED]),
        ("at pilot B", [Event.LIMITS_READY, Event.CP_B, Event.AUTH_ACCEPTED, Event.HLC_ON]),
        ("limits not ready", [*CHARGED, Event.LIMITS_NOT_READY]),
    ],
)
def test_an_out_of_sequence_setpoint_is_refused_and_commands_nothing(
    case: str, events: list[Event]
) -> None:
    machine = last(events).machine if events else Machine.start(dc=True)
    for setpoint in (Event.PRECHARGE_SETPOINT, Event.CHARGE_SETPOINT):
        result = step(machine, setpoint)
        assert not result.accepted, case
        assert result.commands == (), case
        assert result.machine.state is machine.state, case


def test_a_refusal_says_what_is_missing() -> None:
    result = step(last([Event.LIMITS_READY, Event.CP_B, Event.HLC_ON]).machine, Event.CP_CD)
    assert result.machine.state is State.OCCUPIED  # free vend is the I/O's: nobody authorized
    refused = step(result.machine, Event.CABLE_CHECK_START)
    assert not refused.accepted
    assert refused.why == "not in this state"
    authorized = step(step(result.machine, Event.AUTH_ACCEPTED).machine, Event.HLC_OFF)
    refused = step(authorized.machine, Event.CABLE_CHECK_START)
    assert refused.why == "needs HLC"


def test_inoperative_waits_for_the_end_of_a_running_session() -> None:
    charging = last(CHARGED).machine
    deferred = step(charging, Event.INOPERATIVE)
    assert deferred.machine.state is State.CHARGING
    assert deferred.machine.facts.inoperative_pending
    machine = deferred.machine
    for event in (Event.STOP_CHARGING, Event.CONTACTORS_OPEN, Event.DISCHARGED):
        machine = step(machine, event).machine
    assert machine.state is State.UNAVAILABLE
    assert not machine.facts.operative
    assert step(machine, Event.OPERATIVE).machine.state is State.OCCUPIED


# -- properties over arbitrary event sequences ------------------------------------------------

EVENTS = st.lists(st.sampled_from(list(Event)), max_size=40)


def _guards_hold(machine: Machine, command: Command) -> bool:
    facts = machine.facts
    ready = facts.pilot is Pilot.CD and facts.authorized and facts.operative and facts.limits_ready
    if not facts.dc:
        return ready and machine.state is State.CHARGING
    needs_isolation = command in (Command.CLOSE_FOR_PRECHARGE, Command.CLOSE_FOR_CHARGING)
    return ready and facts.hlc and (facts.isolation_ok or not needs_isolation)


@settings(max_examples=examples(2_000), deadline=None)
@given(events=EVENTS, dc=st.booleans())
def test_contactors_close_only_in_an_energy_state_whose_guards_hold(
    events: list[Event], dc: bool
) -> None:
    for result in run(events, dc=dc):
        after = result.machine
        for command in result.commands:
            if command in CLOSING:
                assert after.state in ENERGY_STATES
                assert _guards_hold(after, command), (after, command)
        if after.state not in ENERGY_STATES:
            assert not CLOSING & set(result.commands)


@settings(max_examples=examples(2_000), deadline=None)
@given(events=EVENTS, dc=st.booleans())
def test_every_way_out_of_energy_and_every_unplug_switches_everything_off(
    events: list[Event], dc: bool
) -> None:
    machine = Machine.start(dc=dc)
    for event in events:
        result = step(machine, event)
        if not result.accepted:
            assert result.commands == ()
            assert result.machine.state is machine.state
        left_energy = machine.state in ENERGY_STATES and result.machine.state not in ENERGY_STATES
        if left_energy or event is Event.CP_A:
            assert Command.ALL_OFF in result.commands
        if event is Event.CP_A:
            assert result.machine.state in (State.AVAILABLE, State.UNAVAILABLE, State.FAULTED)
            assert not result.machine.facts.authorized
        machine = result.machine


@settings(max_examples=examples(2_000), deadline=None)
@given(events=EVENTS, dc=st.booleans())
def test_a_session_that_ends_forgets_its_authorization_and_its_cable_check(
    events: list[Event], dc: bool
) -> None:
    machine = Machine.start(dc=dc)
    for event in events:
        after = step(machine, event).machine
        if after.state in (State.AVAILABLE, State.OCCUPIED, State.UNAVAILABLE):
            assert not after.facts.isolation_ok
        if after.state in ENERGY_STATES - {State.CABLE_CHECK}:
            assert after.facts.isolation_ok or not dc
        machine = after


# -- the table, written down ------------------------------------------------------------------


def test_docs_session_md_shows_the_table_the_code_holds() -> None:
    doc = (REPO / "docs" / "session.md").read_text(encoding="utf-8")
    begin, end = "<!-- table:begin -->\n", "\n<!-- table:end -->"
    shown = doc[doc.index(begin) + len(begin) : doc.index(end)]
    assert shown == table_markdown(), (
        "regenerate it with table_markdown() (docs/session.md says how)"
    )
