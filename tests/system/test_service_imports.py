"""`csbridge run` imports only what it runs: no CLI framework, no demo broker, no plotting, no
emulator, and the simulators only when the configuration simulates something. Observed on the
real command with `python -X importtime`, up to the station's start line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from csbridge.mqtt import free_port
from csbridge.support import example_config
from csbridge.tools.launcher import RunOptions, plain_run_options

NEVER_ON_THE_SERVICE_PATH = ("typer", "rich", "amqtt", "matplotlib", "csbridge.tools.emulator")
SIMULATORS = ("csbridge.sources.simulated", "csbridge.service.scenario")
START_TIMEOUT_S = 20.0


def imported_by_run(config: Path) -> set[str]:
    """Every module `csbridge run --config CONFIG` imports before it logs event=start (its
    broker is a closed port: the start comes before any connect)."""
    command = [sys.executable, "-X", "importtime", "-m", "csbridge", "run", "--config"]
    broker = f"mqtt://127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [*command, str(config), "--broker", broker],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    modules: set[str] = set()
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if line.startswith("import time:") and "|" in line:
                modules.add(line.rsplit("|", 1)[1].strip())
            if "event=start " in line:
                return modules
            assert time.monotonic() < deadline, "no event=start line"
        pytest.fail(f"csbridge run ended before it started (exit {process.wait()})")
    finally:
        process.terminate()
        process.wait(timeout=10)


def loaded(modules: set[str], package: str) -> bool:
    return any(name == package or name.startswith(f"{package}.") for name in modules)


def test_a_charger_without_simulated_devices_loads_no_simulator_and_no_tool() -> None:
    modules = imported_by_run(example_config("infypower-dc.toml"))

    assert "csbridge.service.station" in modules  # the observation reached the station
    for package in (*NEVER_ON_THE_SERVICE_PATH, *SIMULATORS):
        assert not loaded(modules, package), package


def test_a_simulated_station_loads_its_simulators_and_still_no_tool() -> None:
    modules = imported_by_run(example_config("sim-station.toml"))

    assert loaded(modules, "csbridge.sources.simulated")
    for package in NEVER_ON_THE_SERVICE_PATH:
        assert not loaded(modules, package), package


def test_run_help_still_comes_from_the_full_cli() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "csbridge", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "--config" in shown.stdout
    assert "--replay" in shown.stdout


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["run", "--config", "a.toml"], RunOptions(Path("a.toml"))),
        (["run", "-c", "a.toml"], RunOptions(Path("a.toml"))),
        (
            ["run", "--config=a.toml", "--broker=mqtt://h:1"],
            RunOptions(Path("a.toml"), "mqtt://h:1"),
        ),
        (
            ["run", "--replay", "x.log", "-c", "a.toml", "--replay", "y.asc"],
            RunOptions(Path("a.toml"), None, [Path("x.log"), Path("y.asc")]),
        ),
    ],
)
def test_plain_run_options_are_read_without_the_cli(
    arguments: list[str], expected: RunOptions
) -> None:
    assert plain_run_options(arguments) == expected


@pytest.mark.parametrize(
    "arguments",
    [
        [],
        ["demo"],
        ["run"],
        ["run", "--help"],
        ["run", "--config"],
        ["run", "--config", "a.toml", "--config", "b.toml"],
        ["run", "--config", "a.toml", "--broker", "x", "--broker", "y"],
        ["run", "--config", "--broker"],
        ["run", "--confg", "a.toml"],
        ["run", "-c=a.toml"],
        ["run", "--config", "a.toml", "extra"],
        ["run", "--broker", "mqtt://h:1"],
    ],
)
def test_anything_else_goes_to_the_full_cli(arguments: list[str]) -> None:
    assert plain_run_options(arguments) is None
