"""The Infypower BEG/BEC bidirectional profile against frames packed here with struct from the
protocol facts (meters-and-bidirectional.md section 1: EVerest's InfyPower_BEG1K075G driver,
chargebyte's InfypowerDCSupply), never against our own encoder alone.

Identifier: bits 28-26 error (0), 25-22 device (0x0A one module), 21-16 command (0x23 read,
0x24 write), 15-8 destination, 7-0 source. Payload: register in bytes 0-1, 0 in 2-3, a u32
big-endian in 4-7.
"""

from __future__ import annotations

import struct

import can
import pytest

from csbridge.sources.can.codec import Decoded, IdFieldsCodec, Outcome
from csbridge.sources.can.commands import (
    direction_frames,
    setpoint_frames,
    switch_frames,
)
from csbridge.sources.can.profile import Profile, ProfileRegistry
from csbridge.sources.can.state import ModuleState

CONTROLLER = 0xF0
READ, WRITE = 0x23, 0x24
REGISTRY = ProfileRegistry()


def codec() -> IdFieldsCodec:
    return IdFieldsCodec(REGISTRY.get("infypower-beg"), CONTROLLER)


def beg_id(command: int, destination: int, source: int) -> int:
    return (0 << 26) | (0x0A << 22) | (command << 16) | (destination << 8) | source


def register(reg: int, value: int) -> bytes:
    return struct.pack(">HHI", reg, 0, value)


def reply(reg: int, value: int, module: int = 4) -> can.Message:
    return can.Message(
        arbitration_id=beg_id(READ, CONTROLLER, module),
        is_extended_id=True,
        data=register(reg, value),
    )


def decoded(frame: can.Message) -> Decoded:
    outcome, result = codec().decode(frame)
    assert outcome is Outcome.DECODED, outcome
    assert result is not None
    return result


def wire(frames: list[can.Message]) -> list[tuple[int, bool, bytes]]:
    return [(f.arbitration_id, f.is_extended_id, bytes(f.data)) for f in frames]


def test_beg_replies_decode() -> None:
    voltage = decoded(reply(0x1001, 402_350))
    assert (voltage.address, voltage.message) == (4, "read_voltage")
    assert voltage.values["output_voltage"] == pytest.approx(402.35)
    current = decoded(reply(0x1002, 25_500))
    assert current.values["output_current"] == pytest.approx(25.5)
    caps = [
        decoded(reply(0x1130, 1_000_000)),
        decoded(reply(0x1131, 200_000)),
        decoded(reply(0x1132, 73_300)),
        decoded(reply(0x1133, 22_000_000)),
    ]
    state = ModuleState("m1", 4)
    for result in caps:
        state.apply(result, 0.0)
    reading = state.reading(0.0)
    for capability in (reading.export, reading.import_):
        assert capability is not None
        assert capability.max_voltage == pytest.approx(1000.0)
        assert capability.min_voltage == pytest.approx(200.0)
        assert capability.max_current == pytest.approx(73.3)
        assert capability.max_power == pytest.approx(22_000.0)


def test_beg_reply_of_another_register_or_a_write_echo_is_not_a_reading() -> None:
    outcome, result = codec().decode(reply(0x1111, 1))  # inverter status: not mapped
    assert result is None
    assert outcome is not Outcome.DECODED
    echo = can.Message(
        arbitration_id=beg_id(WRITE, CONTROLLER, 4),
        is_extended_id=True,
        data=register(0x1001, 400_000),
    )
    assert codec().decode(echo)[1] is None


BEG_STATUS = [
    (7, 0, "fault"),  # output short
    (7, 4, "offline"),  # sleeping
    (7, 5, "fault"),  # discharge abnormal
    (6, 0, "offline"),  # DC side off
    (6, 1, "fault"),
    (6, 2, "fault"),  # protection
    (6, 4, "over_temperature"),
    (6, 5, "fault"),  # output over-voltage
    (6, 7, "fault"),  # communication interrupt
    (5, 0, "derating"),  # power limiting
    (5, 1, "fault"),  # ID repeat
    (5, 2, "fault"),  # load sharing
    (5, 3, "input_lost"),  # phase lost
    (5, 5, "input_lost"),  # input under-voltage
    (5, 6, "input_lost"),  # input over-voltage
    (5, 7, "input_lost"),  # PFC side off
]


@pytest.mark.parametrize(("byte", "bit", "flag"), BEG_STATUS)
def test_beg_status_bits(byte: int, bit: int, flag: str) -> None:
    data = bytearray(register(0x1110, 0))
    data[byte] |= 1 << bit
    frame = can.Message(
        arbitration_id=beg_id(READ, CONTROLLER, 4), is_extended_id=True, data=bytes(data)
    )
    result = decoded(frame)
    assert result.message == "read_status"
    assert {name for name, state in result.flags.items() if state} == {flag}


def test_beg_export_setpoint_bit_by_bit() -> None:
    frames = setpoint_frames(codec(), 3, 400.5, 12.25)
    assert wire(frames) == [
        (beg_id(WRITE, 3, CONTROLLER), True, register(0x1001, 400_500)),
        (beg_id(WRITE, 3, CONTROLLER), True, register(0x1002, 12_250)),
    ]


def test_beg_import_setpoint_bit_by_bit() -> None:
    # chargebyte: the cut-off (the import voltage) first, then voltage and current (positive)
    frames = setpoint_frames(codec(), 3, 380.0, 20.0, import_=True)
    assert wire(frames) == [
        (beg_id(WRITE, 3, CONTROLLER), True, register(0x1132, 380_000)),
        (beg_id(WRITE, 3, CONTROLLER), True, register(0x1001, 380_000)),
        (beg_id(WRITE, 3, CONTROLLER), True, register(0x1002, 20_000)),
    ]


def test_beg_on_off_and_modes_bit_by_bit() -> None:
    on = switch_frames(codec(), 5, on=True)
    off = switch_frames(codec(), 5, on=False)
    to_import = direction_frames(codec(), 5, import_=True)
    to_export = direction_frames(codec(), 5, import_=False)
    assert wire(on) == [(beg_id(WRITE, 5, CONTROLLER), True, register(0x1110, 0xA0))]
    assert wire(off) == [(beg_id(WRITE, 5, CONTROLLER), True, register(0x1110, 0xA1))]
    assert wire(to_import) == [(beg_id(WRITE, 5, CONTROLLER), True, register(0x2110, 0xA1))]
    assert wire(to_export) == [(beg_id(WRITE, 5, CONTROLLER), True, register(0x2110, 0xA0))]


def test_only_the_beg_profile_can_import() -> None:
    profiles: dict[str, Profile] = {name: REGISTRY.get(name) for name in REGISTRY.names()}
    assert {name for name, p in profiles.items() if p.bidirectional} == {"infypower-beg"}


def test_a_profile_with_an_import_setpoint_but_no_mode_commands_is_refused() -> None:
    raw = REGISTRY.get("infypower-beg").model_dump(by_alias=True)
    raw["command"] = [c for c in raw["command"] if c["name"] != "select_export_mode"]
    with pytest.raises(ValueError, match="come together"):
        Profile.model_validate(raw)
