"""The pool's contactor matrix driver on python-can's virtual bus (issue 18): the station's own
CAN path (DeviceRouter, the bus's BusLink) against the simulated board on the other end of
the wire. Frames are checked from the DBC's facts, written here (hal/contactor-matrix.dbc:
MATRIX_Command 0x320 and MATRIX_Feedback 0x330, 8 bytes, the contact from module m to bus b is
bit 4*m + b, little-endian from byte 0), not by the codec alone. An injected clock moves time;
nothing sleeps (the bus carries frames in the process at once)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import can
import pytest

from csbridge.config import Config, load_config
from csbridge.power import (
    CanMatrixDriver,
    ModuleFault,
    ModuleSense,
    Phase,
    SetContactor,
    SwitchingCommand,
    SwitchingInputs,
    SwitchingSequencer,
    SwitchingSettings,
    matrix_driver,
)
from csbridge.resources import example_config
from csbridge.sources.can import CanBuses, DeviceRouter
from csbridge.sources.readings import SourceReading
from csbridge.sources.simulated import (
    ContactorMatrixCodec,
    SimulatedContactorMatrix,
    load_matrix_layout,
)
from csbridge.support import Counters
from csbridge.testing.harness import wait_until
from tests.support import unique_prefix

EVSE1 = "DE*CSB*E0001"
EVSE2 = "DE*CSB*E0002"
COMMAND_ID = 0x320
FEEDBACK_ID = 0x330
RECEIVE_S = 2.0
"""How long one end waits for a frame already sent on the in-process bus."""


def facts_bytes(contacts: Iterable[tuple[int, int]]) -> bytes:
    return sum(1 << (4 * module + bus) for module, bus in contacts).to_bytes(8, "little")


def _board_config(channel: str, **board: object) -> Config:
    """examples/shared-pool.toml with its board on a virtual bus `can0` (on `channel`)."""
    raw = load_config(example_config("shared-pool.toml")).model_dump(mode="json", exclude_none=True)
    raw["bus"] = [{"name": "can0", "interface": "virtual", "channel": channel, "bitrate": 250000}]
    raw["pool"][0]["board"] = {"bus": "can0", **board}
    return Config.model_validate(raw)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class NoReadings:
    """The bus link's sink: the matrix's frames make no EVSE reading, so none comes here."""

    def __init__(self) -> None:
        self.stored: list[tuple[str, SourceReading]] = []

    def store(self, evse_id: str, reading: SourceReading) -> bool:
        self.stored.append((evse_id, reading))
        return True

    def evaluate(self, evse_ids: Iterable[str]) -> None:
        """Nothing to evaluate."""


@dataclass
class Wire:
    driver: CanMatrixDriver
    buses: CanBuses
    board: SimulatedContactorMatrix
    board_bus: can.BusABC
    clock: Clock
    counters: Counters
    sink: NoReadings

    @property
    def station_bus(self) -> can.BusABC:
        bus = self.buses.links["can0"].bus
        assert bus is not None
        return bus

    def carry_out(self, commands: list[SwitchingCommand]) -> list[SwitchingCommand]:
        """The sequencer's contactor commands to the board, as the pool coordinator does."""
        for command in commands:
            if isinstance(command, SetContactor):
                self.driver.command(command.module, command.evse, command.closed)
        return commands

    def board_hears(self) -> None:
        """The board reads the command the station sent (waiting for it), and answers."""
        frame = self.board_bus.recv(timeout=RECEIVE_S)
        assert frame is not None, "the station sent no command"
        self.board.receive(frame)
        self.board.pump(self.board_bus)

    def station_hears(self) -> None:
        """The station's link reads every frame the board sent, as its reader would."""
        frames: list[can.Message] = []
        while (frame := self.station_bus.recv(timeout=RECEIVE_S if not frames else 0)) is not None:
            frames.append(frame)
        assert frames, "the board sent nothing"
        self.buses.links["can0"].on_frames(frames)


@pytest.fixture
def wire() -> Iterator[Wire]:
    channel = f"{unique_prefix()}-matrix"
    config = _board_config(channel)
    clock, counters, sink = Clock(), Counters(), NoReadings()
    router = DeviceRouter(config, counters=counters, clock=clock)
    driver = matrix_driver(config.pool[0], router, counters, clock)
    assert isinstance(driver, CanMatrixDriver)
    buses = CanBuses(config, router, sink, counters, clock)
    assert set(buses.links) == {"can0"}  # opened for the board alone: no module is on it
    link = buses.links["can0"]
    link.open()
    driver.link = link
    board_bus = can.Bus(interface="virtual", channel=channel)
    board = SimulatedContactorMatrix(
        ContactorMatrixCodec(load_matrix_layout()), delay_s=0.02, clock=clock
    )
    try:
        yield Wire(driver, buses, board, board_bus, clock, counters, sink)
    finally:
        board_bus.shutdown()
        if link.bus is not None:
            link.bus.shutdown()


