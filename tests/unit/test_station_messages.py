"""The station surface of issue 14 as the codecs and our own topics see it: an authorization
request goes out from the station and its response comes back from Josev, each decoded only on
the side it travels to; the token, simulate and limits-report topics' fixtures pass or fail
where they should; Josev's date-time is written and read as its rule says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csbridge.messages import (
    AuthorizationRequest,
    AuthorizationResponse,
    Direction,
    EnvelopeCodec,
    EvseSession,
    InboundRejected,
    LastStop,
    Message,
    RejectReason,
    SchemaRegistry,
    SchemaViolation,
    SessionAuthorization,
    TokenPresented,
    decode_local,
    josev_date_time,
    parse_josev_date_time,
)
from tests.support import examples, fixture_names, load_fixture

REGISTRY = SchemaRegistry()
LIMIT = 65536
STATION = EnvelopeCodec(REGISTRY, Direction.FROM_JOSEV, LIMIT)
"""The bridge's codec: receives what Josev sends."""
JOSEV = EnvelopeCodec(REGISTRY, Direction.TO_JOSEV, LIMIT)
"""The emulator's codec: receives what the station sends."""
DC = "DE*CSB*E0001"
CARD: Final = "04A2B9C1"
RFID: Final = "ISO14443"
FREE: Final = "no_authorization"
PLUG_AND_CHARGE: Final = "e_maid"
"""Token kinds and a card's number, not secrets: named once so no keyword below looks like a
password to the linter."""

# -- a request from the station, answered by Josev ---------------------------------------------


def test_the_station_decodes_josevs_authorization_response_and_not_its_own_request() -> None:
    response = orjson.dumps(load_fixture("authorization_response", "messages-session"))
    decoded = STATION.decode(response)
    assert isinstance(decoded.payload, AuthorizationResponse)
    assert decoded.payload.status == "accepted"
    assert decoded.data == load_fixture("authorization_response", "messages-session")["data"]
    request = orjson.dumps(load_fixture("authorization_request", "messages-session"))
    with pytest.raises(InboundRejected) as caught:
        STATION.decode(request)
    assert caught.value.reason is RejectReason.WRONG_DIRECTION


def test_the_emulator_decodes_the_stations_authorization_request_and_not_a_response() -> None:
    request = orjson.dumps(load_fixture("authorization_request", "messages-session"))
    decoded = JOSEV.decode(request)
    assert decoded.payload == AuthorizationRequest(token_type=RFID, id_token=CARD, evse_id=DC)
    response = orjson.dumps(load_fixture("authorization_response", "messages-session"))
    with pytest.raises(InboundRejected) as caught:
        JOSEV.decode(response)
    assert caught.value.reason is RejectReason.WRONG_DIRECTION


def test_one_authorization_exchange_end_to_end() -> None:
    """The station sends the request; Josev answers with the same id; each side encodes only
    what it sends and decodes only what it receives."""
    request = Message(AuthorizationRequest(token_type=FREE, evse_id=DC))
    on_the_wire = STATION.encode(request)
    received = JOSEV.decode(on_the_wire)
    assert received == request
    answer = Message(AuthorizationResponse(status="accepted", evse_id=DC), received.id)
    back = STATION.decode(JOSEV.encode(answer))
    assert back == answer
    assert back.id == request.id
    with pytest.raises(SchemaViolation, match="this side never sends that kind"):
        STATION.encode(answer)
    with pytest.raises(SchemaViolation, match="this side never sends that kind"):
        JOSEV.encode(request)


def test_the_station_never_sends_a_token_type_only_josev_names() -> None:
    request = Message(AuthorizationRequest(token_type=PLUG_AND_CHARGE, evse_id=DC))  # type: ignore[arg-type]
    with pytest.raises(SchemaViolation) as caught:
        STATION.encode(request)
    assert caught.value.path == "$.data.token_type"


# -- our own topics ----------------------------------------------------------------------------

LOCAL_VALID = "messages-session/local-topics"
LOCAL_INVALID = "invalid-session/local-topics"
SCHEMA_BY_PREFIX = {
    "token_presented": "TokenPresented",
    "simulation_command": "SimulationCommand",
    "evse_limits_report": "EvseLimitsReport",
}
"""A local fixture's file name starts with its schema's name in snake case."""


def _schema_of(name: str) -> str:
    (title,) = [
        title
        for prefix, title in SCHEMA_BY_PREFIX.items()
        if name == prefix or name.startswith(f"{prefix}_")
    ]
    return title


def _decode_local(name: str, folder: str) -> dict[str, Any]:
    payload = orjson.dumps(load_fixture(name, folder))
    return decode_local(REGISTRY, _schema_of(name), payload, LIMIT, name)


def test_every_local_schema_has_a_valid_and_an_invalid_fixture() -> None:
    for folder in (LOCAL_VALID, LOCAL_INVALID):
        assert {_schema_of(name) for name in fixture_names(folder)} == set(
            SCHEMA_BY_PREFIX.values()
        )


@pytest.mark.parametrize("name", fixture_names(LOCAL_VALID))
def test_valid_local_fixture_passes(name: str) -> None:
    assert _decode_local(name, LOCAL_VALID) == load_fixture(name, LOCAL_VALID)


