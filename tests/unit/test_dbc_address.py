"""The dbc family reads a device address from the identifier when its profile names the bits
(`[frame] fields` and `reply = { <field> = "address" }`), as the id-fields family does: one DBC
message then stands for that message of every device on the bus. Frames are written here in
hex from the DBC below, not built by the codec."""

from __future__ import annotations

from pathlib import Path

import can
import pytest

from csbridge.config import Config, ConfigError, load_config
from csbridge.sources.can import DbcCodec, DeviceRouter, Outcome, ProfileRegistry
from csbridge.support.resources import example_config
from csbridge.tools.check_profile import check_profile_file

DBC = (
    'VERSION ""\n\nNS_ :\n\nBS_:\n\nBU_: PM CSB\n\n'
    "BO_ 1024 PM_Out: 4 PM\n"
    ' SG_ VOUT : 0|16@1+ (0.1,0) [0|6553.5] "V" CSB\n'
    ' SG_ FAULT : 16|1@1+ (1,0) [0|1] "" CSB\n'
)
"""PM_Out, 0x400 (11-bit): output voltage u16 little-endian in 0.1 V, a fault bit at bit 16."""
PROFILE = (
    '[profile]\nname = "pm"\nkind = "power_module"\nfamily = "dbc"\nbitrate = 250000\n'
    'dbc = "pm.dbc"\n\n[frame]\nextended = false\nfields = { module = [0, 4] }\n'
    'reply = { module = "address" }\n\n'
    '[[message]]\nname = "PM_Out"\nperiod_s = 0.1\nsignals = [\n'
    '  { signal = "VOUT", field = "output_voltage" },\n'
    '  { signal = "FAULT", field = "fault" },\n]\n'
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "pm.dbc").write_text(DBC, encoding="utf-8")
    (tmp_path / "pm.toml").write_text(PROFILE, encoding="utf-8")
    return tmp_path


def _codec(folder: Path) -> DbcCodec:
    registry = ProfileRegistry(extra=[folder])
    profile = registry.get("pm")
    return DbcCodec(profile, registry.dbc_path(profile))


def test_the_address_comes_from_the_identifier_bits(folder: Path) -> None:
    codec = _codec(folder)
    # 0x403: PM_Out of module 3; A00F = 4000 -> 400.0 V; 01 = fault
    outcome, decoded = codec.decode(
        can.Message(arbitration_id=0x403, is_extended_id=False, data=bytes.fromhex("A00F0100"))
    )
    assert outcome is Outcome.DECODED
    assert decoded is not None
    assert (decoded.message, decoded.address) == ("PM_Out", 3)
    assert decoded.values == pytest.approx({"output_voltage": 400.0})
    assert decoded.flags == {"fault": True}
    outcome, decoded = codec.decode(
        can.Message(arbitration_id=0x400, is_extended_id=False, data=bytes.fromhex("10270000"))
    )
    assert decoded is not None
    assert decoded.address == 0
    assert decoded.values["output_voltage"] == pytest.approx(1000.0)
    # bit 4 is no longer the address: another identifier
    outcome, _ = codec.decode(
        can.Message(arbitration_id=0x413, is_extended_id=False, data=bytes.fromhex("A00F0100"))
    )
    assert outcome is Outcome.UNKNOWN_ID


def test_kernel_filters_let_every_address_through(folder: Path) -> None:
    assert _codec(folder).kernel_filters() == [
        {"can_id": 0x400, "can_mask": 0x7F0, "extended": False}
    ]


def test_addresses_beyond_the_field_are_named(folder: Path) -> None:
    codec = _codec(folder)
    assert codec.address_problem(15) is None
    assert codec.address_problem(16) == "pm carries addresses 0-15 (4 bits)"
    (folder / "fixed.toml").write_text(
        PROFILE.replace('name = "pm"', 'name = "fixed"')
        .replace("fields = { module = [0, 4] }\n", "")
        .replace('reply = { module = "address" }\n', "")
    )
    registry = ProfileRegistry(extra=[folder])
    fixed = DbcCodec(registry.get("fixed"), folder / "pm.dbc")
    assert fixed.address_problem(0) is None
    assert "carry no address" in str(fixed.address_problem(1))
    assert fixed.encode("PM_Out", {"VOUT": 1.0, "FAULT": 0}, 7).arbitration_id == 0x400


def test_the_encoder_puts_the_address_in_the_identifier(folder: Path) -> None:
    frame = _codec(folder).encode("PM_Out", {"VOUT": 400.0, "FAULT": 1}, 9)
    assert (frame.arbitration_id, bytes(frame.data).hex()) == (0x409, "a00f0100")


def test_a_dbc_profile_with_requests_is_refused(folder: Path) -> None:
    (folder / "asks.toml").write_text(
        PROFILE.replace('name = "pm"', 'name = "asks"').replace(
            'reply = { module = "address" }',
            'reply = { module = "address" }\nrequest = { module = 1 }',
        )
    )
    with pytest.raises(ConfigError) as caught:
        ProfileRegistry(extra=[folder]).get("asks")
    assert any(
        "the dbc family takes its identifiers from the DBC" in p for p in caught.value.problems
    )


def test_check_profile_round_trips_the_lowest_and_highest_address(folder: Path) -> None:
    report = check_profile_file(folder / "pm.toml")
    assert report.problems == []
    assert report.round_trips == 2 * 4  # two addresses, four flag patterns


def _config(address: int) -> Config:
    raw = load_config(example_config("sim-station.toml")).model_dump(mode="json", exclude_none=True)
    raw["evse"][0]["module"] = [
        {"name": "pm3", "address": address, "can": {"profile": "pm", "bus": "sim-can1"}}
    ]
    return Config.model_validate(raw)


def test_the_router_hands_each_address_its_own_frames(folder: Path) -> None:
    router = DeviceRouter(_config(3), ProfileRegistry(extra=[folder]))
    routed = router.route(
        "sim-can1",
        can.Message(arbitration_id=0x403, is_extended_id=False, data=bytes.fromhex("A00F0000")),
        1.0,
    )
    assert routed is not None
    assert routed[0] == "DE*CSB*E0001"
    assert (
        router.route(
            "sim-can1",
            can.Message(arbitration_id=0x404, is_extended_id=False, data=bytes.fromhex("A00F0000")),
            1.0,
        )
        is None
    )
    assert router.outcomes[("pm", "unknown_address")] == 1


def test_the_router_refuses_an_address_the_identifier_cannot_carry(folder: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        DeviceRouter(_config(16), ProfileRegistry(extra=[folder]))
    assert caught.value.problems == [
        "evse[0].module[0].address: 16: pm carries addresses 0-15 (4 bits)"
    ]
