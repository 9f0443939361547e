"""check-profile: every shipped profile and the made-up broadcasting module pass; each kind of
broken profile is named by its key, with exit 2 (cannot be used) or 1 (a frame misread)."""

from __future__ import annotations

import struct
from pathlib import Path

import can
import pytest

from csbridge.sources.can import IdFieldsCodec, Outcome, ProfileRegistry, load_profile
from csbridge.tools.check_profile import check_profile_file
from tests.support import FIXTURES

SHIPPED = ProfileRegistry().directory
ACME = FIXTURES / "hal" / "acme-bc30.toml"


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _acme(folder: Path, old: str = "", new: str = "") -> Path:
    text = ACME.read_text(encoding="utf-8")
    if old:
        assert old in text
        text = text.replace(old, new)
    return _write(folder, "acme-bc30", text)


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.toml")), ids=lambda path: path.stem)
def test_every_shipped_profile_passes(path: Path) -> None:
    report = check_profile_file(path)
    assert report.problems == []
    assert report.exit_code == 0
    assert report.round_trips >= len(report.profile.message if report.profile else [])


def test_the_made_up_broadcasting_module_passes() -> None:
    report = check_profile_file(ACME)
    assert report.problems == [], report.problems
    # 2 messages x 2 addresses x 4 flag patterns, 3 commands x 2 addresses (set_output: 1 frame)
    assert report.round_trips == 2 * 2 * 4 + 3 * 2
    assert report.summary().endswith("2 messages, 3 commands, 22 frames round-tripped")


def test_the_made_up_module_decodes_a_status_frame_written_from_its_comments() -> None:
    """The fixture's layout as its comments state it, in hex: group 0x0AC, message 0x01,
    module 5; 400.0 V, 25.0 A, 35.0 degC little-endian, over-temperature (bit 1 of byte 6)."""
    codec = IdFieldsCodec(load_profile(ACME), 0xF0)
    frame = can.Message(
        arbitration_id=0x00AC0105, is_extended_id=True, data=bytes.fromhex("A00FFA005E010200")
    )
    outcome, decoded = codec.decode(frame)
    assert outcome is Outcome.DECODED
    assert decoded is not None
    assert (decoded.message, decoded.address) == ("status", 5)
    assert decoded.values == pytest.approx(
        {"output_voltage": 400.0, "output_current": 25.0, "temperature_c": 35.0}
    )
    assert decoded.flags == {
        "fault": False,
        "over_temperature": True,
        "input_lost": False,
        "offline": False,
    }
    capability = can.Message(
        arbitration_id=0x00AC0205,
        is_extended_id=True,
        data=struct.pack("<HHHH", 10000, 1500, 1000, 30000),
    )
    outcome, decoded = codec.decode(capability)
    assert outcome is Outcome.DECODED
    assert decoded is not None
    assert decoded.values == pytest.approx(
        {
            "export.max_voltage": 1000.0,
            "export.min_voltage": 150.0,
            "export.max_current": 100.0,
            "export.max_power": 30000.0,
        }
    )


def test_a_value_over_a_match_byte_is_a_misread_frame(tmp_path: Path) -> None:
    """A flag on the byte the message is told apart by: the frame no longer matches."""
    path = _write(
        tmp_path,
        "broken",
        '[profile]\nname = "broken"\nkind = "power_module"\nfamily = "id-fields"\n'
        "bitrate = 125000\n[frame]\nfields = { command = [8, 8], source = [0, 8] }\n"
        'reply = { source = "address" }\n'
        '[[message]]\nname = "volts"\nid = { command = 1 }\npoll = true\n'
        "match_data = [{ at = 0, value = 0x75 }]\n"
        'values = [{ field = "output_voltage", at = 4, type = "u32", scale = 0.001 }]\n'
        'flags = [{ field = "fault", at = 0, bit = 1 }]\n',
    )
    report = check_profile_file(path)
    assert report.exit_code == 1
    (problem,) = report.problems
    assert problem.round_trip
    assert problem.key.startswith("message[0] (volts) at address 0")
    assert "not as the message" in problem.why


