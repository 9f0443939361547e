"""Kept for `from csbridge.station import Station` (docs/testing.md): the station now lives in
csbridge.service."""

from __future__ import annotations

from csbridge.service.station import Station

__all__ = ["Station"]
