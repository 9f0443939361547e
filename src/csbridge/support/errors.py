"""The one base of csbridge's own errors."""

from __future__ import annotations


class CsbridgeError(Exception):
    """Something csbridge refuses, with the reason in `reason` (as ocpp's OCPPError carries its
    code): an inbound message, an outgoing one that broke its schema, a configuration. `except
    CsbridgeError` catches all of them; each subclass keeps its own attributes and message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
