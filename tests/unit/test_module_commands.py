"""Command frames (setpoint, on/off) of every shipped power module profile, against frames built
by hand with struct from the protocol notes (docs: hardware-and-everest.md sections 3.1-3.4),
never with the command builder itself; then what must be refused, and that a command is never
taken for a reply by the same profile's codec."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import can
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csbridge.config import ConfigError
from csbridge.sources.can.codec import IdFieldsCodec, Outcome
from csbridge.sources.can.commands import (
    CommandMissingError,
    command_id,
    setpoint_frames,
    switch_frames,
)
from csbridge.sources.can.profile import ProfileRegistry, load_profile
from tests.support import examples

CONTROLLER = 0xF0
REGISTRY = ProfileRegistry()
FAMILIES = ("infypower-reg", "winline-nxr", "uugreen-ur1000x0", "huawei-r4850")


def codec(name: str) -> IdFieldsCodec:
    return IdFieldsCodec(REGISTRY.get(name), CONTROLLER)


def wire(frames: list[can.Message]) -> list[tuple[int, bool, bytes]]:
    return [(f.arbitration_id, f.is_extended_id, bytes(f.data)) for f in frames]


# --- identifiers by hand ------------------------------------------------------------------------


def infy_id(command: int, destination: int) -> int:
    """3.1: error 28-26 (0), device 25-22 (0x0A single), command 21-16, dst 15-8, src 7-0."""
    return (0 << 26) | (0x0A << 22) | (command << 16) | (destination << 8) | CONTROLLER


def winline_id(destination: int) -> int:
    """3.2: protocol 0x060 in 28-20, ptp 19, dst 18-11, src 10-3, group 2-0 (0)."""
    return (0x060 << 20) | (1 << 19) | (destination << 11) | (CONTROLLER << 3) | 0


def uugreen_id(module: int) -> int:
    """3.3: version 1 in 28-25, monitor 1 in 24-21, module 20-14, 13-0 zero in our frames."""
    return (1 << 25) | (1 << 21) | (module << 14)


HUAWEI_SET_ID = 0x108180FE


# --- Infypower (3.1) ----------------------------------------------------------------------------


def test_infypower_setpoint_bit_by_bit() -> None:
    frames = setpoint_frames(codec("infypower-reg"), 3, 400.5, 12.25)
    # 0x1C set: u32 mV, u32 mA, big-endian
    assert wire(frames) == [(infy_id(0x1C, 3), True, struct.pack(">II", 400_500, 12_250))]


def test_infypower_on_off_bit_by_bit() -> None:
    on = switch_frames(codec("infypower-reg"), 5, on=True)
    off = switch_frames(codec("infypower-reg"), 5, on=False)
    # 0x1A: byte0 0x00 on, 0x01 off
    assert wire(on) == [(infy_id(0x1A, 5), True, struct.pack(">B7x", 0x00))]
    assert wire(off) == [(infy_id(0x1A, 5), True, struct.pack(">B7x", 0x01))]


# --- Winline (3.2) ------------------------------------------------------------------------------


def test_winline_setpoint_is_two_register_writes_bit_by_bit() -> None:
    frames = setpoint_frames(codec("winline-nxr"), 0x21, 750.25, 12.25)
    # function 0x03 set, byte1 0, register big-endian, value: 0x0021 float V, 0x001B u32 A x 1024
    assert wire(frames) == [
        (winline_id(0x21), True, struct.pack(">BBHf", 0x03, 0, 0x0021, 750.25)),
        (winline_id(0x21), True, struct.pack(">BBHI", 0x03, 0, 0x001B, 12_544)),
    ]


def test_winline_on_off_bit_by_bit() -> None:
    on = switch_frames(codec("winline-nxr"), 0x3F, on=True)
    off = switch_frames(codec("winline-nxr"), 0x3F, on=False)
    assert wire(on) == [(winline_id(0x3F), True, struct.pack(">BBHI", 0x03, 0, 0x0030, 0))]
    assert wire(off) == [(winline_id(0x3F), True, struct.pack(">BBHI", 0x03, 0, 0x0030, 0x10000))]


def test_winline_command_header_is_the_read_header() -> None:
    winline = codec("winline-nxr")
    read = REGISTRY.get("winline-nxr").message[0]
    for command in REGISTRY.get("winline-nxr").command:
        assert command_id(winline, command, 7) == winline.request_id(read, 7)


# --- UUGreen (3.3) ------------------------------------------------------------------------------


def test_uugreen_setpoint_is_two_set_data_frames_bit_by_bit() -> None:
    frames = setpoint_frames(codec("uugreen-ur1000x0"), 9, 500.125, 33.5)
    # byte0 group 0 << 4 | 0 SetData, byte1 command, bytes 2-3 reserved, u32 BE mV / mA
    set_data = (0 << 4) | 0
    assert wire(frames) == [
        (uugreen_id(9), True, struct.pack(">BBHI", set_data, 2, 0, 500_125)),
        (uugreen_id(9), True, struct.pack(">BBHI", set_data, 3, 0, 33_500)),
    ]


def test_uugreen_on_off_bit_by_bit() -> None:
    on = switch_frames(codec("uugreen-ur1000x0"), 1, on=True)
    off = switch_frames(codec("uugreen-ur1000x0"), 1, on=False)
    # command 4 ShutdownDCDC: 0 on, 1 off
    assert wire(on) == [(uugreen_id(1), True, struct.pack(">BBHI", 0, 4, 0, 0))]
    assert wire(off) == [(uugreen_id(1), True, struct.pack(">BBHI", 0, 4, 0, 1))]


# --- Huawei R4850 (3.4) -------------------------------------------------------------------------


def test_huawei_setpoint_is_online_voltage_then_online_current_bit_by_bit() -> None:
    frames = setpoint_frames(codec("huawei-r4850"), 0, 53.5, 20.0)
    # byte0 0x01, byte1 0x00 online V / 0x03 online I, bytes 6-7 u16 BE: V x 1024, A x 20
    # (issue 20: 20 A is raw 400, 108180FE#0103000000000190; it was 600, A x 30)
    assert wire(frames) == [
        (HUAWEI_SET_ID, True, struct.pack(">BB4xH", 0x01, 0x00, 54_784)),
        (HUAWEI_SET_ID, True, struct.pack(">BB4xH", 0x01, 0x03, 400)),
    ]
    assert bytes(frames[1].data) == bytes.fromhex("0103000000000190")


def test_huawei_has_no_on_off_command() -> None:
    for on in (True, False):
        with pytest.raises(CommandMissingError, match="huawei-r4850 has no switch_"):
            switch_frames(codec("huawei-r4850"), 0, on=on)


def test_huawei_one_device_per_bus_is_address_0() -> None:
    with pytest.raises(ValueError, match="carry no address"):
        setpoint_frames(codec("huawei-r4850"), 1, 48.0, 10.0)


# --- rounding toward zero -----------------------------------------------------------------------


def test_numbers_round_toward_zero_never_up() -> None:
    infy = setpoint_frames(codec("infypower-reg"), 1, 400.0009, 0.0019)
    assert bytes(infy[0].data) == struct.pack(">II", 400_000, 1)
    winline = setpoint_frames(codec("winline-nxr"), 1, 400.1, 1.0 / 1024 * 2.9)
    (sent,) = struct.unpack_from(">f", winline[0].data, 4)
    assert sent <= 400.1
    assert sent == pytest.approx(400.1, rel=1e-7)
    assert bytes(winline[1].data)[4:] == struct.pack(">I", 2)
    huawei = setpoint_frames(codec("huawei-r4850"), 0, 48.0, 10.7)
    # 1/20 is no exact float: 10.7 A must still come out as 214, not 213
    assert bytes(huawei[1].data)[6:] == struct.pack(">H", 214)


SCALES = {
    # (profile, frame index, quantity) -> (offset, format, A or V per raw step)
    "infypower-reg": [(0, "voltage", 0, ">I", 0.001), (0, "current", 4, ">I", 0.001)],
    "winline-nxr": [(1, "current", 4, ">I", 1 / 1024)],
    "uugreen-ur1000x0": [(0, "voltage", 4, ">I", 0.001), (1, "current", 4, ">I", 0.001)],
    "huawei-r4850": [(0, "voltage", 6, ">H", 1 / 1024), (1, "current", 6, ">H", 1 / 20)],
}


@settings(max_examples=examples(400), deadline=None)
@given(
    name=st.sampled_from(FAMILIES),
    voltage=st.floats(0, 58.5),
    current=st.floats(0, 100),
)
def test_what_is_sent_is_at_most_the_setpoint_and_within_one_step(
    name: str, voltage: float, current: float
) -> None:
    frames = setpoint_frames(codec(name), 0, voltage, current)
    asked = {"voltage": voltage, "current": current}
    for index, quantity, at, fmt, step in SCALES[name]:
        (raw,) = struct.unpack_from(fmt, frames[index].data, at)
        sent = raw * step
        assert sent <= asked[quantity] * (1 + 1e-12)
        assert asked[quantity] - sent < step * (1 + 1e-9)
    if name == "winline-nxr":
        (sent_v,) = struct.unpack_from(">f", frames[0].data, 4)
        assert sent_v <= voltage
        assert voltage - sent_v <= abs(voltage) * 2**-23 + 2**-149  # f32 subnormal step


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize(
    ("voltage", "current"),
    [
        (-1.0, 10.0),
        (48.0, -0.001),
        (math.nan, 10.0),
        (48.0, math.nan),
        (math.inf, 10.0),
        (48.0, math.inf),
        (-math.inf, 10.0),
    ],
)
def test_negative_and_non_finite_numbers_are_refused(
    name: str, voltage: float, current: float
) -> None:
    with pytest.raises(ValueError, match="finite number >= 0"):
        setpoint_frames(codec(name), 0, voltage, current)


@pytest.mark.parametrize(
    ("name", "voltage", "current", "why"),
    [
        ("infypower-reg", 1100.001, 10.0, "above infypower-reg's rated voltage range"),
        ("infypower-reg", 500.0, 250.5, "above infypower-reg's rated current range"),
        ("uugreen-ur1000x0", 1e12, 10.0, "rated voltage"),
        ("winline-nxr", 500.0, 1e300, "rated current"),
        # fits the rated range (0-65 V) but not a u16 of V x 1024 (at most 63.999 V)
        ("huawei-r4850", 64.0, 10.0, "does not fit a u16"),
    ],
)
def test_too_large_numbers_are_refused(name: str, voltage: float, current: float, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        setpoint_frames(codec(name), 0, voltage, current)


def test_the_largest_number_that_fits_is_sent() -> None:
    voltage, current = setpoint_frames(codec("huawei-r4850"), 0, 65535 / 1024, 10.0)
    assert bytes(voltage.data)[6:] == b"\xff\xff"
    assert bytes(current.data)[6:] == struct.pack(">H", 200)


@pytest.mark.parametrize(
    ("name", "address"),
    [
        ("infypower-reg", 0x100),
        ("infypower-reg", -1),
        ("winline-nxr", 0x100),
        ("uugreen-ur1000x0", 0x80),  # 7-bit module address
    ],
)
def test_an_address_that_does_not_fit_its_field_is_refused_not_masked(
    name: str, address: int
) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        setpoint_frames(codec(name), address, 400.0, 10.0)
    with pytest.raises(ValueError, match="does not fit"):
        switch_frames(codec(name), address, on=False)


def test_a_profile_without_commands_cannot_be_commanded(tmp_path: Path) -> None:
    path = tmp_path / "plain.toml"
    path.write_text(HEADER + MESSAGE, encoding="utf-8")
    plain = IdFieldsCodec(load_profile(path), CONTROLLER)
    with pytest.raises(CommandMissingError, match="no set_output"):
        setpoint_frames(plain, 1, 400.0, 10.0)
    with pytest.raises(CommandMissingError, match="no switch_off"):
        switch_frames(plain, 1, on=False)


# --- commands are never decoded as replies ------------------------------------------------------

ADDRESSES = {
    "infypower-reg": st.integers(0, 0xFF),
    "winline-nxr": st.integers(0, 0xFF),
    "uugreen-ur1000x0": st.integers(0, 0x7F),
    "huawei-r4850": st.just(0),
}


@st.composite
def commands(draw: st.DrawFn) -> tuple[str, list[can.Message]]:
    name = draw(st.sampled_from(FAMILIES))
    address = draw(ADDRESSES[name])
    kind = draw(st.sampled_from(["set", "on", "off"]))
    built = codec(name)
    if kind == "set":
        rated = built.profile.rated
        voltage = draw(st.floats(0, min(rated.voltage[1], 63.99)))
        current = draw(st.floats(0, rated.current[1]))
        return name, setpoint_frames(built, address, voltage, current)
    if name == "huawei-r4850":
        return name, []
    return name, switch_frames(built, address, on=kind == "on")


@settings(max_examples=examples(600), deadline=None)
@given(commands())
def test_command_frames_are_never_decoded_as_replies(
    command: tuple[str, list[can.Message]],
) -> None:
    name, frames = command
    for frame in frames:
        outcome, result = codec(name).decode(frame)
        assert outcome in (Outcome.REQUEST, Outcome.UNKNOWN_ID), (name, frame)
        assert result is None


@pytest.mark.parametrize("name", FAMILIES)
def test_decode_then_command_roundtrip(name: str) -> None:
    """A module's reply decodes; the setpoint built from it goes out and is not read back."""
    built = codec(name)
    address = 0 if name == "huawei-r4850" else 2
    frames = setpoint_frames(built, address, 48.0, 10.0)
    frames += [] if name == "huawei-r4850" else switch_frames(built, address, on=True)
    for frame in frames:
        assert built.decode(frame)[0] is not Outcome.DECODED
    outcomes = {built.decode(frame)[0] for frame in frames}
    expected = {
        "infypower-reg": {Outcome.UNKNOWN_ID},  # 0x1C / 0x1A are no read command
        "winline-nxr": {Outcome.REQUEST},  # the read header: a controller's frame
        "uugreen-ur1000x0": {Outcome.REQUEST},  # SetData, not ReadDataResponse
        "huawei-r4850": {Outcome.UNKNOWN_ID},  # 0x108180FE is neither poll nor reply
    }
    assert outcomes == expected[name]


