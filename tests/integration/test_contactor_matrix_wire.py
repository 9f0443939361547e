"""The simulated contactor matrix on python-can's virtual bus, with a controller of the test's
own: command frames written from the DBC's facts (bit 4*m + b of 0x320's 8 bytes), feedback
frames read back by those facts (0x330). An injected clock moves time; nothing sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import can
import pytest

from csbridge.sources.simulated import (
    ContactorMatrixCodec,
    SimulatedContactorMatrix,
    load_matrix_layout,
)
from tests.support import unique_prefix

COMMAND_ID = 0x320
FEEDBACK_ID = 0x330
RECEIVE_S = 2.0
"""How long the controller waits for a frame already sent on the in-process bus."""


def facts_bytes(contacts: set[tuple[int, int]]) -> bytes:
    return sum(1 << (4 * module + bus) for module, bus in contacts).to_bytes(8, "little")


def contacts_of(data: bytes) -> set[tuple[int, int]]:
    value = int.from_bytes(data, "little")
    return {(bit // 4, bit % 4) for bit in range(64) if value >> bit & 1}


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Wire:
    controller: can.BusABC
    board_bus: can.BusABC
    board: SimulatedContactorMatrix
    clock: Clock

    def command(self, contacts: set[tuple[int, int]]) -> None:
        """Send the command and let the board read it now."""
        self.controller.send(
            can.Message(arbitration_id=COMMAND_ID, data=facts_bytes(contacts), is_extended_id=False)
        )
        self.board.pump(self.board_bus)

    def feedback(self) -> set[tuple[int, int]]:
        """The board's latest feedback, after letting it read and answer."""
        self.board.pump(self.board_bus)
        latest = None
        while (
            received := self.controller.recv(timeout=RECEIVE_S if latest is None else 0)
        ) is not None:
            assert received.arbitration_id == FEEDBACK_ID
            assert (received.dlc, received.is_extended_id) == (8, False)
            latest = received
        assert latest is not None, "the board sent no feedback"
        return contacts_of(bytes(latest.data))


@pytest.fixture
def wire() -> Iterator[Wire]:
    channel = f"{unique_prefix()}-matrix"
    controller = can.Bus(interface="virtual", channel=channel)
    board_bus = can.Bus(interface="virtual", channel=channel)
    clock = Clock()
    board = SimulatedContactorMatrix(
        ContactorMatrixCodec(load_matrix_layout()), delay_s=0.03, clock=clock
    )
    try:
        yield Wire(controller, board_bus, board, clock)
    finally:
        controller.shutdown()
        board_bus.shutdown()


def test_the_board_closes_after_its_delay_and_reports_it(wire: Wire) -> None:
    assert wire.feedback() == set()  # its first cycle
    wire.command({(0, 0), (5, 1)})
    wire.clock.now += 0.02
    wire.board.pump(wire.board_bus)
    assert wire.controller.recv(timeout=0) is None  # not yet: the contacts take 30 ms
    wire.clock.now += 0.02
    assert wire.feedback() == {(0, 0), (5, 1)}
    wire.command({(5, 1)})
    wire.clock.now += 0.03
    assert wire.feedback() == {(5, 1)}


def test_a_stuck_contact_keeps_reporting_closed_against_its_command(wire: Wire) -> None:
    wire.command({(2, 3)})
    wire.clock.now += 0.03
    assert wire.feedback() == {(2, 3)}
    wire.board.stuck.add((2, 3))
    wire.command(set())
    wire.clock.now += 1.0
    assert wire.feedback() == {(2, 3)}
    wire.board.stuck.clear()  # freed, it follows the command it was given
    assert wire.feedback() == set()


def test_the_feedback_repeats_every_cycle_without_a_change(wire: Wire) -> None:
    assert wire.feedback() == set()
    wire.board.pump(wire.board_bus)
    assert wire.controller.recv(timeout=0) is None  # within its cycle: nothing new to say
    wire.clock.now += wire.board.codec.layout.feedback_cycle_s
    assert wire.feedback() == set()


def test_a_short_command_is_refused_and_counted(wire: Wire) -> None:
    wire.controller.send(
        can.Message(arbitration_id=COMMAND_ID, data=bytes(4), is_extended_id=False)
    )
    wire.clock.now += 1.0
    assert wire.feedback() == set()
    assert wire.board.rejected_frames == 1
