"""Every shipped family against frames built here, from the public protocol facts, by encoders
written in this file (never csbridge's own encoder): a scale wrong in a profile cannot hide
behind the same scale in our encoder. Each fact is named with its public source; the frames of
issue 20 are written out in hex.

Commands go the other way: our setpoint frames are read back by a decoder written here."""

from __future__ import annotations

import struct

import can
import pytest

from csbridge.sources.can import (
    DbcCodec,
    IdFieldsCodec,
    Outcome,
    ProfileRegistry,
    mode_frames,
    setpoint_frames,
    switch_frames,
)
from csbridge.sources.can.codec import Decoded

REGISTRY = ProfileRegistry()
CONTROLLER = 0xF0


def codec(name: str) -> IdFieldsCodec:
    return IdFieldsCodec(REGISTRY.get(name), CONTROLLER)


def frame(identifier: int, data: bytes, *, extended: bool = True) -> can.Message:
    return can.Message(arbitration_id=identifier, data=data, is_extended_id=extended)


def candump(line: str) -> can.Message:
    """A frame in candump's short form, ID#DATA (8 hex digits: extended)."""
    identifier, data = line.split("#")
    return frame(int(identifier, 16), bytes.fromhex(data), extended=len(identifier) == 8)


def read(decoder: IdFieldsCodec | DbcCodec, message: can.Message) -> Decoded:
    outcome, decoded = decoder.decode(message)
    assert outcome is Outcome.DECODED, (outcome, message)
    assert decoded is not None
    return decoded


# --- Infypower REG (EVerest/EVerest modules/HardwareDrivers/PowerSupplies/InfyPower: README.md,
# can_driver_acdc/CanPackets.cpp; chargebyte/everest-chargebyte InfypowerDCSupply) -------------


def infy_id(command: int, destination: int, source: int, device: int = 0x0A) -> int:
    # bits 28-26 error code, 25-22 device number, 21-16 command, 15-8 destination, 7-0 source
    return (device << 22) | (command << 16) | (destination << 8) | source


def test_infypower_replies_read_at_their_public_scales() -> None:
    infy = codec("infypower-reg")
    module = 0x03
    # 0x03: IEEE-754 float volts (bytes 0-3), float amps (bytes 4-7)
    current = read(infy, frame(infy_id(0x03, CONTROLLER, module), struct.pack(">ff", 750.0, 42.5)))
    assert (current.address, current.values["output_current"]) == (module, 42.5)
    # 0x0A: u16 Vmax [1 V], u16 Vmin [1 V], u16 Imax [0.1 A], u16 rated power [10 W]
    caps = read(
        infy, frame(infy_id(0x0A, CONTROLLER, module), struct.pack(">HHHH", 1000, 150, 1333, 4000))
    )
    assert caps.values["export.max_voltage"] == 1000.0
    assert caps.values["export.min_voltage"] == 150.0
    assert caps.values["export.max_current"] == pytest.approx(133.3)
    assert caps.values["export.max_power"] == 40000.0
    # 0x0C: u16 voltage after the diode [0.1 V], u16 available current [0.1 A]
    diode_reply = frame(infy_id(0x0C, CONTROLLER, module), struct.pack(">HH4x", 7505, 400))
    after_diode = read(infy, diode_reply)
    assert after_diode.values["output_voltage"] == pytest.approx(750.5)


def test_infypower_setpoint_reads_back_in_millivolts_and_milliamps() -> None:
    (frame_out,) = setpoint_frames(codec("infypower-reg"), 0x03, 412.5, 33.25)
    # 0x1C set: u32 mV, u32 mA, to module 3 from the controller
    assert frame_out.arbitration_id == infy_id(0x1C, 0x03, CONTROLLER)
    millivolts, milliamps = struct.unpack(">II", frame_out.data)
    assert (millivolts, milliamps) == (412_500, 33_250)


# --- Huawei R4850G2 (bbobkins/r4850g2_arduino src/R4850G2_V2.ino; hoylabs/OpenDTU-OnBattery
# include/Huawei_can.h; mb-software/esphome-huawei-r4850 components/huawei_r4850/huawei_r4850.cpp)


def huawei_value(parameter: int, raw: int) -> bytes:
    # byte0 0x01, byte1 the parameter, bytes 4-7 the value, u32 big-endian
    return bytes([0x01, parameter, 0, 0]) + raw.to_bytes(4, "big")


def test_huawei_max_current_of_issue_20_reads_50_a() -> None:
    # raw 1000 is 50 A: the current scale is 20 (it was read as 1000 / 30 = 33.3 A)
    reply = read(codec("huawei-r4850"), candump("1081407F#01760000000003E8"))
    assert reply.message == "max_current"
    assert reply.values["export.max_current"] == 50.0


