"""The session messages' schemas (cable check, contactor, setpoint, CP, meter values, faults and
Josev's session updates): every kind loads with its direction in both backends, valid fixtures
pass, invalid ones fail where and why they should, what we send is closed and never null, what
Josev sends is as open as Josev's own schemas, and both backends agree on thousands of mutations."""

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
}
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
    assert SHARED_DEFINITIONS in registry.titles()
    assert all(kind.title != SHARED_DEFINITIONS for kind in registry.kinds.values())


def test_session_schema_files_follow_the_conventions() -> None:
    for title in [*SESSION_TITLES, SHARED_DEFINITIONS]:
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
    [schema_title(*k) for k, d in SESSION_KINDS.items() if d is Direction.FROM_JOSEV],
)
def test_what_josev_sends_stays_open_below_the_envelope(title: str) -> None:
    """Josev's own schemas are the only bound: a field a newer Josev adds must not make us
    ignore its message (no error frame exists; the request would just time out)."""
    objects = _data_object_schemas(title)
    assert objects, title
    for schema in objects:
        assert "additionalProperties" not in schema, (title, sorted(schema.get("properties", {})))


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
    "meter_values_request_naive_timestamp": (SCHEMA, "$.data.timestamp", {"pattern"}),
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
    "ev_rated_limits_update_negative_maximum": (
        SCHEMA,
        "$.data.dc_rated_limits.ev_max_charge_current",
        {"minimum"},
    ),
    "ev_rated_limits_update_without_limits": (SCHEMA, "$.data", {"anyOf", "required"}),
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
    parts = path.removeprefix("$.").split(".")
    node: Any = document
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


INBOUND_FIXTURES = [
    n
    for n in fixture_names(VALID)
    if SESSION_KINDS[_kind_of(load_fixture(n, VALID))] is Direction.FROM_JOSEV
]


@pytest.mark.parametrize("name", INBOUND_FIXTURES)
def test_inbound_tolerates_fields_a_newer_josev_adds(registry: SchemaRegistry, name: str) -> None:
    document = load_fixture(name, VALID)
    document["data"]["field_from_a_newer_josev"] = {"any": ["thing"]}
    check_document(registry, document, Direction.FROM_JOSEV)


GOOD_TIMESTAMPS = [
    "2026-11-23T10:15:30Z",
    "2026-11-23t10:15:30z",
    "2026-11-23T10:15:30+01:00",
    "2026-11-23T10:15:30-09:30",
    "2026-11-23T10:15:30.1Z",
    "2026-11-23T10:15:30.123456+00:00",
    "2026-11-23T10:15:30.123456789-23:59",
    "2016-12-31T23:59:60Z",
]
BAD_TIMESTAMPS = [
    "",
    "2026-11-23",
    "2026-11-23T10:15:30",
    "2026-11-23T10:15:30.123456",
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


@pytest.mark.parametrize("stamp", GOOD_TIMESTAMPS + BAD_TIMESTAMPS)
def test_timestamps_are_rfc_3339(registry: SchemaRegistry, stamp: str) -> None:
    for name in ("meter_values_request", "meter_values_update"):
        document = load_fixture(name, VALID)
        document["data"]["timestamp"] = stamp
        if stamp in GOOD_TIMESTAMPS:
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
        "79ac862e-d0a7-4eef-98b5-c827be3bd669\n",
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
def near_timestamps(draw: st.DrawFn) -> str:
    """Valid stamps with a few characters replaced, inserted or cut: where regex dialects split."""
    text = list(draw(st.sampled_from(GOOD_TIMESTAMPS + BAD_TIMESTAMPS)))
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
    document = load_fixture("meter_values_request", VALID)
    document["data"]["timestamp"] = stamp
    verdicts = {
        backend: _registry(backend).violation("MeterValuesRequest", document) is None
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
