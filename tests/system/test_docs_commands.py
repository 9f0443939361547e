"""Docs as tests: every shell command and every TOML snippet in README.md and docs/*.md runs or is
checked, so the documentation cannot drift from the code.

What is extracted: fenced blocks only. ```sh, ```bash and ```shell blocks run whole, as a bash
script with `set -e`; in ```console blocks the lines after a `$ ` prompt run (a line ending in
`\\` continues on the next). ```toml blocks are checked: a profile (a `[profile]` table) with the
profile loader (`csbridge check-profile` where the CLI has it), a complete station configuration
(`[station]` and `[[evse]]`) with `csbridge check-config`, and anything else only when marked a
fragment, then parsed as TOML. Indented (4-space) blocks are not extracted.

An HTML comment on the line right before a block steers it:

- `<!-- docs-test: skip (why) -->`: not run; counted with its reason (hardware, root, the
  network, a service that runs until stopped).
- `<!-- docs-test: fragment -->`: a TOML snippet that is part of a file; parsed only.
- `<!-- docs-test: file PATH -->`: the block's text is written to PATH in the doc's workspace
  (a profile, a station configuration, a script the doc's commands use next), then checked as
  any block of its language.
- `<!-- docs-test: exit N -->`: the commands must end with exit code N, not 0.

Each document runs in a workspace of its own, a temporary folder with the repository's examples,
fixtures, hal, schemas and scripts linked in and `.venv` pointing at the interpreter running the
tests, so `csbridge`, `python` and `.venv/bin/csbridge` are the csbridge under test. Blocks of one
document run in order (a later command may use the file an earlier block wrote); documents run in
parallel. Nothing here needs a broker: a command that does is marked skip with its reason.
"""

from __future__ import annotations

import enum
import functools
import os
import re
import subprocess
import sys
import tomllib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from csbridge.config import ConfigError
from csbridge.sources.can import load_profile
from tests.support import REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINKED = ("examples", "fixtures", "hal", "schemas", "scripts", "packaging", "pyproject.toml")
"""What a document's workspace sees of the repository (read-only use: links, not copies)."""
SHELL = frozenset({"sh", "bash", "shell"})
COMMAND_TIMEOUT_S = 60.0
DIRECTIVE = re.compile(r"^<!--\s*docs-test:\s*(?P<verb>skip|fragment|file|exit)\b(?P<rest>.*?)-->$")
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)(?P<info>[\w-]*)\s*$")


class Kind(enum.StrEnum):
    SHELL = "shell"
    CONSOLE = "console"
    TOML = "toml"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block and the directive on the line before it."""

    document: Path
    line: int
    """1-based line of the opening fence."""
    language: str
    text: str
    directive: str = ""
    argument: str = ""

    @property
    def kind(self) -> Kind:
        if self.language in SHELL:
            return Kind.SHELL
        if self.language == "console":
            return Kind.CONSOLE
        if self.language == "toml":
            return Kind.TOML
        return Kind.OTHER

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(REPO)}:{self.line}"

    @property
    def expected_exit(self) -> int:
        return int(self.argument) if self.directive == "exit" else 0


def blocks_of(document: Path) -> list[Block]:
    """Every fenced block of a Markdown file, with its directive."""
    return list(_blocks(document, document.read_text(encoding="utf-8").splitlines()))


def _blocks(document: Path, lines: list[str]) -> Iterator[Block]:
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        body: list[str] = []
        end = index + 1
        while end < len(lines) and lines[end].strip() != fence:
            body.append(lines[end][indent:] if lines[end][:indent].isspace() else lines[end])
            end += 1
        directive = argument = ""
        if index > 0:
            found = DIRECTIVE.match(lines[index - 1].strip())
            if found is not None:
                directive, argument = found["verb"], found["rest"].strip()
                if directive == "skip":
                    argument = argument.strip("()").strip()
        text = "\n".join(body) + "\n" if body else ""
        yield Block(document, index + 1, opening["info"], text, directive, argument)
        index = end + 1


def console_commands(text: str) -> str:
    """The commands of a console block: each `$ ` line and its `\\` continuations."""
    commands: list[str] = []
    continuing = False
    for line in text.splitlines():
        if continuing:
            commands[-1] += "\n" + line
        elif line.startswith("$ "):
            commands.append(line[2:])
        else:
            continue
        continuing = line.endswith("\\")
    return "\n".join(commands) + "\n" if commands else ""


@dataclass(slots=True)
class Report:
    ran: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(where, why)."""
    checked_toml: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def merge(self, other: Report) -> None:
        self.ran += other.ran
        self.skipped += other.skipped
        self.checked_toml.update(other.checked_toml)
        self.failures += other.failures

    def summary(self) -> str:
        lines = [
            f"docs-test: {len(self.ran)} command blocks ran, {len(self.skipped)} skipped, "
            f"TOML snippets checked: "
            + ", ".join(f"{count} {kind}" for kind, count in sorted(self.checked_toml.items())),
        ]
        lines += [f"  skipped {where}: {why}" for where, why in self.skipped]
        return "\n".join(lines)


