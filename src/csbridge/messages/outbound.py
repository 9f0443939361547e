"""The one check every outgoing payload passes: Josev's messages, our limits reports, the EVerest
API's channels."""

from __future__ import annotations

from typing import Any

import orjson

from csbridge.messages.registry import SchemaRegistry, SchemaViolation


def checked_payload(registry: SchemaRegistry, title: str, value: Any) -> bytes:
    """`value` serialised, as long as those exact bytes, parsed back, pass schema `title`:
    nothing the serialiser changes (a NaN becoming null, say) slips past. SchemaViolation (a bug
    in the sender) otherwise."""
    try:
        payload = orjson.dumps(value)
    except orjson.JSONEncodeError as error:
        raise SchemaViolation(title, "$", "json", str(error)) from None
    registry.check(title, orjson.loads(payload))
    return payload
