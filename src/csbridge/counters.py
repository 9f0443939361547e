"""Counters of what the bridge did with every message, by outcome and label, and histograms of
how long it took. Both are read from another thread by the metrics endpoint (csbridge.metrics),
which is why the readers hand out copies."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field

DURATION_BOUNDS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
"""Upper bounds of the duration buckets: handling a message takes well under a millisecond when
all is well, so the resolution is there; a slow second still lands in a bucket of its own."""


@dataclass(slots=True)
class Durations:
    """One histogram: how many durations fell in each bucket (not cumulative; the last bucket is
    everything above the largest bound), and their sum."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BOUNDS_S) + 1))
    sum_s: float = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left puts a duration equal to a bound in that bound's bucket: Prometheus's `le`.
        self.buckets[bisect_left(DURATION_BOUNDS_S, seconds)] += 1
        self.sum_s += seconds


class Counters:
    """Monotonic counts keyed by (event, label); cheap enough for the hot path."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._durations: dict[tuple[str, str], Durations] = {}

    def add(self, event: str, label: str = "", amount: int = 1) -> None:
        self._counts[(event, label)] += amount

    def observe(self, event: str, label: str, seconds: float) -> None:
        """One duration into the histogram of (event, label)."""
        durations = self._durations.get((event, label))
        if durations is None:
            durations = self._durations[(event, label)] = Durations()
        durations.observe(seconds)

    def get(self, event: str, label: str = "") -> int:
        return self._counts[(event, label)]

    def total(self, event: str) -> int:
        return sum(count for (name, _), count in self._counts.items() if name == event)

    def counts(self) -> list[tuple[tuple[str, str], int]]:
        """Every count. list() of a dict's items is one C call under the GIL, so another thread
        gets a consistent copy while the event loop keeps adding keys."""
        return list(self._counts.items())

    def durations(self) -> list[tuple[tuple[str, str], Durations]]:
        """Every histogram, copied (see `counts`). Each copy's buckets are consistent, which
        Prometheus needs (the count is their total); its sum may miss the latest duration."""
        return [
            (key, Durations(list(durations.buckets), durations.sum_s))
            for key, durations in list(self._durations.items())
        ]

    def snapshot(self) -> dict[str, int]:
        return {
            f"{event}{{{label}}}" if label else event: count
            for (event, label), count in sorted(self._counts.items())
        }
