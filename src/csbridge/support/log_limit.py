"""At most one log line per kind of fault per interval, carrying how many were held back.

A broker that stays away or a bus full of garbage repeats the same fault many times a second;
the journal gets the first line at once, then one line per interval with `repeats=N` (the
occurrences not logged since the last line). The counters keep the exact totals.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

DEFAULT_INTERVAL_S = 60.0
_interval_s = DEFAULT_INTERVAL_S


def set_repeat_interval(seconds: float) -> None:
    """From the config's logging.repeat_interval_s; every limiter without its own follows it."""
    global _interval_s  # noqa: PLW0603 - one process-wide logging setting, like the log level
    _interval_s = seconds


@dataclass(slots=True)
class LogLimiter:
    interval_s: float | None = None
    """None: the process-wide setting."""
    _last: dict[Hashable, float] = field(default_factory=dict)
    _held: dict[Hashable, int] = field(default_factory=dict)

    def admit(self, kind: Hashable, now: float) -> int | None:
        """None: stay quiet; else log now, and the number of lines held back since the last."""
        last = self._last.get(kind)
        interval_s = _interval_s if self.interval_s is None else self.interval_s
        if last is not None and now - last < interval_s:
            self._held[kind] = self._held.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._held.pop(kind, 0)


class RateLimitedLog:
    """A logger whose warnings and errors are limited per kind, each line ending `repeats=N`."""

    def __init__(
        self,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float | None = None,
    ) -> None:
        self._logger = logger
        self._clock = clock
        self._limiter = LogLimiter(interval_s)

    def warning(self, kind: Hashable, message: str, *args: object) -> bool:
        return self._emit(logging.WARNING, kind, message, args)

    def error(self, kind: Hashable, message: str, *args: object) -> bool:
        return self._emit(logging.ERROR, kind, message, args)

    def _emit(self, level: int, kind: Hashable, message: str, args: tuple[object, ...]) -> bool:
        """True when the line was written."""
        held = self._limiter.admit(kind, self._clock())
        if held is None:
            return False
        self._logger.log(level, f"{message} repeats=%d", *args, held)
        return True