def test_a_message_taken_by_an_earlier_one_is_named(tmp_path: Path) -> None:
    """Two messages on one identifier: the first takes the second's frames, whose numbers it
    reads as its own (here refused as out of range)."""
    path = _acme(tmp_path, "id = { message = 0x02 }", "id = { message = 0x01 }")
    report = check_profile_file(path)
    assert report.exit_code == 1
    (problem,) = report.problems
    assert problem.key.startswith("message[1] (capability) at address 0, frame AC0100#")
    assert problem.why == "decodes as out_of_range, not as the message"


def test_a_message_read_as_an_earlier_one_is_named(tmp_path: Path) -> None:
    text = ACME.read_text(encoding="utf-8")
    copy = text[text.index('[[message]]\nname = "capability"') : text.index("[[command]]")]
    path = _write(
        tmp_path,
        "acme-bc30",
        text.replace("[[command]]", copy.replace('"capability"', '"again"') + "[[command]]", 1),
    )
    report = check_profile_file(path)
    assert report.exit_code == 1
    (problem,) = report.problems
    assert problem.key.startswith("message[2] (again) at address 0")
    assert "decodes as message 'capability' (an earlier message takes its frames)" in problem.why


def test_a_type_that_cannot_carry_the_rated_range_is_named(tmp_path: Path) -> None:
    path = _acme(
        tmp_path,
        '{ field = "output_voltage", at = 0, type = "u16", order = "little", scale = 0.1 }',
        '{ field = "output_voltage", at = 0, type = "u16", order = "little", scale = 0.1, '
        "offset = 5000.0 }",
    )
    report = check_profile_file(path)
    (problem,) = report.problems
    assert problem.key == "message[0] (status).values[0] (output_voltage)"
    assert "misses the rated range [0, 1100]" in problem.why
    assert report.exit_code == 2


def test_a_command_that_decodes_as_a_reply_is_named(tmp_path: Path) -> None:
    """A command sent on the replies' group and message: the station would read its own
    switch_on as the module's status."""
    text = ACME.read_text(encoding="utf-8").replace(
        'request = { group = 0x0AD, module = "address" }',
        'request = { group = 0x0AC, module = "address" }',
    )
    text = text.replace(
        'id = { message = 0x11 }\ndata = "01"',
        'id = { message = 0x01 }\ndata = "01 00 00 00 00 00 00 00"',
    )
    report = check_profile_file(_write(tmp_path, "acme-bc30", text))
    assert report.exit_code == 1
    assert any(
        p.key.startswith("command[1] (switch_on) at address 0")
        and "decodes as the reply 'status'" in p.why
        for p in report.problems
    ), report.problems


def test_a_name_unlike_the_file_and_a_schema_error_are_named(tmp_path: Path) -> None:
    renamed = _write(tmp_path, "other", ACME.read_text(encoding="utf-8"))
    report = check_profile_file(renamed)
    assert [(p.key, p.why) for p in report.problems] == [
        ("profile.name", "'acme-bc30' must equal the file name 'other'")
    ]
    assert report.exit_code == 2
    broken = _acme(tmp_path, "period_s = 0.1", "period_s = -1")
    report = check_profile_file(broken)
    assert report.exit_code == 2
    assert [p.key for p in report.problems] == ["message[0].period_s"]
    assert report.as_json()["problems"][0]["key"] == "message[0].period_s"


def test_a_polled_message_with_a_period_is_refused(tmp_path: Path) -> None:
    path = _acme(tmp_path, "period_s = 0.1", "period_s = 0.1\npoll = true")
    report = check_profile_file(path)
    assert report.exit_code == 2
    assert any(
        "period_s is for a message the device sends unasked" in p.why for p in report.problems
    )


