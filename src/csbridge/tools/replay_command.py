"""`csbridge replay`: check what can be checked before replaying (the logs, the bus map, the
plot extra), replay, then print the publications (or the JSON summary) on stdout and the
summary and every line not read on stderr. The exit code is the command's answer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import orjson

from csbridge.config import Config, ConfigError
from csbridge.sources.can import BadLine, LogError, check_sources, parse_bus_map
from csbridge.tools.replay import Publication, ReplayRun, write_lines
from csbridge.tools.replay_summary import strict_problems, summary_document, summary_lines

EXIT_OK = 0
EXIT_STRICT = 1
EXIT_BAD_INPUT = 2
SHOWN_BAD_LINES = 20
"""Per log: a binary file read as text would otherwise print a line for each of its lines."""


@dataclass
class BadLinePrinter:
    """Each line not read on its own line, up to SHOWN_BAD_LINES per log; then only counted."""

    complain: Callable[[str], None]
    shown: Counter[str] = field(default_factory=Counter)

    def __call__(self, bad: BadLine) -> None:
        self.shown[bad.source] += 1
        if self.shown[bad.source] <= SHOWN_BAD_LINES:
            self.complain(str(bad))
        elif self.shown[bad.source] == SHOWN_BAD_LINES + 1:
            self.complain(f"{bad.source}: more lines not read: counted, not shown")


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    sources: Sequence[str]
    bus_map: Sequence[str] = ()
    only_josev: bool = False
    plot: Path | None = None
    json: bool = False
    strict: bool = False


def run_replay(
    settings: Config,
    options: ReplayOptions,
    *,
    config_name: str,
    stdout: TextIO,
    stdin: TextIO | None = None,
    complain: Callable[[str], None],
) -> int:
    """Replay as the command does; its exit code. `complain` prints one line on stderr."""
    bus_map = _checked_first(settings, options, complain)
    if bus_map is None:
        return EXIT_BAD_INPUT
    try:
        run = ReplayRun(
            settings, bus_map=bus_map, on_bad_line=BadLinePrinter(complain), stdin=stdin
        )
    except ConfigError as error:
        for problem in error.problems:
            complain(f"config error {config_name}: {problem}")
        return EXIT_BAD_INPUT
    only = settings.mqtt.response_topic if options.only_josev else None
    publications: list[Publication] = []
    published = 0
    try:
        for publication in run.stream(options.sources):
            publications.append(publication)
            if only is None or publication.topic == only:
                published += 1
                if not options.json:  # as it falls due: a live pipe shows as it goes
                    write_lines([publication], stdout)
                    stdout.flush()
    except LogError as error:
        complain(f"log error: {error}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # Ctrl-C on `candump | csbridge replay -`: sum up what came
        complain("interrupted: the summary of what was read")
    if options.json:
        stdout.write(orjson.dumps(summary_document(run, published)).decode() + "\n")
    else:
        for line in summary_lines(run, published):
            complain(line)
    if options.plot is not None and not _plot(
        publications, settings.mqtt.response_topic, options.plot, complain
    ):
        return EXIT_BAD_INPUT
    return _strict_code(run, options, complain)


def _strict_code(run: ReplayRun, options: ReplayOptions, complain: Callable[[str], None]) -> int:
    problems = strict_problems(run)
    if options.strict and problems:
        for problem in problems:
            complain(f"strict: {problem}")
        return EXIT_STRICT
    return EXIT_OK


def _checked_first(
    settings: Config, options: ReplayOptions, complain: Callable[[str], None]
) -> dict[str, str] | None:
    """The bus map, once everything that can be checked before replaying is; None (and the
    reason said) if something is wrong: a replay must not run for minutes and then fail."""
    if options.plot is not None:
        from csbridge.tools.plot import PLOT_EXTRA_HINT, plot_available  # noqa: PLC0415

        if not plot_available():
            complain(PLOT_EXTRA_HINT)
            return None
    try:
        check_sources(options.sources)
        return parse_bus_map(options.bus_map, settings.bus)
    except LogError as error:
        complain(f"log error: {error}")
        return None


def _plot(
    publications: Sequence[Publication],
    response_topic: str,
    path: Path,
    complain: Callable[[str], None],
) -> bool:
    from csbridge.tools.plot import plot_publications  # noqa: PLC0415 - the plot extra

    try:
        plot_publications(publications, response_topic, path)
    except (ValueError, OSError) as error:
        complain(f"plot: {path}: {error}")
        return False
    complain(f"plot: {path}")
    return True
