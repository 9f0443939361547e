"""The station's handlers for Josev's DC session messages: cable check, contactors, setpoints,
stop, CP PWM, meter values, and the updates the station pushes by itself.

Imports power, engine, limits, sources, messages and config.
"""

from __future__ import annotations

from csbridge.session.handlers import SessionHandlers

__all__ = [
    "SessionHandlers",
]
