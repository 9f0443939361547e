"""Counters of what the bridge did with every message, by outcome and label."""

from __future__ import annotations

from collections import Counter


class Counters:
    """Monotonic counts keyed by (event, label); cheap enough for the hot path."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, event: str, label: str = "", amount: int = 1) -> None:
        self._counts[(event, label)] += amount

    def get(self, event: str, label: str = "") -> int:
        return self._counts[(event, label)]

    def total(self, event: str) -> int:
        return sum(count for (name, _), count in self._counts.items() if name == event)

    def snapshot(self) -> dict[str, int]:
        return {
            f"{event}{{{label}}}" if label else event: count
            for (event, label), count in sorted(self._counts.items())
        }
