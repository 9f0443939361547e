"""The session messages' schemas (cable check, contactor, setpoint, CP, meter values, faults,
Josev's session updates, and the station surface: authorization, process_authorized_token,
change_availability, cs_connector, connector_and_charging): every kind loads with its direction
in both backends, valid fixtures pass, invalid ones fail where and why they should, what we send
is closed and never null, what Josev sends is as open as Josev's own schemas (closed where
Josev's are), and both backends agree on thousands of mutations."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csbridge.messages.envelope import InboundRejected, RejectReason, check_document
from csbridge.messages.registry import (
    Backend,
    Direction,
    SchemaRegistry,
    fast_backend_available,
    schema_title,
)
from csbridge.support.resources import schema_dir
from tests.mutations import mutations
from tests.support import examples, fixture_names, load_fixture, schema_oracle, walk

VALID = "messages-session"
INVALID = "invalid-session"
ID_PREFIX = "https://schemas.csbridge.invalid/"
SHARED_DEFINITIONS = "SessionDefinitions"
STATION_DEFINITIONS = "StationDefinitions"

SESSION_KINDS: dict[tuple[str, str], Direction] = {
    ("cable_check", "request"): Direction.FROM_JOSEV,
    ("cs_contactor_status", "request"): Direction.FROM_JOSEV,
    ("power_electronics_setpoint", "request"): Direction.FROM_JOSEV,
    ("stop_charging", "request"): Direction.FROM_JOSEV,
    ("cp_pwm", "request"): Direction.FROM_JOSEV,
    ("meter_values", "request"): Direction.FROM_JOSEV,
    ("hlc_charging", "update"): Direction.FROM_JOSEV,
    ("slac_status", "update"): Direction.FROM_JOSEV,
    ("iso15118_state_info", "update"): Direction.FROM_JOSEV,
    ("transaction_status", "update"): Direction.FROM_JOSEV,
    ("ev_rated_limits", "update"): Direction.FROM_JOSEV,
    ("cable_check", "response"): Direction.TO_JOSEV,
    ("cs_contactor_status", "response"): Direction.TO_JOSEV,
    ("cs_contactor_status", "update"): Direction.TO_JOSEV,
    ("power_electronics_setpoint", "response"): Direction.TO_JOSEV,
    ("stop_charging", "response"): Direction.TO_JOSEV,
    ("cp_pwm", "response"): Direction.TO_JOSEV,
    ("meter_values", "response"): Direction.TO_JOSEV,
    ("meter_values", "update"): Direction.TO_JOSEV,
    ("cp_status", "update"): Direction.TO_JOSEV,
    ("hardware_fault", "update"): Direction.TO_JOSEV,
    ("service_status", "update"): Direction.FROM_JOSEV,
    ("authorization", "request"): Direction.TO_JOSEV,
    ("authorization", "response"): Direction.FROM_JOSEV,
    ("authorization", "update"): Direction.FROM_JOSEV,
    ("process_authorized_token", "request"): Direction.FROM_JOSEV,
    ("process_authorized_token", "response"): Direction.TO_JOSEV,
    ("change_availability", "request"): Direction.FROM_JOSEV,
    ("change_availability", "response"): Direction.TO_JOSEV,
    ("change_availability", "update"): Direction.TO_JOSEV,
    ("cs_connector", "request"): Direction.FROM_JOSEV,
    ("cs_connector", "response"): Direction.TO_JOSEV,
    ("connector_and_charging", "update"): Direction.TO_JOSEV,
}
CLOSED_BY_JOSEV = {
    ("authorization", "response"),
    ("authorization", "update"),
    ("process_authorized_token", "request"),
    ("change_availability", "request"),
}
"""Kinds Josev sends whose data Josev's own rules close (additionalProperties false): Josev never
sends a field they do not name, so ours are closed too. Every other kind Josev sends stays open."""
SESSION_TITLES = sorted(schema_title(name, kind) for name, kind in SESSION_KINDS)

FAST_MISSING = pytest.mark.skipif(not fast_backend_available(), reason="no jsonschema-rs wheel")
BACKENDS = [
    pytest.param(Backend.REFERENCE, id=str(Backend.REFERENCE)),
    pytest.param(Backend.FAST, id=str(Backend.FAST), marks=FAST_MISSING),
]
REGISTRIES: dict[Backend, SchemaRegistry] = {}


def _registry(backend: Backend) -> SchemaRegistry:
    if backend not in REGISTRIES:
        REGISTRIES[backend] = SchemaRegistry(backend=backend)
    return REGISTRIES[backend]


@pytest.fixture(scope="module", params=BACKENDS)
def registry(request: pytest.FixtureRequest) -> SchemaRegistry:
    backend: Backend = request.param
    return _registry(backend)


def _kind_of(document: dict[str, Any]) -> tuple[str, str]:
    return (document["name"], document["type"])


# -- the kinds and their files ---------------------------------------------------------------


def test_every_session_kind_loads_with_its_direction(registry: SchemaRegistry) -> None:
    for (name, message_type), direction in SESSION_KINDS.items():
        kind = registry.kind(name, message_type)
        assert kind is not None, (name, message_type)
        assert kind.title == schema_title(name, message_type)
        assert kind.direction is direction, kind.title
    for definitions in (SHARED_DEFINITIONS, STATION_DEFINITIONS):
        assert definitions in registry.titles()
        assert all(kind.title != definitions for kind in registry.kinds.values())


def test_session_schema_files_follow_the_conventions() -> None:
    for title in [*SESSION_TITLES, SHARED_DEFINITIONS, STATION_DEFINITIONS]:
        path = schema_dir() / f"{title}.json"
        assert path.is_file(), path
        schema = _registry(Backend.REFERENCE).raw[title]
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", title
        assert schema["$id"] == f"{ID_PREFIX}{title}.json", title
        assert schema["title"] == title
    for title in SESSION_TITLES:
        schema = _registry(Backend.REFERENCE).raw[title]
        assert schema["required"] == ["id", "name", "type", "data"], title
        assert schema["additionalProperties"] is False, title
        assert set(schema["properties"]) == {"id", "name", "type", "data"}, title
    assert "x-direction" not in _registry(Backend.REFERENCE).raw[SHARED_DEFINITIONS]
    assert "x-direction" not in _registry(Backend.REFERENCE).raw[STATION_DEFINITIONS]


def _resolve(ref: str, document: str, raw: dict[str, dict[str, Any]]) -> tuple[str, Any]:
    """`Definitions.json#/$defs/x` or `#/$defs/x`, read from `document`: (its title, the node)."""
    target, _, pointer = ref.partition("#")
    title = Path(target).stem if target else document
    node: Any = raw[title]
    for part in pointer.strip("/").split("/"):
        if part:
            node = node[part]
    return title, node


def _object_schemas(
    schema: Any, document: str, raw: dict[str, dict[str, Any]], seen: set[tuple[str, str]]
) -> Iterator[dict[str, Any]]:
    """Every subschema that describes an object's members, reachable from `schema` through
    $ref, properties, items and the combinators. `if`/`not` are conditions, not shapes."""
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        key = (document, schema["$ref"])
        if key not in seen:
            seen.add(key)
            target_document, target = _resolve(schema["$ref"], document, raw)
            yield from _object_schemas(target, target_document, raw, seen)
    if "properties" in schema or "patternProperties" in schema:
        yield schema
    children: list[Any] = []
    for keyword in ("properties", "patternProperties"):
        children.extend(schema.get(keyword, {}).values())
    for keyword in ("items", "additionalProperties", "then", "else"):
        children.append(schema.get(keyword))
    for keyword in ("anyOf", "allOf", "oneOf"):
        children.extend(schema.get(keyword, []))
    for child in children:
        yield from _object_schemas(child, document, raw, seen)


def _data_object_schemas(title: str) -> list[dict[str, Any]]:
    raw = _registry(Backend.REFERENCE).raw
    return list(_object_schemas(raw[title]["properties"]["data"], title, raw, set()))


@pytest.mark.parametrize(
    "title",
    [schema_title(*k) for k, d in SESSION_KINDS.items() if d is Direction.TO_JOSEV],
)
def test_what_we_send_is_closed_everywhere(title: str) -> None:
    objects = _data_object_schemas(title)
    assert objects, title
    for schema in objects:
        assert schema.get("additionalProperties") is False, (
            title,
            sorted(schema.get("properties", {})),
        )


@pytest.mark.parametrize(
    "title",
    [
        schema_title(*k)
        for k, d in SESSION_KINDS.items()
        if d is Direction.FROM_JOSEV and k not in CLOSED_BY_JOSEV
    ],
)
def test_what_josev_sends_stays_open_below_the_envelope(title: str) -> None:
    """Josev's own schemas are the only bound: a field a newer Josev adds must not make us
    ignore its message (no error frame exists; the request would just time out)."""
    objects = _data_object_schemas(title)
    assert objects, title
    for schema in objects:
        assert "additionalProperties" not in schema, (title, sorted(schema.get("properties", {})))


@pytest.mark.parametrize("kind", sorted(CLOSED_BY_JOSEV), ids="/".join)
def test_what_josev_closes_is_closed_everywhere(kind: tuple[str, str]) -> None:
    assert SESSION_KINDS[kind] is Direction.FROM_JOSEV
    objects = _data_object_schemas(schema_title(*kind))
    assert objects, kind
    for schema in objects:
        assert schema.get("additionalProperties") is False, (kind, sorted(schema["properties"]))


def test_every_session_kind_has_a_valid_fixture() -> None:
    names = set(fixture_names(VALID))
    for name, message_type in SESSION_KINDS:
        assert f"{name}_{message_type}" in names
    covered = {_kind_of(load_fixture(n, VALID)) for n in names}
    assert covered == set(SESSION_KINDS)


# -- valid fixtures ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", fixture_names(VALID))
def test_valid_fixture_passes(registry: SchemaRegistry, name: str) -> None:
    document = load_fixture(name, VALID)
    direction = SESSION_KINDS[_kind_of(document)]
    check_document(registry, document)
    check_document(registry, document, direction)


@pytest.mark.parametrize("name", fixture_names(VALID))
def test_valid_fixture_is_refused_travelling_the_other_way(
    registry: SchemaRegistry, name: str
) -> None:
    document = load_fixture(name, VALID)
    direction = SESSION_KINDS[_kind_of(document)]
    other = Direction.TO_JOSEV if direction is Direction.FROM_JOSEV else Direction.FROM_JOSEV
    with pytest.raises(InboundRejected) as caught:
        check_document(registry, document, other)
    assert caught.value.reason is RejectReason.WRONG_DIRECTION


# -- invalid fixtures --------------------------------------------------------------------------

SCHEMA = RejectReason.SCHEMA

# Each invalid fixture: how it is rejected, where, and which rules may report it.
EXPECTED_FAILURES: dict[str, tuple[RejectReason, str, set[str]]] = {
    "cable_check_response_finished_without_isolation_level": (SCHEMA, "$.data", {"required"}),
    "cable_check_response_isolation_level_unknown": (SCHEMA, "$.data.isolation_level", {"enum"}),
    "cable_check_response_sent_as_request": (SCHEMA, "$.data", {"required"}),
    "cable_check_request_unknown_action": (SCHEMA, "$.data.cable_check_action", {"enum"}),
    "power_electronics_setpoint_request_negative_current": (
        SCHEMA,
        "$.data.dc.charge_current",
        {"minimum"},
    ),
    "power_electronics_setpoint_request_dc_without_current_or_power": (
        SCHEMA,
        "$.data.dc",
        {"anyOf", "required"},
    ),
    "power_electronics_setpoint_request_without_ev_limits": (
        SCHEMA,
        "$.data",
        {"anyOf", "required"},
    ),
    "power_electronics_setpoint_response_status_ok": (SCHEMA, "$.data.status", {"enum"}),
    "cp_status_update_unknown_state": (SCHEMA, "$.data.state", {"enum"}),
    "cp_status_update_duty_cycle_101": (SCHEMA, "$.data.duty_cycle", {"maximum"}),
    "cp_status_update_connector_id_fraction": (SCHEMA, "$.data.connector_id", {"type"}),
    "cp_status_update_extra_data_key": (SCHEMA, "$.data", {"additionalProperties"}),
    "cp_status_update_extra_envelope_key": (
        RejectReason.ENVELOPE,
        "$",
        {"additionalProperties"},
    ),
    "cp_pwm_request_missing_hlc": (SCHEMA, "$.data", {"required"}),
    "cp_pwm_response_status_accepted": (SCHEMA, "$.data.status", {"enum"}),
    "cs_contactor_status_update_closing": (SCHEMA, "$.data.status", {"enum"}),
    "cs_contactor_status_response_info_null": (SCHEMA, "$.data.info", {"type"}),
    "stop_charging_response_missing_evse_id": (SCHEMA, "$.data", {"required"}),
    "hardware_fault_update_unknown_fault_name": (SCHEMA, "$.data.fault_name", {"enum"}),
    "hardware_fault_update_sent_as_request": (
        RejectReason.UNEXPECTED_TYPE,
        "$.name",
        {"no request named 'hardware_fault' is known"},
    ),
    "meter_values_update_missing_timestamp": (SCHEMA, "$.data", {"required"}),
    "meter_values_response_timestamp_not_rfc3339": (SCHEMA, "$.data.timestamp", {"pattern"}),
    "meter_values_response_timestamp_month_13": (SCHEMA, "$.data.timestamp", {"pattern"}),
    "meter_values_update_timestamp_trailing_newline": (
        SCHEMA,
        "$.data.timestamp",
        {"pattern", "not"},
    ),
    "meter_values_request_timestamp_six_fraction_digits": (
        SCHEMA,
        "$.data.timestamp",
        {"pattern", "maxLength"},
    ),
    "meter_values_update_timestamp_nine_fraction_digits": (
        SCHEMA,
        "$.data.timestamp",
        {"pattern", "maxLength"},
    ),
    "meter_values_response_timestamp_without_offset": (SCHEMA, "$.data.timestamp", {"pattern"}),
    "meter_values_response_power_factor_1_5": (SCHEMA, "$.data.power_factor", {"maximum"}),
    "meter_values_update_soc_null": (SCHEMA, "$.data.soc", {"type"}),
    "meter_values_update_soc_101": (SCHEMA, "$.data.soc", {"maximum"}),
    "hlc_charging_update_status_string": (SCHEMA, "$.data.status", {"type"}),
    "slac_status_update_unknown_status": (SCHEMA, "$.data.status", {"enum"}),
    "iso15118_state_info_update_unknown_session_status": (
        SCHEMA,
        "$.data.session_status",
        {"enum"},
    ),
    "iso15118_state_info_update_payment_option_unknown": (
        SCHEMA,
        "$.data.info.selected_payment_option",
        {"enum"},
    ),
    "transaction_status_update_unknown_status": (SCHEMA, "$.data.status", {"enum"}),
    "ev_rated_limits_update_without_limits": (SCHEMA, "$.data", {"anyOf", "required"}),
    # the station surface: one broken rule each
    "authorization_request_e_maid": (SCHEMA, "$.data.token_type", {"enum"}),
    "authorization_request_id_token_37_chars": (SCHEMA, "$.data.id_token", {"maxLength"}),
    "authorization_request_missing_token_type": (SCHEMA, "$.data", {"required"}),
    "authorization_request_extra_data_key": (SCHEMA, "$.data", {"additionalProperties"}),
    "authorization_response_expiry_four_fraction_digits": (
        SCHEMA,
        "$.data.cache_expiry_date_time",
        {"pattern"},
    ),
    "authorization_response_status_pending": (SCHEMA, "$.data.status", {"enum"}),
    "authorization_response_group_id_token_37_chars": (
        SCHEMA,
        "$.data.group_id_token",
        {"maxLength"},
    ),
    "authorization_response_extra_data_key": (SCHEMA, "$.data", {"additionalProperties"}),
    "authorization_update_missing_evse_id": (SCHEMA, "$.data", {"required"}),
    "authorization_update_unknown_token_type": (SCHEMA, "$.data.token_type", {"enum"}),
    "process_authorized_token_request_extra_data_key": (
        SCHEMA,
        "$.data",
        {"additionalProperties"},
    ),
    "process_authorized_token_request_missing_token_type": (SCHEMA, "$.data", {"required"}),
    "process_authorized_token_response_status_rejected": (SCHEMA, "$.data.status", {"enum"}),
    "change_availability_request_connector_id_fraction": (
        SCHEMA,
        "$.data.connector_id",
        {"type"},
    ),
    "change_availability_request_unknown_operational_status": (
        SCHEMA,
        "$.data.operational_status",
        {"enum"},
    ),
    "change_availability_response_extra_evse_id": (SCHEMA, "$.data", {"additionalProperties"}),
    "change_availability_update_connector_without_evse_id": (
        SCHEMA,
        "$.data",
        {"dependentRequired"},
    ),
    "change_availability_update_missing_operational_status": (SCHEMA, "$.data", {"required"}),
    "change_availability_update_extra_envelope_key": (
        RejectReason.ENVELOPE,
        "$",
        {"additionalProperties"},
    ),
    "cs_connector_request_unknown_action": (SCHEMA, "$.data.action", {"enum"}),
    "cs_connector_request_missing_connector_id": (SCHEMA, "$.data", {"required"}),
    "cs_connector_response_status_unlocking": (SCHEMA, "$.data.status", {"enum"}),
    "cs_connector_response_connector_id_string": (SCHEMA, "$.data.connector_id", {"type"}),
    "connector_and_charging_update_without_status": (SCHEMA, "$.data", {"anyOf", "required"}),
    "connector_and_charging_update_unknown_connector_status": (
        SCHEMA,
        "$.data.connector_status",
        {"enum"},
    ),
    "connector_and_charging_update_extra_data_key": (SCHEMA, "$.data", {"additionalProperties"}),
}


def test_every_invalid_fixture_has_an_expectation() -> None:
    assert set(fixture_names(INVALID)) == set(EXPECTED_FAILURES)


@pytest.mark.parametrize("name", sorted(EXPECTED_FAILURES))
def test_invalid_fixture_fails_where_and_why(registry: SchemaRegistry, name: str) -> None:
    reason, where, rules = EXPECTED_FAILURES[name]
    with pytest.raises(InboundRejected) as caught:
        check_document(registry, load_fixture(name, INVALID))
    assert caught.value.reason is reason
    assert caught.value.where == where
    assert caught.value.why.split(":")[0] in rules


# -- rules the fixtures alone do not pin down --------------------------------------------------


@pytest.mark.parametrize("level", ["invalid", "valid", "warning", "fault", "no_imd"])
def test_finished_cable_check_takes_every_isolation_level(
    registry: SchemaRegistry, level: str
) -> None:
    document = load_fixture("cable_check_response", VALID)
    document["data"]["isolation_level"] = level
    check_document(registry, document)


def test_ongoing_cable_check_may_carry_an_isolation_level(registry: SchemaRegistry) -> None:
    document = load_fixture("cable_check_response_ongoing", VALID)
    document["data"]["isolation_level"] = "valid"
    check_document(registry, document)


@pytest.mark.parametrize(
    "target", ["charge_current", "charge_power", "discharge_current", "discharge_power"]
)
def test_any_one_dc_target_is_enough(registry: SchemaRegistry, target: str) -> None:
    document = load_fixture("power_electronics_setpoint_request", VALID)
    document["data"]["dc"] = {target: 10.0}
    check_document(registry, document)


@pytest.mark.parametrize(
    "name",
    [
        "cs_connector_request",
        "cs_connector_response",
        "change_availability_update_connector",
        "connector_and_charging_update",
    ],
)
@pytest.mark.parametrize("connector_id", [1.5, 0, -2, 1e9])
def test_a_connector_id_josev_types_as_a_number_takes_any_number(
    registry: SchemaRegistry, name: str, connector_id: float
) -> None:
    """Only change_availability's request types it as an integer (its fixture with 1.5 fails)."""
    document = load_fixture(name, VALID)
    document["data"]["connector_id"] = connector_id
    check_document(registry, document)


