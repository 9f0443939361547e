"""The meter profiles in hal/meters/ decode what the devices send, built in each test from the
public facts (hex written here), never by our own encoder: the SDM630's registers and the IVT-S
shunt's result frames."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csbridge.config import BusConfig, SimulatedMeterConfig
from csbridge.sources.meters import (
    CanMeterState,
    Flow,
    MeterProfileError,
    Refused,
    SimulatedCanMeter,
    SimulatedMeter,
    load_can_meter_profile,
    load_register_map,
    meter_profile_path,
    parse_register_map,
)
from csbridge.sources.readings import MeterSample, sanitized

SDM630 = load_register_map(meter_profile_path("eastron-sdm630"))
IVTS = load_can_meter_profile(meter_profile_path("isabellenhuette-ivt-s"))


# -- the SDM630 register map -----------------------------------------------------------------


def test_the_sdm630_map_reads_every_value_with_one_input_register_request() -> None:
    (block,) = SDM630.blocks()
    # Function 4 (input registers), from L1 voltage at 0x00 to export energy's 0x4A..0x4B.
    assert (block.function, block.address, block.count) == (4, 0x00, 0x4C)


def test_the_sdm630_map_places_each_value_at_its_documented_address() -> None:
    addresses = {value.field: value.address for value in SDM630.values}
    assert addresses == {
        "voltage_l1_v": 0x00,
        "voltage_l2_v": 0x02,
        "voltage_l3_v": 0x04,
        "current_l1_a": 0x06,
        "current_l2_a": 0x08,
        "current_l3_a": 0x0A,
        "power_w": 0x34,
        "power_factor": 0x3E,
        "frequency_hz": 0x46,
        "energy_import_wh": 0x48,
        "energy_export_wh": 0x4A,
    }


def _registers_with(values: dict[int, tuple[int, int]], count: int = 0x4C) -> list[int]:
    registers = [0] * count
    for address, (high, low) in values.items():
        registers[address], registers[address + 1] = high, low
    return registers


def test_sdm630_floats_decode_high_word_first_and_energies_in_wh() -> None:
    # 230.2 V is 0x43663333 (IEEE 754, the value the pymodbus server served in the facts);
    # 12.5 kWh is 0x41480000, 0.75 kWh 0x3F400000; 50.0 Hz 0x42480000; PF 0.95 0x3F733333.
    registers = _registers_with(
        {
            0x00: (0x4366, 0x3333),
            0x06: (0x4120, 0x0000),  # 10.0 A
            0x3E: (0x3F73, 0x3333),
            0x46: (0x4248, 0x0000),
            0x48: (0x4148, 0x0000),
            0x4A: (0x3F40, 0x0000),
        }
    )
    (block,) = SDM630.blocks()
    decoded = block.decode(registers)
    assert decoded["voltage_l1_v"] == pytest.approx(230.2, abs=1e-4)
    assert decoded["current_l1_a"] == 10.0
    assert decoded["power_factor"] == pytest.approx(0.95, abs=1e-6)
    assert decoded["frequency_hz"] == 50.0
    assert decoded["energy_import_wh"] == 12_500.0
    assert decoded["energy_export_wh"] == 750.0
    assert decoded["voltage_l2_v"] == 0.0


def test_a_register_that_holds_no_number_decodes_to_none() -> None:
    registers = _registers_with({0x00: (0x7FC0, 0x0000)})  # a quiet NaN
    (block,) = SDM630.blocks()
    assert block.decode(registers)["voltage_l1_v"] is None


def _map(**value: Any) -> dict[str, Any]:
    return {
        "profile": {"name": "x", "kind": "meter", "transport": "modbus"},
        "value": [{"field": "power_w", "address": 0, **value}],
    }


@pytest.mark.parametrize(
    ("settings", "registers", "expected"),
    [
        # 1000.5 is 0x447A2000 as float32.
        ({"type": "float32"}, [0x447A, 0x2000], 1000.5),
        ({"type": "float32", "word_order": "little"}, [0x2000, 0x447A], 1000.5),
        ({"type": "float32", "byte_order": "little"}, [0x7A44, 0x0020], 1000.5),
        ({"type": "int32", "scale": 0.1}, [0xFFFF, 0xFF9C], -10.0),  # -100 x 0.1
        ({"type": "uint32"}, [0x0001, 0x0000], 65536.0),
        ({"type": "int16"}, [0x8000], -32768.0),
        ({"type": "uint16", "scale": 10}, [0x8000], 327680.0),
    ],
)
def test_types_orders_and_scales_decode_as_declared(
    settings: dict[str, Any], registers: list[int], expected: float
) -> None:
    (value,) = parse_register_map(_map(**settings), "test").values
    assert value.decode(registers) == pytest.approx(expected)


@pytest.mark.parametrize(
    "bad",
    [
        {"field": "bogus"},
        {"address": -1},
        {"function": 6},
        {"type": "float64"},
        {"word_order": "middle"},
        {"scale": 0},
    ],
)
def test_a_bad_register_map_entry_is_refused_by_name(bad: dict[str, Any]) -> None:
    with pytest.raises(MeterProfileError, match=r"test: value\[0\]"):
        parse_register_map(_map(**bad), "test")


def test_an_unknown_meter_profile_is_refused() -> None:
    with pytest.raises(MeterProfileError, match="no meter profile"):
        meter_profile_path("no-such-meter")


# -- the IVT-S result frames -----------------------------------------------------------------


def _frame(index: int, value: int, *, counter: int = 0, flags: int = 0) -> bytes:
    """A result frame as the shunt sends it: byte 0 the result's index, byte 1 the flags above
    a 4-bit counter, bytes 2-5 a big-endian int32."""
    return bytes([index, (flags << 4) | counter]) + struct.pack(">i", value)


def test_the_ivts_profile_listens_to_its_documented_identifiers() -> None:
    assert IVTS.frame_ids == {0x521, 0x522, 0x526, 0x528}
    assert IVTS.bitrate == 500_000
    assert not IVTS.extended


def test_a_cycle_of_ivts_results_makes_one_sample_in_volts_amps_and_wh() -> None:
    state = CanMeterState(IVTS)
    # -123.456 A charging back (0xFFFE1DC0 mA), 400.5 V (0x00061C74 mV), 1234 Wh, -49443 W.
    assert state.take(0x522, bytes.fromhex("01 00 00 06 1C 74"), 10.0) is None
    assert state.take(0x526, bytes.fromhex("05 00 FF FF 3E DD"), 10.0) is None
    assert state.take(0x528, bytes.fromhex("07 00 00 00 04 D2"), 10.0) is None
    sample = state.take(0x521, bytes.fromhex("00 01 FF FE 1D C0"), 10.1)
    assert isinstance(sample, MeterSample)
    assert sample.dc_current_a == pytest.approx(-123.456)
    assert sample.dc_voltage_v == pytest.approx(400.5)
    assert sample.power_w == -49443.0
    assert sample.energy_import_wh == 1234.0
    assert sample.energy_export_wh == 0.0
    assert sample.voltage_v is None
    assert sample.current_a is None
    assert sample.at == 10.0  # the oldest of its results


def test_ivts_energy_counter_rises_are_imported_and_falls_exported() -> None:
    state = CanMeterState(IVTS)
    for frame_id, index, value in ((0x522, 1, 400_000), (0x526, 5, 0)):
        state.take(frame_id, _frame(index, value), 0.0)
    for at, counter in enumerate((1000, 1010, 1025, 1020, 1005, 1008)):
        state.take(0x528, _frame(7, counter), float(at))
        sample = state.take(0x521, _frame(0, 0), float(at))
    assert isinstance(sample, MeterSample)
    assert sample.energy_import_wh == 1000 + 10 + 15 + 3
    assert sample.energy_export_wh == 5 + 15
    # A jump no charger can make in one frame (the shunt was reset) books nothing.
    state.take(0x528, _frame(7, 0), 9.0)
    after = state.take(0x521, _frame(0, 0), 9.0)
    assert isinstance(after, MeterSample)
    assert (after.energy_import_wh, after.energy_export_wh) == (1028, 20)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes.fromhex("00 80 00 00 00 01"), "error_flag"),  # system error
        (bytes.fromhex("00 40 00 00 00 01"), "error_flag"),  # measurement error
        (bytes.fromhex("00 20 00 00 00 01"), "error_flag"),  # channel error
        (bytes.fromhex("03 00 00 00 00 01"), "wrong_index"),  # U3's index on I's identifier
        (bytes.fromhex("00 00 00 00"), "short"),
    ],
)
def test_a_bad_ivts_frame_is_refused_and_the_last_good_value_stays(
    data: bytes, reason: str
) -> None:
    state = CanMeterState(IVTS)
    for frame_id, index in ((0x522, 1), (0x526, 5), (0x528, 7)):
        state.take(frame_id, _frame(index, 5), 1.0)
    good = state.take(0x521, _frame(0, 7000), 1.0)
    assert isinstance(good, MeterSample)
    assert good.dc_current_a == 7.0
    assert state.take(0x521, data, 2.0) == Refused(reason)
    again = state.sample()
    assert again is not None
    assert again.dc_current_a == 7.0
    assert again.at == 1.0


def test_an_over_current_flag_alone_is_a_measurement_not_a_fault() -> None:
    state = CanMeterState(IVTS)
    for frame_id, index in ((0x522, 1), (0x526, 5), (0x528, 7)):
        state.take(frame_id, _frame(index, 5), 1.0)
    sample = state.take(0x521, _frame(0, 900_000, flags=0x1), 1.0)
    assert isinstance(sample, MeterSample)
    assert sample.dc_current_a == 900.0


def test_no_sample_until_every_result_was_seen() -> None:
    state = CanMeterState(IVTS)
    assert state.take(0x521, _frame(0, 1000), 1.0) is None
    assert state.take(0x527, _frame(6, 1000), 1.0) is None  # charge: not used


# -- a sample's numbers are checked like any reading's -----------------------------------------


def test_impossible_meter_numbers_become_none() -> None:
    sample = MeterSample(
        at=1.0,
        energy_import_wh=-5.0,
        energy_export_wh=math.nan,
        voltage_v=(230.0, math.inf, None),
        power_factor=1.5,
        frequency_hz=50.0,
        dc_current_a=-20.0,
    )
    cleaned, changed = sanitized(sample)
    assert changed
    assert isinstance(cleaned, MeterSample)
    assert cleaned.energy_import_wh is None
    assert cleaned.energy_export_wh is None
    assert cleaned.voltage_v == (230.0, None, None)
    assert cleaned.power_factor is None
    assert cleaned.frequency_hz == 50.0
    assert cleaned.dc_current_a == -20.0  # signed: energy back from the EV


# -- what the simulators put on the wire, against the same facts -------------------------------


def test_the_simulated_sdm630_encodes_registers_as_the_facts_say() -> None:
    by_field = {value.field: value for value in SDM630.values}
    assert by_field["voltage_l1_v"].encode(230.2) == [0x4366, 0x3333]
    assert by_field["energy_import_wh"].encode(12_500.0) == [0x4148, 0x0000]  # 12.5 kWh


def test_the_simulated_ivts_sends_its_results_as_the_facts_say() -> None:
    meter = SimulatedMeter(
        "E1", SimulatedMeterConfig(), lambda: Flow(400.0, -50.0), sink=lambda _e, _r: None
    )
    frames = SimulatedCanMeter(IVTS, BusConfig(name="x", interface="virtual"), meter, 0.1)
    first = {frame.arbitration_id: bytes(frame.data) for frame in frames.frames()}
    second = frames.frames()
    # The current closes each cycle; the counter (byte 1, low nibble) moves on.
    assert [frame.arbitration_id for frame in second] == [0x522, 0x526, 0x528, 0x521]
    assert first[0x522] == bytes.fromhex("01 01 00 06 1A 80")  # 400 000 mV
    assert first[0x521] == bytes.fromhex("00 01 FF FF 3C B0")  # -50 000 mA
    assert first[0x526] == bytes.fromhex("05 01 FF FF B1 E0")  # -20 000 W
    assert bytes(second[0].data)[1] == 0x02


@given(
    frames=st.lists(
        st.tuples(
            st.sampled_from([0x521, 0x522, 0x523, 0x526, 0x527, 0x528]),
            st.binary(min_size=0, max_size=8),
        ),
        max_size=40,
    )
)
def test_any_bytes_on_the_shunts_identifiers_never_raise(frames: list[tuple[int, bytes]]) -> None:
    state = CanMeterState(IVTS)
    for at, (frame_id, data) in enumerate(frames):
        outcome = state.take(frame_id, data, float(at))
        assert outcome is None or isinstance(outcome, MeterSample | Refused)
        if isinstance(outcome, MeterSample):
            assert outcome.energy_import_wh is not None
            assert outcome.energy_import_wh >= 0.0
            assert outcome.energy_export_wh is not None
            assert outcome.energy_export_wh >= 0.0
