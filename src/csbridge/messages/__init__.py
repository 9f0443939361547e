"""Josev's messages on the wire: the schema registry (every file in schemas/), the envelope codec
that checks each message in and out, the one check of everything published, and the reasons a
message is rejected.

Imports support only.
"""

from __future__ import annotations

from csbridge.messages.envelope import (
    EnvelopeCodec,
    InboundRejected,
    Message,
    MessageType,
    RejectReason,
    check_document,
    decode_local,
    parse_json,
    rejected_by,
)
from csbridge.messages.outbound import checked_payload
from csbridge.messages.registry import Direction, SchemaRegistry, SchemaViolation

__all__ = [
    "Direction",
    "EnvelopeCodec",
    "InboundRejected",
    "Message",
    "MessageType",
    "RejectReason",
    "SchemaRegistry",
    "SchemaViolation",
    "check_document",
    "checked_payload",
    "decode_local",
    "parse_json",
    "rejected_by",
]