def _csbridge() -> Path:
    return Path(sys.executable).parent / "csbridge"


def _environment() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "CSBRIDGE_HAL_PATH", "CSBRIDGE_MQTT_PASSWORD")
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "100"
    return env


def _workspace(root: Path) -> Path:
    root.mkdir(parents=True)
    for name in LINKED:
        (root / name).symlink_to(REPO / name)
    # `.venv/bin/csbridge` in the docs: the interpreter (and its csbridge) under test.
    (root / ".venv").symlink_to(Path(sys.executable).parent.parent)
    return root


def _run(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@functools.cache
def _has_check_profile() -> bool:
    """Whether this csbridge has `check-profile` (asked once)."""
    env = _environment()
    result = subprocess.run(
        [str(_csbridge()), "check-profile", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    return result.returncode == 0


def _toml_problem(block: Block, path: Path, cwd: Path, env: dict[str, str]) -> tuple[str, str]:
    """(what it was checked as, why it failed or "")."""
    try:
        parsed = tomllib.loads(block.text)
    except tomllib.TOMLDecodeError as error:
        return "unparsable", f"not TOML: {error}"
    if block.directive == "fragment":
        return "fragment", ""
    if "profile" in parsed:
        path = _as_profile_file(block, parsed, path)
        if _has_check_profile():
            result = _run(f"{_csbridge()} check-profile {path}", cwd, env)
            return "profile", "" if result.returncode == 0 else result.stdout + result.stderr
        try:
            load_profile(path)
        except ConfigError as error:
            return "profile", "; ".join(error.problems)
        return "profile", ""
    if "station" in parsed and "evse" in parsed:
        result = _run(f"{_csbridge()} check-config {path}", cwd, env)
        return "config", "" if result.returncode == 0 else result.stdout + result.stderr
    return "unmarked", (
        "neither a profile nor a complete station configuration: mark it "
        "<!-- docs-test: fragment --> if it is part of a file"
    )


def _as_profile_file(block: Block, parsed: dict[str, Any], path: Path) -> Path:
    """A profile snippet not written to a file of the doc's choosing goes where a profile
    lives: a folder of its own, under its own name, beside the shipped DBCs it may name."""
    if block.directive == "file":
        return path
    name = parsed["profile"].get("name")
    if not isinstance(name, str) or not name:
        return path
    folder = path.with_suffix("")
    folder.mkdir(exist_ok=True)
    for dbc in (REPO / "hal").glob("*.dbc"):
        (folder / dbc.name).symlink_to(dbc)
    profile = folder / f"{name}.toml"
    profile.write_text(block.text, encoding="utf-8")
    return profile


def check_document(document: Path, workspace: Path) -> Report:
    """Run and check every block of one document, in order, in its own workspace."""
    report = Report()
    env = _environment()
    cwd = _workspace(workspace)
    for number, block in enumerate(blocks_of(document)):
        if block.directive == "skip":
            if block.kind in (Kind.SHELL, Kind.CONSOLE, Kind.TOML):
                report.skipped.append((block.where, block.argument or "no reason given"))
                if not block.argument:
                    report.failures.append(f"{block.where}: a skip gives its reason")
            continue
        path = cwd / f"snippet-{number}.{block.language or 'txt'}"
        if block.directive == "file":
            path = cwd / block.argument
            path.parent.mkdir(parents=True, exist_ok=True)
        if block.kind is Kind.TOML or block.directive == "file":
            path.write_text(block.text, encoding="utf-8")
        if block.kind is Kind.TOML:
            checked_as, problem = _toml_problem(block, path, cwd, env)
            report.checked_toml[checked_as] += 1
            if problem:
                report.failures.append(f"{block.where}: TOML ({checked_as}): {problem}")
            continue
        if block.kind not in (Kind.SHELL, Kind.CONSOLE):
            continue
        script = block.text if block.kind is Kind.SHELL else console_commands(block.text)
        if not script.strip():
            continue
        report.ran.append(block.where)
        try:
            result = _run(script, cwd, env)
        except subprocess.TimeoutExpired:
            report.failures.append(
                f"{block.where}: still running after {COMMAND_TIMEOUT_S:g} s: bound it "
                "(--duration) or mark it skip with the reason"
            )
            continue
        if result.returncode != block.expected_exit:
            output = (result.stdout + result.stderr)[-2000:]
            report.failures.append(
                f"{block.where}: exit {result.returncode}, the doc expects "
                f"{block.expected_exit}:\n{script}{output}"
            )
    return report


# About 40 s alone on 2 cores; room for a loaded CI machine beside the rest of the suite.
@pytest.mark.timeout(300)
def test_every_documented_command_runs_and_every_snippet_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    total = Report()
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = pool.map(
            lambda item: check_document(item[1], tmp_path / f"{item[0]}-{item[1].stem}"),
            enumerate(DOCUMENTS),
        )
        for report in reports:
            total.merge(report)
    with capsys.disabled():
        print("\n" + total.summary())
    assert not total.failures, "\n\n".join(total.failures)
    assert total.ran, "no documented command ran: the extraction is broken"


# --- the extraction itself ---------------------------------------------------------------------


def _parsed(text: str) -> list[Block]:
    return list(_blocks(Path("x.md"), text.splitlines()))


def test_blocks_carry_their_directive_and_language() -> None:
    blocks = _parsed(
        "intro\n"
        "<!-- docs-test: skip (needs a CAN adapter) -->\n"
        "```sh\ncandump -L can0\n```\n"
        "\n```toml\n[a]\nb = 1\n```\n"
        "<!-- docs-test: file profiles/x.toml -->\n"
        "```toml\n[profile]\n```\n"
        "  ```console\n  $ csbridge --help\n  usage\n  ```\n"
    )
    assert [(b.language, b.directive, b.argument) for b in blocks] == [
        ("sh", "skip", "needs a CAN adapter"),
        ("toml", "", ""),
        ("toml", "file", "profiles/x.toml"),
        ("console", "", ""),
    ]
    assert blocks[0].text == "candump -L can0\n"
    assert blocks[3].text == "$ csbridge --help\nusage\n"


def test_a_directive_two_lines_up_does_not_count() -> None:
    (block,) = _parsed("<!-- docs-test: skip (x) -->\n\n```sh\ntrue\n```\n")
    assert block.directive == ""


def test_console_blocks_run_only_prompted_lines() -> None:
    text = "$ echo one \\\n    two\none two\n$ false\n"
    assert console_commands(text) == "echo one \\\n    two\nfalse\n"


def test_exit_directive() -> None:
    (block,) = _parsed("<!-- docs-test: exit 2 -->\n```sh\nexit 2\n```\n")
    assert block.expected_exit == 2