# --- the profile format -------------------------------------------------------------------------

HEADER = """
[profile]
name = "plain"
kind = "power_module"
family = "id-fields"
bitrate = 125000

[frame]
fields = { command = [16, 6], destination = [8, 8], source = [0, 8] }
request = { destination = "address", source = "controller" }
reply = { destination = "controller", source = "address" }
"""
MESSAGE = """
[[message]]
name = "read"
id = { command = 3 }
values = [{ field = "output_voltage", at = 0, type = "f32" }]
"""
SET = """
[[command]]
name = "set_output"
id = { command = 0x1C }
data = "00 00 00 00 00 00 00 00"
values = [
    { quantity = "voltage", at = 0, type = "u32", scale = 0.001 },
    { quantity = "current", at = 4, type = "u32", scale = 0.001 },
]
"""
VOLT = '{ quantity = "voltage", at = 0, type = "u8" }'
SWITCH = """
[[command]]
name = "switch_on"
id = { command = 0x1A }
data = "00"

[[command]]
name = "switch_off"
id = { command = 0x1A }
data = "01"
"""


def test_a_profile_with_commands_loads_and_sends_short_frames(tmp_path: Path) -> None:
    path = tmp_path / "plain.toml"
    path.write_text(HEADER + MESSAGE + SET + SWITCH, encoding="utf-8")
    profile = load_profile(path)
    assert [c.name for c in profile.command] == ["set_output", "switch_on", "switch_off"]
    built = IdFieldsCodec(profile, CONTROLLER)
    (off,) = switch_frames(built, 4, on=False)
    assert off.arbitration_id == (0x1A << 16) | (4 << 8) | CONTROLLER
    assert bytes(off.data) == b"\x01"
    assert off.dlc == 1


