"""At most one log line per kind per interval, with how many were held back."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass(slots=True)
class LogLimiter:
    interval_s: float = 60.0
    _last: dict[Hashable, float] = field(default_factory=dict)
    _held: dict[Hashable, int] = field(default_factory=dict)

    def admit(self, kind: Hashable, now: float) -> int | None:
        """None: stay quiet; else log now, and the number of lines held back since the last."""
        last = self._last.get(kind)
        if last is not None and now - last < self.interval_s:
            self._held[kind] = self._held.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._held.pop(kind, 0)
