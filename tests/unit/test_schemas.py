"""The schemas hold Josev's rules: valid fixtures pass, invalid ones fail where they should."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from csbridge.messages.envelope import InboundRejected, RejectReason, check_document
from csbridge.messages.registry import (
    Backend,
    Direction,
    SchemaRegistry,
    fast_backend_available,
    schema_title,
)
from csbridge.support.resources import schema_dir
from tests.support import fixture_names, load_fixture

BACKENDS = [Backend.REFERENCE] + ([Backend.FAST] if fast_backend_available() else [])


@pytest.fixture(scope="module", params=BACKENDS, ids=str)
def registry(request: pytest.FixtureRequest) -> SchemaRegistry:
    return SchemaRegistry(backend=request.param)


def test_every_message_kind_has_its_file_named_by_convention(registry: SchemaRegistry) -> None:
    expected = {
        ("cs_parameters", "request"): Direction.FROM_JOSEV,
        ("cs_parameters", "response"): Direction.TO_JOSEV,
        ("cs_status_and_limits", "request"): Direction.FROM_JOSEV,
        ("cs_status_and_limits", "response"): Direction.TO_JOSEV,
        ("cs_status_and_limits", "update"): Direction.TO_JOSEV,
    }
    for (name, message_type), direction in expected.items():
        kind = registry.kind(name, message_type)
        assert kind is not None, (name, message_type)
        assert kind.title == schema_title(name, message_type)
        assert kind.direction is direction


def test_schemas_declare_draft_2020_12(registry: SchemaRegistry) -> None:
    for title, schema in registry.raw.items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", title


@pytest.mark.parametrize("name", fixture_names("messages"))
def test_valid_fixture_passes(registry: SchemaRegistry, name: str) -> None:
    check_document(registry, load_fixture(name))


# Each invalid fixture with where it must be caught and which rule catches it.
EXPECTED_FAILURES = {
    "update_docs_example_partial": (
        "$.data.evses[0]",
        {"required", "additionalProperties", "anyOf"},
    ),
    "response_dc_bpt_without_dc": ("$.data.evses[0]", {"dependentRequired", "anyOf"}),
    "response_ac_bpt_nested_in_ac": ("$.data.evses[0].ac", {"additionalProperties"}),
    "response_isolation_status_null": ("$.data.evses[0].dc.isolation_status", {"enum"}),
    "response_missing_status_code": ("$.data.evses[0]", {"required"}),
    "response_dc_missing_ripple": ("$.data.evses[0].dc", {"required"}),
    "response_unknown_status_code": ("$.data.evses[0].status_code", {"enum"}),
    "response_number_as_string": ("$.data.evses[0].dc.max_current", {"type"}),
    "response_negative_max_power": ("$.data.evses[0].dc.max_power", {"minimum"}),
    "response_extra_envelope_key": ("$", {"additionalProperties"}),
    "response_empty_evses": ("$.data.evses", {"minItems"}),
    "parameters_number_of_evses_string": ("$.data.number_of_evses", {"type"}),
    "parameters_bpt_without_twin": (
        "$.data.parameters[0].connectors[0].services",
        {"dependentRequired", "anyOf"},
    ),
    "parameters_ac_service_with_dc_connector": (
        "$.data.parameters[1].connectors[0].services.ac.connector_type",
        {"enum"},
    ),
    "request_missing_id": ("$", {"required"}),
    "request_id_not_uuid": ("$.id", {"minLength", "pattern"}),
    "request_data_not_object": ("$.data", {"type"}),
}


def test_every_invalid_fixture_has_an_expectation() -> None:
    assert set(fixture_names("invalid")) == set(EXPECTED_FAILURES)


@pytest.mark.parametrize("name", sorted(EXPECTED_FAILURES))
def test_invalid_fixture_fails_where_and_why(registry: SchemaRegistry, name: str) -> None:
    where, rules = EXPECTED_FAILURES[name]
    with pytest.raises(InboundRejected) as caught:
        check_document(registry, load_fixture(name, "invalid"))
    assert caught.value.reason in (RejectReason.SCHEMA, RejectReason.ENVELOPE)
    assert caught.value.where == where
    assert caught.value.why.split(":")[0] in rules


def test_optional_fields_may_be_omitted(registry: SchemaRegistry) -> None:
    document = load_fixture("cs_status_and_limits_response_dc")
    for optional in ("current_reg_tolerance", "evse_power_ramp_limit", "isolation_status"):
        del document["data"]["evses"][0]["dc"][optional]
    check_document(registry, document)


def test_update_without_status_code_is_refused(registry: SchemaRegistry) -> None:
    document = load_fixture("cs_status_and_limits_update_dc")
    del document["data"]["evses"][0]["status_code"]
    with pytest.raises(InboundRejected):
        check_document(registry, document)


def test_bpt_alone_is_refused_in_updates_too(registry: SchemaRegistry) -> None:
    document = load_fixture("cs_status_and_limits_update_four_evses")
    del document["data"]["evses"][1]["ac"]
    with pytest.raises(InboundRejected) as caught:
        check_document(registry, document)
    assert caught.value.where == "$.data.evses[1]"


def test_direction_is_enforced() -> None:
    registry = SchemaRegistry()
    with pytest.raises(InboundRejected) as caught:
        check_document(
            registry, load_fixture("cs_status_and_limits_response_dc"), Direction.FROM_JOSEV
        )
    assert caught.value.reason is RejectReason.WRONG_DIRECTION


def test_every_kind_schema_pins_the_whole_envelope(registry: SchemaRegistry) -> None:
    """check_document accepts a message that passes its kind's schema without checking the
    envelope again: that holds only while every kind schema is at least as strict."""
    envelope = registry.raw["Envelope"]
    for (name, message_type), kind in registry.kinds.items():
        schema = registry.raw[kind.title]
        assert schema["type"] == "object", kind.title
        assert schema["additionalProperties"] is False, kind.title
        assert set(schema["required"]) >= set(envelope["required"]), kind.title
        properties = schema["properties"]
        assert set(properties) == set(envelope["properties"]), kind.title
        assert properties["id"] == {"$ref": "Definitions.json#/$defs/messageId"}, kind.title
        assert properties["name"] == {"const": name}, kind.title
        assert properties["type"] == {"const": message_type}, kind.title
        # and the constants are ones the envelope itself would take
        envelope_only = {"id": "0f8fad5b-d9cb-469f-a165-70867728950e", "data": {}}
        sample = {**envelope_only, "name": name, "type": message_type}
        assert registry.violation("Envelope", sample) is None, kind.title


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_every_schema_compiles(backend: Backend) -> None:
    """The station compiles a schema on its first use; here all of them, at once."""
    registry = SchemaRegistry(backend=backend)
    registry.compile_all()
    assert len(registry.titles()) == len(registry.raw)


def test_every_response_goes_back_the_way_its_request_came(registry: SchemaRegistry) -> None:
    """Most answers travel to Josev, but Josev answers the station's authorization request: a
    response's direction is read from its schema, never assumed from its type."""
    responses = {k: kind for k, kind in registry.kinds.items() if k[1] == "response"}
    assert responses
    for (name, _), kind in responses.items():
        request = registry.kind(name, "request")
        assert request is not None, kind.title
        assert request.direction is not kind.direction, kind.title
    authorization = registry.kind("authorization", "response")
    assert authorization is not None
    assert authorization.direction is Direction.FROM_JOSEV


def _schema_copy(tmp_path: Path) -> Path:
    copied = tmp_path / "schemas"
    shutil.copytree(schema_dir(), copied)
    return copied


def test_a_response_travelling_like_its_request_is_refused_at_load(tmp_path: Path) -> None:
    directory = _schema_copy(tmp_path)
    path = directory / "AuthorizationResponse.json"
    schema = orjson.loads(path.read_bytes())
    schema["x-direction"] = "to_josev"
    path.write_bytes(orjson.dumps(schema))
    with pytest.raises(ValueError, match="AuthorizationResponse travels to_josev like its request"):
        SchemaRegistry(directory)


def test_a_response_to_no_request_is_refused_at_load(tmp_path: Path) -> None:
    directory = _schema_copy(tmp_path)
    (directory / "AuthorizationRequest.json").unlink()
    with pytest.raises(ValueError, match="AuthorizationResponse answers no request"):
        SchemaRegistry(directory)
    assert SchemaRegistry(_schema_copy(tmp_path / "again")).kind("authorization", "request")
