"""At most one log line per kind of fault per interval, carrying how many were held back.

A broker that stays away or a bus full of garbage repeats the same fault many times a second;
the journal gets the first line at once, then one line per interval with `repeats=N` (the
occurrences not logged since the last line). The counters keep the exact totals.

A kind is a key from a closed set: (reason, message kind), a registry name, an enum, a
configured name; never a value a sender picks freely (a topic, an evse_id as received). The
table of kinds is bounded all the same (least recently used first out), so a key that slips
through costs lines, not memory: a kind is only forgotten once its interval has passed, and
while every kind in a full table is within its interval, new kinds share one `kind=overflow`
line. So each limiter writes at most (max_kinds + 1) lines per interval, whatever arrives.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

DEFAULT_INTERVAL_S = 60.0
DEFAULT_MAX_KINDS = 256
"""Well above the kinds that can arise (about 10 reasons times about 40 message names in the
busiest limiter, the bridge's, of which only a few ever occur together)."""
_interval_s = DEFAULT_INTERVAL_S
_max_kinds = DEFAULT_MAX_KINDS


def set_repeat_interval(seconds: float) -> None:
    """From the config's logging.repeat_interval_s; every limiter without its own follows it."""
    global _interval_s  # noqa: PLW0603 - one process-wide logging setting, like the log level
    _interval_s = seconds


def set_max_kinds(count: int) -> None:
    """From the config's logging.max_limited_kinds; every limiter without its own follows it."""
    if count < 1:
        raise ValueError(f"a limiter keeps at least one kind, not {count}")
    global _max_kinds  # noqa: PLW0603 - one process-wide logging setting, like the log level
    _max_kinds = count


@dataclass(slots=True)
class _Seen:
    logged_at: float
    held: int = 0


class LogLimiter:
    """Which occurrences of each kind are logged; at most max_kinds kinds (plus the shared
    overflow) are remembered."""

    def __init__(self, interval_s: float | None = None, max_kinds: int | None = None) -> None:
        if max_kinds is not None and max_kinds < 1:
            raise ValueError(f"a limiter keeps at least one kind, not {max_kinds}")
        self.interval_s = interval_s
        """None: the process-wide setting."""
        self.max_kinds = max_kinds
        """None: the process-wide setting."""
        self._kinds: OrderedDict[Hashable, _Seen] = OrderedDict()
        self._overflow: _Seen | None = None
        self.forgotten = 0
        """Kinds dropped from the table to make room (their repeats since the last line lost)."""

    def __len__(self) -> int:
        """Kinds remembered now, the overflow included."""
        return len(self._kinds) + (self._overflow is not None)

    def admit(self, kind: Hashable, now: float) -> int | None:
        """None: stay quiet; else log now, and the number of lines held back since the last."""
        held, _ = self.admit_kind(kind, now)
        return held

    def admit_kind(self, kind: Hashable, now: float) -> tuple[int | None, bool]:
        """`admit`, and whether the occurrence went to the shared overflow kind."""
        interval_s = _interval_s if self.interval_s is None else self.interval_s
        seen = self._kinds.get(kind)
        if seen is not None:
            self._kinds.move_to_end(kind)
            return _admit(seen, now, interval_s), False
        if not self._make_room(now, interval_s):
            if self._overflow is None:
                self._overflow = _Seen(now)
                return 0, True
            return _admit(self._overflow, now, interval_s), True
        self._kinds[kind] = _Seen(now)
        return 0, False

    def _make_room(self, now: float, interval_s: float) -> bool:
        """Room for one more kind: the least recently used goes once its interval is over
        (forgetting it then cannot add a line); False when the table is full of fresh kinds."""
        max_kinds = _max_kinds if self.max_kinds is None else self.max_kinds
        while len(self._kinds) >= max_kinds:
            oldest = next(iter(self._kinds.values()))
            # Above the bound only if it was lowered meanwhile: then the oldest go regardless.
            if len(self._kinds) == max_kinds and now - oldest.logged_at < interval_s:
                return False
            self._kinds.popitem(last=False)
            self.forgotten += 1
        return True


def _admit(seen: _Seen, now: float, interval_s: float) -> int | None:
    if now - seen.logged_at < interval_s:
        seen.held += 1
        return None
    held, seen.held, seen.logged_at = seen.held, 0, now
    return held


class RateLimitedLog:
    """A logger whose warnings and errors are limited per kind, each line ending `repeats=N`."""

    def __init__(
        self,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float | None = None,
        max_kinds: int | None = None,
    ) -> None:
        self._logger = logger
        self._clock = clock
        self.limiter = LogLimiter(interval_s, max_kinds)

    def warning(self, kind: Hashable, message: str, *args: object) -> bool:
        return self._emit(logging.WARNING, kind, message, args)

    def error(self, kind: Hashable, message: str, *args: object) -> bool:
        return self._emit(logging.ERROR, kind, message, args)

    def exception(self, kind: Hashable, message: str, *args: object) -> bool:
        """`error` with the traceback being handled: one traceback per kind per interval."""
        return self._emit(logging.ERROR, kind, message, args, traceback=True)

    def _emit(
        self,
        level: int,
        kind: Hashable,
        message: str,
        args: tuple[object, ...],
        *,
        traceback: bool = False,
    ) -> bool:
        """True when the line was written."""
        held, overflow = self.limiter.admit_kind(kind, self._clock())
        if held is None:
            return False
        shared = " kind=overflow" if overflow else ""
        line = f"{message} repeats=%d{shared}"
        if traceback:
            self._logger.log(level, line, *args, held, exc_info=True)
        else:
            self._logger.log(level, line, *args, held)
        return True
