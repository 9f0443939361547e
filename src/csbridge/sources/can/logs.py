"""CAN logs as frames on named buses: candump text (a `.log` file, or `-` for stdin) and every
format python-can's LogReader reads (Vector `.asc` and `.blf`, PEAK `.trc`, python-can's `.csv`,
ASAM `.mf4` with python-can's mf4 extra), each also gzip-compressed (`can0.log.gz`,
`trace.asc.gz`: what logrotate and `candump -L | gzip` leave), as python-can's LogReader reads
them too.

Which bus a frame is on:
- candump names its interface (can0): the configured bus of that name.
- ASC, BLF and TRC number their channels from 1: a bus takes the channel given as
  `asc_channel`, else its position among the `[[bus]]` tables; another channel is `asc3`,
  `blf3` or `trc3` after its format.
- python-can's CSV names no bus: its frames are on the bus named like the file (`can1.csv`,
  `can1.csv.gz`).
- `bus_map` then renames (`vcan0` to `can0`).

A line or record that cannot be read is reported (`BadLine`, with file and line), counted and
skipped; the rest is read. Only what prevents reading at all (no such file, an unknown format,
a missing extra) raises `LogError`, and that is checked before the first frame.
"""

from __future__ import annotations

import gzip
import heapq
import io
import logging
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

import can

from csbridge.config import BusConfig
from csbridge.sources.can.candump import CandumpFormError, CandumpLineError, parse_line
from csbridge.support import Counted, Counters

log = logging.getLogger("csbridge.can")

STDIN = "-"
STDIN_NAME = "stdin"
"""How standard input is named in what is reported."""
CANDUMP_SUFFIX = ".log"
SUPPORTED_SUFFIXES = (".log", ".asc", ".blf", ".trc", ".csv", ".mf4")
GZIP_SUFFIX = ".gz"
CHANNEL_BASE = {".asc": 1, ".blf": 1, ".trc": 0}
"""What python-can's reader of each format adds to its channel number to get the file's."""
TEXT_FORMATS = (".asc", ".trc", ".csv")
MF4_EXTRA = "python-can[mf4]"
SHOWN_TEXT = 80


READ_ERRORS = (OSError, EOFError, zlib.error, UnicodeError)
"""What reading a file can raise midway: a truncated or corrupt gzip stream among them."""


class LogError(Exception):
    """A log that cannot be read at all: which and why."""


def compressed(path: Path) -> bool:
    return path.suffix.lower() == GZIP_SUFFIX


def log_format(path: Path) -> str:
    """The suffix that names the log's format, under a `.gz` (`can0.log.gz`: `.log`)."""
    return (path.with_suffix("") if compressed(path) else path).suffix.lower()


def log_stem(path: Path) -> str:
    """The file's name without its format and compression (`can1.csv.gz`: `can1`)."""
    return (path.with_suffix("") if compressed(path) else path).stem


def _open_text(path: Path) -> TextIO:
    """A text log, decompressed as read; bytes that are no UTF-8 become bad lines."""
    if compressed(path):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def _open_binary(path: Path) -> BinaryIO:
    if compressed(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


@dataclass(frozen=True, slots=True)
class BadLine:
    """One line (or, in a binary log, one record) that could not be read."""

    source: str
    line: int | None
    """1-based; None in a binary log, where `after` says how many frames came before."""
    text: str
    why: str
    after: int = 0

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.source}: after frame {self.after}: cannot read: {self.why}"
        shown = self.text if len(self.text) <= SHOWN_TEXT else self.text[:SHOWN_TEXT] + "..."
        return f"{self.source}:{self.line}: cannot parse {shown!r}: {self.why}"


@dataclass(slots=True)
class LogStats:
    """What the logs held, as read."""

    frames: Counter[str] = field(default_factory=Counter)
    """Frames per bus (after the bus map), error frames included."""
    error_frames: Counter[str] = field(default_factory=Counter)
    log_buses: dict[str, str] = field(default_factory=dict)
    """Each bus name as a log gave it, and the bus that name was put on."""
    frames_by_source: Counter[str] = field(default_factory=Counter)
    bad_lines: Counter[str] = field(default_factory=Counter)
    refused: dict[str, str] = field(default_factory=dict)
    """Sources whose reading stopped early, and why."""
    untimed: list[str] = field(default_factory=list)
    """Sources whose lines carry no timestamps: timed as they were read."""


def parse_bus_map(pairs: Iterable[str], buses: Sequence[BusConfig]) -> dict[str, str]:
    """`LOGNAME=BUS` pairs (`vcan0=can0`) as a map; each BUS must be a configured bus."""
    names = [bus.name for bus in buses]
    mapping: dict[str, str] = {}
    for pair in pairs:
        log_name, equals, bus = pair.partition("=")
        log_name, bus = log_name.strip(), bus.strip()
        if not equals or not log_name or not bus:
            raise LogError(f"--bus-map {pair!r}: expected LOGNAME=BUS, e.g. vcan0=can0")
        if bus not in names:
            raise LogError(
                f"--bus-map {pair!r}: no bus {bus!r} in the configuration "
                f"(have {', '.join(names) or 'none'})"
            )
        if mapping.get(log_name, bus) != bus:
            raise LogError(
                f"--bus-map {pair!r}: {log_name} is already mapped to {mapping[log_name]}"
            )
        mapping[log_name] = bus
    return mapping


