"""`csbridge check-config` on BPT: the example station's DC EVSE, edited to advertise BPT, is
refused until its modules can import (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from csbridge.support.resources import example_config

CSBRIDGE = [sys.executable, "-m", "csbridge"]
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
BASE = example_config("sim-station.toml").read_text(encoding="utf-8")
BPT_TABLE = (
    "[evse.dc_bpt_limits]\nmax_discharge_current_a = 100.0\nmax_discharge_power_w = 40000\n\n"
    "[evse.authorization]"
)


def edited(*, bidirectional: bool, profile: str) -> str:
    text = BASE.replace('kind = "dc"\nbpt = false', 'kind = "dc"\nbpt = true', 1)
    text = text.replace("[evse.authorization]", BPT_TABLE, 1)
    if bidirectional:
        text = text.replace(
            'can = { profile = "infypower-reg"',
            'bidirectional = true\ncan = { profile = "infypower-reg"',
        )
    return text.replace('profile = "infypower-reg"', f'profile = "{profile}"')


@pytest.mark.parametrize(
    ("bidirectional", "profile", "code", "expected"),
    [
        (False, "infypower-reg", 2, "needs a bidirectional module stack"),
        (True, "infypower-reg", 2, "infypower-reg cannot import"),
        (True, "infypower-beg", 0, "dc + bpt"),
    ],
    ids=["no_bidirectional_module", "a_profile_that_cannot_import", "a_beg_stack"],
)
def test_check_config_refuses_bpt_without_a_stack_that_can_import(
    tmp_path: Path, bidirectional: bool, profile: str, code: int, expected: str
) -> None:
    path = tmp_path / "station.toml"
    path.write_text(edited(bidirectional=bidirectional, profile=profile), encoding="utf-8")
    checked = subprocess.run(
        [*CSBRIDGE, "check-config", str(path)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
        check=False,
    )
    assert checked.returncode == code, checked.stdout + checked.stderr
    assert expected in checked.stdout + checked.stderr
    assert "Traceback" not in checked.stderr
