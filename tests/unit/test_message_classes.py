"""The message classes against the schema catalogue: every kind has a class and every class a
kind, every property is a field (required where every message carries it, a class where the
schema names an object's properties, a mapping where it leaves the object open), and what the
station builds goes out byte for byte as before."""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from csbridge.config import Config
from csbridge.engine import LimitsEngine, cs_parameters_data
from csbridge.messages import (
    ABSENT,
    PAYLOADS,
    Absent,
    CableCheckResponse,
    CpPwmResponse,
    CpStatusUpdate,
    CsContactorStatusResponse,
    CsContactorStatusUpdate,
    CsParametersResponse,
    CsStatusAndLimitsRequest,
    CsStatusAndLimitsUpdate,
    Direction,
    EnvelopeCodec,
    EvseSession,
    EvseStatusAndLimits,
    HardwareFaultUpdate,
    Iso15118StateInfo,
    JsonObject,
    Message,
    MeterValuesResponse,
    Payload,
    PerPhase,
    PowerElectronicsSetpointResponse,
    SchemaRegistry,
    SchemaViolation,
    StopChargingResponse,
    TokenPresented,
    value_or,
)
from tests.support import fixture_names, load_fixture, station_config

REGISTRY = SchemaRegistry()
RAW = REGISTRY.raw
VALID_FOLDERS = ("messages", "messages-session")
ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def _resolve(schema: dict[str, Any], document: str) -> tuple[dict[str, Any], str]:
    """Follow $ref until a schema without one: (that schema, the title it lives in)."""
    while "$ref" in schema:
        target, _, pointer = schema["$ref"].partition("#")
        document = Path(target).stem if target else document
        node: Any = RAW[document]
        for part in pointer.strip("/").split("/"):
            node = node[part]
        schema = node
    return schema, document


def _required(schema: dict[str, Any]) -> set[str]:
    """What every instance carries: `required`, and what every anyOf branch requires too."""
    required = set(schema.get("required", []))
    branches = schema.get("anyOf", [])
    if branches:
        required |= set.intersection(*(set(branch.get("required", [])) for branch in branches))
    return required


def _without_absent(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, type(int | str)):
        kept = [argument for argument in typing.get_args(hint) if argument is not Absent]
        return kept[0] if len(kept) == 1 else typing.Union[tuple(kept)]  # noqa: UP007
    return hint


def _is_object_class(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, JsonObject)