PRESENTED_TOKEN_TYPES = ["ISO14443", "ISO15693", "key_code", "local", "no_authorization"]
PRESENTED_TOKEN_TYPES += ["mac_address"]
JOSEV_ONLY_TOKEN_TYPES = ["central", "e_maid"]


@pytest.mark.parametrize("token_type", PRESENTED_TOKEN_TYPES + JOSEV_ONLY_TOKEN_TYPES)
def test_the_station_names_only_presented_token_types_and_takes_all_of_josevs(
    registry: SchemaRegistry, token_type: str
) -> None:
    request = load_fixture("authorization_request", VALID)
    request["data"]["token_type"] = token_type
    if token_type in PRESENTED_TOKEN_TYPES:
        check_document(registry, request)
    else:
        with pytest.raises(InboundRejected):
            check_document(registry, request)
    for name, key in (
        ("authorization_update", "token_type"),
        ("process_authorized_token_request", "token_type"),
        ("authorization_response", "group_id_token_type"),
    ):
        document = load_fixture(name, VALID)
        document["data"][key] = token_type
        check_document(registry, document)


def test_josev_may_send_an_id_token_of_any_length(registry: SchemaRegistry) -> None:
    """Josev's rules bound group_id_token (36) but not id_token; only what we send is bound."""
    for name in ("authorization_update", "process_authorized_token_request"):
        document = load_fixture(name, VALID)
        document["data"]["id_token"] = "x" * 300
        check_document(registry, document)


