"""Identification tokens: the Token a driver presents at an EVSE, in its canonical spelling
(whether a card reader or the station's token topic brought it), and the serial RFID reader.

Imports config and support.
"""

from __future__ import annotations

from csbridge.sources.rfid.lines import DEBOUNCE_S
from csbridge.sources.rfid.serial_reader import (
    ReaderCounts,
    SerialTokenReader,
    TokenCallback,
    require_pyserial,
    serial_readers,
)
from csbridge.sources.rfid.token import (
    TOKEN_TYPES,
    UID_BYTES,
    Token,
    TokenError,
    TokenType,
    canonical_id,
)

__all__ = [
    "DEBOUNCE_S",
    "TOKEN_TYPES",
    "UID_BYTES",
    "ReaderCounts",
    "SerialTokenReader",
    "Token",
    "TokenCallback",
    "TokenError",
    "TokenType",
    "canonical_id",
    "require_pyserial",
    "serial_readers",
]
