"""The rate-limited log keeps a bounded table of kinds and writes a bounded number of lines
whatever the keys; every formatter escapes control characters so no input can forge a line."""

from __future__ import annotations

import io
import logging
import sys
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from pydantic import ValidationError

from csbridge.config.station import LoggingConfig
from csbridge.support import configure_logging, log_limit
from csbridge.support.log_limit import DEFAULT_MAX_KINDS, LogLimiter, RateLimitedLog
from csbridge.support.logging_setup import (
    TRACEBACK_MARGIN,
    escape_controls,
    journal_formatter,
    plain_formatter,
)

FORMATTERS = {"plain": plain_formatter, "journal": journal_formatter}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def _written(formatter: logging.Formatter, name: str) -> Iterator[io.StringIO]:
    """What logger `name` writes at WARNING and above, through `formatter`."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(name)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


# -- the limiter -------------------------------------------------------------------------------


def test_one_line_per_kind_per_interval_then_the_count_held_back() -> None:
    limiter = LogLimiter(interval_s=60.0, max_kinds=8)
    assert limiter.admit("a", 0.0) == 0
    assert [limiter.admit("a", t) for t in (1.0, 30.0, 59.9)] == [None, None, None]
    assert limiter.admit("b", 59.9) == 0, "another kind has its own interval"
    assert limiter.admit("a", 60.0) == 3
    assert limiter.admit("a", 61.0) is None
    assert limiter.admit("a", 120.0) == 1


def test_random_keys_keep_the_table_bounded_and_the_lines_bounded() -> None:
    limiter = LogLimiter(interval_s=60.0, max_kinds=64)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        # 100,000 kinds within one interval (a key a sender chose, had one slipped through).
        written = sum(
            limiter.admit(uuid.uuid4().hex, i * 0.0002) is not None for i in range(100_000)
        )
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(limiter) == 64 + 1, "64 kinds and the shared overflow"
    assert written == 64 + 1, "one line per remembered kind, one for all the others"
    assert after - before < 64 * 1024, f"{after - before} bytes kept for 100,000 keys"


def test_the_least_recently_used_kind_is_forgotten_once_its_interval_is_over() -> None:
    limiter = LogLimiter(interval_s=10.0, max_kinds=2)
    limiter.admit("old", 0.0)
    limiter.admit("used", 1.0)
    limiter.admit("used", 12.0)  # logged again at 12: fresh till 22
    assert limiter.admit("new", 12.0) == 0, "'old' is least recently used and past its interval"
    assert limiter.forgotten == 1
    assert len(limiter) == 2
    assert limiter.admit("used", 13.0) is None, "'used' was kept, within its interval"
    assert limiter.admit("old", 13.0) is not None, "'old' forgotten: a new kind again"


def test_a_full_table_of_fresh_kinds_sends_new_kinds_to_one_shared_line() -> None:
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("test.limit.overflow"), clock, 60.0, max_kinds=2)
    with _written(plain_formatter(), "test.limit.overflow") as stream:
        for kind in ("a", "b", "c", "d", "e"):
            limited.warning(kind, "event=probe kind_of=%s", kind)
        clock.now += 60.0
        limited.warning("f", "event=probe kind_of=%s", "f")
    lines = stream.getvalue().splitlines()
    assert [line.split("event=probe ")[1] for line in lines] == [
        "kind_of=a repeats=0",
        "kind_of=b repeats=0",
        "kind_of=c repeats=0 kind=overflow",
        # A minute on, the oldest kind makes room: f has a line of its own.
        "kind_of=f repeats=0",
    ]
    assert len(limited.limiter) == 3


def test_the_process_wide_max_kinds_follows_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_limit, "_max_kinds", DEFAULT_MAX_KINDS)
    monkeypatch.setattr(log_limit, "_interval_s", log_limit.DEFAULT_INTERVAL_S)
    monkeypatch.setattr(logging.getLogger(), "handlers", list(logging.getLogger().handlers))
    for name in ("", "amqtt", "transitions", "asyncio"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.getLogger(name).level)
    configure_logging("warning", 60.0, max_limited_kinds=3)
    limiter = LogLimiter()
    assert [limiter.admit(k, 0.0) for k in "abcd"] == [0, 0, 0, 0]
    assert len(limiter) == 3 + 1
    with pytest.raises(ValueError, match="at least one kind"):
        log_limit.set_max_kinds(0)


def test_the_config_bounds_max_limited_kinds() -> None:
    assert LoggingConfig().max_limited_kinds == DEFAULT_MAX_KINDS
    assert LoggingConfig(max_limited_kinds=1000).max_limited_kinds == 1000
    for bad in (0, 15, 65537):
        with pytest.raises(ValidationError, match="max_limited_kinds"):
            LoggingConfig(max_limited_kinds=bad)


def _fail(why: str) -> None:
    raise RuntimeError(why)


def test_an_exception_logs_one_traceback_per_kind_per_interval() -> None:
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("test.limit.traceback"), clock, 60.0)
    with _written(plain_formatter(), "test.limit.traceback") as stream:
        for _ in range(1000):
            try:
                _fail("a handler bug")
            except RuntimeError:
                limited.exception("handler_failed", "event=handler_failed message=%s", "x")
            clock.now += 0.01
        clock.now += 60.0
        try:
            _fail("a handler bug")
        except RuntimeError:
            assert limited.exception("handler_failed", "event=handler_failed message=%s", "x")
    text = stream.getvalue()
    assert text.count("Traceback (most recent call last)") == 2
    events = [line for line in text.splitlines() if "event=handler_failed" in line]
    assert [line.rsplit(" ", 1)[1] for line in events] == ["repeats=0", "repeats=999"]
    assert text.count("RuntimeError: a handler bug") == 2


# -- the formatters ----------------------------------------------------------------------------

HOSTILE_NAME = "make_coffee\n2026-12-01 21:00:00,000 level=ERROR logger=csbridge forged\x1b[2J"
CONTROLS = "".join(chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029])


@pytest.mark.parametrize("formatter", sorted(FORMATTERS))
def test_a_name_with_a_newline_and_esc_stays_on_its_line(formatter: str) -> None:
    with _written(FORMATTERS[formatter](), "test.limit.escape") as stream:
        logging.getLogger("test.limit.escape").warning(
            "event=inbound_rejected message=%s why=%s", HOSTILE_NAME, "bad\rname"
        )
    text = stream.getvalue()
    assert text.count("\n") == 1, text
    assert text.endswith("\n")
    assert "\x1b" not in text
    assert "\r" not in text
    assert "message=make_coffee\\n2026-12-01 21:00:00,000 level=ERROR" in text
    assert "forged\\x1b[2J why=bad\\rname" in text


@pytest.mark.parametrize("formatter", sorted(FORMATTERS))
def test_every_control_character_is_escaped(formatter: str) -> None:
    with _written(FORMATTERS[formatter](), "test.limit.escape") as stream:
        logging.getLogger("test.limit.escape").warning("event=probe value=%s", CONTROLS)
    line = stream.getvalue().removesuffix("\n")
    assert not any(c in line for c in CONTROLS), repr(line)
    assert "value=\\x00\\x01" in line
    assert "\\t\\n\\x0b\\x0c\\r" in line
    assert "\\x1b" in line
    assert "\\x7f\\x80" in line
    assert "\\x9f\\u2028\\u2029" in line


def test_escape_controls_leaves_printable_text_alone() -> None:
    text = "DE*CSB*E0001 Ünïcödé ⚡ \\n 'quoted'"
    assert escape_controls(text) == text


def _traceback_record(why: str) -> logging.LogRecord:
    try:
        _fail(why)
    except RuntimeError:
        return logging.LogRecord(
            "csbridge.bridge",
            logging.ERROR,
            __file__,
            1,
            "event=handler_failed",
            (),
            sys.exc_info(),
        )
    raise AssertionError("unreachable")


def test_a_traceback_in_a_terminal_keeps_its_lines_in_the_margin() -> None:
    record = _traceback_record("bad name\n2026-12-01 21:00:00,000 level=INFO forged\x1b]0;x\x07")
    text = plain_formatter().format(record)
    first, *rest = text.split("\n")
    assert "event=handler_failed" in first
    assert rest, text
    assert all(line.startswith(TRACEBACK_MARGIN) for line in rest), text
    assert f"{TRACEBACK_MARGIN}2026-12-01 21:00:00,000 level=INFO forged\\x1b]0;x\\x07" in rest
    assert "\x1b" not in text
    assert "\x07" not in text


def test_a_traceback_in_the_journal_is_one_line() -> None:
    record = _traceback_record("bad name\nforged\x1b[2J")
    text = journal_formatter().format(record)
    assert "\n" not in text
    assert "\x1b" not in text
    assert text.startswith("<3>level=ERROR logger=csbridge.bridge event=handler_failed | ")
    assert "RuntimeError: bad name | forged\\x1b[2J" in text


def test_a_traceback_cached_by_another_handler_is_formatted_afresh() -> None:
    record = _traceback_record("bad\x1b[2J")
    logging.Formatter().format(record)  # caches the unescaped traceback on the record
    assert record.exc_text is not None
    assert "\x1b" in record.exc_text
    assert "\x1b" not in plain_formatter().format(record)
