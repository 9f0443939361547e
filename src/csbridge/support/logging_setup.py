"""One line per event, key=value fields: readable in a terminal and in journald."""

from __future__ import annotations

import logging
import os
import sys

from csbridge.support.log_limit import DEFAULT_INTERVAL_S, set_repeat_interval

FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
JOURNAL_FORMAT = "<%(syslog_priority)d>level=%(levelname)s logger=%(name)s %(message)s"
"""Under systemd: journald stamps the time itself and reads the `<N>` prefix as the priority,
so `journalctl -p warning` finds our warnings."""

SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.syslog_priority = SYSLOG_PRIORITY.get(record.levelno, 6)
        # One event, one line: a traceback would otherwise become many journal entries.
        return super().format(record).replace("\n", " | ")


def configure_logging(level: str = "info", repeat_interval_s: float = DEFAULT_INTERVAL_S) -> None:
    set_repeat_interval(repeat_interval_s)
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter(JOURNAL_FORMAT))
    else:
        handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("amqtt", "transitions", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
