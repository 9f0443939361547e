"""The switching sequencer by example: one module moved from a charging EVSE to another, step by
step with the readings written out; a contactor that sticks; a donor that will not ramp down."""

from __future__ import annotations

import math

import pytest

from csbridge.power.switching import (
    EndSession,
    LimitEvse,
    ModuleFault,
    ModuleSense,
    Phase,
    ReclampSetpoint,
    SetContactor,
    SwitchingInputs,
    SwitchingSequencer,
    SwitchingSettings,
    SwitchModule,
)

SETTINGS = SwitchingSettings(
    current_threshold_a=1.0,
    contactor_time_limit_s=0.2,
    ramp_timeout_s=1.0,
    stop_timeout_s=0.5,
    start_timeout_s=0.5,
)
EVSES = ("E1", "E2")
VOLTAGES = {"E1": 400.0, "E2": 650.0}


def sense(current: float, on: bool, *closed_to: str) -> ModuleSense:
    return ModuleSense(current_a=current, output_on=on, closed_to=frozenset(closed_to))


def at(now: float, m2: ModuleSense) -> SwitchingInputs:
    """m1 keeps serving E1 throughout; m2 is the one that moves."""
    return SwitchingInputs(
        now=now, modules={"m1": sense(30.0, True, "E1"), "m2": m2}, setpoint_voltage=VOLTAGES
    )


def two_on_e1() -> SwitchingSequencer:
    return SwitchingSequencer(EVSES, {"m1": "E1", "m2": "E1"}, SETTINGS, now=0.0)


def test_one_move_runs_in_the_safe_order() -> None:
    sequencer = two_on_e1()
    assert sequencer.step(at(0.0, sense(30.0, True, "E1"))) == []
    sequencer.retarget({"m1": "E1", "m2": "E2"})

    # The donor's limit first, re-clamped, while m2 still carries 30 A: nothing is switched.
    assert sequencer.step(at(0.1, sense(30.0, True, "E1"))) == [
        LimitEvse("E1", frozenset({"m1"})),
        ReclampSetpoint("E1"),
    ]
    assert sequencer.step(at(0.2, sense(5.0, True, "E1"))) == []
    assert sequencer.step(at(0.3, sense(0.5, True, "E1"))) == [SwitchModule("m2", on=False)]
    # Off is read before the contactor opens.
    assert sequencer.step(at(0.4, sense(0.0, True, "E1"))) == []
    assert sequencer.step(at(0.5, sense(0.0, False, "E1"))) == [SetContactor("m2", "E1", False)]
    assert sequencer.step(at(0.6, sense(0.0, False, "E1"))) == []
    assert sequencer.step(at(0.7, sense(0.0, False))) == []
    assert sequencer.phase("m2") is Phase.PARKED
    assert sequencer.step(at(0.8, sense(0.0, False))) == [SetContactor("m2", "E2", True)]
    assert sequencer.step(at(0.9, sense(0.0, False, "E2"))) == [
        SwitchModule("m2", on=True, voltage=650.0)
    ]
    # Connected and switched on, not yet reading on: E2's limit waits.
    assert sequencer.reported("E2") == frozenset()
    assert sequencer.step(at(1.0, sense(0.0, True, "E2"))) == [LimitEvse("E2", frozenset({"m2"}))]
    assert sequencer.settled
    assert sequencer.step(at(1.1, sense(20.0, True, "E2"))) == []
    assert sequencer.faulted == frozenset()


def test_a_contactor_stuck_closed_takes_the_module_out_and_never_closes_the_other() -> None:
    sequencer = two_on_e1()
    sequencer.retarget({"m1": "E1", "m2": "E2"})
    sequencer.step(at(0.0, sense(0.0, True, "E1")))  # lowered, and already below: off
    assert sequencer.step(at(0.1, sense(0.0, False, "E1"))) == [SetContactor("m2", "E1", False)]
    assert sequencer.step(at(0.3, sense(0.0, False, "E1"))) == []  # 0.2 s: still within
    commands = sequencer.step(at(0.31, sense(0.0, False, "E1")))
    assert commands[0] == ModuleFault(
        "m2", "E1", "contactor to E1 reads closed, commanded open, for over 0.2 s"
    )
    assert commands[0].fault == "hardware_fault"
    assert sequencer.faulted == frozenset({"m2"})
    later = sequencer.step(at(2.0, sense(0.0, False, "E1")))
    assert not any(isinstance(command, SetContactor) and command.closed for command in later)
    assert sequencer.reported("E2") == frozenset()