def test_huawei_setpoint_of_issue_20_is_raw_400_for_20_a() -> None:
    voltage, current = setpoint_frames(codec("huawei-r4850"), 0, 53.5, 20.0)
    # 0x108180FE, byte0 0x01, byte1 0x00 online voltage / 0x03 online current, bytes 6-7 u16
    # big-endian: V x 1024, A x 20
    assert (current.arbitration_id, bytes(current.data)) == (
        0x108180FE,
        bytes.fromhex("0103000000000190"),
    )
    assert voltage.arbitration_id == 0x108180FE
    assert bytes(voltage.data)[:2] == b"\x01\x00"
    assert int.from_bytes(voltage.data[6:], "big") / 1024 == 53.5
    assert int.from_bytes(current.data[6:], "big") / 20 == 20.0


def test_huawei_last_frame_of_a_reply_is_read_like_the_others() -> None:
    huawei = codec("huawei-r4850")
    # bit 0 of the identifier: 1 more frames follow, 0 the last frame of the reply
    for identifier in (0x1081407F, 0x1081407E):
        volts = read(huawei, frame(identifier, huawei_value(0x75, round(53.25 * 1024))))
        assert volts.values["output_voltage"] == 53.25
        amps = read(huawei, frame(identifier, huawei_value(0x81, 12 * 1024 + 256)))
        assert amps.values["output_current"] == 12.25
        hot = read(huawei, frame(identifier, huawei_value(0x7F, 41 * 1024 + 512)))
        assert hot.values["temperature_c"] == 41.5
        imax = read(huawei, frame(identifier, huawei_value(0x76, 55 * 20)))
        assert imax.values["export.max_current"] == 55.0
    # the set acknowledgement (0x1081807E) is no data reply
    assert huawei.decode(frame(0x1081807E, huawei_value(0x75, 1024)))[0] is Outcome.UNKNOWN_ID


# --- UUGreen UR1000X0 (EVerest/EVerest modules/HardwareDrivers/PowerSupplies/
# UUGreenPower_UR1000X0/can_driver_acdc: CanPackets.cpp, UUGreenCanDevice.cpp;
# SmartElectroni/libpowermodul src/CanParser.cpp) ----------------------------------------------


def uugreen_id(module: int, date: int = 0, serial: int = 0) -> int:
    # bits 28-25 protocol version 1, 24-21 monitor 1, 20-14 module, 13-9 date, 8-0 serial
    return (1 << 25) | (1 << 21) | (module << 14) | (date << 9) | serial


def uugreen_payload(message_type: int, command: int, value: int, group: int = 0) -> bytes:
    # byte0 group << 4 | message type, byte1 command, 2 reserved bytes, u32 big-endian
    return bytes([(group << 4) | message_type, command, 0, 0]) + value.to_bytes(4, "big")


def test_uugreen_replies_read_in_milli_units() -> None:
    uugreen = codec("uugreen-ur1000x0")
    reply = uugreen_id(5, date=0x11, serial=0x0AB)
    # ReadDataResponse (3): Vout (0) mV, Iout_slow (1) mA, Tin (30) milli-degC, capability mA
    assert read(uugreen, frame(reply, uugreen_payload(3, 0, 812_345))).values[
        "output_voltage"
    ] == pytest.approx(812.345)
    assert read(uugreen, frame(reply, uugreen_payload(3, 1, 45_500))).values[
        "output_current"
    ] == pytest.approx(45.5)
    tin = read(uugreen, frame(reply, uugreen_payload(3, 30, 25_000)))
    assert (tin.address, tin.values["temperature_c"]) == (5, 25.0)
    assert read(uugreen, frame(reply, uugreen_payload(3, 104, 100_000))).values[
        "export.max_current"
    ] == pytest.approx(100.0)


def test_uugreen_commands_read_back() -> None:
    uugreen = codec("uugreen-ur1000x0")
    voltage, current = setpoint_frames(uugreen, 5, 650.5, 20.25)
    # SetData (0): VoutReference (2) mV, IoutLimit (3) mA, to module 5 from monitor 1
    assert voltage.arbitration_id == current.arbitration_id == uugreen_id(5)
    assert bytes(voltage.data) == uugreen_payload(0, 2, 650_500)
    assert bytes(current.data) == uugreen_payload(0, 3, 20_250)
    (on,) = switch_frames(uugreen, 5, on=True)
    (off,) = switch_frames(uugreen, 5, on=False)
    assert (bytes(on.data), bytes(off.data)) == (uugreen_payload(0, 4, 0), uugreen_payload(0, 4, 1))
    # HiMode_LoMode_Selection (95): 1 High, 2 Low (EVerest's VoltageMode)
    (high,) = mode_frames(uugreen, 5, high=True)
    (low,) = mode_frames(uugreen, 5, high=False)
    assert (high.arbitration_id, bytes(high.data)) == (
        0x02214000,
        bytes.fromhex("005F000000000001"),
    )
    assert bytes(low.data) == uugreen_payload(0, 95, 2)
    assert REGISTRY.get("uugreen-ur1000x0").header.high_mode_above_v == 500.0


