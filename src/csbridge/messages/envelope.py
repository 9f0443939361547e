"""Bytes on the wire <-> validated messages, in the direction one side may receive or send.

Inbound: size bound, JSON, object, envelope, known kind, right direction, the kind's schema, and
only then the kind's typed payload. Outbound: outbound.checked_payload, the one check of what is
published.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from csbridge.messages.json_object import MessageType as MessageType  # noqa: PLC0414 - re-exported
from csbridge.messages.json_object import Payload
from csbridge.messages.outbound import checked_payload
from csbridge.messages.payloads import PAYLOADS
from csbridge.messages.registry import (
    ENVELOPE,
    Direction,
    SchemaRegistry,
    SchemaViolation,
    schema_title,
)
from csbridge.support import CsbridgeError


def new_message_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Message:
    """One Josev message: the envelope's id and the typed payload, whose class gives the name
    and type. `data` is the payload as JSON, for what handles any message (the emulator, tests).
    """

    payload: Payload
    id: str = field(default_factory=new_message_id)

    @property
    def name(self) -> str:
        return self.payload.NAME

    @property
    def type(self) -> MessageType:
        return self.payload.TYPE

    @property
    def data(self) -> dict[str, Any]:
        return self.payload.to_json()

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "type": self.type.value, "data": self.data}

    @classmethod
    def from_data(
        cls,
        name: str,
        message_type: MessageType | str,
        data: Mapping[str, Any],
        message_id: str | None = None,
    ) -> Message:
        """The way in for whoever holds a message as name, type and JSON data: SchemaViolation
        when no such kind exists or the data does not fit its class (no schema is checked here:
        encoding does that)."""
        kind = PAYLOADS.get((name, message_type))
        if kind is None:
            raise SchemaViolation(
                f"{name}/{message_type}", "$", "catalogue", "no message of that name and type"
            )
        try:
            payload = kind.from_json(data)
        except (KeyError, TypeError, AttributeError) as error:
            title = schema_title(name, message_type)
            raise SchemaViolation(
                title, "$.data", "shape", f"not a {kind.__name__}: {error}"
            ) from None
        return cls(payload, message_id or new_message_id())


class RejectReason(enum.StrEnum):
    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    ENVELOPE = "bad_envelope"
    UNKNOWN_MESSAGE = "unknown_message"
    UNKNOWN_EVSE = "unknown_evse"
    UNEXPECTED_TYPE = "unexpected_type"
    WRONG_DIRECTION = "wrong_direction"
    SCHEMA = "schema"


class InboundRejected(CsbridgeError):  # noqa: N818 - the outcome for one message, not a bug
    """An inbound payload that is not acted on: the reason, the message if known, where and why."""

    reason: RejectReason

    def __init__(self, reason: RejectReason, where: str, why: str, message: str = "?") -> None:
        super().__init__(reason, f"{reason} message={message} where={where} why={why}")
        self.message = message
        self.where = where
        self.why = why


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _rejected(reason: RejectReason, violation: SchemaViolation, message: str) -> InboundRejected:
    return InboundRejected(
        reason, violation.path, f"{violation.rule}: {_short(violation.reason)}", message
    )


def parse_json(payload: bytes, max_payload_bytes: int, message: str = "?") -> Any:
    """Size bound first (nothing large is parsed), then JSON: any JSON value."""
    if len(payload) > max_payload_bytes:
        raise InboundRejected(
            RejectReason.TOO_LARGE,
            "$",
            f"{len(payload)} bytes is above the {max_payload_bytes} byte limit",
            message,
        )
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise InboundRejected(RejectReason.NOT_JSON, "$", _short(str(error)), message) from None


def parse_object(payload: bytes, max_payload_bytes: int, message: str = "?") -> dict[str, Any]:
    """parse_json, and the value must be an object."""
    document = parse_json(payload, max_payload_bytes, message)
    if not isinstance(document, dict):
        raise InboundRejected(
            RejectReason.NOT_OBJECT,
            "$",
            f"a message is a JSON object, got {type(document).__name__}",
            message,
        )
    return document


def rejected_by(violation: SchemaViolation, message: str) -> InboundRejected:
    """A payload that broke its schema: where, which rule, why."""
    return _rejected(RejectReason.SCHEMA, violation, message)


def decode_local(
    registry: SchemaRegistry, title: str, payload: bytes, max_payload_bytes: int, message: str
) -> dict[str, Any]:
    """One of our own topics' payloads (no envelope), checked against schema `title`."""
    document = parse_object(payload, max_payload_bytes, message)
    violation = registry.violation(title, document)
    if violation is not None:
        raise _rejected(RejectReason.SCHEMA, violation, message)
    return document