LOCAL_FAILURES: dict[str, tuple[str, set[str]]] = {
    "token_presented_id_token_37_chars": ("$.id_token", {"maxLength"}),
    "token_presented_empty_id_token": ("$.id_token", {"minLength"}),
    "token_presented_e_maid": ("$.token_type", {"enum"}),
    "token_presented_missing_token_type": ("$", {"required"}),
    "token_presented_extra_key": ("$", {"additionalProperties"}),
    "simulation_command_unknown_action": ("$.action", {"enum"}),
    "simulation_command_ev_ready_extra_key": ("$", {"additionalProperties"}),
    "evse_limits_report_session_unknown_state": ("$.session.state", {"enum"}),
    "evse_limits_report_session_since_four_fraction_digits": ("$.session.since", {"pattern"}),
    "evse_limits_report_session_missing_connector_status": ("$.session", {"required"}),
    "evse_limits_report_session_extra_key": ("$.session", {"additionalProperties"}),
    "evse_limits_report_session_authorization_extra_key": (
        "$.session.authorization",
        {"additionalProperties"},
    ),
    "evse_limits_report_session_authorization_id_token_37_chars": (
        "$.session.authorization.id_token",
        {"maxLength"},
    ),
    "evse_limits_report_session_last_stop_reason_201_chars": (
        "$.session.last_stop.reason",
        {"maxLength"},
    ),
    "evse_limits_report_session_last_stop_without_at": ("$.session.last_stop", {"required"}),
    "evse_limits_report_session_unknown_lock": ("$.session.lock", {"enum"}),
    "evse_limits_report_session_unknown_charging_status": (
        "$.session.charging_status",
        {"enum"},
    ),
}


def test_every_invalid_local_fixture_has_an_expectation() -> None:
    assert set(fixture_names(LOCAL_INVALID)) == set(LOCAL_FAILURES)


@pytest.mark.parametrize("name", sorted(LOCAL_FAILURES))
def test_invalid_local_fixture_fails_where_and_why(name: str) -> None:
    where, rules = LOCAL_FAILURES[name]
    with pytest.raises(InboundRejected) as caught:
        _decode_local(name, LOCAL_INVALID)
    assert caught.value.reason is RejectReason.SCHEMA
    assert caught.value.where == where
    assert caught.value.why.split(":")[0] in rules


@pytest.mark.parametrize("action", ["plug_in", "ev_ready", "ev_pause", "unplug"])
def test_the_pilot_actions_need_no_module(action: str) -> None:
    assert REGISTRY.violation("SimulationCommand", {"action": action}) is None


@pytest.mark.parametrize("action", ["silence_module", "restore_module"])
def test_the_module_actions_still_name_their_module(action: str) -> None:
    violation = REGISTRY.violation("SimulationCommand", {"action": action})
    assert violation is not None
    assert violation.rule == "required"


def test_a_report_without_a_session_block_still_passes() -> None:
    """The block is optional: an EVSE without a session state machine reports as before."""
    report = load_fixture("evse_limits_report_session", LOCAL_VALID)
    del report["session"]
    assert REGISTRY.violation("EvseLimitsReport", report) is None


def test_the_typed_objects_read_and_write_the_fixtures() -> None:
    token = TokenPresented.from_json(load_fixture("token_presented", LOCAL_VALID))
    assert token == TokenPresented(id_token=CARD, token_type=RFID)
    report = load_fixture("evse_limits_report_session", LOCAL_VALID)
    session = EvseSession.from_json(report["session"])
    assert session.authorization == SessionAuthorization(
        status="accepted", token_type=RFID, id_token=CARD
    )
    assert session.to_json() == report["session"]


def test_a_session_block_built_in_code_passes_the_report_schema() -> None:
    report = load_fixture("evse_limits_report_session_minimal", LOCAL_VALID)
    stopped = datetime(2026, 12, 1, 11, 0, 0, 123456, tzinfo=UTC)
    report["session"] = EvseSession(
        state="finishing",
        since=josev_date_time(stopped),
        authorization=SessionAuthorization(status="deauthorized", token_type=PLUG_AND_CHARGE),
        last_stop=LastStop(reason="deauthorized by Josev", at=josev_date_time(stopped)),
        connector_status="occupied",
        charging_status="suspended_evse",
        lock="locked",
    ).to_json()
    assert REGISTRY.violation("EvseLimitsReport", report) is None
    assert report["session"]["since"] == "2026-12-01T11:00:00.123Z"


# -- Josev's date-time, written and read -------------------------------------------------------


def _passes_date_time(text: str) -> bool:
    document = load_fixture("authorization_response", "messages-session")
    document["data"]["cache_expiry_date_time"] = text
    return REGISTRY.violation("AuthorizationResponse", document) is None


def test_a_date_time_is_written_in_utc_with_milliseconds() -> None:
    plus_one = timezone(timedelta(hours=1))
    assert josev_date_time(datetime(2026, 12, 1, 11, 0, 0, 999999, plus_one)) == (
        "2026-12-01T10:00:00.999Z"
    )
    assert josev_date_time(datetime(2026, 12, 1, 10, 0)) == "2026-12-01T10:00:00.000Z"


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-12-01T10:00:00", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        ("2026-12-01t10:00:00.5z", datetime(2026, 12, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-12-01T11:00:00.12+01:00", datetime(2026, 12, 1, 10, 0, 0, 120000, tzinfo=UTC)),
        ("2026-13-45T99:99:99Z", None),
        ("2016-12-31T23:59:60Z", None),
        ("2026-12-01T10:00:00+99:00", None),
    ],
)
def test_a_date_time_is_read_as_an_aware_moment_or_none(text: str, moment: datetime | None) -> None:
    assert _passes_date_time(text), "every case is one Josev's rule lets through"
    assert parse_josev_date_time(text) == moment


@settings(max_examples=examples(500), deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)),
    offset_minutes=st.integers(-23 * 60 - 59, 23 * 60 + 59),
)
def test_what_is_written_passes_the_rule_and_reads_back(
    moment: datetime, offset_minutes: int
) -> None:
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    text = josev_date_time(aware)
    assert _passes_date_time(text), text
    read = parse_josev_date_time(text)
    assert read is not None
    assert read == aware - timedelta(microseconds=aware.microsecond % 1000)
