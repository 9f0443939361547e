"""The outgoing codec checks what it sends: the serialised bytes against the schema, and only
what this side may send at all (the bridge refusing to publish it:
tests/integration/test_outbound_guard.py)."""

from __future__ import annotations

import math

import pytest

from csbridge.messages.envelope import EnvelopeCodec, Message
from csbridge.messages.outbound import checked_payload
from csbridge.messages.payloads import CsStatusAndLimitsRequest, CsStatusAndLimitsResponse
from csbridge.messages.registry import Direction, SchemaRegistry, SchemaViolation
from tests.support import load_fixture


def test_codec_checks_the_serialised_bytes_not_the_python_object() -> None:
    """orjson turns NaN into null; only checking the bytes catches that."""
    codec = EnvelopeCodec(SchemaRegistry(), Direction.FROM_JOSEV, 65536)
    document = load_fixture("cs_status_and_limits_response_dc")
    document["data"]["evses"][0]["dc"]["max_current"] = math.nan
    message = Message(CsStatusAndLimitsResponse.from_json(document["data"]))
    with pytest.raises(SchemaViolation) as caught:
        codec.encode(message)
    assert caught.value.path == "$.data.evses[0].dc.max_current"


def test_codec_refuses_to_send_what_this_side_never_sends() -> None:
    codec = EnvelopeCodec(SchemaRegistry(), Direction.FROM_JOSEV, 65536)
    with pytest.raises(SchemaViolation):
        codec.encode(Message(CsStatusAndLimitsRequest()))


def test_what_cannot_be_serialised_is_refused_like_what_breaks_its_schema() -> None:
    with pytest.raises(SchemaViolation) as caught:
        checked_payload(SchemaRegistry(), "EverestFlag", {1, 2})
    assert (caught.value.schema, caught.value.rule) == ("EverestFlag", "json")
