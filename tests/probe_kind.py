"""A kind of request the station sends to Josev, for tests only: `station_probe`, request on
cs/josev and response on josev/cs, as `authorization` will travel. Its schemas live in a copy
of schemas/ made per test, and its classes join messages.PAYLOADS only for the test that asks
(through monkeypatch), so the production catalogue stays as it is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson
import pytest

from csbridge.messages import PAYLOADS, MessageType, Payload, SchemaRegistry
from csbridge.support import schema_dir

NAME = "station_probe"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeRequest(Payload):
    NAME = NAME
    TYPE = MessageType.REQUEST

    evse_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeResponse(Payload):
    NAME = NAME
    TYPE = MessageType.RESPONSE

    status: Literal["accepted", "rejected"]


def _schema(title: str, direction: str, message_type: str, data: dict[str, object]) -> bytes:
    return orjson.dumps(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://schemas.csbridge.invalid/{title}.json",
            "title": title,
            "x-direction": direction,
            "type": "object",
            "required": ["id", "name", "type", "data"],
            "additionalProperties": False,
            "properties": {
                "id": {"$ref": "Definitions.json#/$defs/messageId"},
                "name": {"const": NAME},
                "type": {"const": message_type},
                "data": data,
            },
        }
    )


def probe_registry(folder: Path, monkeypatch: pytest.MonkeyPatch) -> SchemaRegistry:
    """The production schemas and the probe's, in `folder`; the probe's classes in PAYLOADS
    until the test ends."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in schema_dir().glob("*.json"):
        (folder / path.name).write_bytes(path.read_bytes())
    request_data = {
        "type": "object",
        "required": ["evse_id"],
        "additionalProperties": False,
        "properties": {"evse_id": {"type": "string", "minLength": 1}},
    }
    response_data = {
        "type": "object",
        "required": ["status"],
        "additionalProperties": False,
        "properties": {"status": {"enum": ["accepted", "rejected"]}},
    }
    (folder / "StationProbeRequest.json").write_bytes(
        _schema("StationProbeRequest", "to_josev", "request", request_data)
    )
    (folder / "StationProbeResponse.json").write_bytes(
        _schema("StationProbeResponse", "from_josev", "response", response_data)
    )
    monkeypatch.setitem(PAYLOADS, (NAME, MessageType.REQUEST), ProbeRequest)
    monkeypatch.setitem(PAYLOADS, (NAME, MessageType.RESPONSE), ProbeResponse)
    return SchemaRegistry(folder)


def probe_response(message_id: str, status: str = "accepted") -> bytes:
    """Josev's answer to the probe with id `message_id`, as it would publish it."""
    document = {"id": message_id, "name": NAME, "type": "response", "data": {"status": status}}
    return orjson.dumps(document)
