"""Candidate bounds from each source and the rule that picks the binding one."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass


class LimitSource(enum.StrEnum):
    """Which source binds a reported limit (in the spirit of Peblar's charge_current_limit_source).

    The declaration order is the tie-break: when two sources give the same bound, the earlier
    one is named, so the operator's and the outside world's limits are never hidden behind a
    coincidentally equal hardware figure.
    """

    SAFETY = "safety"
    """A safety or fault state (e-stop, isolation fault, malfunction) holds the EVSE at zero."""
    OPERATOR = "operator"
    """Disabled by the operator."""
    AVAILABILITY = "availability"
    """Taken out of service (change_availability inoperative)."""
    EXTERNAL = "external"
    """An external limit (site energy manager)."""
    TEMPERATURE = "temperature"
    """Thermal derating of the modules, the EVSE or the plug."""
    INSTALLATION = "installation"
    """The grid connection: power and current through the configured efficiency."""
    CABLE = "cable"
    """The connector and cable rating."""
    POOL = "pool"
    """A shared module pool's allocation: the modules allocated to the EVSE now (issue 18)."""
    MODULE_DROPOUT = "module_dropout"
    """The module stack, with at least one configured module missing (silent or faulted)."""
    HARDWARE = "hardware"
    """The hardware as rated: the whole module stack, the board, or the configured nameplate."""


_PRIORITY = {source: rank for rank, source in enumerate(LimitSource)}


@dataclass(frozen=True, slots=True)
class Bound:
    value: float
    source: LimitSource


def tightest_upper(bounds: Iterable[Bound]) -> Bound:
    """The lowest upper bound; ties go to the source declared first."""
    candidates = [b for b in bounds if not math.isnan(b.value)]
    if not candidates:
        return Bound(0.0, LimitSource.SAFETY)
    return min(candidates, key=lambda b: (b.value, _PRIORITY[b.source]))


def tightest_lower(bounds: Iterable[Bound]) -> Bound:
    """The highest lower bound; ties go to the source declared first."""
    candidates = [b for b in bounds if not math.isnan(b.value)]
    if not candidates:
        return Bound(0.0, LimitSource.HARDWARE)
    return max(candidates, key=lambda b: (b.value, -_PRIORITY[b.source]))
