"""What every floor uses: the error base, counters and histograms, the rate-limited log, logging
set-up, and where the packaged files (schemas, examples, hal) live.

Imports nothing of csbridge.
"""

from __future__ import annotations

from csbridge.support.clock import Clock
from csbridge.support.counters import (
    DURATION_BOUNDS_S,
    Counted,
    Counters,
    Durations,
    MetricSpec,
    Timed,
)
from csbridge.support.errors import CsbridgeError
from csbridge.support.log_limit import RateLimitedLog
from csbridge.support.logging_setup import configure_logging
from csbridge.support.resources import example_config, resource_dir, schema_dir

__all__ = [
    "DURATION_BOUNDS_S",
    "Clock",
    "Counted",
    "Counters",
    "CsbridgeError",
    "Durations",
    "MetricSpec",
    "RateLimitedLog",
    "Timed",
    "configure_logging",
    "example_config",
    "resource_dir",
    "schema_dir",
]