def test_every_shipped_power_module_profile_can_be_set() -> None:
    for name in FAMILIES:
        profile = REGISTRY.get(name)
        assert profile.commands("set_output"), name
    assert not REGISTRY.get("bender-iso165c").command


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (SET.replace('"set_output"', '"set_power"'), "command[0].name"),
        (SET.replace("at = 4, type", "at = 6, type"), "runs past byte 7"),
        (SET.replace('data = "00 00 00 00 00 00 00 00"', 'data = "00 00 00 00"'), "runs past the"),
        (SET.replace("at = 4, type", "at = 2, type"), "overlaps an earlier value"),
        (SET.replace("scale = 0.001 }", "scale = 0.0 }", 1), "greater than 0"),
        (SET.replace("scale = 0.001 }", "scale = nan }", 1), "finite number"),
        (SET.replace('data = "00 00 00 00 00 00 00 00"', 'data = "0"'), "command[0].data"),
        (SET.replace('data = "00 00 00 00 00 00 00 00"', 'data = ""'), "command[0].data"),
        (SET.replace("{ command = 0x1C }", "{ comand = 0x1C }"), "id.comand names no field"),
        (SET.replace("{ command = 0x1C }", "{ command = 0x40 }"), "id.command = 64 does not fit"),
        (SET.replace('quantity = "current"', 'quantity = "voltage"'), "both voltage and current"),
        (SET.replace('quantity = "current"', 'quantity = "power"'), "command[0].values[1]"),
        (SWITCH.replace('data = "00"', 'data = "00"\nvalues = [' + VOLT + "]"), "no values"),
        (SWITCH.split('[[command]]\nname = "switch_off"', maxsplit=1)[0], "come as a pair"),
        (SET.split("values = [", maxsplit=1)[0], "give it values"),
    ],
)
def test_broken_commands_name_the_key_and_why(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "plain.toml"
    path.write_text(HEADER + MESSAGE + text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    assert any(why in problem for problem in caught.value.problems), caught.value.problems


def test_only_id_fields_power_modules_carry_commands(tmp_path: Path) -> None:
    imd = HEADER.replace('kind = "power_module"', 'kind = "imd"')
    message = MESSAGE.replace('"output_voltage"', '"voltage"')
    path = tmp_path / "plain.toml"
    path.write_text(imd + message + SWITCH, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    assert any("only id-fields power module" in p for p in caught.value.problems)
