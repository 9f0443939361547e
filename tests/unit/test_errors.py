"""One base for csbridge's own errors, each with its reason; subclasses keep their attributes and
messages, so `except` clauses and log lines read as before."""

from __future__ import annotations

import pytest

from csbridge.config import ConfigError
from csbridge.messages import InboundRejected, RejectReason, SchemaViolation
from csbridge.support import CsbridgeError


def test_inbound_rejected_is_a_csbridge_error_with_its_reject_reason() -> None:
    error = InboundRejected(RejectReason.SCHEMA, "$.data.status", "enum: 'x'", "cable_check")
    assert isinstance(error, CsbridgeError)
    assert error.reason is RejectReason.SCHEMA
    assert (error.message, error.where, error.why) == ("cable_check", "$.data.status", "enum: 'x'")
    assert str(error) == "schema message=cable_check where=$.data.status why=enum: 'x'"


def test_schema_violation_is_a_csbridge_error_whose_reason_says_why() -> None:
    error = SchemaViolation("CpStatusUpdate", "$.data.state", "enum", "'G' is not one of [...]")
    assert isinstance(error, CsbridgeError)
    assert (error.schema, error.path, error.rule) == ("CpStatusUpdate", "$.data.state", "enum")
    assert error.reason == "'G' is not one of [...]"
    assert str(error) == "CpStatusUpdate: $.data.state: enum: 'G' is not one of [...]"


def test_config_error_is_a_csbridge_error_whose_reason_is_its_problems() -> None:
    error = ConfigError("station.toml", ["mqtt.broker: missing", "evse[0]: unknown key"])
    assert isinstance(error, CsbridgeError)
    assert (error.source, error.problems) == (
        "station.toml",
        ["mqtt.broker: missing", "evse[0]: unknown key"],
    )
    assert error.reason == "mqtt.broker: missing\nevse[0]: unknown key"
    assert str(error) == "station.toml: mqtt.broker: missing\nstation.toml: evse[0]: unknown key"


@pytest.mark.parametrize(
    "error",
    [
        InboundRejected(RejectReason.NOT_JSON, "$", "bad"),
        SchemaViolation("Envelope", "$", "type", "bad"),
        ConfigError("x", ["bad"]),
    ],
    ids=lambda error: type(error).__name__,
)
def test_one_except_catches_them_all(error: CsbridgeError) -> None:
    with pytest.raises(CsbridgeError) as caught:
        raise error
    assert caught.value.reason
