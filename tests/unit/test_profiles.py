"""Every shipped profile against frames built by hand from the protocol facts.

The frames here are packed with struct from the protocol notes (docs: hardware-and-everest.md
sections 3.1-3.5), never with the codecs' own encoder, so a profile that misreads the protocol
fails here even if encoder and decoder agree with each other.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import can
import pytest

from csbridge.config import ConfigError
from csbridge.sources.can.codec import DbcCodec, Decoded, IdFieldsCodec, Outcome
from csbridge.sources.can.profile import (
    QUANTITY_OF,
    Profile,
    ProfileRegistry,
    RatedRanges,
    load_profile,
)
from csbridge.sources.can.state import ModuleState
from csbridge.sources.readings import Capability

CONTROLLER = 0xF0
SHIPPED = {"infypower-reg", "winline-nxr", "uugreen-ur1000x0", "huawei-r4850", "bender-iso165c"}
REGISTRY = ProfileRegistry()
MODULE_FLAG_NAMES = ("offline", "fault", "derating", "over_temperature", "input_lost")


def id_codec(name: str) -> IdFieldsCodec:
    return IdFieldsCodec(REGISTRY.get(name), CONTROLLER)


def dbc_codec(profile: Profile | None = None) -> DbcCodec:
    profile = profile or REGISTRY.get("bender-iso165c")
    return DbcCodec(profile, REGISTRY.dbc_path(profile))


def ext(identifier: int, data: bytes) -> can.Message:
    return can.Message(arbitration_id=identifier, is_extended_id=True, data=data)


def std(identifier: int, data: bytes) -> can.Message:
    return can.Message(arbitration_id=identifier, is_extended_id=False, data=data)


def decoded(codec: IdFieldsCodec | DbcCodec, frame: can.Message) -> Decoded:
    outcome, result = codec.decode(frame)
    assert outcome is Outcome.DECODED, outcome
    assert result is not None
    return result


def refused(codec: IdFieldsCodec | DbcCodec, frame: can.Message) -> Outcome:
    outcome, result = codec.decode(frame)
    assert result is None
    return outcome


def set_flags(result: Decoded) -> set[str]:
    return {name for name, state in result.flags.items() if state}


def capability_after(name: str, results: list[Decoded]) -> Capability | None:
    state = ModuleState(name, results[0].address)
    for result in results:
        state.apply(result, 0.0)
    return state.reading(0.0).export


# --- every profile loads ------------------------------------------------------------------------


def test_every_profile_in_hal_loads_under_its_file_name() -> None:
    assert set(REGISTRY.names()) >= SHIPPED
    for name in REGISTRY.names():
        profile = REGISTRY.get(name)
        assert profile.name == name
        assert (REGISTRY.directory / f"{name}.toml").is_file()
        if profile.header.family == "dbc":
            assert REGISTRY.dbc_path(profile).is_file()


def test_constants_stay_inside_each_profiles_rated_ranges() -> None:
    for name in REGISTRY.names():
        profile = REGISTRY.get(name)
        for field, value in profile.constants.items():
            low, high = getattr(profile.rated, QUANTITY_OF[field])
            assert low <= value <= high, (name, field)


def test_every_module_profile_states_its_minimum_regulated_current_and_why() -> None:
    """The stack splits a small setpoint over the fewest modules by this figure: every shipped
    module profile states it, inside its rated current, and its comment says where it comes
    from (a named source) or that it is our assumption."""
    modules = [
        name for name in REGISTRY.names() if REGISTRY.get(name).header.kind == "power_module"
    ]
    assert set(modules) >= SHIPPED - {"bender-iso165c"}
    for name in modules:
        profile = REGISTRY.get(name)
        minimum = profile.header.min_regulated_current_a
        assert minimum is not None, name
        assert 0 < minimum < profile.rated.current[1], name
        text = (REGISTRY.directory / f"{name}.toml").read_text(encoding="utf-8")
        comment = text[: text.index("min_regulated_current_a = ")]
        explained = comment.rsplit("\n\n", 1)[-1]
        assert "min_regulated_current_a" in explained, name
        assert "ASSUMPTION" in explained or "source" in explained.lower(), name
    for name in REGISTRY.names():
        if REGISTRY.get(name).header.kind != "power_module":
            assert REGISTRY.get(name).header.min_regulated_current_a is None, name


# --- Infypower REG (3.1) ------------------------------------------------------------------------


def infy_id(command: int, destination: int, source: int, device: int = 0x0A) -> int:
    return (0 << 26) | (device << 22) | (command << 16) | (destination << 8) | source


def test_infypower_poll_requests_bit_by_bit() -> None:
    frames = id_codec("infypower-reg").poll_requests(3)
    assert [(f.arbitration_id >> 16) & 0x3F for f in frames] == [0x03, 0x04, 0x0A, 0x0C]
    for frame in frames:
        identifier = frame.arbitration_id
        assert frame.is_extended_id
        assert (identifier >> 26) & 0x7 == 0  # error code
        assert (identifier >> 22) & 0xF == 0x0A  # single module
        assert (identifier >> 8) & 0xFF == 3  # destination: the module
        assert identifier & 0xFF == CONTROLLER  # source: us
        assert identifier >> 29 == 0
        assert bytes(frame.data) == bytes(8)


def test_infypower_replies_decode() -> None:
    codec = id_codec("infypower-reg")
    vi = decoded(codec, ext(infy_id(0x03, CONTROLLER, 2), struct.pack(">ff", 750.0, 12.5)))
    assert (vi.address, vi.message, dict(vi.values)) == (
        2,
        "read_voltage_current",
        {"output_current": 12.5},
    )
    caps = decoded(
        codec, ext(infy_id(0x0A, CONTROLLER, 2), struct.pack(">HHHH", 1000, 150, 1000, 3000))
    )
    assert caps.message == "read_capability"
    assert dict(caps.values) == {
        "export.max_voltage": 1000.0,
        "export.min_voltage": 150.0,
        "export.max_current": pytest.approx(100.0),
        "export.max_power": 30000.0,
    }
    after = decoded(codec, ext(infy_id(0x0C, CONTROLLER, 2), struct.pack(">HHI", 7503, 300, 0)))
    assert after.message == "read_after_diode"
    assert after.values["output_voltage"] == pytest.approx(750.3)
    status = decoded(codec, ext(infy_id(0x04, CONTROLLER, 2), bytes(8)))
    assert status.message == "read_status"
    assert set_flags(status) == set()
    assert set(status.flags) == set(MODULE_FLAG_NAMES)


INFY_STATUS = [
    (7, 0, "fault"),  # output short
    (7, 4, "offline"),  # sleeping
    (7, 5, "fault"),  # discharge abnormal
    (6, 0, "offline"),  # DC side off
    (6, 1, "fault"),  # fault
    (6, 2, "fault"),  # protection
    (6, 4, "over_temperature"),
    (6, 5, "fault"),  # output over-voltage
    (6, 7, "fault"),  # communication interrupt
    (5, 0, "derating"),  # power limiting
    (5, 1, "fault"),  # ID repeat
    (5, 2, "fault"),  # load-sharing alarm
    (5, 3, "input_lost"),  # phase lost
    (5, 5, "input_lost"),  # input under-voltage
    (5, 6, "input_lost"),  # input over-voltage protection
    (5, 7, "input_lost"),  # PFC side off
]
INFY_UNMAPPED = [(6, 3), (6, 6), (5, 4), (7, 1), (7, 2), (7, 3), (7, 6), (7, 7)]


@pytest.mark.parametrize(("byte", "bit", "flag"), INFY_STATUS)
def test_infypower_status_bits(byte: int, bit: int, flag: str) -> None:
    data = bytearray(8)
    data[byte] = 1 << bit
    result = decoded(id_codec("infypower-reg"), ext(infy_id(0x04, CONTROLLER, 1), bytes(data)))
    assert set_flags(result) == {flag}


@pytest.mark.parametrize(("byte", "bit"), INFY_UNMAPPED)
def test_infypower_unmapped_status_bits_set_nothing(byte: int, bit: int) -> None:
    data = bytearray(8)
    data[byte] = 1 << bit
    result = decoded(id_codec("infypower-reg"), ext(infy_id(0x04, CONTROLLER, 1), bytes(data)))
    assert set_flags(result) == set()


def test_infypower_refusals() -> None:
    codec = id_codec("infypower-reg")
    good = struct.pack(">ff", 750.0, 12.5)
    assert refused(codec, ext(infy_id(0x03, CONTROLLER, 2), good[:7])) is Outcome.WRONG_DLC
    nan = struct.pack(">ff", 750.0, math.nan)
    assert refused(codec, ext(infy_id(0x03, CONTROLLER, 2), nan)) is Outcome.OUT_OF_RANGE
    too_much = struct.pack(">ff", 750.0, 251.0)
    assert refused(codec, ext(infy_id(0x03, CONTROLLER, 2), too_much)) is Outcome.OUT_OF_RANGE
    high_caps = struct.pack(">HHHH", 1200, 150, 1000, 3000)
    assert refused(codec, ext(infy_id(0x0A, CONTROLLER, 2), high_caps)) is Outcome.OUT_OF_RANGE
    assert refused(codec, ext(infy_id(0x03, 0xF1, 2), good)) is Outcome.UNKNOWN_ID
    assert refused(codec, ext(infy_id(0x0B, CONTROLLER, 2), good)) is Outcome.UNKNOWN_ID
    assert refused(codec, std(0x123, good)) is Outcome.UNKNOWN_ID
    for request in codec.poll_requests(2):
        assert refused(codec, request) is Outcome.REQUEST


# --- Winline NXR (3.2) --------------------------------------------------------------------------


def winline_id(destination: int, source: int, ptp: int = 1, group: int = 0) -> int:
    return (0x060 << 20) | (ptp << 19) | (destination << 11) | (source << 3) | group


def winline_float(register: int, value: float, state: int = 0xF0) -> bytes:
    return struct.pack(">BBHf", 0x41, state, register, value)


def winline_int(register: int, value: int, state: int = 0xF0) -> bytes:
    return struct.pack(">BBHI", 0x42, state, register, value)


def test_winline_poll_requests_bit_by_bit() -> None:
    frames = id_codec("winline-nxr").poll_requests(0x05)
    registers = []
    for frame in frames:
        identifier = frame.arbitration_id
        assert frame.is_extended_id
        assert identifier >> 20 == 0x060  # protocol number, bits 28-20
        assert (identifier >> 19) & 1 == 1  # point to point
        assert (identifier >> 11) & 0xFF == 0x05  # destination: the module
        assert (identifier >> 3) & 0xFF == CONTROLLER  # source: us
        assert identifier & 0x7 == 0  # group 0
        function, zero, register, value = struct.unpack(">BBHI", frame.data)
        assert (function, zero, value) == (0x10, 0, 0)
        registers.append(register)
    assert registers == [0x0001, 0x0002, 0x0004, 0x0040, 0x0011, 0x0012]


def test_winline_replies_decode() -> None:
    codec = id_codec("winline-nxr")
    constants = {"export.max_voltage": 1000.0, "export.min_voltage": 200.0}
    # The module's own group and point-to-point bit do not take part in matching.
    voltage = decoded(
        codec, ext(winline_id(CONTROLLER, 0x3F, ptp=0, group=5), winline_float(1, 750.5))
    )
    assert (voltage.address, voltage.message) == (0x3F, "read_output_voltage")
    assert dict(voltage.values) == {"output_voltage": 750.5, **constants}
    current = decoded(codec, ext(winline_id(CONTROLLER, 7), winline_float(2, 33.25)))
    assert (current.message, current.values["output_current"]) == ("read_output_current", 33.25)
    temperature = decoded(codec, ext(winline_id(CONTROLLER, 7), winline_float(4, 41.5)))
    assert temperature.message == "read_dc_board_temperature"
    assert temperature.values["temperature_c"] == 41.5
    power = decoded(codec, ext(winline_id(CONTROLLER, 7), winline_float(0x11, 30000.0)))
    assert (power.message, power.values["export.max_power"]) == ("read_rated_power", 30000.0)
    power_int = decoded(codec, ext(winline_id(CONTROLLER, 7), winline_int(0x11, 40000)))
    assert power_int.message == "read_rated_power_integer"
    assert power_int.values["export.max_power"] == 40000.0
    rated = decoded(codec, ext(winline_id(CONTROLLER, 7), winline_float(0x12, 100.0)))
    assert (rated.message, rated.values["export.max_current"]) == ("read_rated_current", 100.0)
    rated_int = decoded(codec, ext(winline_id(CONTROLLER, 7), winline_int(0x12, 133)))
    assert rated_int.message == "read_rated_current_integer"
    assert rated_int.values["export.max_current"] == 133.0
    status = decoded(codec, ext(winline_id(CONTROLLER, 7), winline_int(0x40, 0)))
    assert status.message == "read_status"
    assert dict(status.values) == constants
    assert set_flags(status) == set()
    assert capability_after("w7", [power, rated]) == Capability(
        max_voltage=1000.0, min_voltage=200.0, max_current=100.0, max_power=30000.0
    )
    assert capability_after("w7", [power]) is None  # no rated current yet


WINLINE_STATUS = [
    (0, "fault"),
    (1, "fault"),  # protection
    (7, "fault"),  # DCDC over-voltage
    (9, "input_lost"),  # AC over-voltage
    (14, "input_lost"),  # AC under-voltage
    (16, "fault"),  # CAN communication failure
    (22, "offline"),  # DCDC off
    (23, "derating"),  # power limiting
    (24, "derating"),  # temperature derating
    (25, "derating"),  # AC power limiting
    (28, "fault"),  # DCDC short circuit
    (30, "over_temperature"),  # DCDC over-temperature
    (31, "fault"),  # DCDC output over-voltage
]
WINLINE_UNMAPPED = [bit for bit in range(32) if bit not in {mapped for mapped, _ in WINLINE_STATUS}]


@pytest.mark.parametrize(("bit", "flag"), WINLINE_STATUS)
def test_winline_status_bits(bit: int, flag: str) -> None:
    frame = ext(winline_id(CONTROLLER, 9), winline_int(0x40, 1 << bit))
    result = decoded(id_codec("winline-nxr"), frame)
    assert set_flags(result) == {flag}


def test_winline_unmapped_status_bits_set_nothing() -> None:
    codec = id_codec("winline-nxr")
    for bit in WINLINE_UNMAPPED:
        result = decoded(codec, ext(winline_id(CONTROLLER, 9), winline_int(0x40, 1 << bit)))
        assert set_flags(result) == set(), bit


def test_winline_refusals() -> None:
    codec = id_codec("winline-nxr")
    reply = winline_id(CONTROLLER, 7)
    # 0xF2: the module refused the read; nothing is decoded, counted as out of range.
    assert refused(codec, ext(reply, winline_float(1, 750.0, state=0xF2))) is (Outcome.OUT_OF_RANGE)
    assert refused(codec, ext(reply, winline_int(0x40, 0, state=0xF2))) is Outcome.OUT_OF_RANGE
    assert refused(codec, ext(reply, winline_float(1, 750.0)[:6])) is Outcome.WRONG_DLC
    assert refused(codec, ext(reply, winline_float(1, math.nan))) is Outcome.OUT_OF_RANGE
    assert refused(codec, ext(reply, winline_float(1, math.inf))) is Outcome.OUT_OF_RANGE
    assert refused(codec, ext(reply, winline_float(1, 1100.5))) is Outcome.OUT_OF_RANGE
    assert refused(codec, ext(reply, winline_float(2, 260.0))) is Outcome.OUT_OF_RANGE
    # rated power in kW would read as a 30 W module: refused by the 1 kW floor of [rated].
    assert refused(codec, ext(reply, winline_float(0x11, 30.0))) is Outcome.OUT_OF_RANGE
    # a float register answered as an integer, an unmapped register, an unknown status byte
    assert refused(codec, ext(reply, winline_int(1, 750))) is Outcome.UNKNOWN_ID
    assert refused(codec, ext(reply, winline_float(0x03, 1.0))) is Outcome.UNKNOWN_ID
    assert refused(codec, ext(reply, winline_float(1, 750.0, state=0xF1))) is Outcome.UNKNOWN_ID
    # to another controller, another protocol number, standard identifier
    assert refused(codec, ext(winline_id(0xF1, 7), winline_float(1, 750.0))) is (Outcome.UNKNOWN_ID)
    other_protocol = reply & ~(0x1FF << 20) | (0x061 << 20)
    assert refused(codec, ext(other_protocol, winline_float(1, 750.0))) is Outcome.UNKNOWN_ID
    assert refused(codec, std(reply & 0x7FF, winline_float(1, 750.0))) is Outcome.UNKNOWN_ID
    for request in codec.poll_requests(7):
        assert refused(codec, request) is Outcome.REQUEST
    by_hand = ext(winline_id(7, CONTROLLER), struct.pack(">BBHI", 0x10, 0, 0x0001, 0))
    assert refused(codec, by_hand) is Outcome.REQUEST


# --- UUGreen UR1000x0 (3.3) ---------------------------------------------------------------------


def uugreen_id(module: int, date: int = 0, serial: int = 0, monitor: int = 1) -> int:
    return (1 << 25) | (monitor << 21) | (module << 14) | (date << 9) | serial


def uugreen_reply(command: int, value: int, group: int = 0, kind: int = 3) -> bytes:
    return struct.pack(">BBHI", (group << 4) | kind, command, 0, value)


def test_uugreen_poll_requests_bit_by_bit() -> None:
    frames = id_codec("uugreen-ur1000x0").poll_requests(0x45)
    commands = []
    for frame in frames:
        identifier = frame.arbitration_id
        assert frame.is_extended_id
        assert identifier >> 25 == 1  # protocol version
        assert (identifier >> 21) & 0xF == 1  # monitor address
        assert (identifier >> 14) & 0x7F == 0x45  # module address
        assert identifier & 0x3FFF == 0
        type_byte, command, reserved, value = struct.unpack(">BBHI", frame.data)
        assert (type_byte, reserved, value) == (0x02, 0, 0)  # group 0, ReadData
        commands.append(command)
    assert commands == [0, 1, 30, 104]


def test_uugreen_replies_decode_whatever_the_date_and_serial() -> None:
    codec = id_codec("uugreen-ur1000x0")
    constants = {
        "export.max_voltage": 1000.0,
        "export.min_voltage": 150.0,
        "export.max_power": 40000.0,
    }
    reply = uugreen_id(0x45, date=0x15, serial=0x1A5)
    vout = decoded(codec, ext(reply, uugreen_reply(0, 750_250, group=3)))
    assert (vout.address, vout.message) == (0x45, "read_vout")
    assert dict(vout.values) == {"output_voltage": pytest.approx(750.25), **constants}
    iout = decoded(codec, ext(uugreen_id(0x45, 0x1F, 0x1FF), uugreen_reply(1, 123_456)))
    assert iout.message == "read_iout_slow"
    assert iout.values["output_current"] == pytest.approx(123.456)
    cold = decoded(codec, ext(reply, struct.pack(">BBHi", 0x03, 30, 0, -5_250)))
    assert (cold.message, cold.values["temperature_c"]) == ("read_tin", -5.25)
    caps = decoded(codec, ext(reply, uugreen_reply(104, 100_000)))
    assert caps.message == "read_current_capability"
    assert caps.values["export.max_current"] == pytest.approx(100.0)
    assert set_flags(caps) == set()
    assert capability_after("u", [vout, caps]) == Capability(
        max_voltage=1000.0, min_voltage=150.0, max_current=100.0, max_power=40000.0
    )


def test_uugreen_refusals() -> None:
    codec = id_codec("uugreen-ur1000x0")
    reply = uugreen_id(3, date=0x0C, serial=0x011)
    assert refused(codec, ext(reply, uugreen_reply(0, 750_000)[:4])) is Outcome.WRONG_DLC
    assert refused(codec, ext(reply, uugreen_reply(0, 1_100_001))) is Outcome.OUT_OF_RANGE
    assert refused(codec, ext(reply, uugreen_reply(1, 200_001))) is Outcome.OUT_OF_RANGE
    # Tin is in milli-degrees (issue 20): 25000 is 25 degC; 200.001 degC is out of range
    assert decoded(codec, ext(reply, uugreen_reply(30, 25_000))).values["temperature_c"] == 25.0
    assert refused(codec, ext(reply, uugreen_reply(30, 200_001))) is Outcome.OUT_OF_RANGE
    # ModuleStatus is deliberately unmapped, so are SetDataResponse and unknown commands
    assert refused(codec, ext(reply, uugreen_reply(8, 0))) is Outcome.UNKNOWN_ID
    assert refused(codec, ext(reply, uugreen_reply(0, 750_000, kind=1))) is Outcome.UNKNOWN_ID
    assert refused(codec, ext(reply, uugreen_reply(47, 1))) is Outcome.UNKNOWN_ID
    # another monitor, another protocol version, a standard identifier
    other_monitor = uugreen_id(3, 0x0C, 0x011, monitor=2)
    assert refused(codec, ext(other_monitor, uugreen_reply(0, 1))) is Outcome.UNKNOWN_ID
    version_2 = reply & ~(0xF << 25) | (2 << 25)
    assert refused(codec, ext(version_2, uugreen_reply(0, 1))) is Outcome.UNKNOWN_ID
    assert refused(codec, std(0x7FF, uugreen_reply(0, 1))) is Outcome.UNKNOWN_ID
    for request in codec.poll_requests(3):
        assert refused(codec, request) is Outcome.REQUEST
    by_hand = ext(uugreen_id(3), struct.pack(">BBHI", 0x02, 0, 0, 0))
    assert refused(codec, by_hand) is Outcome.REQUEST


# --- Huawei R4850G2 (3.4) -----------------------------------------------------------------------

HUAWEI_REQUEST = 0x108040FE
HUAWEI_REPLY = 0x1081407F


def huawei_reply(parameter: int, raw: int, first: int = 0x01) -> bytes:
    return struct.pack(">BBHI", first, parameter, 0, raw)


def test_huawei_poll_request_bit_by_bit() -> None:
    (frame,) = id_codec("huawei-r4850").poll_requests(0)
    assert frame.is_extended_id
    assert frame.arbitration_id == HUAWEI_REQUEST
    assert frame.arbitration_id >> 29 == 0
    assert bytes(frame.data) == bytes(8)


def test_huawei_replies_decode() -> None:
    codec = id_codec("huawei-r4850")
    constants = {"export.max_voltage": 58.0, "export.min_voltage": 42.0, "export.max_power": 3000.0}
    vout = decoded(codec, ext(HUAWEI_REPLY, huawei_reply(0x75, round(53.5 * 1024))))
    assert (vout.address, vout.message) == (0, "output_voltage")
    assert dict(vout.values) == {"output_voltage": 53.5, **constants}
    imax = decoded(codec, ext(HUAWEI_REPLY, huawei_reply(0x76, 50 * 20, first=0x00)))
    assert imax.message == "max_current"
    assert imax.values["export.max_current"] == pytest.approx(50.0)
    for parameter, name in ((0x81, "output_current"), (0x82, "output_current_alt")):
        iout = decoded(codec, ext(HUAWEI_REPLY, huawei_reply(parameter, 12 * 1024 + 512)))
        assert (iout.message, iout.values["output_current"]) == (name, 12.5)
    temperature = decoded(codec, ext(HUAWEI_REPLY, huawei_reply(0x7F, 31 * 1024 + 256)))
    assert (temperature.message, temperature.values["temperature_c"]) == (
        "output_temperature",
        31.25,
    )
    for parameter, name in (
        (0x73, "output_power"),
        (0x78, "input_voltage"),
        (0x70, "other_parameter"),
    ):
        known = decoded(codec, ext(HUAWEI_REPLY, huawei_reply(parameter, 1234 * 1024)))
        assert (known.message, dict(known.values), set_flags(known)) == (name, constants, set())
    capability = capability_after("r4850", [vout, imax])
    assert capability is not None
    assert (capability.max_voltage, capability.min_voltage, capability.max_power) == (
        58.0,
        42.0,
        3000.0,
    )
    assert capability.max_current == pytest.approx(50.0)


def test_huawei_refusals() -> None:
    codec = id_codec("huawei-r4850")
    assert refused(codec, ext(HUAWEI_REPLY, huawei_reply(0x75, 0)[:6])) is Outcome.WRONG_DLC
    assert refused(codec, ext(HUAWEI_REPLY, huawei_reply(0x75, 0xFFFFFFFF))) is (
        Outcome.OUT_OF_RANGE
    )
    assert refused(codec, ext(HUAWEI_REPLY, huawei_reply(0x76, 101 * 20))) is (Outcome.OUT_OF_RANGE)
    assert refused(codec, ext(HUAWEI_REQUEST, bytes(8))) is Outcome.REQUEST
    # HUAWEI_REPLY ^ 1 (0x1081407E, the last frame of a reply) decodes since issue 20
    for other in (0x1081807E, 0x1001117E, 0x108111FE, HUAWEI_REPLY ^ 2):
        assert refused(codec, ext(other, huawei_reply(0x75, 1024))) is Outcome.UNKNOWN_ID
    assert refused(codec, std(HUAWEI_REPLY & 0x7FF, bytes(8))) is Outcome.UNKNOWN_ID


# --- Bender iso165C (3.5) -----------------------------------------------------------------------


def imd_info(kohm: int, imc: int = 0, vifc: int = 0) -> can.Message:
    return std(0x37, struct.pack("<HHH", kohm, imc, vifc))


def test_bender_imd_info_decodes() -> None:
    codec = dbc_codec()
    assert codec.poll_requests(0) == []
    result = decoded(codec, imd_info(1234))
    assert (result.address, result.message) == (0, "IMD_Info")
    assert dict(result.values) == {"resistance_ohm": 1_234_000.0}
    assert set(result.flags) == {"self_test_running", "value_outdated", "device_fault"}
    assert set_flags(result) == set()
    top = decoded(codec, imd_info(0xFFFF))
    assert top.values["resistance_ohm"] == 65_535_000.0


BENDER_STATUS = [
    ("imc", 1, "device_fault"),  # chassis fault (issue 20; foxBMS treats it as a fault)
    ("imc", 2, "device_fault"),  # system failure
    ("imc", 3, "value_outdated"),  # calibration running
    ("imc", 4, "self_test_running"),
    ("vifc", 0, "value_outdated"),  # measurement deactivated
    ("vifc", 1, "device_fault"),  # IMC connection error
    ("vifc", 2, "device_fault"),  # IMC alive error
    ("vifc", 8, "value_outdated"),  # resistance value outdated
]
BENDER_UNMAPPED = [("imc", 0), ("imc", 5), ("vifc", 4), ("vifc", 12), ("vifc", 13)]


@pytest.mark.parametrize(("word", "bit", "flag"), BENDER_STATUS)
def test_bender_status_bits(word: str, bit: int, flag: str) -> None:
    frame = imd_info(500, imc=1 << bit) if word == "imc" else imd_info(500, vifc=1 << bit)
    assert set_flags(decoded(dbc_codec(), frame)) == {flag}


@pytest.mark.parametrize(("word", "bit"), BENDER_UNMAPPED)
def test_bender_unmapped_status_bits_set_nothing(word: str, bit: int) -> None:
    frame = imd_info(500, imc=1 << bit) if word == "imc" else imd_info(500, vifc=1 << bit)
    assert set_flags(decoded(dbc_codec(), frame)) == set()


def test_bender_refusals() -> None:
    codec = dbc_codec()
    assert refused(codec, std(0x37, bytes(5))) is Outcome.WRONG_DLC
    assert refused(codec, std(0x37, bytes(8))) is Outcome.WRONG_DLC
    assert refused(codec, ext(0x37, bytes(6))) is Outcome.UNKNOWN_ID
    # the dbc family has no requests of its own: IMD_Request and IMD_Response are not mapped
    assert refused(codec, std(0x22, bytes([0x21, 1, 0, 0, 0]))) is Outcome.UNKNOWN_ID
    assert refused(codec, std(0x23, bytes(5))) is Outcome.UNKNOWN_ID
    # The shipped range spans the whole 16-bit kOhm word; a tighter one refuses above it.
    profile = REGISTRY.get("bender-iso165c")
    tight = profile.model_copy(update={"rated": RatedRanges(resistance=(0.0, 1_000_000.0))})
    assert refused(dbc_codec(tight), imd_info(1001)) is Outcome.OUT_OF_RANGE
    assert decoded(dbc_codec(tight), imd_info(1000)).values["resistance_ohm"] == 1_000_000.0


# --- error and remote frames, every profile -----------------------------------------------------

REPLY_OF = {
    "infypower-reg": ext(infy_id(0x03, CONTROLLER, 1), bytes(8)),
    "winline-nxr": ext(winline_id(CONTROLLER, 1), winline_float(1, 1.0)),
    "uugreen-ur1000x0": ext(uugreen_id(1, 1, 1), uugreen_reply(0, 1)),
    "huawei-r4850": ext(HUAWEI_REPLY, huawei_reply(0x75, 1024)),
    "bender-iso165c": imd_info(100),
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_error_and_remote_frames(name: str) -> None:
    codec = dbc_codec() if name == "bender-iso165c" else id_codec(name)
    reply = REPLY_OF[name]
    assert codec.decode(reply)[0] is Outcome.DECODED
    error = can.Message(
        arbitration_id=reply.arbitration_id,
        is_extended_id=reply.is_extended_id,
        is_error_frame=True,
        data=reply.data,
    )
    assert refused(codec, error) is Outcome.ERROR_FRAME
    remote = can.Message(
        arbitration_id=reply.arbitration_id,
        is_extended_id=reply.is_extended_id,
        is_remote_frame=True,
        dlc=len(reply.data),
    )
    assert refused(codec, remote) is Outcome.REMOTE_FRAME


# --- broken profiles ----------------------------------------------------------------------------

HEADER = """
[profile]
name = "broken"
kind = "power_module"
family = "id-fields"
bitrate = 125000