GOOD_DATE_TIMES = [
    "2026-12-01T10:00:00",
    "2026-12-01t10:00:00z",
    "2026-12-01T10:00:00Z",
    "2026-12-01T10:00:00.1",
    "2026-12-01T10:00:00.12+01:00",
    "2026-12-01T10:00:00.123-09:30",
    "2026-13-45T99:99:99Z",
]
"""Josev's rule checks the shape only, so an impossible calendar date passes too (the reader
parses it: payloads.parse_josev_date_time)."""
BAD_DATE_TIMES = [
    "",
    "2026-12-01",
    "2026-12-01T10:00",
    "2026-12-01T10:00:00.1234Z",
    "2026-12-01T10:00:00.1234",
    "2026-12-01T10:00:00.Z",
    "2026-12-01 10:00:00Z",
    "2026-12-01T10:00:00+0100",
    "2026-12-01T10:00:00+01",
    "2026-12-01T10:00:00Zjunk",
    "2026-12-01T10:00:00Z\n",
    " 2026-12-01T10:00:00Z",
    "\u0662\u0660\u0662\u0666-12-01T10:00:00Z",
    "1764583200",
]


@pytest.mark.parametrize("stamp", GOOD_DATE_TIMES + BAD_DATE_TIMES)
def test_date_times_follow_josevs_rule(registry: SchemaRegistry, stamp: str) -> None:
    document = load_fixture("authorization_response", VALID)
    document["data"]["cache_expiry_date_time"] = stamp
    if stamp in GOOD_DATE_TIMES:
        check_document(registry, document)
    else:
        with pytest.raises(InboundRejected) as caught:
            check_document(registry, document)
        assert caught.value.where == "$.data.cache_expiry_date_time"