def mf4_readable() -> bool:
    """Whether python-can can read MF4 here (its mf4 extra, asammdf, imports)."""
    from can.io import mf4  # noqa: PLC0415 - imported by can already; asked only for .mf4

    return getattr(mf4, "asammdf", None) is not None


def check_sources(sources: Sequence[str | Path]) -> None:
    """Refuse what cannot be read at all, before anything is replayed."""
    if sum(1 for source in sources if str(source) == STDIN) > 1:
        raise LogError("-: standard input can be read once")
    for source in sources:
        if str(source) == STDIN:
            continue
        path = Path(source)
        suffix = log_format(path)
        if suffix not in SUPPORTED_SUFFIXES:
            named = "".join(path.suffixes[-2:]) if compressed(path) else path.suffix
            raise LogError(
                f"{path}: unknown log format {named!r} (have {', '.join(SUPPORTED_SUFFIXES)}, "
                f"each also as {GZIP_SUFFIX}, or - for candump -L on stdin)"
            )
        if not path.is_file():
            raise LogError(f"{path}: no such file")
        if suffix == ".mf4" and not mf4_readable():
            raise LogError(f"{path}: reading .mf4 needs asammdf: pip install '{MF4_EXTRA}'")


class LogFeed:
    """The frames of several logs, merged in time order, each on its bus; `stats` fills as they
    are read. Never raises once `check_sources` passed: a bad line goes to `on_bad_line`."""

    def __init__(
        self,
        sources: Sequence[str | Path],
        buses: Sequence[BusConfig],
        *,
        bus_map: Mapping[str, str] | None = None,
        on_bad_line: Callable[[BadLine], None] | None = None,
        counters: Counters | None = None,
        stdin: TextIO | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        check_sources(sources)
        self.sources = [STDIN_NAME if str(s) == STDIN else str(s) for s in sources]
        self.buses = list(buses)
        self.bus_map = dict(bus_map or {})
        self.stats = LogStats()
        self._on_bad_line = on_bad_line or _log_bad_line
        self._counters = counters
        self._stdin = stdin
        self._wall_clock = wall_clock

    def frames(self) -> Iterator[tuple[float, str, can.Message]]:
        """(timestamp, bus, frame) of every log in time order."""
        streams = [self._stream(source) for source in self.sources]
        for timestamp, _, bus, frame in heapq.merge(*streams, key=lambda item: item[:2]):
            yield timestamp, bus, frame

    def _stream(self, source: str) -> Iterator[tuple[float, int, str, can.Message]]:
        if source == STDIN_NAME:
            stdin = self._stdin
            if stdin is None:  # bytes that are no UTF-8 are bad lines, not a crash
                stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
            frames = self._candump(source, stdin)
        elif log_format(Path(source)) == CANDUMP_SUFFIX:
            frames = self._candump_file(source)
        else:
            frames = self._python_can(source)
        for index, (timestamp, log_name, frame) in enumerate(frames):
            bus = self._bus(log_name)
            self.stats.log_buses.setdefault(log_name, bus)
            self.stats.frames[bus] += 1
            self.stats.frames_by_source[source] += 1
            if frame.is_error_frame:
                self.stats.error_frames[bus] += 1
            yield timestamp, index, bus, frame

    def _bus(self, log_name: str) -> str:
        return self.bus_map.get(log_name, log_name)

    def _candump_file(self, source: str) -> Iterator[tuple[float, str, can.Message]]:
        read = 0
        try:
            with _open_text(Path(source)) as text:
                for frame in self._candump(source, text):
                    read += 1
                    yield frame
        except READ_ERRORS as error:  # unreadable midway (a truncated .gz): keep what was read
            why = f"{_why(error)}; the rest of the file is not read"
            self._bad(BadLine(source, None, "", why, after=read))
            self._refuse(source, why)

    def _candump(
        self, source: str, lines: Iterable[str]
    ) -> Iterator[tuple[float, str, can.Message]]:
        untimed = False
        last_logged: float | None = None
        for number, raw in enumerate(lines, start=1):
            text = raw.rstrip("\r\n")
            try:
                parsed = parse_line(text)
            except CandumpLineError as error:
                self._bad(BadLine(source, number, text.strip(), str(error)))
                continue
            except CandumpFormError as error:
                self._bad(BadLine(source, number, text.strip(), str(error)))
                self._refuse(source, f"line {number}: {error}")
                return
            if parsed is None:
                continue
            timestamp = parsed.timestamp
            if timestamp is None:
                if not untimed:
                    untimed = True
                    self.stats.untimed.append(source)
                # among timed lines: at the last time given; else as read (a live pipe's clock)
                timestamp = self._wall_clock() if last_logged is None else last_logged
            else:
                last_logged = timestamp
            parsed.frame.timestamp = timestamp
            yield timestamp, str(parsed.frame.channel), parsed.frame

    def _python_can(self, source: str) -> Iterator[tuple[float, str, can.Message]]:
        suffix = log_format(Path(source))
        if suffix not in TEXT_FORMATS:
            yield from self._read(source, suffix, None)
            return
        try:
            text = _open_text(Path(source))
        except OSError as error:
            self._refuse(source, f"cannot read: {error.strerror or error}")
            return
        with text:
            yield from self._read(source, suffix, _CountedLines(text))

    def _read(
        self, source: str, suffix: str, lines: _CountedLines | None
    ) -> Iterator[tuple[float, str, can.Message]]:
        """A python-can reader's frames; its first error ends the file (it cannot go on)."""
        read = 0
        try:
            if lines is None:
                reader = _binary_reader(suffix, Path(source))
            else:
                reader = _text_reader(suffix, lines)
            with reader:  # a binary log's file is closed however the replay ends
                for frame in reader:
                    read += 1
                    yield frame.timestamp, self._channel_name(frame, suffix, source), frame
        except Exception as error:  # a broken file must not take the replay down
            why = f"{type(error).__name__}: {error}; the rest of the file is not read"
            if lines is not None and lines.number:
                self._bad(BadLine(source, lines.number, lines.last.strip(), why))
            else:
                self._bad(BadLine(source, None, "", why, after=read))
            self._refuse(source, why)

    def _channel_name(self, frame: can.Message, suffix: str, source: str) -> str:
        channel = frame.channel
        if channel is None:  # python-can's CSV: the file says which bus
            return log_stem(Path(source))
        if isinstance(channel, int):
            number = channel + CHANNEL_BASE.get(suffix, 1)
            for position, bus in enumerate(self.buses, start=1):
                if (bus.asc_channel or position) == number:
                    return bus.name
            return f"{suffix.lstrip('.')}{number}"
        return str(channel)

    def _bad(self, bad: BadLine) -> None:
        self.stats.bad_lines[bad.source] += 1
        if self._counters is not None:
            self._counters.add(Counted.CAN_LOG_LINES_REFUSED, bad.source)
        self._on_bad_line(bad)

    def _refuse(self, source: str, why: str) -> None:
        self.stats.refused.setdefault(source, why)


def _why(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"{type(error).__name__}: {error}"


def _binary_reader(suffix: str, path: Path) -> can.io.generic.MessageReader:
    """python-can's reader of a binary format, on a file opened here (decompressed if it is a
    .gz: python-can's own LogReader takes `x.blf.gz` but not `can0.2026-12-01.blf.gz`); the
    reader closes it when stopped."""
    file = _open_binary(path)
    try:
        return can.MF4Reader(file) if suffix == ".mf4" else can.BLFReader(file)
    except BaseException:
        file.close()
        raise


def _text_reader(suffix: str, lines: _CountedLines) -> can.io.generic.MessageReader:
    readers: dict[str, type[can.io.generic.TextIOMessageReader]] = {
        ".trc": can.TRCReader,
        ".csv": can.CSVReader,
    }
    if suffix == ".asc":  # the trigger block's date: the same clock as every other format
        return can.ASCReader(lines, relative_timestamp=False)  # type: ignore[arg-type]
    return readers[suffix](lines)  # type: ignore[arg-type]


class _CountedLines:
    """A text file that knows which line was read last, so a reader's error can name it."""

    def __init__(self, text: TextIO) -> None:
        self._text = text
        self.number = 0
        self.last = ""

    def __iter__(self) -> _CountedLines:
        return self

    def __next__(self) -> str:
        line = next(self._text)
        self.number += 1
        self.last = line
        return line

    def readline(self, size: int = -1) -> str:
        line = self._text.readline(size)
        if line:
            self.number += 1
            self.last = line
        return line

    def close(self) -> None:
        self._text.close()


def _log_bad_line(bad: BadLine) -> None:
    log.warning(
        "event=can_log_line_refused source=%s line=%s why=%r text=%r",
        bad.source,
        bad.line if bad.line is not None else f"after-frame-{bad.after}",
        bad.why,
        bad.text[:SHOWN_TEXT],
    )


def merged_frames(
    paths: Sequence[str | Path],
    buses: Sequence[BusConfig],
    *,
    bus_map: Mapping[str, str] | None = None,
    counters: Counters | None = None,
) -> Iterator[tuple[float, str, can.Message]]:
    """Frames of every log in time order, each with the bus it belongs to; a bad line is
    logged (`event=can_log_line_refused`) and counted, and the rest read."""
    yield from LogFeed(paths, buses, bus_map=bus_map, counters=counters).frames()
