"""Profiles outside the package, through the commands a vendor runs: `check-profile` (lines and
--json, exit 0/1/2), the search path (`--hal-dir`, `$CSBRIDGE_HAL_PATH`, profile_dirs),
check-config's deadline warning and its refusal of a module that could never be heard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from csbridge.support.resources import example_config
from tests.support import FIXTURES

CSBRIDGE = [sys.executable, "-m", "csbridge"]
ENV = {
    **{k: v for k, v in os.environ.items() if k != "CSBRIDGE_HAL_PATH"},
    "COLUMNS": "200",
    "NO_COLOR": "1",
}
OWN = FIXTURES / "hal"
ACME = OWN / "acme-bc30.toml"
MODULE = """[[evse.module]]
name = "bc30"
address = 5
can = { profile = "acme-bc30", bus = "sim-can1" }
simulated = { max_voltage_v = 1000, min_voltage_v = 150, max_current_a = 100, max_power_w = 30000 }
"""


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CSBRIDGE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or ENV,
        check=False,
    )


def _station(folder: Path, module: str = MODULE, station_extra: str = "") -> Path:
    """sim-station.toml with its DC EVSE on one made-up BC30 module."""
    text = example_config("sim-station.toml").read_text(encoding="utf-8")
    start = text.index("[[evse.module]]")
    end = text.index("[evse.imd]")
    text = text[:start] + module + "\n" + text[end:]
    text = text.replace("[station]\n", f"[station]\n{station_extra}", 1)
    path = folder / "station.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _acme_copy(folder: Path, old: str = "", new: str = "") -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "acme-bc30.toml"
    path.write_text(ACME.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    return path


def test_check_profile_passes_a_good_profile() -> None:
    result = _run("check-profile", str(ACME))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"{ACME}: ok, acme-bc30 (power_module, id-fields): 2 messages, 3 commands, "
        "22 frames round-tripped"
    )
    assert result.stderr == ""


def test_check_profile_names_each_problem_on_its_own_line_and_exits_2(tmp_path: Path) -> None:
    path = _acme_copy(tmp_path, "period_s = 0.1", "period_s = -1\nbogus = 1")
    result = _run("check-profile", str(path))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert all(line.startswith(f"profile error {path}: message[0].") for line in lines)
    assert any("message[0].period_s: " in line for line in lines)
    assert any("message[0].bogus: unknown key" in line for line in lines)
    assert result.stdout == ""


def test_check_profile_exits_1_when_a_frame_would_be_misread(tmp_path: Path) -> None:
    path = _acme_copy(tmp_path, "id = { message = 0x02 }", "id = { message = 0x01 }")
    result = _run("check-profile", str(path))
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"profile error {path}: message[1] (capability) at address 0, frame ")
    assert line.endswith("decodes as out_of_range, not as the message")


def test_check_profile_json(tmp_path: Path) -> None:
    good = orjson.loads(_run("check-profile", "--json", str(ACME)).stdout)
    assert good["ok"] is True
    assert (good["name"], good["messages"], good["commands"]) == ("acme-bc30", 2, 3)
    assert good["round_trips"] == 22
    assert good["problems"] == []
    path = _acme_copy(tmp_path, "period_s = 0.1", "period_s = -1")
    result = _run("check-profile", "--json", str(path))
    assert result.returncode == 2
    bad = orjson.loads(result.stdout)
    assert bad["ok"] is False
    assert bad["exit_code"] == 2
    (problem,) = bad["problems"]
    assert problem["key"] == "message[0].period_s"
    assert problem["round_trip"] is False
    assert result.stderr == ""


def test_check_config_finds_a_profile_by_hal_dir_or_the_environment(tmp_path: Path) -> None:
    config = _station(tmp_path)
    without = _run("check-config", str(config))
    assert without.returncode == 2
    assert "no profile 'acme-bc30'" in without.stderr
    by_option = _run("check-config", str(config), "--hal-dir", str(OWN))
    assert by_option.returncode == 0, by_option.stderr
    assert "ok, broker" in by_option.stdout
    by_environment = _run("check-config", str(config), env={**ENV, "CSBRIDGE_HAL_PATH": str(OWN)})
    assert by_environment.returncode == 0, by_environment.stderr


def test_profile_dirs_are_read_beside_the_configuration(tmp_path: Path) -> None:
    _acme_copy(tmp_path / "vendor")
    config = _station(tmp_path, station_extra='profile_dirs = ["vendor"]\n')
    result = subprocess.run(
        [*CSBRIDGE, "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
        check=False,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr


def test_a_profile_found_twice_is_an_error_naming_both_files(tmp_path: Path) -> None:
    copy = _acme_copy(tmp_path / "copy")
    config = _station(tmp_path)
    result = _run(
        "check-config",
        str(config),
        "--hal-dir",
        str(OWN),
        env={**ENV, "CSBRIDGE_HAL_PATH": str(copy.parent)},
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "'acme-bc30' is found twice" in line
    assert str(ACME) in line
    assert str(copy) in line


def test_a_missing_hal_dir_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for command in ("check-config", "run"):
        args = [command, str(example_config("sim-station.toml"))]
        if command == "run":
            args = ["run", "-c", str(example_config("sim-station.toml"))]
        result = _run(*args, "--hal-dir", str(tmp_path / "nope"))
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.splitlines() == [
            f"config error profile search path: --hal-dir: no such folder: {tmp_path / 'nope'}"
        ]


def test_check_config_warns_of_a_deadline_shorter_than_a_period(tmp_path: Path) -> None:
    config = _station(tmp_path, MODULE + "poll_period_s = 0.1\n")
    result = _run("check-config", str(config), "--hal-dir", str(OWN))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith(
        "warning: evse[0].module[0] (bc30): its deadline of 0.3 s (3 x poll_period_s 0.1 s) "
        "is not longer than the 1 s period (period_s) of acme-bc30's capability message"
    )


def test_check_config_warns_of_a_replaced_shipped_profile(tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    shipped = Path(__file__).resolve().parents[2] / "hal" / "bender-iso165c.toml"
    (own / "bender-iso165c.toml").write_text(shipped.read_text(encoding="utf-8"))
    (own / "bender-iso165c.dbc").write_text(shipped.with_suffix(".dbc").read_text())
    result = _run("check-config", str(example_config("sim-station.toml")), "--hal-dir", str(own))
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"warning: profile 'bender-iso165c': {own / 'bender-iso165c.toml'} replaces the shipped "
    )


def test_check_config_refuses_a_simulated_module_that_would_never_send(tmp_path: Path) -> None:
    silent = _acme_copy(tmp_path / "silent", "period_s = 0.1\n", "")
    silent.write_text(silent.read_text().replace("period_s = 1.0\n", ""))
    config = _station(tmp_path)
    result = _run("check-config", str(config), "--hal-dir", str(silent.parent))
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"config error {config}: evse[0].module[0].simulated: profile acme-bc30 neither polls"
    )