@pytest.mark.parametrize("name", fixture_names(VALID))
def test_null_is_never_a_value(registry: SchemaRegistry, name: str) -> None:
    """Optional fields are omitted, never null: for what we send, any leaf set to null is
    refused; for what Josev sends, every leaf a schema names is refused as null too."""
    document = load_fixture(name, VALID)
    direction = SESSION_KINDS[_kind_of(document)]
    for path, _ in walk(document["data"], "$.data"):
        if direction is Direction.FROM_JOSEV and path.startswith(OPEN_INBOUND_LEAVES):
            continue
        nulled = copy.deepcopy(document)
        _set(nulled, path, None)
        with pytest.raises(InboundRejected):
            check_document(registry, nulled)


# Leaves of inbound fixtures whose schema is deliberately open (see the schemas' descriptions):
# the reference gives no type for them. Josev strips None before sending, so null never comes.
OPEN_INBOUND_LEAVES = (
    "$.data.run_id",
    "$.data.info.selectedPaymentOption",
    "$.data.info.stop_action",
    "$.data.ac_rated_limits.",
    "$.data.dc_rated_limits.",
)


def _set(document: dict[str, Any], path: str, value: Any) -> None:
    """`path` as tests.support.walk writes it: keys joined by ".", list items as `key[i]`."""
    steps: list[str | int] = []
    for part in path.removeprefix("$.").split("."):
        key, *indexes = part.split("[")
        steps.append(key)
        steps.extend(int(index.rstrip("]")) for index in indexes)
    node: Any = document
    for step in steps[:-1]:
        node = node[step]
    node[steps[-1]] = value


