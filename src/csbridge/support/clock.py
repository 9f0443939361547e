"""The one clock type: every part that keeps time takes one, so tests and replay can drive it."""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds, monotonic (time.monotonic in service; a log's own clock in replay)."""
