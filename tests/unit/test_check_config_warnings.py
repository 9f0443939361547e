"""`csbridge check-config`'s warnings: a configuration that loads but likely misses its aim."""

from __future__ import annotations

import pytest

from csbridge.config import parse_config
from csbridge.resources import example_config
from csbridge.tools.cli import config_warnings
from tests.support import REPO

PACKAGED = REPO / "packaging" / "csbridge.toml"
EXAMPLE = example_config("sim-station.toml").read_text(encoding="utf-8")


def _without_identity(extra: str = "") -> str:
    start = EXAMPLE.index("[station.identity]")
    return EXAMPLE[:start] + extra + EXAMPLE[EXAMPLE.index("[mqtt]") :]


def test_the_example_gets_no_warning() -> None:
    assert config_warnings(parse_config(EXAMPLE)) == []


def test_ocpp_asked_without_an_identity_is_warned_of() -> None:
    warnings = config_warnings(parse_config(_without_identity()))
    assert len(warnings) == 2
    assert warnings[0].startswith("no [station.identity]")
    assert "[station.josev_services] ask includes ocpp" in warnings[1]
    assert "Josev Community" in warnings[1]


def test_no_ocpp_asked_leaves_only_the_identity_warning() -> None:
    services = '[station.josev_services]\nask = ["slac", "iso15118"]\n\n'
    warnings = config_warnings(parse_config(_without_identity(services)))
    assert [w.split(":")[0] for w in warnings] == ["no [station.identity]"]


def _uncommented(text: str, table: str) -> str:
    """The example with its commented `table` block (header to the next blank line) uncommented."""
    start = text.index(f"# [{table}]")
    end = text.index("\n\n", start)
    block = "\n".join(line.removeprefix("# ") for line in text[start:end].splitlines())
    return text[:start] + block + text[end:]


@pytest.mark.parametrize(
    "name", ["sim-station.toml", "infypower-dc.toml", "everest-psu.toml", "csbridge.toml"]
)
def test_the_commented_blocks_of_every_example_load_when_uncommented(name: str) -> None:
    path = PACKAGED if name == "csbridge.toml" else example_config(name)
    text = path.read_text(encoding="utf-8")
    for table in ("station.maintenance", "station.josev_services"):
        text = _uncommented(text, table)
    station = parse_config(text).station
    assert station.maintenance.firmware_command == ["/usr/local/bin/flash-board"]
    assert station.maintenance.logs_command == ["/usr/local/bin/upload-logs"]
    assert station.maintenance.model_fields_set >= {"allow_reset", "firmware_time_limit_s"}
    assert station.josev_services.ask == ["slac", "iso15118", "ocpp"]
    assert station.josev_services.model_fields_set == {"ask", "interval_s", "timeout_s"}