def test_a_feedback_that_drops_while_serving_lowers_the_limit_then_faults() -> None:
    sequencer = two_on_e1()
    assert sequencer.step(at(0.0, sense(30.0, True))) == [
        LimitEvse("E1", frozenset({"m1"})),
        ReclampSetpoint("E1"),
    ]
    commands = sequencer.step(at(0.25, sense(0.0, True)))
    assert isinstance(commands[0], ModuleFault)
    assert commands[1] == SwitchModule("m2", on=False)


def test_a_donor_that_will_not_ramp_down_has_its_session_ended() -> None:
    sequencer = two_on_e1()
    sequencer.retarget({"m1": "E1", "m2": "E2"})
    sequencer.step(at(0.0, sense(30.0, True, "E1")))
    assert sequencer.step(at(1.0, sense(30.0, True, "E1"))) == []
    (ended,) = sequencer.step(at(1.05, sense(30.0, True, "E1")))
    assert isinstance(ended, EndSession)
    assert (ended.evse, ended.module) == ("E1", "m2")
    assert sequencer.step(at(1.1, sense(0.0, True, "E1"))) == [SwitchModule("m2", on=False)]


def test_a_module_that_keeps_its_current_after_the_session_ended_is_a_fault() -> None:
    sequencer = two_on_e1()
    sequencer.retarget({"m1": "E1", "m2": "E2"})
    sequencer.step(at(0.0, sense(30.0, True, "E1")))
    sequencer.step(at(1.05, sense(30.0, True, "E1")))
    (fault, off) = sequencer.step(at(1.55, sense(30.0, True, "E1")))
    assert isinstance(fault, ModuleFault)
    assert off == SwitchModule("m2", on=False)
    # It carries current: its contactor is not touched.
    assert sequencer.step(at(1.6, sense(30.0, False, "E1"))) == []
    assert sequencer.step(at(1.7, sense(0.0, False, "E1"))) == [SetContactor("m2", "E1", False)]


def test_a_module_moved_to_an_evse_without_a_session_is_connected_and_left_off() -> None:
    sequencer = SwitchingSequencer(EVSES, {"m1": None}, SETTINGS, now=0.0)
    sequencer.retarget({"m1": "E2"})
    idle = {"m1": sense(0.0, False)}
    assert sequencer.step(SwitchingInputs(0.0, idle)) == [SetContactor("m1", "E2", True)]
    closed = {"m1": sense(0.0, False, "E2")}
    # Its feedback closed is all it takes: it counts in the share E2 reports while idle.
    assert sequencer.step(SwitchingInputs(0.1, closed)) == [LimitEvse("E2", frozenset({"m1"}))]
    assert sequencer.step(SwitchingInputs(0.2, closed)) == []
    assert sequencer.settled


def test_no_reading_counts_as_current_and_unknown_feedback() -> None:
    sequencer = SwitchingSequencer(EVSES, {"m1": None}, SETTINGS, now=0.0)
    sequencer.retarget({"m1": "E1"})
    assert sequencer.step(SwitchingInputs(0.0, {})) == []
    assert isinstance(sequencer.step(SwitchingInputs(0.25, {}))[0], ModuleFault)


def test_unknown_modules_evses_and_bad_settings_are_refused() -> None:
    sequencer = two_on_e1()
    with pytest.raises(ValueError, match="not in the pool"):
        sequencer.retarget({"m9": "E1"})
    with pytest.raises(ValueError, match="not one of the pool's"):
        sequencer.retarget({"m1": "E7"})
    with pytest.raises(ValueError, match="not one of the pool's"):
        SwitchingSequencer(EVSES, {"m1": "E7"}, SETTINGS, now=0.0)
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="contactor_time_limit_s"):
            SwitchingSettings(contactor_time_limit_s=bad)
