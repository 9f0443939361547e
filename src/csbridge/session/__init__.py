"""The station's handlers for Josev's DC session messages: cable check, contactors, setpoints,
stop, CP PWM, meter values, and the updates the station pushes by itself; EIM authorization
(free-vend, the local allowlist file, or Josev) per EVSE.

Imports power, engine, limits, sources, messages and config.
"""

from __future__ import annotations

from csbridge.session.allowlist import Allowlist, BadLine, ParsedAllowlist, parse_allowlist
from csbridge.session.authorization import (
    AuthorizationDecision,
    AuthorizationRequest,
    AuthorizationResult,
    Authorizer,
    build_authorizers,
)
from csbridge.session.handlers import SessionHandlers
from csbridge.session.machine import Event, State
from csbridge.session.reset import EXIT_RESET, Resets

__all__ = [
    "EXIT_RESET",
    "Allowlist",
    "AuthorizationDecision",
    "AuthorizationRequest",
    "AuthorizationResult",
    "Authorizer",
    "BadLine",
    "Event",
    "ParsedAllowlist",
    "Resets",
    "SessionHandlers",
    "State",
    "build_authorizers",
    "parse_allowlist",
]
