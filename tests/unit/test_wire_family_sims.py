"""The family simulators frame by frame, without a bus: requests built and replies read here from
the public facts (the profiles' comments name the sources), never by csbridge's codec alone."""

from __future__ import annotations

import struct

import can

from csbridge.config import BusConfig, CanDevice, ModuleConfig, SimulatedModuleConfig
from csbridge.sources.can import ProfileRegistry
from csbridge.sources.simulated.can_devices import SimulatedCanModule, build_wire_module
from csbridge.sources.simulated.wire_families import (
    HuaweiR4850Module,
    UUGreenModule,
    module_kind,
)

REGISTRY = ProfileRegistry()
BUS = BusConfig(name="can0", interface="virtual")
CONTROLLER = 0xF0


def module(profile: str, address: int, max_current_a: float = 100.0) -> SimulatedCanModule:
    config = ModuleConfig(
        name="m",
        address=address,
        can=CanDevice(profile=profile, bus="can0"),
        simulated=SimulatedModuleConfig(
            max_voltage_v=1000.0,
            min_voltage_v=150.0,
            max_current_a=max_current_a,
            max_power_w=30000,
        ),
    )
    return build_wire_module("E1", config, BUS, REGISTRY, lambda: 0.0, kind=module_kind(profile))


def ext(identifier: int, data: bytes) -> can.Message:
    return can.Message(arbitration_id=identifier, data=data, is_extended_id=True)


def winline_id(destination: int, source: int) -> int:
    return (0x060 << 20) | (1 << 19) | (destination << 11) | (source << 3)


def test_winline_answers_each_register_it_is_asked_for() -> None:
    winline = module("winline-nxr", 7, max_current_a=30.0)
    winline.output_voltage, winline.output_current = 612.5, 12.25
    asked = {0x0001: 612.5, 0x0002: 12.25, 0x0004: 35.0, 0x0012: 30.0, 0x0011: 30000.0}
    for register, expected in asked.items():
        (reply,) = winline.answer_all(
            ext(winline_id(7, CONTROLLER), struct.pack(">BBHI", 0x10, 0, register, 0))
        )
        # the reply goes to the controller from module 7; 0x41 float, 0xF0 normal, the register
        assert (reply.arbitration_id >> 11) & 0xFF == CONTROLLER
        assert (reply.arbitration_id >> 3) & 0xFF == 7
        kind, state, echoed, value = struct.unpack(">BBHf", bytes(reply.data))
        assert (kind, state, echoed) == (0x41, 0xF0, register)
        assert value == expected  # rated current x limit point 1.0: the register itself


def test_winline_obeys_its_set_frames() -> None:
    winline = module("winline-nxr", 7)
    to_module = winline_id(7, CONTROLLER)
    # 0x0021 Vout float V, 0x001B Iout u32 A x 1024, 0x0030 0x00000000 on
    for data in (
        struct.pack(">BBHf", 0x03, 0, 0x0021, 480.0),
        struct.pack(">BBHI", 0x03, 0, 0x001B, 25 * 1024 + 512),
        struct.pack(">BBHI", 0x03, 0, 0x0030, 0),
    ):
        assert winline.answer_all(ext(to_module, data)) == []
    assert (winline.output_voltage, winline.output_current) == (480.0, 25.5)
    winline.answer_all(ext(to_module, struct.pack(">BBHI", 0x03, 0, 0x0030, 0x00010000)))
    assert (winline.output_voltage, winline.output_current) == (0.0, 0.0)


def test_huawei_answers_all_data_with_every_parameter_the_last_on_bit_0_clear() -> None:
    huawei = module("huawei-r4850", 0, max_current_a=50.0)
    assert isinstance(huawei, HuaweiR4850Module)
    huawei.answer_all(ext(0x108180FE, bytes.fromhex("010000000000D600")))  # 53.5 V
    huawei.answer_all(ext(0x108180FE, bytes.fromhex("0103000000000190")))  # 20 A
    assert (huawei.output_voltage, huawei.output_current) == (53.5, 20.0)
    replies = huawei.answer_all(ext(0x108040FE, bytes(8)))
    identifiers = [reply.arbitration_id for reply in replies]
    assert identifiers == [0x1081407F] * (len(replies) - 1) + [0x1081407E]
    by_parameter = {reply.data[1]: int.from_bytes(reply.data[4:], "big") for reply in replies}
    assert by_parameter[0x75] / 1024 == 53.5
    assert by_parameter[0x76] / 20 == 50.0
    assert by_parameter[0x81] / 1024 == 20.0
    assert by_parameter[0x7F] / 1024 == 35.0
    (status,) = huawei.broadcasts()
    assert (status.arbitration_id, bytes(status.data)[5]) == (0x108111FE, 1)


def test_uugreen_replies_carry_date_and_serial_and_tin_in_milli_degrees() -> None:
    uugreen = module("uugreen-ur1000x0", 5)
    assert isinstance(uugreen, UUGreenModule)
    request = (1 << 25) | (1 << 21) | (5 << 14)
    (reply,) = uugreen.answer_all(ext(request, bytes.fromhex("021E000000000000")))
    assert reply.arbitration_id == request | (uugreen.production_date << 9) | uugreen.serial_low
    assert bytes(reply.data)[:2] == b"\x03\x1e"
    assert int.from_bytes(reply.data[4:], "big") == 35_000


def test_uugreen_in_low_mode_stops_at_500_v_and_counts_what_it_cannot_follow() -> None:
    uugreen = module("uugreen-ur1000x0", 5)
    to_module = (1 << 25) | (1 << 21) | (5 << 14)

    def send(command: int, value: int) -> None:
        uugreen.answer_all(ext(to_module, bytes([0x00, command, 0, 0]) + value.to_bytes(4, "big")))

    send(2, 650_000)  # VoutReference 650 V while in low mode
    send(3, 10_000)
    send(4, 0)  # on
    assert (uugreen.output_voltage, uugreen.setpoints_above_low_mode) == (500.0, 1)
    send(95, 1)  # High mode with the output on
    assert uugreen.mode_changes_while_on == 1
    send(2, 650_000)
    assert (uugreen.output_voltage, uugreen.high_mode) == (650.0, True)