INBOUND_FIXTURES = [
    n
    for n in fixture_names(VALID)
    if SESSION_KINDS[_kind_of(load_fixture(n, VALID))] is Direction.FROM_JOSEV
    and _kind_of(load_fixture(n, VALID)) not in CLOSED_BY_JOSEV
]
CLOSED_INBOUND_FIXTURES = [
    n for n in fixture_names(VALID) if _kind_of(load_fixture(n, VALID)) in CLOSED_BY_JOSEV
]


@pytest.mark.parametrize("name", INBOUND_FIXTURES)
def test_inbound_tolerates_fields_a_newer_josev_adds(registry: SchemaRegistry, name: str) -> None:
    document = load_fixture(name, VALID)
    document["data"]["field_from_a_newer_josev"] = {"any": ["thing"]}
    check_document(registry, document, Direction.FROM_JOSEV)


@pytest.mark.parametrize("name", CLOSED_INBOUND_FIXTURES)
def test_inbound_that_josev_closes_refuses_an_added_field(
    registry: SchemaRegistry, name: str
) -> None:
    document = load_fixture(name, VALID)
    document["data"]["field_from_a_newer_josev"] = 1
    with pytest.raises(InboundRejected) as caught:
        check_document(registry, document, Direction.FROM_JOSEV)
    assert (caught.value.where, caught.value.why.split(":")[0]) == (
        "$.data",
        "additionalProperties",
    )


