"""The rules this part changed, held to Josev's (section 9 of shared/reference/josev-mqtt-api.md):
ev_rated_limits takes any number Josev's rules take, date-times are read and written as Josev's
rule says (no offset: UTC; 1 to 3 fraction digits; T and Z in either case; never more than 3
digits out), the EV's rated maximum voltage ignores what a clamp cannot use, and every refusal
of a request for an unknown EVSE passes its response's schema."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from csbridge.messages import (
    CableCheckRequest,
    CpPwmRequest,
    CsConnectorRequest,
    CsContactorStatusRequest,
    EvLimits,
    EvRatedLimitsUpdate,
    Payload,
    PowerElectronicsSetpointRequest,
    SchemaRegistry,
    StopChargingRequest,
    check_document,
    josev_date_time,
    parse_josev_date_time,
)
from csbridge.messages.envelope import InboundRejected
from csbridge.session.handlers import EvseSession, _rated_max_voltage
from csbridge.session.machine import Machine
from csbridge.session.unknown_evse import (
    refuse_cable_check,
    refuse_change_availability,
    refuse_contactor_status,
    refuse_cp_pwm,
    refuse_cs_connector,
    refuse_setpoint,
    refuse_stop_charging,
)
from tests.support import load_fixture

REGISTRY = SchemaRegistry()
MESSAGE_ID = "79ac862e-d0a7-4eef-98b5-c827be3bd669"
LONGEST_EVSE_ID = "DE*CSB*E" + "9" * 29
"""37 characters: the longest evse_id the inbound schemas let through, echoed in a refusal."""


def _rated(block: str, limits: dict[str, Any], **data: Any) -> dict[str, Any]:
    document = load_fixture("ev_rated_limits_update", "messages-session")
    document["data"] = {"evse_id": "DE*CSB*E0001", block: limits, **data}
    return document


RATED_ACCEPTED: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("negative v2x energy requests", {"max_v2x_energy_request": -5000}, {}),
    ("negative min v2x energy request", {"min_v2x_energy_request": -20000.5}, {}),
    ("a negative max_* value", {"max_charge_current": -350, "max_voltage": 450}, {}),
    ("negative discharge limits", {"max_discharge_power": -11000}, {}),
    ("a negative max_voltage", {"max_voltage": -1}, {}),
    ("zero everywhere", {"max_voltage": 0, "min_voltage": 0, "target_soc": 0}, {}),
    ("a field a newer Josev adds", {"max_voltage": 450, "some_new_limit": {"x": 1}}, {}),
    ("a date-time departure_time", {"max_voltage": 450}, {"departure_time": "2026-12-01T18:00"}),
    ("a numeric departure_time", {"max_voltage": 450}, {"departure_time": -5}),
]
RATED_REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("neither block", {"evse_id": "DE*CSB*E0001"}, "$.data"),
    ("a block that is no object", {"evse_id": "DE*CSB*E0001", "dc_rated_limits": [450]}, ""),
    ("an evse_id over 37 characters", {"evse_id": "x" * 38, "dc_rated_limits": {}}, ""),
    ("departure_time null", {"evse_id": "E", "dc_rated_limits": {}, "departure_time": None}, ""),
]


@pytest.mark.parametrize("block", ["dc_rated_limits", "ac_rated_limits"])
@pytest.mark.parametrize(
    ("why", "limits", "data"), RATED_ACCEPTED, ids=[r[0] for r in RATED_ACCEPTED]
)
def test_ev_rated_limits_take_every_number_josevs_rules_take(
    block: str, why: str, limits: dict[str, Any], data: dict[str, Any]
) -> None:
    check_document(REGISTRY, _rated(block, limits, **data))


@pytest.mark.parametrize(("why", "data", "where"), RATED_REFUSED, ids=[r[0] for r in RATED_REFUSED])
def test_ev_rated_limits_refuse_what_josevs_rules_refuse(
    why: str, data: dict[str, Any], where: str
) -> None:
    document = load_fixture("ev_rated_limits_update", "messages-session")
    document["data"] = data
    with pytest.raises(InboundRejected) as caught:
        check_document(REGISTRY, document)
    assert caught.value.where.startswith(where or "$.data")


PARSED = [
    ("2026-12-01T10:00:00", datetime(2026, 12, 1, 10, tzinfo=UTC)),
    ("2026-12-01t10:00:00z", datetime(2026, 12, 1, 10, tzinfo=UTC)),
    ("2026-12-01T10:00:00.1", datetime(2026, 12, 1, 10, 0, 0, 100_000, tzinfo=UTC)),
    ("2026-12-01T10:00:00.12Z", datetime(2026, 12, 1, 10, 0, 0, 120_000, tzinfo=UTC)),
    (
        "2026-12-01T10:00:00.123+01:00",
        datetime(2026, 12, 1, 10, 0, 0, 123_000, tzinfo=timezone(timedelta(hours=1))),
    ),
    ("2026-12-01T10:00:00-09:30", datetime(2026, 12, 1, 19, 30, tzinfo=UTC)),
    ("2026-13-45T99:99:99Z", None),
]


@pytest.mark.parametrize(("text", "moment"), PARSED, ids=[p[0] for p in PARSED])
def test_josevs_date_times_are_read_without_an_offset_as_utc(
    text: str, moment: datetime | None
) -> None:
    parsed = parse_josev_date_time(text)
    assert parsed == moment
    if parsed is not None:
        assert parsed.tzinfo is not None


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 1, 10, 0, 0, 999_999, tzinfo=UTC),
        datetime(2026, 12, 1, 10, 0, 0, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
        datetime(2026, 12, 1, 10, 0, 0, 1),
    ],
)
def test_what_we_write_has_exactly_three_fraction_digits_and_z(moment: datetime) -> None:
    text = josev_date_time(moment)
    assert text.endswith("Z")
    assert len(text) == len("2026-12-01T10:00:00.000Z")
    assert parse_josev_date_time(text) == moment.replace(
        microsecond=moment.microsecond // 1000 * 1000,
        tzinfo=moment.tzinfo or UTC,
    )
    document = load_fixture("meter_values_update", "messages-session")
    document["data"]["timestamp"] = text
    check_document(REGISTRY, document)


def _session(limits: dict[str, Any] | None) -> EvseSession:
    session = EvseSession(Machine.start(dc=True, operative=True), datetime.now(UTC))
    if limits is not None:
        session.ev_rated_limits = EvRatedLimitsUpdate(evse_id="E", dc_rated_limits=limits)
    return session


@pytest.mark.parametrize(
    ("limits", "clamp"),
    [
        (None, math.inf),
        ({}, math.inf),
        ({"max_voltage": 420.0}, 420.0),
        ({"max_voltage": 420, "ev_max_voltage": 410.0}, 410.0),
        ({"max_voltage": 420.0, "max_v2x_energy_request": -5000}, 420.0),
        ({"max_voltage": -1.0}, math.inf),
        ({"max_voltage": 0}, math.inf),
        ({"max_voltage": True}, math.inf),
        ({"max_voltage": "420"}, math.inf),
        ({"max_voltage": -1.0, "ev_max_voltage": 430.0}, 430.0),
        ({"min_voltage": 150.0}, math.inf),
    ],
)
def test_the_rated_maximum_voltage_ignores_what_a_clamp_cannot_use(
    limits: dict[str, Any] | None, clamp: float
) -> None:
    assert _rated_max_voltage(_session(limits)) == clamp


REFUSALS: list[Payload] = [
    refuse_cable_check(CableCheckRequest(evse_id=LONGEST_EVSE_ID, cable_check_action="start")),
    refuse_contactor_status(CsContactorStatusRequest(evse_id=LONGEST_EVSE_ID)),
    refuse_setpoint(
        PowerElectronicsSetpointRequest(
            evse_id=LONGEST_EVSE_ID, ev_limits=EvLimits(maximum_voltage=500.0)
        )
    ),
    refuse_stop_charging(StopChargingRequest(evse_id=LONGEST_EVSE_ID)),
    refuse_cp_pwm(
        CpPwmRequest(evse_id=LONGEST_EVSE_ID, hlc=True, error_state=False, fault_state=False)
    ),
    refuse_cs_connector(
        CsConnectorRequest(evse_id=LONGEST_EVSE_ID, connector_id=2.5, action="lock")
    ),
    refuse_change_availability(),
]


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda p: type(p).__name__)
def test_every_unknown_evse_refusal_passes_its_schema_and_refuses(refusal: Payload) -> None:
    data = refusal.to_json()
    document = {"id": MESSAGE_ID, "name": refusal.NAME, "type": "response", "data": data}
    check_document(REGISTRY, document)
    status = data["isolation_level"] if "isolation_level" in data else data["status"]
    assert status in ("rejected", "error", "unknown", "invalid"), data
