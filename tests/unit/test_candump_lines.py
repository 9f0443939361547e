"""candump's text, line by line, as can-utils prints it (candump.c, lib.c): every form it
writes becomes the frame it describes, and every line that is none says why."""

from __future__ import annotations

import datetime

import pytest

from csbridge.sources.can.candump import (
    CandumpFormError,
    CandumpLineError,
    parse_line,
)


def test_log_line_extended_id() -> None:
    parsed = parse_line("(1700000000.012001) can0 028AF001#03E8009603E80BB8")
    assert parsed is not None
    assert parsed.timestamp == pytest.approx(1_700_000_000.012001)
    frame = parsed.frame
    assert frame.channel == "can0"
    assert frame.arbitration_id == 0x028AF001
    assert frame.is_extended_id
    assert bytes(frame.data) == bytes.fromhex("03E8009603E80BB8")
    assert not frame.is_error_frame


def test_log_line_standard_id_and_direction_suffix() -> None:
    parsed = parse_line("(000.250000) can1 037#881300000000 R")
    assert parsed is not None
    assert parsed.timestamp == pytest.approx(0.25)  # candump -L -tz: zero-based, still a clock
    assert parsed.frame.arbitration_id == 0x37
    assert not parsed.frame.is_extended_id
    assert bytes(parsed.frame.data) == bytes.fromhex("881300000000")


def test_log_line_remote_fd_and_raw_dlc() -> None:
    remote = parse_line("(1.0) can0 123#R4")
    assert remote is not None
    assert remote.frame.is_remote_frame
    assert remote.frame.dlc == 4
    fd = parse_line("(1.0) can0 123##1" + "AA" * 12)
    assert fd is not None
    assert fd.frame.is_fd
    assert len(fd.frame.data) == 12
    raw = parse_line("(1.0) can0 123#0102030405060708_C")
    assert raw is not None
    assert bytes(raw.frame.data) == bytes(range(1, 9))


def test_error_flag_makes_an_error_frame_on_its_bus() -> None:
    # CAN_ERR_FLAG 0x20000000 | CAN_ERR_BUSERROR 0x80 (linux/can.h, linux/can/error.h)
    parsed = parse_line("(1.0) can0 20000080#0000000000000000")
    assert parsed is not None
    assert parsed.frame.is_error_frame
    assert parsed.frame.channel == "can0"
    assert parsed.frame.arbitration_id == 0x80  # the class bits, as a live socket gives them
    bus_off = parse_line("(1.0) can0 20000040#0000000000000000")  # CAN_ERR_BUSOFF
    assert bus_off is not None
    assert bus_off.frame.is_error_frame


def test_screen_line_without_timestamp() -> None:
    parsed = parse_line("  can0  1A2   [8]  01 02 03 04 05 06 07 08")
    assert parsed is not None
    assert parsed.timestamp is None
    assert parsed.frame.channel == "can0"
    assert parsed.frame.arbitration_id == 0x1A2
    assert bytes(parsed.frame.data) == bytes(range(1, 9))


def test_screen_line_absolute_extended_ascii_and_extra_info() -> None:
    parsed = parse_line(" (1700000000.500000)  can0  RX - -  028AF001   [4]  03 E8 00 96   '....'")
    assert parsed is not None
    assert parsed.timestamp == pytest.approx(1_700_000_000.5)
    assert parsed.frame.arbitration_id == 0x028AF001
    assert parsed.frame.is_extended_id
    assert bytes(parsed.frame.data) == bytes.fromhex("03E80096")


def test_screen_line_dated_is_local_time() -> None:
    parsed = parse_line(" (2023-11-14 22:13:20.250000)  can0  123   [1]  FF")
    assert parsed is not None
    local = datetime.datetime(2023, 11, 14, 22, 13, 20, 250000)  # naive: local, as candump -tA
    assert parsed.timestamp == pytest.approx(local.timestamp())


def test_screen_error_frame_and_its_explanation() -> None:
    parsed = parse_line("  can0  20000080   [8]  00 00 00 00 00 00 00 00   ERRORFRAME")
    assert parsed is not None
    assert parsed.frame.is_error_frame
    assert parse_line("\tbus-error") is None  # candump -e explains on tab-indented lines


def test_screen_remote_request() -> None:
    parsed = parse_line("  can0  123   [2]  remote request")
    assert parsed is not None
    assert parsed.frame.is_remote_frame
    assert parsed.frame.dlc == 2


@pytest.mark.parametrize("line", ["", "   ", "# a comment"])
def test_lines_without_a_frame(line: str) -> None:
    assert parse_line(line) is None


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("garbage line here", "expected '(timestamp) interface id#data' (candump -L)"),
        ("(arbag) can0 123#00", "timestamp 'arbag' is not a number"),
        ("(nan) can0 123#00", "timestamp 'nan' is not a time"),
        ("(1.0) can0 ZZZ#00", "id 'ZZZ' is not hexadecimal"),
        ("(1.0) can0 12#00", "id '12': 3 hex digits (standard) or 8 (extended)"),
        ("(1.0) can0 800#00", "id '800' is over 7FF"),
        ("(1.0) can0 80000123#00", "flag bits"),
        ("(1.0) can0 123#0G", "data '0G' is not hex bytes"),
        ("(1.0) can0 123#010203040506070809", "9 data bytes"),
        ("(1.0) can0 123##1" + "AA" * 9, "9 bytes is no CAN FD length"),
        ("(1.0) can0 123#R9", "remote frame length '9'"),
        ("(1.0) can0", "expected '(timestamp) interface id#data'"),
        ("  can0  123   [8]  01 02 03", "[8] but not 8 hex bytes"),
        ("  can0  123   [1]  01 junk", "unexpected 'junk' after the data"),
        (" (17000000x0.5)  can0  123   [1]  01", "timestamp '17000000x0.5' is not a time"),
    ],
)
def test_a_bad_line_says_why(line: str, why: str) -> None:
    with pytest.raises(CandumpLineError) as raised:
        parse_line(line)
    assert why in str(raised.value)


def test_zero_based_or_delta_screen_timestamps_refuse_the_form() -> None:
    with pytest.raises(CandumpFormError) as raised:
        parse_line(" (000.100000)  can0  123   [1]  01")
    assert "candump -L" in str(raised.value)
