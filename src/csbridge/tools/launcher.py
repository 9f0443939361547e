"""The `csbridge` command's entry point: `csbridge run` straight to the service, every other
command (and any `run` it cannot read plainly) through the full CLI.

The service runs for months on a small board; typer and rich cost it 3 MB and 60 ms of start-up
for nothing once the options are read. So a `run` whose arguments are only the documented
options in their usual spellings is read here; anything else (`--help`, a typo, a missing
`--config`) goes to the typer CLI, which answers it exactly as it always has.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from csbridge.config import Config, ConfigError, load_config

EXIT_BAD_CONFIG = 2
"""As the full CLI: a configuration error exits 2 (systemd's RestartPreventExitStatus)."""


@dataclass(slots=True)
class RunOptions:
    """`csbridge run`'s options, as the full CLI defines them."""

    config: Path
    broker: str | None = None
    replay: list[Path] = field(default_factory=list)


def plain_run_options(arguments: Sequence[str]) -> RunOptions | None:
    """The options of `run ...` when every argument is a documented option with its value
    (`--config F`, `-c F`, `--config=F`, `--broker URL`, `--replay LOG`, repeatable); None for
    anything else, which the full CLI then reads (and explains)."""
    if not arguments or arguments[0] != "run":
        return None
    values: dict[str, list[str]] = {"--config": [], "--broker": [], "--replay": []}
    rest = list(arguments[1:])
    while rest:
        word = rest.pop(0)
        name, equals, value = word.partition("=")
        name = "--config" if name == "-c" and not equals else name
        if name not in values or (not equals and not rest):
            return None
        if not equals:
            value = rest.pop(0)
        if not value or value.startswith("-"):
            return None
        values[name].append(value)
    if len(values["--config"]) != 1 or len(values["--broker"]) > 1:
        return None
    return RunOptions(
        config=Path(values["--config"][0]),
        broker=values["--broker"][0] if values["--broker"] else None,
        replay=[Path(log) for log in values["--replay"]],
    )


def refuse(error: ConfigError, source: object | None = None, *, kind: str = "config") -> NoReturn:
    """Every problem on its own line (red on a terminal), then exit 2. Printed as plain text: a
    problem names TOML tables in brackets, which rich markup would swallow."""
    from rich.console import Console  # noqa: PLC0415 - the error path alone pays for rich
    from rich.text import Text  # noqa: PLC0415

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for problem in error.problems:
        line = Text(f"{kind} error", style="red")
        line.append(f" {source if source is not None else error.source}: {problem}")
        err.print(line)
    raise SystemExit(EXIT_BAD_CONFIG)


def serve(settings: Config, replay: Sequence[Path] = ()) -> None:
    """`csbridge run` once its configuration is loaded: logging, then the station until
    SIGTERM or Ctrl-C."""
    from csbridge.service import run_station  # noqa: PLC0415 - only the run command needs it
    from csbridge.support import configure_logging  # noqa: PLC0415

    if replay:
        check_replay_logs(replay)
    configure_logging(
        settings.logging.level,
        settings.logging.repeat_interval_s,
        settings.logging.max_limited_kinds,
    )
    code = 0
    try:
        with contextlib.suppress(KeyboardInterrupt):
            code = asyncio.run(run_station(settings, replay))
    except ConfigError as error:
        refuse(error)
    if code:
        raise SystemExit(code)  # Josev's station reset: systemd restarts on this code


def check_replay_logs(logs: Sequence[Path]) -> None:
    """`run --replay`'s logs, before anything starts: one that cannot be read at all is one
    line and exit 2, as a configuration error."""
    from csbridge.sources.can import LogError, check_sources  # noqa: PLC0415

    if any(str(log) == "-" for log in logs):
        refuse(
            ConfigError("--replay", ["-: run replays files; stdin: csbridge replay -"]), kind="log"
        )
    unreadable = [f"{log}: {why}" for log in logs if (why := _unreadable(log))]
    if unreadable:
        refuse(ConfigError("--replay", unreadable), kind="log")
    try:
        check_sources(logs)  # the format, and its extra
    except LogError as error:
        refuse(ConfigError("--replay", [str(error)]), kind="log")


def _unreadable(log: Path) -> str | None:
    """Why a log named by --replay cannot be read, or None: the run refuses it at once rather
    than failing once the station has started."""
    try:
        with log.open("rb"):
            return None
    except OSError as error:
        return error.strerror or error.__class__.__name__


def load_settings(path: Path, broker: str | None, hal_dirs: Sequence[Path] = ()) -> Config:
    """The configuration file, with `--broker` over its broker and the profile search path
    (`--hal-dir`, then `$CSBRIDGE_HAL_PATH`) after its profile_dirs; a problem exits 2."""
    from csbridge.sources.can import with_search_path  # noqa: PLC0415

    try:
        settings = with_search_path(load_config(path), hal_dirs)
        return settings.with_broker(broker) if broker else settings
    except ConfigError as error:
        refuse(error)


def main() -> None:
    options = plain_run_options(sys.argv[1:])
    if options is None:
        from csbridge.tools.cli import main as full_cli  # noqa: PLC0415

        full_cli()
        return
    serve(load_settings(options.config, options.broker), options.replay)