GOOD_TIMESTAMPS = [
    "2026-11-23T10:15:30Z",
    "2026-11-23t10:15:30z",
    "2026-11-23T10:15:30+01:00",
    "2026-11-23T10:15:30-09:30",
    "2026-11-23T10:15:30.1Z",
    "2026-11-23T10:15:30.12+00:00",
    "2026-11-23T10:15:30.123-23:59",
    "2016-12-31T23:59:60Z",
]
"""What the station may send: RFC 3339 with an offset and at most 3 fraction digits."""
BAD_TIMESTAMPS = [
    "",
    "2026-11-23",
    "2026-11-23T10:15:30",
    "2026-11-23T10:15:30.123456",
    "2026-11-23T10:15:30.1234Z",
    "2026-11-23T10:15:30.123456+00:00",
    "2026-11-23T10:15:30.123456789-23:59",
    "2026-11-23 10:15:30Z",
    "2026-11-23T10:15Z",
    "2026-11-23T10:15:30+0100",
    "2026-11-23T10:15:30+01",
    "2026-11-23T24:00:00Z",
    "2026-00-23T10:15:30Z",
    "2026-11-32T10:15:30Z",
    "2026-11-23T10:15:30.Z",
    "2026-11-23T10:15:30.1234567890Z",
    "2026-11-23T10:15:30Z\n",
    "2026-11-23T10:15:30Z ",
    " 2026-11-23T10:15:30Z",
    "\u0662\u0660\u0662\u0666-11-23T10:15:30Z",
    "1763892930",
]
"""Refused in what the station sends: more than 3 fraction digits is wider than Josev's rule,
and a missing offset or an impossible date is narrower on purpose (we always know both)."""