def _check_object(
    cls: type[JsonObject], schema: dict[str, Any], document: str, where: str
) -> list[str]:
    """Every disagreement between a class and the object schema it stands for."""
    fields = {field.name: field for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    properties = schema.get("properties", {})
    problems = []
    if set(fields) != set(properties):
        problems.append(f"{where}: fields {sorted(fields)} != properties {sorted(properties)}")
    hints = typing.get_type_hints(cls)
    required = _required(schema)
    for name in set(fields) & set(properties):
        default = fields[name].default
        if (default is dataclasses.MISSING) != (name in required):
            problems.append(f"{where}.{name}: required {name in required}, default {default}")
        elif default is not dataclasses.MISSING and default is not ABSENT:
            problems.append(f"{where}.{name}: an optional field defaults to ABSENT")
        child, child_document = _resolve(properties[name], document)
        problems += _check_field(
            _without_absent(hints[name]), child, child_document, f"{where}.{name}"
        )
    return problems


def _check_field(hint: Any, schema: dict[str, Any], document: str, where: str) -> list[str]:
    if "properties" in schema:
        if not _is_object_class(hint):
            return [f"{where}: the schema names properties, {hint} is no class"]
        return _check_object(hint, schema, document, where)
    if schema.get("type") == "array":
        items, items_document = _resolve(schema["items"], document)
        (item,) = typing.get_args(hint) if typing.get_origin(hint) is Sequence else (None,)
        if "properties" in items and _is_object_class(item):
            return _check_object(item, items, items_document, f"{where}[]")
        return [f"{where}: {hint} for an array of {items}"]
    if schema.get("type") == "object":
        if typing.get_origin(hint) is not Mapping:
            return [f"{where}: an open object is a Mapping, not {hint}"]
        return []
    if _is_object_class(hint) or typing.get_origin(hint) is Mapping:
        return [f"{where}: {hint} for {schema}"]
    return []


# -- the catalogue -----------------------------------------------------------------------------


def test_every_kind_has_a_class_and_every_class_a_kind() -> None:
    assert set(PAYLOADS) == set(REGISTRY.kinds)
    # 38; 4 of reset and device_model; 6 maintenance kinds; 9 of service status and what Josev
    # tells; 8 of the OCPP requests refused (set_variable_validate, generate_csr, data_transfer,
    # ocpp_message, each request and response)
    assert len(PAYLOADS) == 65
    for (name, message_type), cls in PAYLOADS.items():
        assert (name, message_type) == (cls.NAME, cls.TYPE)
        assert REGISTRY.kinds[(name, message_type)].title == cls.__name__


@pytest.mark.parametrize("kind", sorted(PAYLOADS), ids="/".join)
def test_every_schema_property_is_a_field(kind: tuple[str, str]) -> None:
    cls = PAYLOADS[kind]
    title = REGISTRY.kinds[kind].title
    data, document = _resolve(RAW[title]["properties"]["data"], title)
    assert _check_object(cls, data, document, f"{title}.data") == []


# Our own topics' objects the session reads or writes: (class, the schema, where in it).
LOCAL_OBJECTS: list[tuple[type[JsonObject], str, tuple[str, ...]]] = [
    (TokenPresented, "TokenPresented", ()),
    (EvseSession, "EvseLimitsReport", ("properties", "session")),
]


@pytest.mark.parametrize(
    ("cls", "title", "pointer"), LOCAL_OBJECTS, ids=[cls.__name__ for cls, *_ in LOCAL_OBJECTS]
)
def test_local_topic_objects_match_their_schemas(
    cls: type[JsonObject], title: str, pointer: tuple[str, ...]
) -> None:
    node: Any = RAW[title]
    for part in pointer:
        node = node[part]
    schema, document = _resolve(node, title)
    assert _check_object(cls, schema, document, cls.__name__) == []
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen


CLASSES: list[type[Payload]] = sorted(PAYLOADS.values(), key=lambda cls: cls.__name__)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_classes_are_frozen_slotted_and_built_by_keyword(cls: type[Payload]) -> None:
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen
    assert "__slots__" in vars(cls)
    assert all(field.kw_only for field in dataclasses.fields(cls))


# -- decoding and encoding ---------------------------------------------------------------------


def _valid_fixtures() -> list[tuple[str, str]]:
    return [(folder, name) for folder in VALID_FOLDERS for name in fixture_names(folder)]


def _named_only(value: Any, schema: dict[str, Any], document: str) -> Any:
    """`value` without what its schema does not name (what an open schema lets through)."""
    schema, document = _resolve(schema, document)
    if isinstance(value, dict) and "properties" in schema:
        properties = schema["properties"]
        return {
            key: _named_only(child, properties[key], document)
            for key, child in value.items()
            if key in properties
        }
    if isinstance(value, list) and "items" in schema:
        return [_named_only(item, schema["items"], document) for item in value]
    return value


@pytest.mark.parametrize(("folder", "name"), _valid_fixtures())
def test_every_valid_fixture_decodes_into_its_class_and_back(folder: str, name: str) -> None:
    document = load_fixture(name, folder)
    kind = REGISTRY.kind(document["name"], document["type"])
    assert kind is not None
    message = EnvelopeCodec(REGISTRY, kind.direction, 65536).decode(orjson.dumps(document))
    assert type(message.payload) is PAYLOADS[(document["name"], document["type"])]
    assert message.id == document["id"]
    named = _named_only(document["data"], RAW[kind.title]["properties"]["data"], kind.title)
    assert message.as_json() == {**document, "data": named}
    receives_the_other_way = next(d for d in Direction if d is not kind.direction)
    sender = EnvelopeCodec(REGISTRY, receives_the_other_way, 65536)
    assert orjson.loads(sender.encode(message)) == {**document, "data": named}


def test_what_an_open_schema_lets_through_is_left_behind() -> None:
    document = load_fixture("iso15118_state_info_update_camel_case", "messages-session")
    codec = EnvelopeCodec(REGISTRY, Direction.FROM_JOSEV, 65536)
    info = codec.decode(orjson.dumps(document)).payload.info  # type: ignore[attr-defined]
    assert isinstance(info, Iso15118StateInfo)
    assert "selectedPaymentOption" in document["data"]["info"]
    assert info.selected_payment_option is ABSENT


def test_absent_is_left_out_and_null_only_where_a_schema_takes_it() -> None:
    info = Iso15118StateInfo(session_id="s", stop_action=None)
    assert info.to_json() == {"session_id": "s", "stop_action": None}
    assert not ABSENT
    assert value_or(info.evcc_id, "none") == "none"
    assert value_or(info.session_id, "none") == "s"


def test_from_data_refuses_what_is_no_message() -> None:
    with pytest.raises(SchemaViolation) as unknown:
        Message.from_data("make_coffee", "request", {})
    assert unknown.value.rule == "catalogue"
    with pytest.raises(SchemaViolation) as misfit:
        Message.from_data("cable_check", "request", {"evse_id": "E"})
    assert (misfit.value.schema, misfit.value.path) == ("CableCheckRequest", "$.data")
    message = Message.from_data("cs_status_and_limits", "request", {}, ID)
    assert message == Message(CsStatusAndLimitsRequest(), ID)


# -- byte for byte what the station sent before ------------------------------------------------


def _config() -> Config:
    return station_config("mqtt://127.0.0.1:1883", "unit")


def _bytes(message: Message) -> bytes:
    return EnvelopeCodec(REGISTRY, Direction.FROM_JOSEV, 65536).encode(message)


def _document(name: str, message_type: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps({"id": ID, "name": name, "type": message_type, "data": data})


def test_cs_parameters_go_out_as_the_engine_writes_them() -> None:
    data = cs_parameters_data(_config())
    typed = Message(CsParametersResponse.from_json(data), ID)
    assert _bytes(typed) == _document("cs_parameters", "response", data)


def test_status_and_limits_go_out_as_the_engine_writes_them() -> None:
    engine = LimitsEngine(_config())
    engine.evaluate()
    entries = engine.entries.values()
    evses = [EvseStatusAndLimits.from_json(entry) for entry in entries]
    typed = Message(CsStatusAndLimitsUpdate(evses=evses), ID)
    assert _bytes(typed) == _document("cs_status_and_limits", "update", {"evses": entries})


# What the session's dicts put on the wire before its answers were classes (captured from the
# bridge before the change, the id aside).
SESSION_ANSWERS: list[tuple[Payload, bytes]] = [
    (
        MeterValuesResponse(
            evse_id="E1",
            timestamp="2026-11-23T10:00:00.123Z",
            voltage=PerPhase(l1=0.0, l2=0.0, l3=0.0),
            current=PerPhase(l1=0.0, l2=0.0, l3=0.0),
            power_factor=1.0,
            frequency=50.0,
            total_active_energy_imported=0.0,
            total_reactive_energy_imported=0.0,
            dc_voltage=0.0,
            dc_current=0.0,
        ),
        b'"data":{"evse_id":"E1","timestamp":"2026-11-23T10:00:00.123Z","voltage":{"l1":0.0,'
        b'"l2":0.0,"l3":0.0},"current":{"l1":0.0,"l2":0.0,"l3":0.0},"power_factor":1.0,'
        b'"frequency":50.0,"total_active_energy_imported":0.0,"total_reactive_energy_imported":'
        b'0.0,"dc_voltage":0.0,"dc_current":0.0}}',
    ),
    (
        CableCheckResponse(evse_id="E1", cable_check_status="finished", isolation_level="no_imd"),
        b'"data":{"evse_id":"E1","cable_check_status":"finished","isolation_level":"no_imd"}}',
    ),
    (
        CableCheckResponse(evse_id="E1", cable_check_status="ongoing"),
        b'"data":{"evse_id":"E1","cable_check_status":"ongoing"}}',
    ),
    (
        CsContactorStatusResponse(evse_id="E1", status="error", info="no contactor feedback"),
        b'"data":{"evse_id":"E1","status":"error","info":"no contactor feedback"}}',
    ),
    (
        CpPwmResponse(evse_id="E1", status="error", info="no board to pass the PWM to"),
        b'"data":{"evse_id":"E1","status":"error","info":"no board to pass the PWM to"}}',
    ),
    (
        PowerElectronicsSetpointResponse(evse_id="E1", status="accepted"),
        b'"data":{"evse_id":"E1","status":"accepted"}}',
    ),
    (
        StopChargingResponse(evse_id="E1", status="accepted"),
        b'"data":{"evse_id":"E1","status":"accepted"}}',
    ),
    (
        CpStatusUpdate(evse_id="E1", connector_id=1, state="B2"),
        b'"data":{"evse_id":"E1","connector_id":1,"state":"B2"}}',
    ),
    (
        CsContactorStatusUpdate(evse_id="E1", status="closed"),
        b'"data":{"evse_id":"E1","status":"closed"}}',
    ),
    (
        HardwareFaultUpdate(evse_id="E1", component_name="m3", fault_name="other"),
        b'"data":{"evse_id":"E1","component_name":"m3","fault_name":"other"}}',
    ),
]


@pytest.mark.parametrize(("payload", "expected"), SESSION_ANSWERS, ids=lambda v: type(v).__name__)
def test_session_answers_go_out_as_before(payload: Payload, expected: bytes) -> None:
    head = f'{{"id":"{ID}","name":"{payload.NAME}","type":"{payload.TYPE}",'.encode()
    assert _bytes(Message(payload, ID)) == head + expected


def test_a_nan_built_into_a_class_is_still_caught_on_the_way_out() -> None:
    document = load_fixture("cs_status_and_limits_response_dc")
    document["data"]["evses"][0]["dc"]["max_power"] = math.nan
    message = Message.from_data("cs_status_and_limits", "update", document["data"], ID)
    with pytest.raises(SchemaViolation) as caught:
        _bytes(message)
    assert caught.value.path == "$.data.evses[0].dc.max_power"
