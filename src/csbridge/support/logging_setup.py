"""One line per event, key=value fields: readable in a terminal and in journald.

Whatever a message carries (a name, an evse_id or a topic as a sender wrote it) cannot start a
line of its own nor drive the terminal: every formatter escapes control characters (C0, DEL,
C1 and the Unicode line and paragraph separators) as `\\n`, `\\x1b`, `\\u2028`. A traceback
keeps its lines in a terminal, each after a `  | ` margin so none can pass for an event's line,
and becomes ` | `-joined in the journal.
"""

from __future__ import annotations

import logging
import os
import sys

from csbridge.support.log_limit import (
    DEFAULT_INTERVAL_S,
    DEFAULT_MAX_KINDS,
    set_max_kinds,
    set_repeat_interval,
)

FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
JOURNAL_FORMAT = "<%(syslog_priority)d>level=%(levelname)s logger=%(name)s %(message)s"
"""Under systemd: journald stamps the time itself and reads the `<N>` prefix as the priority,
so `journalctl -p warning` finds our warnings."""
TRACEBACK_MARGIN = "  | "
"""Before each line of a traceback in a terminal: an event's own line starts with its time."""

SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CONTROLS = [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]
_ESCAPED = {
    code: _NAMED.get(chr(code), f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in _CONTROLS
}
_ESCAPED_BUT_NEWLINE = {code: text for code, text in _ESCAPED.items() if code != ord("\n")}


def escape_controls(text: str) -> str:
    """`text` with every control character written out, so it stays on one line."""
    return text.translate(_ESCAPED)


class _EscapingFormatter(logging.Formatter):
    """The event's line escaped; its traceback and stack (escaped but for their own line
    breaks) joined by `join_lines`. Never the traceback text another handler cached on the
    record: that one was formatted without escaping."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = escape_controls(self.formatMessage(record))
        details = []
        if record.exc_info:
            details.append(self.formatException(record.exc_info))
        if record.stack_info:
            details.append(self.formatStack(record.stack_info))
        if not details:
            return line
        escaped = "\n".join(details).translate(_ESCAPED_BUT_NEWLINE)
        return line + self.join_lines(escaped.split("\n"))

    def join_lines(self, lines: list[str]) -> str:
        return "".join(f"\n{TRACEBACK_MARGIN}{line}" for line in lines)


class _JournalFormatter(_EscapingFormatter):
    def format(self, record: logging.LogRecord) -> str:
        record.syslog_priority = SYSLOG_PRIORITY.get(record.levelno, 6)
        return super().format(record)

    def join_lines(self, lines: list[str]) -> str:
        # One event, one line: a traceback would otherwise become many journal entries.
        return "".join(f" | {line}" for line in lines)


def plain_formatter() -> logging.Formatter:
    """For a terminal or a file: the time first, a traceback's lines in the margin."""
    return _EscapingFormatter(FORMAT)


def journal_formatter() -> logging.Formatter:
    """For journald (stderr under systemd): the priority prefix, one line per event."""
    return _JournalFormatter(JOURNAL_FORMAT)


def configure_logging(
    level: str = "info",
    repeat_interval_s: float = DEFAULT_INTERVAL_S,
    max_limited_kinds: int = DEFAULT_MAX_KINDS,
) -> None:
    set_repeat_interval(repeat_interval_s)
    set_max_kinds(max_limited_kinds)
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(journal_formatter())
    else:
        handler.setFormatter(plain_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("amqtt", "transitions", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