@pytest.mark.parametrize("stamp", GOOD_TIMESTAMPS + BAD_TIMESTAMPS)
def test_timestamps_we_send_are_rfc_3339_with_at_most_3_fraction_digits(
    registry: SchemaRegistry, stamp: str
) -> None:
    for name in ("meter_values_response", "meter_values_update"):
        document = load_fixture(name, VALID)
        document["data"]["timestamp"] = stamp
        if stamp in GOOD_TIMESTAMPS:
            check_document(registry, document)
        else:
            with pytest.raises(InboundRejected) as caught:
                check_document(registry, document)
            assert caught.value.where == "$.data.timestamp"


@pytest.mark.parametrize("stamp", GOOD_DATE_TIMES + BAD_DATE_TIMES)
def test_a_meter_values_request_takes_every_date_time_josevs_rule_takes(
    registry: SchemaRegistry, stamp: str
) -> None:
    document = load_fixture("meter_values_request", VALID)
    document["data"]["timestamp"] = stamp
    if stamp in GOOD_DATE_TIMES:
        check_document(registry, document)
    else:
        with pytest.raises(InboundRejected) as caught:
            check_document(registry, document)
        assert caught.value.where == "$.data.timestamp"


# -- differential: both backends give the same verdict -----------------------------------------

needs_fast = pytest.mark.skipif(not fast_backend_available(), reason="no jsonschema-rs wheel here")

CORPUS = [load_fixture(n, VALID) for n in fixture_names(VALID)] + [
    load_fixture(n, INVALID) for n in fixture_names(INVALID)
]

ODD_VALUES: st.SearchStrategy[Any] = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        -1,
        1,
        1.0,
        1.5,
        -0.0,
        100,
        100.5,
        101,
        1e308,
        2**63,
        "",
        "x" * 38,
        "DE*CSB*E0001",
        "finished",
        "ongoing",
        "closed",
        "closing",
        "accepted",
        "valid",
        "no_imd",
        "B2",
        "E",
        "G",
        "EIM",
        "Idle",
        "matched",
        "2026-11-23T10:15:30Z",
        "2026-11-23T10:15:30Z\n",
        "2026-11-23t10:15:30.123456789-23:59",
        "2026-13-23T10:15:30Z",
        "2026-11-23 10:15:30Z",
        "2026-12-01T10:00:00",
        "2026-12-01T10:00:00.1234Z",
        "79ac862e-d0a7-4eef-98b5-c827be3bd669\n",
        "ISO14443",
        "e_maid",
        "central",
        "operative",
        "locked",
        "occupied",
        "charging",
        "0" * 37,
        [],
        {},
        {"l1": 1, "l2": 2, "l3": 3},
        {"charge_current": 10},
        {"maximum_voltage": 500},
    ]
)

