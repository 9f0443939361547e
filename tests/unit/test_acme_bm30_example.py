"""The mapping guide's broadcasting example (docs/mapping-a-device.md, "A module that
broadcasts"): fixtures/profiles/acme-bm30.toml is the guide's profile, byte for byte, and it
decodes frames built here with struct.pack from the guide's layout (never by csbridge's own
encoder), and commands the module with the frames the layout describes."""

from __future__ import annotations

import math
import re
import struct

import can
import pytest

from csbridge.sources.can import (
    IdFieldsCodec,
    Outcome,
    load_profile,
    setpoint_frames,
    switch_frames,
)
from csbridge.sources.can.state import ModuleState
from tests.support import FIXTURES, REPO

PROFILE_PATH = FIXTURES / "profiles" / "acme-bm30.toml"
GUIDE = REPO / "docs" / "mapping-a-device.md"
CONTROLLER = 0xF0
BROADCAST = 0xFF
STATUS, CAPABILITY, SET_OUTPUT, ON_OFF = 0x51, 0x52, 0x60, 0x61


def acme_id(message: int, destination: int, source: int) -> int:
    """The guide's layout: priority 6 in bits 28-26, message 23-16, destination 15-8, source
    7-0."""
    return (6 << 26) | (message << 16) | (destination << 8) | source


def broadcast(message: int, module: int, data: bytes) -> can.Message:
    return can.Message(
        arbitration_id=acme_id(message, BROADCAST, module), is_extended_id=True, data=data
    )


def status(module: int, volts: float, amps: float, celsius: int, bits: int = 0b1) -> can.Message:
    data = struct.pack(">HhBBH", round(volts * 10), round(amps * 10), celsius + 50, bits, 0)
    return broadcast(STATUS, module, data)


def capability(module: int) -> can.Message:
    # 1000 V, 150 V, 100 A, 30 kW
    return broadcast(CAPABILITY, module, struct.pack(">HHHH", 10000, 1500, 1000, 3000))


@pytest.fixture
def codec() -> IdFieldsCodec:
    return IdFieldsCodec(load_profile(PROFILE_PATH), controller=CONTROLLER)


def test_the_guide_shows_the_fixture_byte_for_byte() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    blocks = re.findall(
        r"<!-- docs-test: file profiles/acme-bm30\.toml -->\n```toml\n(.*?)```", guide, re.S
    )
    assert blocks == [PROFILE_PATH.read_text(encoding="utf-8")]


def test_status_broadcast(codec: IdFieldsCodec) -> None:
    outcome, decoded = codec.decode(status(4, 750.3, -1.5, 41, bits=0b0_0101))
    assert outcome is Outcome.DECODED
    assert decoded is not None
    assert (decoded.address, decoded.message) == (4, "status")
    assert math.isclose(decoded.values["output_voltage"], 750.3)
    assert math.isclose(decoded.values["output_current"], -1.5)
    assert decoded.values["temperature_c"] == 41.0
    assert decoded.flags == {
        "offline": False,  # bit 0, ready, set
        "fault": False,
        "derating": True,  # bit 2
        "over_temperature": False,
        "input_lost": False,
    }


@pytest.mark.parametrize(
    ("bit", "flag"),
    [(1, "fault"), (2, "derating"), (3, "over_temperature"), (4, "input_lost")],
)
def test_each_status_bit(codec: IdFieldsCodec, bit: int, flag: str) -> None:
    _, decoded = codec.decode(status(1, 0, 0, 20, bits=0b1 | 1 << bit))
    assert decoded is not None
    assert {name for name, state in decoded.flags.items() if state} == {flag}


def test_not_ready_is_offline(codec: IdFieldsCodec) -> None:
    _, decoded = codec.decode(status(1, 0, 0, 20, bits=0))
    assert decoded is not None
    assert decoded.flags["offline"] is True


