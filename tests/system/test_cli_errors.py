"""Every error path of the command line is one line on stderr and its documented exit code
(README.md, Exit codes), never a traceback or a usage box. The commands are read from
`csbridge --help` and their number options from each command's `--help`, so a new command or
option is walked without anyone listing it here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from csbridge.support.resources import example_config

CSBRIDGE = [sys.executable, "-m", "csbridge"]
ENV = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
MISSING = "/nonexistent/csbridge-walk/missing"
EXAMPLE = str(example_config("sim-station.toml"))
UNREACHABLE = "mqtt://127.0.0.1:1"
EXIT_INVALID = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: int
    says: str
    """What the one line must contain."""


def _csbridge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CSBRIDGE, *args], capture_output=True, text=True, timeout=60, env=ENV, check=False
    )


def _commands() -> list[str]:
    text = _csbridge("--help").stdout
    listed = text[text.index("Commands:") :].splitlines()[1:]
    return [match[1] for line in listed if (match := re.match(r"  ([a-z][a-z-]*)\s", line))]


COMMANDS = _commands()

KNOWN_MISTAKES: dict[str, list[Case]] = {
    "run": [
        Case(("--config", MISSING), EXIT_USAGE, f"config error {MISSING}: cannot read"),
        Case(("--config", EXAMPLE, "--replay", MISSING), EXIT_USAGE, f"{MISSING}: No such file"),
        Case(("--config", EXAMPLE, "--broker", "tcp://x:1"), EXIT_USAGE, "--broker"),
    ],
    "check-config": [Case((MISSING,), EXIT_USAGE, f"config error {MISSING}: cannot read")],
    "init": [Case(("no-such-profile", "-o", MISSING), EXIT_USAGE, "no shipped profile")],
    "validate": [Case((MISSING,), EXIT_INVALID, f"invalid: {MISSING}: cannot read")],
    "demo": [Case(("--duration", "0"), EXIT_USAGE, "'--duration': 0 s: must be more than 0")],
    "emulate": [
        Case(("--broker", UNREACHABLE, "--duration", "-1"), EXIT_USAGE, "must be more than 0"),
        Case(("--broker", UNREACHABLE, "--timeout", "0"), EXIT_USAGE, "must be more than 0"),
        Case(("--broker", UNREACHABLE, "--scenario", "nope"), EXIT_USAGE, "unknown scenario"),
        Case(("--broker", UNREACHABLE, "--timeout", "1"), EXIT_INVALID, "FAILED broker"),
        Case(("--broker", UNREACHABLE, "--scenario", "dc-session"), EXIT_INVALID, "FAILED"),
        Case(
            ("--broker", UNREACHABLE, "--username", "u", "--password-file", MISSING),
            EXIT_USAGE,
            f"cannot read {MISSING}",
        ),
    ],
    "status": [
        Case(("--broker", UNREACHABLE, "--duration", "-1"), EXIT_USAGE, "must be more than 0"),
        Case(("--broker", "http://x"), EXIT_USAGE, "--broker"),
        Case(("--broker", UNREACHABLE, "--json"), EXIT_INVALID, "could not connect to broker"),
        Case(("--broker", UNREACHABLE, "--duration", "1"), EXIT_INVALID, "could not connect"),
    ],
    "replay": [Case(("--config", MISSING, "x.log"), EXIT_USAGE, f"{MISSING}: cannot read")],
    "collect-logs": [Case(("--config", MISSING), EXIT_USAGE, f"{MISSING}: cannot read")],
}
"""A mistake a user makes with each command, beyond the walk's own."""


def _number_options(command: str) -> list[str]:
    text = _csbridge(command, "--help").stdout
    return re.findall(r"^\s+(--[a-z][a-z-]*)(?:, -\w)? <(?:float|int)>", text, re.MULTILINE)


def _cases(command: str) -> list[Case]:
    """The walk's mistakes: an unknown option, a number option (the first) given a word, then
    the command's known mistakes."""
    cases = [Case(("--no-such-option",), EXIT_USAGE, "No such option: --no-such-option")]
    cases += [
        Case((option, "lots"), EXIT_USAGE, f"Invalid value for '{option}'")
        for option in _number_options(command)[:1]
    ]
    return cases + KNOWN_MISTAKES.get(command, [])


def test_the_walk_finds_every_command() -> None:
    assert {"run", "check-config", "init", "validate", "demo", "emulate", "status"} <= set(COMMANDS)
    assert _number_options("emulate") == ["--duration", "--timeout"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_mistake_is_one_line_and_its_exit_code(command: str) -> None:
    cases = _cases(command)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda case: _csbridge(command, *case.args), cases))
    for case, result in zip(cases, results, strict=True):
        shown = f"csbridge {command} {' '.join(case.args)}\n{result.stdout}{result.stderr}"
        lines = result.stderr.splitlines()
        assert len(lines) == 1, shown
        assert case.says in lines[0], shown
        assert "Traceback" not in result.stdout, shown
        assert result.returncode == case.code, shown
        if case.code == EXIT_USAGE and command != "collect-logs":
            assert result.stdout == "", shown  # collect-logs prints its status word there


def test_usage_errors_name_the_command_and_where_to_read_more() -> None:
    result = _csbridge("status", "--broker", UNREACHABLE, "--duration", "soon")
    assert result.returncode == EXIT_USAGE
    assert result.stderr == (
        "usage error: csbridge status: Invalid value for '--duration': Input should be a valid "
        "number, unable to parse string as a number (see csbridge status --help)\n"
    )
    unknown = _csbridge("statu")
    assert unknown.stderr.startswith("usage error: csbridge: No such command 'statu'.")
    assert unknown.returncode == EXIT_USAGE
