"""`csbridge replay` as a vendor runs it: logs in, what the bridge would publish out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from csbridge.support.resources import example_config
from tests.support import FIXTURES

CSBRIDGE = [sys.executable, "-m", "csbridge"]
LOG = FIXTURES / "can" / "infypower-three-modules.log"
CONFIG = example_config("infypower-dc.toml")
T0 = 1_700_000_000.0


def _replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CSBRIDGE, "replay", *args], capture_output=True, text=True, timeout=60, check=False
    )


def _dc_updates(stdout: str) -> list[tuple[float, dict[str, Any]]]:
    updates = []
    for line in stdout.splitlines():
        document = orjson.loads(line)
        if document["topic"] == "cs/josev":
            assert document["payload"]["type"] == "update"
            updates.append((document["t"] - T0, document["payload"]["data"]["evses"][0]))
    return updates


def test_three_modules_then_one_silent_reach_300_then_200_amperes() -> None:
    """The issue's check, through the command as a vendor types it."""
    result = _replay("--config", str(CONFIG), str(LOG))
    assert result.returncode == 0, result.stderr
    updates = _dc_updates(result.stdout)
    full = next(e for _, e in updates if e["dc"]["max_current"] == 300.0)
    assert full["status_code"] == "evse_ready"
    assert full["dc"]["max_power"] == 90000
    assert full["dc"]["max_voltage"] == 1000.0
    assert full["dc"]["min_voltage"] == 150.0
    assert full["dc"]["isolation_status"] == "valid"
    t_full = next(t for t, e in updates if e["dc"]["max_current"] == 300.0)
    after = [(t, e) for t, e in updates if t > t_full]
    assert after, "module 3 falls silent at 10 s: an update must follow"
    t_drop, dropped = after[0]
    assert dropped["dc"]["max_current"] == 200.0
    assert dropped["dc"]["max_power"] == 60000
    # its last reply comes at 9.05 s; stale 3 s (3 poll periods) later, seen on the next tick
    assert 12.0 <= t_drop <= 12.2
    assert "infypower-reg: decoded 200" in result.stderr
    assert "device DE*CSB*E0001/infy3: seen, 40 frames decoded" in result.stderr


def test_limits_reports_name_the_binding_sources() -> None:
    result = _replay("--config", str(CONFIG), str(LOG))
    reports = [
        orjson.loads(line)
        for line in result.stdout.splitlines()
        if orjson.loads(line)["topic"].endswith("/limits")
    ]
    assert reports
    dropped = [r for r in reports if r["payload"]["limits"]["dc"]["max_current"] == 200.0]
    assert dropped[-1]["payload"]["binding"]["max_current"] == "module_dropout"
    assert dropped[-1]["payload"]["sources"]["modules"]["infy3"]["state"] == "stale"


def test_only_josev_prints_only_the_updates() -> None:
    result = _replay("--config", str(CONFIG), str(LOG), "--only-josev")
    assert result.returncode == 0
    topics = {orjson.loads(line)["topic"] for line in result.stdout.splitlines()}
    assert topics == {"cs/josev"}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("(1700000000.0) can0 ZZZ#00\n", "log error"),
        (None, "no such file"),
    ],
)
def test_a_bad_log_exits_2(tmp_path: Path, content: str | None, why: str) -> None:
    log = tmp_path / "bad.log"
    if content is not None:
        log.write_text(content)
    result = _replay("--config", str(CONFIG), str(log))
    assert result.returncode == 2
    assert why in result.stderr


def test_a_log_of_unknown_format_exits_2(tmp_path: Path) -> None:
    log = tmp_path / "frames.csvx"
    log.write_text("nothing")
    result = _replay("--config", str(CONFIG), str(log))
    assert result.returncode == 2
    assert "unknown log format" in result.stderr


def test_a_config_naming_an_unknown_profile_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "station.toml"
    broken.write_text(
        CONFIG.read_text().replace('profile = "infypower-reg"', 'profile = "infypower-xyz"', 1)
    )
    result = _replay("--config", str(broken), str(LOG))
    assert result.returncode == 2
    assert "evse[0].module[0].can.profile" in result.stderr
    assert "infypower-xyz" in result.stderr


def test_plot_draws_the_limits_over_the_log(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "limits.png"
    result = _replay("--config", str(CONFIG), str(LOG), "--plot", str(png))
    assert result.returncode == 0, result.stderr
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert png.stat().st_size > 10_000


def test_check_config_checks_the_profiles_it_names(tmp_path: Path) -> None:
    broken = tmp_path / "station.toml"
    broken.write_text(
        CONFIG.read_text().replace('profile = "bender-iso165c"', 'profile = "infypower-reg"')
    )
    result = subprocess.run(
        [*CSBRIDGE, "check-config", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert (
        "evse[0].imd.can.profile: infypower-reg describes a power_module, not a imd"
        in result.stderr
    )