def test_capability_broadcast(codec: IdFieldsCodec) -> None:
    outcome, decoded = codec.decode(capability(2))
    assert outcome is Outcome.DECODED
    assert decoded is not None
    assert decoded.address == 2
    assert decoded.values == pytest.approx(
        {
            "export.max_voltage": 1000.0,
            "export.min_voltage": 150.0,
            "export.max_current": 100.0,
            "export.max_power": 30000.0,
        }
    )


@pytest.mark.parametrize(
    ("frame", "outcome"),
    [
        (broadcast(STATUS, 1, bytes(6)), Outcome.WRONG_DLC),
        # temperature byte 0xFF: 205 degC, outside [rated]
        (broadcast(STATUS, 1, struct.pack(">HhBBH", 7500, 0, 0xFF, 1, 0)), Outcome.OUT_OF_RANGE),
        # 40,000 W: above the 33 kW of [rated] power (a wrong scale shows up so)
        (
            broadcast(CAPABILITY, 1, struct.pack(">HHHH", 10000, 1500, 1000, 4000)),
            Outcome.OUT_OF_RANGE,
        ),
        # addressed to someone, not broadcast
        (can.Message(arbitration_id=acme_id(STATUS, 7, 1), data=bytes(8)), Outcome.UNKNOWN_ID),
        (broadcast(0x42, 1, bytes(8)), Outcome.UNKNOWN_ID),
    ],
)
def test_refused(codec: IdFieldsCodec, frame: can.Message, outcome: Outcome) -> None:
    assert codec.decode(frame) == (outcome, None)


def test_nothing_is_polled(codec: IdFieldsCodec) -> None:
    assert codec.poll_requests(address=1) == []


def frames_as_text(frames: list[can.Message]) -> list[str]:
    return [f"{f.arbitration_id:08X}#{f.data.hex().upper()}" for f in frames]


def test_commands_are_the_layouts_frames(codec: IdFieldsCodec) -> None:
    # 750 V, 40 A to module 3: 7500 = 0x1D4C, 400 = 0x0190; then output on.
    expected_set = f"{acme_id(SET_OUTPUT, 3, CONTROLLER):08X}#1D4C019000000000"
    assert frames_as_text(setpoint_frames(codec, 3, 750.0, 40.0)) == [expected_set]
    on = switch_frames(codec, 3, on=True)
    off = switch_frames(codec, 3, on=False)
    assert frames_as_text(on) == [f"{acme_id(ON_OFF, 3, CONTROLLER):08X}#0100000000000000"]
    assert frames_as_text(off) == [f"{acme_id(ON_OFF, 3, CONTROLLER):08X}#0000000000000000"]


def test_a_setpoint_is_written_toward_zero(codec: IdFieldsCodec) -> None:
    # 40.07 A is 400.7 steps of 0.1 A: 400 goes out, never 401 (more than asked).
    (frame,) = setpoint_frames(codec, 1, 500.0, 40.07)
    assert struct.unpack_from(">HH", frame.data) == (5000, 400)


def test_capability_stays_known_between_its_broadcasts_within_the_deadline() -> None:
    """Staleness is per value: with status every 0.1 s and capability every 1 s, a 3 s deadline
    keeps the capability known; one shorter than the capability's period loses it between two
    broadcasts though the module is heard ten times a second."""
    codec = IdFieldsCodec(load_profile(PROFILE_PATH), controller=CONTROLLER)
    for deadline, known_at_0_9 in ((3.0, True), (0.3, False)):
        state = ModuleState("bm1", 1, deadline_s=deadline)
        _, cap = codec.decode(capability(1))
        assert cap is not None
        state.apply(cap, at=0.0)
        reading = None
        for tick in range(1, 10):
            _, decoded = codec.decode(status(1, 750.0, 10.0, 30))
            assert decoded is not None
            reading = state.apply(decoded, at=tick / 10)
        assert reading is not None
        assert reading.output_voltage == pytest.approx(750.0)
        assert (reading.export is not None) is known_at_0_9
