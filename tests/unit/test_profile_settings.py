"""Profile [settings] (a factor a value is multiplied by) and the voltage-mode commands: what a
profile must say for them, refused with the key and the reason otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from csbridge.config import ConfigError
from csbridge.sources.can.profile import load_profile

HEADER = """
[profile]
name = "p"
kind = "power_module"
family = "id-fields"
bitrate = 125000
@header@

[frame]
fields = { module = [0, 8] }
request = { module = "address" }
reply = { module = "address" }
@tables@

[[message]]
name = "rated"
values = [{ field = "export.max_current", at = 0, type = "u16"@setting@ }]
"""
COMMANDS = """
[[command]]
name = "set_output"
data = "01 00 00 00 00 00 00 00"
values = [
    { quantity = "voltage", at = 0, type = "u16" },
    { quantity = "current", at = 2, type = "u16" },
]

[[command]]
name = "switch_on"
data = "02 00"

[[command]]
name = "switch_off"
data = "02 01"
"""
MODES = """
[[command]]
name = "select_high_mode"
data = "03 01"

[[command]]
name = "select_low_mode"
data = "03 02"
"""


def profile_text(
    *, header: str = "", tables: str = "", setting: str = "", commands: str = ""
) -> str:
    filled = HEADER.replace("@header@", header).replace("@tables@", tables)
    return filled.replace("@setting@", setting) + commands


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    return caught.value.problems


def test_a_setting_multiplies_the_scale(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    text = profile_text(
        tables="[settings]\nlimit_point = 2.5\n", setting=', scale = 0.1, setting = "limit_point"'
    )
    path.write_text(text, encoding="utf-8")
    profile = load_profile(path)
    (spec,) = profile.message[0].values
    assert profile.value_scale(spec) == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (profile_text(setting=', setting = "limit_point"'), "setting 'limit_point' is not in"),
        (
            profile_text(
                tables="[settings]\nlimit_point = 0\n", setting=', setting = "limit_point"'
            ),
            "greater than 0",
        ),
        (
            profile_text(
                tables="[settings]\nlimit_point = nan\n", setting=', setting = "limit_point"'
            ),
            "finite number",
        ),
        (
            profile_text(commands=COMMANDS + MODES),
            "select_high_mode, select_low_mode and profile.high_mode_above_v come together",
        ),
        (
            profile_text(header="high_mode_above_v = 500.0", commands=COMMANDS),
            "select_high_mode, select_low_mode and profile.high_mode_above_v come together",
        ),
        (
            profile_text(header="high_mode_above_v = 500.0"),
            "high_mode_above_v needs the mode commands",
        ),
        (
            profile_text(
                header="high_mode_above_v = 500.0",
                commands=COMMANDS.split('[[command]]\nname = "switch_on"', maxsplit=1)[0] + MODES,
            ),
            "a mode change needs the output off first",
        ),
        (
            profile_text(
                header="high_mode_above_v = 500.0",
                commands=COMMANDS
                + MODES.replace('"03 01"', '"03 01"\nvalues = []').replace(
                    'data = "03 02"',
                    'data = "03 02"\nvalues = [{ quantity = "voltage", at = 0, type = "u8" }]',
                ),
            ),
            "a select_low_mode command carries no values, only data",
        ),
    ],
)
def test_settings_and_modes_are_checked(tmp_path: Path, text: str, why: str) -> None:
    problems = problems_of(tmp_path, text)
    assert any(why in problem for problem in problems), problems


def test_a_profile_with_mode_commands_loads(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        profile_text(header="high_mode_above_v = 500.0", commands=COMMANDS + MODES),
        encoding="utf-8",
    )
    profile = load_profile(path)
    assert profile.header.high_mode_above_v == 500.0
    assert profile.header.mode_switch_settle_s == 2.0
    assert [spec.data for spec in profile.commands("select_high_mode")] == ["03 01"]