ADDED_KEYS = st.sampled_from(
    [
        "extra",
        "evse_id",
        "id",
        "info",
        "status",
        "isolation_level",
        "timestamp",
        "soc",
        "duty_cycle",
        "selected_payment_option",
        "selectedPaymentOption",
        "ac",
        "dc",
        "ev_limits",
        "charge_current",
        "ev_max_voltage",
        "dc_rated_limits",
        "token_type",
        "id_token",
        "connector_id",
        "connector_status",
        "charging_status",
        "operational_status",
    ]
)


mutated = functools.partial(mutations, CORPUS, ODD_VALUES, ADDED_KEYS)


def _verdicts(backend: Backend, document: Any) -> dict[str, bool]:
    registry = _registry(backend)
    return {title: registry.violation(title, document) is None for title in registry.titles()}


def _reference_verdicts(document: Any) -> dict[str, bool]:
    return {title: validator.is_valid(document) for title, validator in schema_oracle().items()}


def _agree(document: Any) -> None:
    assert _verdicts(Backend.FAST, document) == _reference_verdicts(document)


@needs_fast
@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_backends_agree_on_fixtures(index: int) -> None:
    _agree(CORPUS[index])


@needs_fast
# The "thousands of mutations" the docstring promises: the same count under every profile.
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_backends_agree_on_mutations(document: Any) -> None:
    _agree(document)


TIMESTAMP_ALPHABET = st.sampled_from("0123456789-:.+TtZz \n\u0662")


@st.composite
def near_timestamps(
    draw: st.DrawFn, stamps: tuple[str, ...] = (*GOOD_TIMESTAMPS, *BAD_TIMESTAMPS)
) -> str:
    """Valid stamps with a few characters replaced, inserted or cut: where regex dialects split."""
    text = list(draw(st.sampled_from(stamps)))
    for _ in range(draw(st.integers(0, 3))):
        index = draw(st.integers(0, len(text)))
        operation = draw(st.sampled_from(["replace", "insert", "delete"]))
        if operation == "insert" or index == len(text):
            text.insert(index, draw(TIMESTAMP_ALPHABET))
        elif operation == "replace":
            text[index] = draw(TIMESTAMP_ALPHABET)
        else:
            del text[index]
    return "".join(text)


@needs_fast
@settings(max_examples=examples(1000), deadline=None)
@given(near_timestamps())
def test_backends_agree_on_timestamps(stamp: str) -> None:
    document = load_fixture("meter_values_update", VALID)
    document["data"]["timestamp"] = stamp
    verdicts = {
        backend: _registry(backend).violation("MeterValuesUpdate", document) is None
        for backend in (Backend.FAST, Backend.REFERENCE)
    }
    assert verdicts[Backend.FAST] == verdicts[Backend.REFERENCE], stamp


@needs_fast
@settings(max_examples=examples(1000), deadline=None)
@given(near_timestamps((*GOOD_DATE_TIMES, *BAD_DATE_TIMES)))
def test_backends_agree_on_josevs_date_times(stamp: str) -> None:
    document = load_fixture("authorization_response", VALID)
    document["data"]["cache_expiry_date_time"] = stamp
    verdicts = {
        backend: _registry(backend).violation("AuthorizationResponse", document) is None
        for backend in (Backend.FAST, Backend.REFERENCE)
    }
    assert verdicts[Backend.FAST] == verdicts[Backend.REFERENCE], stamp


def test_corpus_reaches_both_verdicts() -> None:
    """The corpus is no tautology: under their own kind's schema some pass and some fail."""
    registry = _registry(Backend.REFERENCE)
    verdicts: set[bool] = set()
    for document in CORPUS:
        kind = registry.kind(document["name"], document["type"])
        if kind is not None:
            verdicts.add(registry.violation(kind.title, document) is None)
    assert verdicts == {True, False}