DBC = (
    'VERSION ""\n\nNS_ :\n\nBS_:\n\nBU_: PM CSB\n\n'
    "BO_ 1024 PM_Out: 4 PM\n"
    ' SG_ VOUT : 0|16@1+ (0.1,0) [0|6553.5] "V" CSB\n'
    ' SG_ FAULT : 16|1@1+ (1,0) [0|1] "" CSB\n'
    ' SG_ OFF : 17|1@1+ (1,0) [0|1] "" CSB\n'
)
DBC_PROFILE = (
    '[profile]\nname = "pm"\nkind = "power_module"\nfamily = "dbc"\nbitrate = 250000\n'
    'dbc = "pm.dbc"\n\n[frame]\nextended = false\n\n'
    '[[message]]\nname = "PM_Out"\nsignals = [\n'
    '  { signal = "VOUT", field = "output_voltage" },\n'
    '  { signal = "FAULT", field = "fault" },\n'
    '  { signal = "OFF", field = "offline" },\n]\n'
)


def test_a_dbc_profile_round_trips_through_its_dbc(tmp_path: Path) -> None:
    (tmp_path / "pm.dbc").write_text(DBC, encoding="utf-8")
    report = check_profile_file(_write(tmp_path, "pm", DBC_PROFILE))
    assert report.problems == []
    assert report.round_trips == 4


@pytest.mark.parametrize(
    ("old", "new", "key", "why"),
    [
        ('signal = "OFF"', 'signal = "OFFF"', "message[0] (PM_Out).signals[2].signal", "'OFFF'"),
        ('name = "PM_Out"', 'name = "PM_In"', "message[0] (PM_In).name", "no message"),
        ("extended = false", "extended = true", "frame.extended", "11-bit identifiers"),
        ('name = "PM_Out"', 'name = "PM_Out"\ndlc = 8', "message[0] (PM_Out).dlc", "4 bytes"),
        ('dbc = "pm.dbc"', 'dbc = "gone.dbc"', "profile.dbc", "no such file"),
        (
            '{ signal = "VOUT", field = "output_voltage" }',
            '{ signal = "VOUT", field = "output_voltage", scale = 0.0 }',
            "message[0] (PM_Out).signals[0].scale",
            "not 0",
        ),
    ],
)
def test_dbc_inconsistencies_are_named_by_key(
    tmp_path: Path, old: str, new: str, key: str, why: str
) -> None:
    (tmp_path / "pm.dbc").write_text(DBC, encoding="utf-8")
    report = check_profile_file(_write(tmp_path, "pm", DBC_PROFILE.replace(old, new)))
    assert report.exit_code == 2
    assert [p.key for p in report.problems] == [key]
    assert why in report.problems[0].why


def test_a_dbc_signal_that_cannot_carry_the_rated_range_is_named(tmp_path: Path) -> None:
    (tmp_path / "pm.dbc").write_text(DBC.replace("(0.1,0) [0|6553.5]", "(0.1,2000) [2000|8553.5]"))
    report = check_profile_file(_write(tmp_path, "pm", DBC_PROFILE))
    (problem,) = report.problems
    assert problem.key == "message[0] (PM_Out).signals[0] (output_voltage)"
    assert "misses the rated range" in problem.why


@pytest.mark.parametrize(
    "path", sorted((SHIPPED / "meters").glob("*.toml")), ids=lambda path: path.stem
)
def test_meter_profiles_are_checked_by_the_meters_loader(path: Path) -> None:
    report = check_profile_file(path)
    assert report.problems == []
    assert report.summary().endswith("meter profile (loads as a station loads it)")
    assert report.as_json()["kind"] == "meter"


def test_a_broken_meter_profile_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "m", '[profile]\nkind = "meter"\ntransport = "modbus"\n')
    report = check_profile_file(path)
    assert [p.why for p in report.problems] == ["no [[value]] entries"]
    assert report.exit_code == 2
