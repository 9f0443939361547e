"""The station's handlers for Josev's DC session messages: cable check, contactors, setpoints,
stop, CP PWM, meter values, and the updates the station pushes by itself; EIM authorization
(free-vend, the local allowlist file, or Josev) per EVSE; what Josev says of its services,
clock, OCPP boot and websocket (session/services.py); the refusals of the OCPP requests
csbridge cannot carry out (session/ocpp_refusals.py); meter_values pushed during a transaction,
signed by an Eichrecht meter where the EVSE has one (session/meter_push.py); a shared module
pool's allocation and safe moves (session/pool.py).

Imports power, engine, limits, sources, messages, config and support.
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
from csbridge.session.meter_push import MeterPush, MeterReading, SigningMeter
from csbridge.session.ocpp_refusals import OcppRefusals
from csbridge.session.pool import PoolCoordinator, idle_allocation
from csbridge.session.reset import EXIT_RESET, Resets
from csbridge.session.services import JosevServices, ServiceView, status_word

__all__ = [
    "EXIT_RESET",
    "Allowlist",
    "AuthorizationDecision",
    "AuthorizationRequest",
    "AuthorizationResult",
    "Authorizer",
    "BadLine",
    "Event",
    "JosevServices",
    "MeterPush",
    "MeterReading",
    "OcppRefusals",
    "ParsedAllowlist",
    "PoolCoordinator",
    "Resets",
    "ServiceView",
    "SessionHandlers",
    "SigningMeter",
    "State",
    "build_authorizers",
    "idle_allocation",
    "parse_allowlist",
    "status_word",
]
