"""Every kind of configuration mistake, through the command a user runs: `csbridge check-config`
(and, for a few, `csbridge run`) exits 2 with a line naming the key and the reason, and never
shows a traceback. The mistakes are edits of the shipped examples/sim-station.toml."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from csbridge.support.resources import example_config

CSBRIDGE = [sys.executable, "-m", "csbridge"]
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
EXIT_BAD_CONFIG = 2
BASE = example_config("sim-station.toml").read_text(encoding="utf-8")
Checked = subprocess.CompletedProcess[str]


@dataclass(frozen=True)
class Mistake:
    old: str
    new: str
    expected: tuple[str, ...]
    """All of these must appear in one `config error` line: the key, then the reason."""


def _mqtt(extra: str, *expected: str, broker: str = "mqtt://127.0.0.1:1883") -> Mistake:
    """[mqtt] with another broker URL and a line added."""
    return Mistake(
        'broker = "mqtt://127.0.0.1:1883"\n', f'broker = "{broker}"\n{extra}\n', expected
    )


def _table(text: str, *expected: str) -> Mistake:
    """A table added before [station]."""
    return Mistake("[station]\n", f"{text}\n\n[station]\n", expected)


MISTAKES: dict[str, Mistake] = {
    "not_toml": Mistake("[station]", "[station", ("not valid TOML",)),
    "missing_required_key": Mistake(
        'hw_version = "sim-dc150-ac22"\n', "", ("station.hw_version", "Field required")
    ),
    "unknown_key": Mistake(
        'client_id = "csbridge-sim"',
        'client_id = "csbridge-sim"\nclientid = "x"',
        ("mqtt.clientid", "unknown key"),
    ),
    "unknown_table": _table("[reportin]\nsettle_s = 1", "reportin", "unknown key"),
    "wrong_type_number": Mistake(
        "max_power_w = 150000",
        'max_power_w = "lots"',
        ("evse[0].dc_limits.max_power_w", "valid number", "'lots'"),
    ),
    "wrong_enum": Mistake(
        'kind = "dc"', 'kind = "hvdc"', ("evse[0].kind", "Input should be 'ac' or 'dc'")
    ),
    "not_a_number": Mistake(
        "max_power_w = 150000",
        "max_power_w = nan",
        ("evse[0].dc_limits.max_power_w", "finite number"),
    ),
    "negative_number": Mistake(
        "max_power_w = 150000",
        "max_power_w = -5",
        ("evse[0].dc_limits.max_power_w", "greater than or equal to 0", "-5"),
    ),
    "out_of_range_keepalive": _mqtt("keepalive_s = 1", "mqtt.keepalive_s", "greater than"),
    "out_of_range_rate": _table(
        "[reporting]\nmax_updates_per_s = 0", "reporting.max_updates_per_s", "greater than 0"
    ),
    "out_of_range_repeat_interval": _table(
        "[logging]\nrepeat_interval_s = 0.5",
        "logging.repeat_interval_s",
        "greater than or equal to 1",
    ),
    "bad_broker_scheme": _mqtt(
        "", "mqtt.broker", "must start with mqtt:// or mqtts://", broker="http://127.0.0.1:1883"
    ),
    "bad_broker_host": _mqtt("", "mqtt.broker", "names no host", broker="mqtt://:1883"),
    "bad_broker_port": _mqtt("", "mqtt.broker", "has a bad port", broker="mqtt://127.0.0.1:99999"),
    "wildcard_topic": _mqtt(
        'request_topic = "josev/#"', "mqtt.request_topic", "cannot hold wildcards"
    ),
    "duplicate_evse_id": Mistake(
        'evse_id = "DE*CSB*E0002"',
        'evse_id = "DE*CSB*E0001"',
        ("evse_id must be unique", "DE*CSB*E0001"),
    ),
    "duplicate_module_name": Mistake(
        'name = "m2"', 'name = "m1"', ("evse[0]", "module names must be unique")
    ),
    "duplicate_bus_name": Mistake(
        'name = "sim-can1"', 'name = "sim-can0"', ("bus names must be unique", "sim-can0")
    ),
    "device_on_unknown_bus": Mistake(
        'bus = "sim-can1" }', 'bus = "can9" }', ("evse[0].imd.can.bus", "no [[bus]] named 'can9'")
    ),
    "unknown_device_profile": Mistake(
        'profile = "bender-iso165c"',
        'profile = "bender-iso999"',
        ("evse[0].imd.can.profile", "no profile 'bender-iso999'"),
    ),
    "profile_of_another_kind": Mistake(
        'profile = "bender-iso165c"',
        'profile = "infypower-reg"',
        ("evse[0].imd.can.profile", "infypower-reg describes a"),
    ),
    "bus_bitrate_mismatch": Mistake(
        "bitrate = 125000",
        "bitrate = 500000",
        ("evse[0].module[0].can", "sim-can0 runs at 500000 bit/s", "125000"),
    ),
    "minimum_above_maximum": Mistake(
        "min_current_a = 1.0",
        "min_current_a = 300.0",
        ("evse[0].dc_limits", "min_current_a (300.0) is above max_current_a (250.0)"),
    ),
    "derating_not_rising": Mistake(
        "points = [[70.0, 250.0], [90.0, 50.0]]",
        "points = [[90.0, 250.0], [70.0, 50.0]]",
        ("evse[0].derating[0]", "temperatures must rise strictly"),
    ),
    "blocks_of_the_other_kind": Mistake(
        'kind = "ac"', 'kind = "dc"', ("evse[1]", "a dc EVSE needs [dc_limits]")
    ),
    "tls_files_with_mqtt_broker": _mqtt(
        'ca_file = "/etc/ssl/certs/ca.pem"',
        "mqtt",
        "ca_file given but the broker URL is not mqtts://",
    ),
    "cert_file_without_key_file": _mqtt(
        'cert_file = "/etc/csbridge/client.pem"',
        "mqtt",
        "cert_file and key_file go together",
        broker="mqtts://broker.example:8883",
    ),
    "password_file_without_username": _mqtt(
        'password_file = "/etc/csbridge/mqtt.secret"',
        "mqtt",
        "password_file given without a username",
    ),
    "password_file_missing": _mqtt(
        'username = "bridge"\npassword_file = "/nonexistent/csbridge-mqtt-password"',
        "mqtt.password_file",
        "cannot read /nonexistent/csbridge-mqtt-password",
    ),
    "metrics_listen_without_port": _table(
        '[metrics]\nlisten = "9108"', "metrics.listen", "must be host:port"
    ),
    "profile_dirs_missing_folder": Mistake(
        'hw_version = "sim-dc150-ac22"',
        'hw_version = "sim-dc150-ac22"\nprofile_dirs = ["/nonexistent/csbridge-profiles"]',
        ("station.profile_dirs", "/nonexistent/csbridge-profiles"),
    ),
    "module_on_can_and_everest": Mistake(
        'can = { profile = "infypower-reg", bus = "sim-can0" }\nsimulated',
        'can = { profile = "infypower-reg", bus = "sim-can0" }\n'
        'everest = { module_id = "psu1" }\nsimulated',
        ("evse[0].module[0]", "over `can` or `everest`, not both"),
    ),
    "can_module_without_address": Mistake(
        "address = 1\n", "", ("evse[0].module[0]", "needs its `address`")
    ),
}


def _csbridge(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CSBRIDGE, *args], capture_output=True, text=True, timeout=timeout, env=ENV, check=False
    )


def _write(directory: Path, name: str) -> Path:
    mistake = MISTAKES[name]
    assert mistake.old in BASE, f"{name}: {mistake.old!r} is not in the example any more"
    path = directory / f"{name}.toml"
    path.write_text(BASE.replace(mistake.old, mistake.new, 1), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Checked]:
    """`check-config` on every mistake, a few processes at once: each spends ~0.5 s importing."""
    directory = tmp_path_factory.mktemp("mistakes")
    paths = [_write(directory, name) for name in MISTAKES]
    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 2)) as pool:
        results = pool.map(lambda path: _csbridge("check-config", str(path)), paths)
        return dict(zip(MISTAKES, results, strict=True))


def _assert_refused(result: subprocess.CompletedProcess[str], expected: tuple[str, ...]) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == EXIT_BAD_CONFIG, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("config error")]
    assert lines, result.stderr
    assert any(all(part in line for part in expected) for line in lines), (expected, lines)


@pytest.mark.parametrize("name", list(MISTAKES))
def test_check_config_names_the_key_and_the_reason(name: str, checked: dict[str, Checked]) -> None:
    _assert_refused(checked[name], MISTAKES[name].expected)


def test_the_unedited_example_passes(tmp_path: Path) -> None:
    """The base of every mistake is valid: each failure above is the edit's doing."""
    path = tmp_path / "station.toml"
    path.write_text(BASE, encoding="utf-8")
    result = _csbridge("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def _unreadable(directory: Path, kind: str) -> Path:
    if kind == "missing":
        return directory / "nowhere.toml"
    if kind == "directory":
        return directory
    path = directory / "latin1.toml"
    path.write_bytes(BASE.replace("csbridge-sim 0.1.0", "caf\xe9").encode("latin-1"))
    return path


@pytest.mark.parametrize("kind", ["missing", "directory", "not_utf8"])
def test_an_unreadable_config_file_is_named(kind: str, tmp_path: Path) -> None:
    path = _unreadable(tmp_path, kind)
    result = _csbridge("check-config", str(path))
    _assert_refused(result, (str(path), "cannot read"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 000 all the same")
def test_a_config_file_without_read_permission_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "not_toml")
    path.chmod(0)
    result = _csbridge("check-config", str(path))
    _assert_refused(result, (str(path), "cannot read", "Permission denied"))


RUN_MISTAKES = [
    "not_toml",
    "missing_required_key",
    "unknown_device_profile",
    "bad_broker_port",
    "password_file_missing",
]


@pytest.mark.parametrize("name", RUN_MISTAKES)
def test_run_refuses_the_same_mistakes(name: str, tmp_path: Path) -> None:
    """`run` exits at once as well (a profile is only looked up as the station is built)."""
    result = _csbridge("run", "--config", str(_write(tmp_path, name)), timeout=20)
    _assert_refused(result, MISTAKES[name].expected)


def test_run_refuses_a_bad_broker_override(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text(BASE, encoding="utf-8")
    result = _csbridge("run", "--config", str(path), "--broker", "tcp://127.0.0.1:1883", timeout=20)
    _assert_refused(result, ("--broker", "must start with mqtt:// or mqtts://"))