def test_commands_go_out_as_the_dbc_says_and_the_feedback_becomes_the_contacts(
    wire: Wire,
) -> None:
    wire.board.pump(wire.board_bus)  # its first cycle: everything open
    wire.station_hears()
    assert wire.driver.feedback() == {}
    wire.driver.command("m1", EVSE2, closed=True)  # module 0 to bus 1: bit 1
    wire.driver.command("m3", EVSE1, closed=True)  # module 2 to bus 0: bit 8
    first = wire.board_bus.recv(timeout=RECEIVE_S)
    assert first is not None
    assert (first.arbitration_id, first.is_extended_id) == (COMMAND_ID, False)
    assert bytes(first.data).hex() == "0200000000000000"
    wire.board_hears()  # the second command: both contacts
    assert wire.board.commanded == {(0, 1), (2, 0)}
    assert wire.driver.feedback() == {}  # not yet: the contacts take 20 ms
    wire.clock.now += 0.02
    wire.board.pump(wire.board_bus)
    wire.station_hears()
    assert wire.driver.feedback() == {"m1": frozenset({EVSE2}), "m3": frozenset({EVSE1})}
    assert wire.counters.get("can_frames", "can0/matrix-cabinet/decoded") == 2
    assert wire.sink.stored == []


def test_a_feedback_frame_written_from_the_facts_is_read_as_written(wire: Wire) -> None:
    # m2 (module 1) closed to EVSE1 (bit 4), m6 (module 5) to EVSE2 (bit 21): 10 00 20 00.
    frame = can.Message(
        arbitration_id=FEEDBACK_ID, data=bytes.fromhex("1000200000000000"), is_extended_id=False
    )
    wire.buses.links["can0"].on_frames([frame])
    assert wire.driver.feedback() == {"m2": frozenset({EVSE1}), "m6": frozenset({EVSE2})}
    # A contact no contactor of the pool names (module 15 to bus 3, bit 63) is not a module's.
    top = can.Message(arbitration_id=FEEDBACK_ID, data=bytes(7) + b"\x80", is_extended_id=False)
    wire.buses.links["can0"].on_frames([top])
    assert wire.driver.feedback() == {}


def test_a_short_feedback_frame_is_refused_counted_and_changes_nothing(wire: Wire) -> None:
    good = can.Message(arbitration_id=FEEDBACK_ID, data=facts_bytes({(0, 0)}), is_extended_id=False)
    wire.buses.links["can0"].on_frames([good])
    short = can.Message(arbitration_id=FEEDBACK_ID, data=bytes(4), is_extended_id=False)
    wire.buses.links["can0"].on_frames([short])
    assert wire.counters.get("matrix_frames_rejected", "cabinet") == 1
    assert wire.counters.get("can_frames", "can0/matrix-cabinet/wrong_dlc") == 1
    assert wire.counters.get("can_frames", "can0/matrix-cabinet/decoded") == 1
    assert wire.driver.feedback() == {"m1": frozenset({EVSE1})}