[frame]
fields = { command = [16, 6], source = [0, 8] }
reply = { source = "address" }
"""
MESSAGE = """
[[message]]
name = "read"
id = { command = 3 }
values = [{ field = "output_voltage", at = 0, type = "f32" }]
"""


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    assert caught.value.source == str(path)
    return caught.value.problems


def test_a_correct_profile_loads(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(HEADER + MESSAGE, encoding="utf-8")
    assert load_profile(path).name == "broken"


@pytest.mark.parametrize(
    ("text", "key", "why"),
    [
        (
            HEADER + MESSAGE.replace("at = 0, type", "at = 6, type"),
            "message[0].values[0]",
            "a f32 at byte 6 runs past byte 7",
        ),
        (
            HEADER + MESSAGE + 'flags = [{ field = "fault", at = 7, bit = 8 }]\n',
            "message[0].flags[0]",
            "bit 8 of a 1-byte word at byte 7 does not fit",
        ),
        (
            HEADER + MESSAGE.replace("{ command = 3 }", "{ comand = 3 }"),
            "message[0] (read)",
            "id.comand names no field in [frame] fields",
        ),
        (
            HEADER + MESSAGE.replace('"output_voltage"', '"output_voltag"'),
            "message[0] (read)",
            "value field 'output_voltag' is not one of",
        ),
        (
            HEADER + MESSAGE + 'flags = [{ field = "faulty", at = 4, bit = 0 }]\n',
            "message[0] (read)",
            "flag field 'faulty' is not one of",
        ),
        ("bogus = 1\n" + HEADER + MESSAGE, "bogus", "unknown key"),
        (HEADER + MESSAGE + "regsiter = 3\n", "message[0].regsiter", "unknown key"),
        (
            HEADER.replace('reply = { source = "address" }', 'reply = { sauce = "address" }')
            + MESSAGE,
            "frame",
            "reply.sauce names no field in fields",
        ),
        (
            HEADER.replace("source = [0, 8] }", "source = [24, 8] }") + MESSAGE,
            "frame",
            "fields.source ends at bit 31, past bit 28",
        ),
        (HEADER + MESSAGE.replace('"read"', '"read"\nrequest_data = "0G"'), "request_data", ""),
        (HEADER.replace("125000", "0") + MESSAGE, "profile.bitrate", "greater than 0"),
        (HEADER, "message", "Field required"),
        (HEADER + MESSAGE + "[[message]]\n", "message[1].name", "Field required"),
        (
            HEADER + '[constants]\n"export.max_voltage" = nan\n' + MESSAGE,
            "constants.export.max_voltage",
            "finite number",
        ),
        (
            HEADER + '[constants]\n"export.max_voltage" = 2000.0\n' + MESSAGE,
            "constants.export.max_voltage",
            "outside the rated voltage range",
        ),
        (
            HEADER + '[constants]\n"output_voltage" = 400.0\n' + MESSAGE,
            "constants.output_voltage",
            "a constant is a capability field",
        ),
        (
            HEADER + '[constants]\n"export.max_powr" = 400.0\n' + MESSAGE,
            "constants.export.max_powr",
            "a constant is a capability field",
        ),
        (
            HEADER
            + '[constants]\n"export.max_voltage" = 400.0\n'
            + MESSAGE.replace('"output_voltage"', '"export.max_voltage"'),
            "constants.export.max_voltage",
            "also read from frames",
        ),
        (
            HEADER + MESSAGE + '[[message]]\nname = "nak"\nerror_reply = true\npoll = true\n',
            "message[1]",
            "an error_reply carries no values, flags or signals and is not polled",
        ),
        (HEADER + MESSAGE + "[[message\n", "cannot read the profile", ""),
        (
            HEADER.replace("bitrate = 125000", "bitrate = 125000\nmin_regulated_current_a = 0")
            + MESSAGE,
            "profile.min_regulated_current_a",
            "greater than 0",
        ),
        (
            HEADER.replace('kind = "power_module"', 'kind = "imd"').replace(
                "bitrate = 125000", "bitrate = 125000\nmin_regulated_current_a = 1.0"
            )
            + MESSAGE.replace('"output_voltage"', '"voltage"'),
            "profile.min_regulated_current_a",
            "only a power_module regulates an output current",
        ),
    ],
)
def test_broken_profiles_name_the_key_and_why(
    tmp_path: Path, text: str, key: str, why: str
) -> None:
    problems = problems_of(tmp_path, text)
    assert any(key in problem and why in problem for problem in problems), problems


def test_registry_refuses_a_profile_named_unlike_its_file(tmp_path: Path) -> None:
    (tmp_path / "other-name.toml").write_text(HEADER + MESSAGE, encoding="utf-8")
    registry = ProfileRegistry(tmp_path)
    with pytest.raises(ConfigError) as caught:
        registry.get("other-name")
    assert "must equal the file name 'other-name'" in caught.value.problems[0]
    with pytest.raises(KeyError):
        registry.get("absent")


def test_the_error_reply_of_a_dbc_profile_is_refused(tmp_path: Path) -> None:
    text = (
        '[profile]\nname = "broken"\nkind = "imd"\nfamily = "dbc"\nbitrate = 250000\n'
        'dbc = "x.dbc"\n[[message]]\nname = "IMD_Info"\nerror_reply = true\n'
    )
    problems = problems_of(tmp_path, text)
    assert any("error_reply is for the id-fields family" in p for p in problems), problems


def test_a_dbc_power_module_reads_its_numbers_as_numbers(tmp_path: Path) -> None:
    """The dbc family is not only for the IMD: a module's voltage stays a number, not a flag."""
    (tmp_path / "pm.dbc").write_text(
        'VERSION ""\n\nNS_ :\n\nBS_:\n\nBU_: PM CSB\n\n'
        "BO_ 1024 PM_Out: 4 PM\n"
        ' SG_ VOUT : 0|16@1+ (0.1,0) [0|6553.5] "V" CSB\n'
        ' SG_ FAULT : 16|1@1+ (1,0) [0|1] "" CSB\n'
    )
    (tmp_path / "pm.toml").write_text(
        '[profile]\nname = "pm"\nkind = "power_module"\nfamily = "dbc"\nbitrate = 250000\n'
        'dbc = "pm.dbc"\n\n[frame]\nextended = false\ndlc = 4\n\n'
        '[[message]]\nname = "PM_Out"\nsignals = [\n'
        '  { signal = "VOUT", field = "output_voltage" },\n'
        '  { signal = "FAULT", field = "fault" },\n]\n'
    )
    registry = ProfileRegistry(tmp_path)
    profile = registry.get("pm")
    codec = DbcCodec(profile, registry.dbc_path(profile))
    outcome, decoded = codec.decode(
        can.Message(arbitration_id=1024, is_extended_id=False, data=struct.pack("<HBB", 4005, 1, 0))
    )
    assert outcome is Outcome.DECODED
    assert decoded is not None
    assert decoded.values == {"output_voltage": pytest.approx(400.5)}
    assert decoded.flags == {"fault": True}


def test_a_vendor_folder_adds_and_replaces_profiles(tmp_path: Path) -> None:
    shipped = ProfileRegistry()
    own = tmp_path / "hal"
    own.mkdir()
    text = (shipped.directory / "infypower-reg.toml").read_text()
    (own / "infypower-reg.toml").write_text(
        text.replace("poll_period_s = 1.0", "poll_period_s = 0.5")
    )
    (own / "acme-pm.toml").write_text(text.replace('name = "infypower-reg"', 'name = "acme-pm"'))
    registry = ProfileRegistry(extra=[own])
    assert registry.get("infypower-reg").header.poll_period_s == 0.5
    assert registry.get("acme-pm").header.kind.value == "power_module"
    assert "bender-iso165c" in registry.names()
    bender = registry.get("bender-iso165c")
    assert registry.dbc_path(bender) == shipped.directory / "bender-iso165c.dbc"
