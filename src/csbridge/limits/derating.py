"""Thermal derating: piecewise-linear curves from a temperature to a current or power limit."""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeratingCurve:
    """Points (temperature in degC, limit) with rising temperatures; flat beyond both ends.

    A missing temperature is the worst case: the curve's lowest limit.
    """

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.points) < 2:
            raise ValueError("a derating curve needs at least two points")
        if not all(math.isfinite(t) and math.isfinite(v) for t, v in self.points):
            raise ValueError("derating curve points must be finite numbers")
        temperatures = [t for t, _ in self.points]
        if any(b <= a for a, b in itertools.pairwise(temperatures)):
            raise ValueError("derating curve temperatures must rise strictly")
        if any(limit < 0 for _, limit in self.points):
            raise ValueError("derating curve limits cannot be negative")

    @classmethod
    def of(cls, points: Sequence[Sequence[float]]) -> DeratingCurve:
        return cls(tuple((float(t), float(v)) for t, v in points))

    @property
    def floor(self) -> float:
        return min(limit for _, limit in self.points)

    def limit_at(self, temperature_c: float | None) -> float:
        if temperature_c is None or math.isnan(temperature_c):
            return self.floor
        temperatures = [t for t, _ in self.points]
        if temperature_c <= temperatures[0]:
            return self.points[0][1]
        if temperature_c >= temperatures[-1]:
            return self.points[-1][1]
        index = bisect_right(temperatures, temperature_c)
        (t0, v0), (t1, v1) = self.points[index - 1], self.points[index]
        interpolated = v0 + (v1 - v0) * (temperature_c - t0) / (t1 - t0)
        # Never above either neighbour, whatever the float rounding did.
        return min(max(interpolated, min(v0, v1)), max(v0, v1))