def test_a_silent_board_makes_every_contact_unknown_and_its_modules_fault(wire: Wire) -> None:
    settings = SwitchingSettings()
    sequencer = SwitchingSequencer((EVSE1, EVSE2), {"m1": None}, settings, wire.clock.now)
    sequencer.retarget({"m1": EVSE1})

    def step() -> list[SwitchingCommand]:
        feedback = wire.driver.feedback()
        closed = None if feedback is None else feedback.get("m1", frozenset())
        sense = ModuleSense(current_a=0.0, output_on=False, closed_to=closed)
        return wire.carry_out(sequencer.step(SwitchingInputs(wire.clock.now, {"m1": sense}, {})))

    wire.board.pump(wire.board_bus)
    wire.station_hears()
    assert step() == [SetContactor("m1", EVSE1, True)]
    wire.board_hears()
    wire.clock.now += 0.02
    wire.board.pump(wire.board_bus)
    wire.station_hears()
    assert wire.driver.feedback() == {"m1": frozenset({EVSE1})}
    step()
    assert sequencer.phase("m1") is Phase.SERVING
    # The board stops talking: three 50 ms cycles later every contact is unknown.
    wire.clock.now += 0.14
    assert wire.driver.feedback() is not None
    wire.clock.now += 0.02
    assert wire.driver.feedback() is None
    assert wire.counters.get("matrix_board_silent", "cabinet") == 1
    step()  # unknown, not yet for the contactor time limit
    wire.clock.now += settings.contactor_time_limit_s + 0.01
    commands = step()
    faults = [c for c in commands if isinstance(c, ModuleFault)]
    assert [f.module for f in faults] == ["m1"]
    assert "reads unknown" in faults[0].reason
    assert sequencer.faulted == frozenset({"m1"})
    # Heard again, the board reads as it is; the module stays out (a fault is for good).
    wire.board.pump(wire.board_bus)
    wire.station_hears()
    assert wire.driver.feedback() == {"m1": frozenset({EVSE1})}


def test_a_feedback_that_disagrees_is_the_sequencers_feedback_fault(wire: Wire) -> None:
    settings = SwitchingSettings()
    sequencer = SwitchingSequencer((EVSE1, EVSE2), {"m4": None}, settings, wire.clock.now)
    sequencer.retarget({"m4": EVSE2})
    wire.board.stuck.add((3, 1))  # m4's contact to EVSE2 does not pull in

    def step() -> list[SwitchingCommand]:
        wire.board.pump(wire.board_bus)
        wire.station_hears()
        feedback = wire.driver.feedback()
        assert feedback is not None
        sense = ModuleSense(0.0, False, feedback.get("m4", frozenset()))
        return wire.carry_out(sequencer.step(SwitchingInputs(wire.clock.now, {"m4": sense}, {})))

    assert step() == [SetContactor("m4", EVSE2, True)]
    wire.board_hears()
    assert wire.board.commanded == {(3, 1)}
    wire.clock.now += settings.contactor_time_limit_s / 2
    assert not [c for c in step() if isinstance(c, ModuleFault)]
    wire.clock.now += settings.contactor_time_limit_s
    faults = [c for c in step() if isinstance(c, ModuleFault)]
    assert [f.module for f in faults] == ["m4"]
    assert f"contactor to {EVSE2} reads open, commanded closed" in faults[0].reason


async def test_the_command_is_repeated_so_a_restarted_board_gets_its_state_back(
    wire: Wire,
) -> None:
    wire.driver.command("m5", EVSE1, closed=True)  # module 4 to bus 0: bit 16
    assert wire.board_bus.recv(timeout=RECEIVE_S) is not None
    assert wire.driver.codec.command_cycle_s == pytest.approx(0.1)  # GenMsgCycleTime 800
    # Unchanged, the command still goes out every cycle: a board that restarted hears it again.
    repeats: list[can.Message] = []

    def heard() -> bool:
        frame = wire.board_bus.recv(timeout=0)
        if frame is not None:
            repeats.append(frame)
        return len(repeats) >= 2

    task = asyncio.create_task(wire.driver.run())
    try:
        await wait_until(heard, 5, "the command repeated twice")
    finally:
        task.cancel()
    assert {(f.arbitration_id, bytes(f.data).hex()) for f in repeats} == {
        (COMMAND_ID, "0000010000000000")
    }


def test_a_board_on_a_missing_bus_is_refused_by_the_configuration() -> None:
    raw = _board_config("x").model_dump(mode="json", exclude_none=True)
    raw["pool"][0]["board"]["bus"] = "can9"
    with pytest.raises(ValueError, match=r"pool\[0\]\.board\.bus: no \[\[bus\]\] named 'can9'"):
        Config.model_validate(raw)


async def test_the_pool_waits_for_the_boards_first_feedback(wire: Wire) -> None:
    """What the station awaits before the pool's first step (service/station.py)."""
    waiting = asyncio.create_task(wire.driver.heard())
    await wait_until(lambda: wire.driver.feedback() is None, 5, "asked once")
    wire.clock.now += wire.driver.deadline_s + 0.01
    await wait_until(
        lambda: wire.counters.get("matrix_board_silent", "cabinet") == 1, 5, "silent, logged"
    )
    assert not waiting.done()
    wire.board.pump(wire.board_bus)  # the board comes up
    wire.station_hears()
    await wait_until(waiting.done, 5, "heard")
    assert wire.driver.feedback() == {}