# --- Winline NXR (EVerest/EVerest modules/HardwareDrivers/PowerSupplies/Winline:
# can_driver_acdc/CanPackets.cpp, WinlineCanDevice.cpp, manifest.yaml, README.md) --------------


def winline_id(destination: int, source: int, ptp: int = 1, group: int = 0) -> int:
    # bits 28-20 protocol 0x060, 19 point-to-point, 18-11 destination, 10-3 source, 2-0 group
    return (0x060 << 20) | (ptp << 19) | (destination << 11) | (source << 3) | group


def test_winline_replies_and_the_limit_point() -> None:
    winline = codec("winline-nxr")
    reply = winline_id(CONTROLLER, 0x07)
    # byte0 data type 0x41 float / 0x42 integer, byte1 0xF0 normal, bytes 2-3 register
    volts = read(winline, frame(reply, struct.pack(">BBHf", 0x41, 0xF0, 0x0001, 700.25)))
    assert (volts.address, volts.values["output_voltage"]) == (7, 700.25)
    amps = read(winline, frame(reply, struct.pack(">BBHf", 0x41, 0xF0, 0x0002, 30.5)))
    assert amps.values["output_current"] == 30.5
    # rated current (0x0012) times module_current_limit_point: 1.0 in the shipped profile
    profile = REGISTRY.get("winline-nxr")
    limit_point = profile.settings["module_current_limit_point"]
    assert limit_point == 1.0
    rated = read(winline, frame(reply, struct.pack(">BBHf", 0x41, 0xF0, 0x0012, 30.0)))
    assert rated.values["export.max_current"] == 30.0 * limit_point


def test_winline_limit_point_multiplies_and_stays_bounded() -> None:
    base = REGISTRY.get("winline-nxr")
    # EVerest's manifest default: rated 30 A reads as 99.975 A
    everest = IdFieldsCodec(
        base.model_copy(update={"settings": {"module_current_limit_point": 3.3325}}), CONTROLLER
    )
    reply = winline_id(CONTROLLER, 0x07)
    rated = read(everest, frame(reply, struct.pack(">BBHf", 0x41, 0xF0, 0x0012, 30.0)))
    assert rated.values["export.max_current"] == pytest.approx(99.975)
    as_integer = read(everest, frame(reply, struct.pack(">BBHI", 0x42, 0xF0, 0x0012, 30)))
    assert as_integer.values["export.max_current"] == pytest.approx(99.975)
    # bounded like every limit: 100 A x 3.3325 is past the rated 250 A and refused
    too_much = frame(reply, struct.pack(">BBHf", 0x41, 0xF0, 0x0012, 100.0))
    assert everest.decode(too_much)[0] is Outcome.OUT_OF_RANGE


def test_winline_commands_read_back() -> None:
    winline = codec("winline-nxr")
    voltage, current = setpoint_frames(winline, 0x07, 600.0, 25.5)
    # function 0x03 set: 0x0021 Vout float V, 0x001B Iout u32 A x 1024
    assert voltage.arbitration_id == current.arbitration_id == winline_id(0x07, CONTROLLER)
    assert bytes(voltage.data) == struct.pack(">BBHf", 0x03, 0, 0x0021, 600.0)
    assert bytes(current.data) == struct.pack(">BBHI", 0x03, 0, 0x001B, round(25.5 * 1024))


# --- Bender iso165C (foxBMS/foxbms-2 tools/dbc/third-party/bender/iso165_IMD.dbc,
# src/app/driver/imd/bender/iso165c/bender_iso165c.c and config/bender_iso165c_cfg.h) ---------


def bender_codec() -> DbcCodec:
    profile = REGISTRY.get("bender-iso165c")
    return DbcCodec(profile, REGISTRY.dbc_path(profile))


def imd_info(kohm: int, imc_status: int = 0, vifc_status: int = 0) -> can.Message:
    # IMD_Info 0x37, 6 bytes: R_ISO [kOhm] LE word, IMC status word, VIFC status word
    return frame(0x37, struct.pack("<HHH", kohm, imc_status, vifc_status), extended=False)


def test_bender_resistance_and_the_chassis_fault() -> None:
    bender = bender_codec()
    healthy = read(bender, imd_info(1500))
    assert healthy.values["resistance_ohm"] == 1_500_000.0
    assert not any(healthy.flags.values())
    # IMC status bit 1: chassis fault, a fault as foxBMS treats it
    chassis = read(bender, imd_info(1500, imc_status=1 << 1))
    assert chassis.flags["device_fault"] is True
    # IMC status bit 2: system failure; bit 4: self-test running; VIFC bit 8: value outdated
    assert read(bender, imd_info(1500, imc_status=1 << 2)).flags["device_fault"] is True
    assert read(bender, imd_info(1500, imc_status=1 << 4)).flags["self_test_running"] is True
    assert read(bender, imd_info(1500, vifc_status=1 << 8)).flags["value_outdated"] is True
