"""The station surface of issue 14 as the codecs see it: an authorization request goes out from
the station and its response comes back from Josev, each decoded only on the side it travels
to; Josev's date-time is written and read as its rule says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Final

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csbridge.messages import (
    AuthorizationRequest,
    AuthorizationResponse,
    Direction,
    EnvelopeCodec,
    InboundRejected,
    Message,
    RejectReason,
    SchemaRegistry,
    SchemaViolation,
    josev_date_time,
    parse_josev_date_time,
)
from tests.support import examples, load_fixture

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