def check_document(
    registry: SchemaRegistry, document: dict[str, Any], receives: Direction | None = None
) -> None:
    """Envelope, known kind, direction (when `receives` is given) and the kind's own schema."""
    raw_type = document.get("type")
    if isinstance(document.get("name"), str) and isinstance(raw_type, str):
        kind = registry.kind(document["name"], raw_type)
        if (
            kind is not None
            and (receives is None or kind.direction is receives)
            and registry.violation(kind.title, document) is None
        ):
            # Every kind's schema pins id, name, type and data with no other keys, so passing
            # it implies passing the envelope (tests/unit/test_schemas.py holds them to that): one
            # validation instead of two for every good message. A bad one takes the long way
            # below, which names the first rule it breaks.
            return
    raw_name = document.get("name")
    name = raw_name if isinstance(raw_name, str) else "?"
    violation = registry.violation(ENVELOPE, document)
    if violation is not None:
        raise _rejected(RejectReason.ENVELOPE, violation, name)
    kind = registry.kind(document["name"], document["type"])
    if kind is None:
        known = any(n == document["name"] for n, _ in registry.kinds)
        reason = RejectReason.UNEXPECTED_TYPE if known else RejectReason.UNKNOWN_MESSAGE
        raise InboundRejected(
            reason, "$.name", f"no {document['type']} named {name!r} is known", name
        )
    if receives is not None and kind.direction is not receives:
        raise InboundRejected(
            RejectReason.WRONG_DIRECTION,
            "$.type",
            f"{kind.title} travels {kind.direction}, not toward this side",
            name,
        )
    violation = registry.violation(kind.title, document)
    if violation is not None:
        raise _rejected(RejectReason.SCHEMA, violation, name)


class EnvelopeCodec:
    """Decodes what one side receives and encodes what it sends, both checked against schemas."""

    def __init__(
        self, registry: SchemaRegistry, receives: Direction, max_payload_bytes: int
    ) -> None:
        self.registry = registry
        self.receives = receives
        self.sends = (
            Direction.TO_JOSEV if receives is Direction.FROM_JOSEV else Direction.FROM_JOSEV
        )
        self.max_payload_bytes = max_payload_bytes

    def decode(self, payload: bytes) -> Message:
        document = parse_object(payload, self.max_payload_bytes)
        check_document(self.registry, document, self.receives)
        payload_class = PAYLOADS[(document["name"], document["type"])]
        return Message(payload_class.from_json(document["data"]), document["id"])

    def encode(self, message: Message) -> bytes:
        """Serialise and check; raises SchemaViolation instead of returning anything invalid."""
        return self.encode_document(message.as_json())

    def encode_document(self, document: Mapping[str, Any]) -> bytes:
        """`encode` for a message held as JSON, by a tool that sends whatever it is given (the
        emulator, as Josev, may send a field only a newer Josev knows): the same checks."""
        name, message_type = document.get("name"), document.get("type")
        kind = (
            self.registry.kind(name, message_type)
            if isinstance(name, str) and isinstance(message_type, str)
            else None
        )
        if kind is None or kind.direction is not self.sends:
            raise SchemaViolation(
                f"{name}/{message_type}", "$", "catalogue", "this side never sends that kind"
            )
        return checked_payload(self.registry, kind.title, document)
