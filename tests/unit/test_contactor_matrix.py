"""The contactor matrix board's layout and codec against the facts of hal/contactor-matrix.dbc,
written here: MATRIX_Command is 0x320 and MATRIX_Feedback 0x330, both 8 bytes, standard ids;
the contactor from module m to bus b is bit 4*m + b, little-endian from bit 0 of byte 0. The
frames below are built from those facts (hex, or the small encoder in this file), never by the
codec under test."""

from __future__ import annotations

import logging
from pathlib import Path

import can
import pytest

from csbridge.config import ConfigError
from csbridge.sources.simulated import (
    ContactorMatrixCodec,
    SimulatedContactorMatrix,
    load_matrix_layout,
)

COMMAND_ID = 0x320
FEEDBACK_ID = 0x330
LAYOUT = load_matrix_layout()
CODEC = ContactorMatrixCodec(LAYOUT)
Contact = tuple[int, int]


def facts_bytes(contacts: set[tuple[int, int]]) -> bytes:
    """The DBC's comment, as an encoder of its own."""
    return sum(1 << (4 * module + bus) for module, bus in contacts).to_bytes(8, "little")


def frame(arbitration_id: int, data: bytes, *, extended: bool = False) -> can.Message:
    return can.Message(arbitration_id=arbitration_id, data=data, is_extended_id=extended)


def test_the_shipped_layout_is_sixteen_modules_by_four_buses() -> None:
    assert (LAYOUT.modules, LAYOUT.buses) == (16, 4)
    assert LAYOUT.dbc.name == "contactor-matrix.dbc"
    assert LAYOUT.dbc.is_file()
    assert (CODEC.command_id, CODEC.feedback_id) == (COMMAND_ID, FEEDBACK_ID)


@pytest.mark.parametrize(
    ("data", "contacts"),
    [
        ("0000000000000000", set()),
        ("0200000000000000", {(0, 1)}),  # module 0 to bus 1: bit 1
        ("0001000000000000", {(2, 0)}),  # module 2 to bus 0: bit 8
        ("0000000000000080", {(15, 3)}),  # module 15 to bus 3: bit 63
        ("2100000000000010", {(0, 0), (1, 1), (15, 0)}),
    ],
)
def test_frames_written_from_the_facts_decode_both_ways(data: str, contacts: set[Contact]) -> None:
    raw = bytes.fromhex(data)
    assert raw == facts_bytes(contacts)
    assert CODEC.decode_command(frame(COMMAND_ID, raw)) == frozenset(contacts)
    assert CODEC.decode_feedback(frame(FEEDBACK_ID, raw)) == frozenset(contacts)
    encoded = CODEC.command_frame(contacts)
    assert (encoded.arbitration_id, bytes(encoded.data), encoded.is_extended_id) == (
        COMMAND_ID,
        raw,
        False,
    )
    assert bytes(CODEC.feedback_frame(contacts).data) == raw


def test_every_contact_has_its_own_bit() -> None:
    for contact in LAYOUT.contacts():
        raw = facts_bytes({contact})
        assert CODEC.decode_feedback(frame(FEEDBACK_ID, raw)) == frozenset({contact})


def test_foreign_short_extended_and_remote_frames_decode_to_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    assert CODEC.decode_feedback(frame(COMMAND_ID, bytes(8))) is None
    assert CODEC.decode_feedback(frame(FEEDBACK_ID, bytes(8), extended=True)) is None
    assert CODEC.decode_feedback(frame(FEEDBACK_ID, bytes(7))) is None
    remote = can.Message(
        arbitration_id=FEEDBACK_ID, is_remote_frame=True, dlc=8, is_extended_id=False
    )
    assert CODEC.decode_feedback(remote) is None
    assert "event=contactor_matrix_frame_rejected message=MATRIX_Feedback id=0x330 dlc=7" in (
        caplog.text
    )


def test_a_contact_outside_the_matrix_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        CODEC.command_frame({(16, 0)})
    with pytest.raises(ValueError, match="outside"):
        CODEC.command_frame({(0, 4)})


def test_a_bad_layout_names_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[matrix]\nname = "x"\ndbc = "x.dbc"\nbitrate = 250000\nmodules = 0\nbuses = true\n'
        'command = "A"\nfeedback = "B"\ncommand_signal = "C"\nfeedback_signal = "D"\n'
        "feedback_cycle_s = 0.05\nfeedback_time_limit_s = -1\ncolour = 1\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as refused:
        load_matrix_layout(path)
    text = str(refused.value)
    assert "matrix.colour" in text
    assert "matrix.buses" in text
    path.write_text(path.read_text().replace("buses = true", "buses = 2").replace("colour = 1", ""))
    with pytest.raises(ConfigError) as refused:
        load_matrix_layout(path)
    assert "matrix.modules" in str(refused.value)
    assert "matrix.feedback_time_limit_s" in str(refused.value)


def test_a_layout_whose_signals_are_not_in_its_dbc_is_refused(tmp_path: Path) -> None:
    text = LAYOUT.path.read_text(encoding="utf-8")
    path = tmp_path / "renamed.toml"
    path.write_text(
        text.replace('"../contactor-matrix.dbc"', f'"{LAYOUT.dbc}"').replace(
            "CLOSED_M{module:02d}", "SHUT_M{module:02d}"
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="SHUT_M00_B0"):
        ContactorMatrixCodec(load_matrix_layout(path))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_simulated_board_obeys_after_its_delay_and_can_stick() -> None:
    clock = Clock()
    board = SimulatedContactorMatrix(CODEC, delay_s=0.05, clock=clock)
    board.receive(frame(COMMAND_ID, facts_bytes({(0, 0), (1, 1)})))
    assert not board.advance()
    assert board.closed == set()
    clock.now += 0.05
    assert board.advance()
    assert bytes(board.feedback_frame().data) == facts_bytes({(0, 0), (1, 1)})
    board.stuck.add((0, 0))
    board.receive(frame(COMMAND_ID, facts_bytes({(1, 1)})))
    clock.now += 1.0
    assert not board.advance()
    assert board.closed == {(0, 0), (1, 1)}  # welded: the feedback disagrees with the command
    board.receive(frame(COMMAND_ID, bytes(7)))
    assert board.rejected_frames == 1
    assert board.commanded == {(1, 1)}
