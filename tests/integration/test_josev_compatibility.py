"""What Josev may legitimately send, through a real mosquitto: a request naming an EVSE the
station does not have is answered with its refusal (never left to Josev's timeout), a
meter_values request whose timestamp has no offset is answered, and an ev_rated_limits update
with negative values is taken while the EV's maximum voltage still clamps the setpoint."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import aiomqtt
import jsonschema
import orjson
import pytest

from csbridge.config import Config
from csbridge.service.station import Station
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from csbridge.tools.emulator import EmulatorError
from tests.support import ready_to_charge

DC = "DE*CSB*E0001"
NOWHERE = "DE*CSB*E9999"
NO_SUCH_EVSE = "no such EVSE at this station"

UNKNOWN_EVSE_ANSWERS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "cable_check",
        {"evse_id": NOWHERE, "cable_check_action": "start"},
        {"evse_id": NOWHERE, "cable_check_status": "finished", "isolation_level": "invalid"},
    ),
    (
        "cs_contactor_status",
        {"evse_id": NOWHERE},
        {"evse_id": NOWHERE, "status": "error", "info": NO_SUCH_EVSE},
    ),
    (
        "power_electronics_setpoint",
        {
            "evse_id": NOWHERE,
            "dc": {"voltage": 400.0, "charge_current": 10.0},
            "ev_limits": {"maximum_voltage": 500.0},
        },
        {"evse_id": NOWHERE, "status": "rejected"},
    ),
    ("stop_charging", {"evse_id": NOWHERE}, {"evse_id": NOWHERE, "status": "rejected"}),
    (
        "cp_pwm",
        {"evse_id": NOWHERE, "hlc": True, "error_state": False, "fault_state": False},
        {"evse_id": NOWHERE, "status": "error", "info": NO_SUCH_EVSE},
    ),
    (
        "cs_connector",
        {"evse_id": NOWHERE, "connector_id": 1, "action": "unlock"},
        {"evse_id": NOWHERE, "connector_id": 1, "status": "unknown", "info": NO_SUCH_EVSE},
    ),
    (
        "change_availability",
        {"operational_status": "inoperative", "evse_id": NOWHERE},
        {"status": "rejected"},
    ),
    (
        "process_authorized_token",
        {"token_type": "central", "id_token": "REMOTE-1", "evse_id": NOWHERE},
        {"status": "discarded", "evse_id": NOWHERE},
    ),
]


def _unknown(station: Station, name: str) -> int:
    return station.engine.counters.get("unknown_evse", name)


@pytest.mark.parametrize(
    ("name", "data", "answer"), UNKNOWN_EVSE_ANSWERS, ids=[c[0] for c in UNKNOWN_EVSE_ANSWERS]
)
async def test_a_request_for_an_unknown_evse_gets_its_refusal(
    station: Station,
    josev: JosevClient,
    caplog: pytest.LogCaptureFixture,
    name: str,
    data: dict[str, Any],
    answer: dict[str, Any],
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge")
    response = await josev.request(name, data, timeout=5)
    assert response.data == answer
    assert _unknown(station, name) == 1
    logged = [r.getMessage() for r in caplog.records if "event=unknown_evse" in r.getMessage()]
    assert logged == [f"event=unknown_evse message={name} evse_id='{NOWHERE}' repeats=0"]
    # Nothing happened to the EVSE the station does have.
    assert station.session.sessions[DC].machine.facts.operative
    josev.assert_no_problems()


async def test_a_flood_for_an_unknown_evse_is_answered_every_time_and_logged_once(
    station: Station, josev: JosevClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge")
    for _ in range(20):
        response = await josev.request("stop_charging", {"evse_id": NOWHERE}, timeout=5)
        assert response.data["status"] == "rejected"
    assert _unknown(station, "stop_charging") == 20
    logged = [r for r in caplog.records if "event=unknown_evse" in r.getMessage()]
    assert len(logged) == 1


async def test_meter_values_for_an_unknown_evse_is_logged_and_counted_not_answered(
    station: Station, josev: JosevClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The one request whose response has no status: an answer would be a made-up reading."""
    caplog.set_level(logging.WARNING, logger="csbridge")
    with pytest.raises(EmulatorError):
        await josev.request(
            "meter_values", {"evse_id": NOWHERE, "timestamp": "2026-12-01T10:00:00Z"}, timeout=1
        )
    assert _unknown(station, "meter_values") == 1
    assert any("message=meter_values" in r.getMessage() for r in caplog.records)
    josev.problems.clear()  # the emulator notes the missing answer: expected here


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-12-01T10:00:00",
        "2026-12-01t10:00:00.1",
        "2026-12-01T10:00:00.12z",
        "2026-13-45T99:99:99",
    ],
)
async def test_a_meter_values_request_without_offset_is_answered(
    station: Station, josev: JosevClient, stamp: str
) -> None:
    """Josev's date-time rule makes the offset optional (read as UTC) and checks the shape
    only; the answer's own timestamp has an offset and 3 fraction digits."""
    response = await josev.request("meter_values", {"evse_id": DC, "timestamp": stamp}, timeout=5)
    assert response.data["evse_id"] == DC
    sent = response.data["timestamp"]
    assert sent.endswith("Z")
    assert len(sent.rsplit(".", 1)[1]) == len("123Z")
    josev.assert_no_problems()


def _setpoint(voltage: float, current: float, ev_max: float) -> dict[str, Any]:
    return {
        "evse_id": DC,
        "dc": {"voltage": voltage, "charge_current": current},
        "ev_limits": {"maximum_voltage": ev_max},
    }


async def _rated_limits(
    raw_client: aiomqtt.Client, config: Config, station: Station, limits: dict[str, Any]
) -> None:
    """An ev_rated_limits update, published as Josev does, and taken by the station."""
    before = station.bridge.counters.get("inbound_accepted", "ev_rated_limits")
    message = {
        "id": str(uuid.uuid4()),
        "name": "ev_rated_limits",
        "type": "update",
        "data": {"evse_id": DC, "dc_rated_limits": limits},
    }
    await raw_client.publish(config.mqtt.request_topic, orjson.dumps(message), qos=1)
    await wait_until(
        lambda: station.bridge.counters.get("inbound_accepted", "ev_rated_limits") > before,
        5,
        "the EV's rated limits taken",
    )


async def test_negative_rated_limits_are_taken_and_the_evs_maximum_voltage_still_clamps(
    station: Station, josev: JosevClient, config: Config, raw_client: aiomqtt.Client
) -> None:
    await josev.boot(timeout=5)
    await ready_to_charge(station, josev, DC)
    await _rated_limits(
        raw_client,
        config,
        station,
        {
            "max_voltage": 420.0,
            "max_charge_current": 100.0,
            "max_discharge_power": -11000.0,
            "max_v2x_energy_request": -5000.0,
            "min_v2x_energy_request": -20000.0,
        },
    )
    assert station.bridge.counters.get("inbound_rejected", "schema") == 0
    answer = await josev.request("power_electronics_setpoint", _setpoint(480.0, 30.0, 500.0))
    assert answer.data["status"] == "accepted"
    assert station.devices.modules[(DC, "m1")].output_voltage == 420.0
    josev.assert_no_problems()


async def test_a_rated_maximum_voltage_a_clamp_cannot_use_is_ignored_not_obeyed(
    station: Station, josev: JosevClient, config: Config, raw_client: aiomqtt.Client
) -> None:
    """A negative maximum voltage (Josev's rules allow it) neither stops the session nor lets
    the setpoint past the EV's own limit in the request: that one still clamps."""
    await josev.boot(timeout=5)
    await ready_to_charge(station, josev, DC)
    await _rated_limits(raw_client, config, station, {"max_voltage": -1.0})
    answer = await josev.request("power_electronics_setpoint", _setpoint(480.0, 30.0, 450.0))
    assert answer.data["status"] == "accepted"
    assert station.devices.modules[(DC, "m1")].output_voltage == 450.0
    josev.assert_no_problems()


# -- the OCPP requests csbridge refuses ----------------------------------------------------------

_OCPP_VERSION = {"enum": ["ocpp1.6", "ocpp2.0.1", "ocpp2.1"]}
JOSEV_RESPONSE_RULES: dict[str, dict[str, Any]] = {
    # Josev's rules (mqtt_api v3.10.0) for the data of each response, written here from the
    # facts so the answers are held to them and not only to our own, narrower schemas.
    "set_variable_validate": {
        "type": "object",
        "required": ["result"],
        "additionalProperties": False,
        "properties": {"result": {"enum": ["accepted", "rejected"]}},
    },
    "generate_csr": {
        "type": "object",
        "required": ["status"],
        "additionalProperties": False,
        "properties": {"status": {"enum": ["accepted", "rejected"]}, "csr": {"type": "string"}},
    },
    "data_transfer": {
        "type": "object",
        "required": ["status"],
        "additionalProperties": False,
        "properties": {
            "status": {"enum": ["accepted", "rejected", "unknown_message_id", "unknown_vendor_id"]},
            "data": {},
        },
    },
    "ocpp_message": {
        "type": "object",
        "required": ["message_type", "ocpp_version"],
        "properties": {
            "ocpp_version": _OCPP_VERSION,
            "message_type": {"enum": ["CallResult", "CallError"]},
            "payload": {"type": "object"},
            "error_code": {"type": "string"},
            "error_description": {"type": "string", "maxLength": 255},
            "error_details": {"type": "object"},
        },
        "allOf": [
            {
                "if": {"properties": {"message_type": {"const": "CallResult"}}},
                "then": {"required": ["payload"]},
            },
            {
                "if": {"properties": {"message_type": {"const": "CallError"}}},
                "then": {"required": ["error_code", "error_description", "error_details"]},
            },
        ],
    },
}

OCPP_REFUSALS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "set_variable_validate",
        {
            "attribute_value": "30",
            "component": {"name": "EVSE", "evse_id": NOWHERE, "connector_id": 1},
            "variable": {"name": "Power", "instance": "Max"},
            "attribute_type": "MaxSet",
        },
        {"result": "rejected"},
    ),
    (
        "set_variable_validate",
        {"attribute_value": "", "component": {"name": "X"}, "variable": {"name": "Y"}},
        {"result": "rejected"},
    ),
    (
        "generate_csr",
        {
            "certificate_type": "v2g_certificate",
            "common_name": "CS-1",
            "organization_name": "Example",
            "country_name": "DE",
            "evse_id": DC,
            "algorithm": "ECDSA_SHA256",
        },
        {"status": "rejected"},
    ),
    ("data_transfer", {"vendor_id": "com.example"}, {"status": "unknown_vendor_id"}),
    (
        "data_transfer",
        {"vendor_id": "com.example", "message_id": "m1", "data": None},
        {"status": "unknown_vendor_id"},
    ),
    (
        "data_transfer",
        {"vendor_id": "", "data": [1, {"a": "b"}]},
        {"status": "unknown_vendor_id"},
    ),
    (
        "ocpp_message",
        {
            "ocpp_version": "ocpp2.0.1",
            "message_name": "SetChargingProfile",
            "payload": {"evseId": 1, "chargingProfile": {"id": 7}},
            "extra": "Josev's rule leaves the data open",
        },
        {
            "ocpp_version": "ocpp2.0.1",
            "message_type": "CallError",
            "error_code": "NotSupported",
            "error_description": "csbridge speaks no OCPP",
            "error_details": {},
        },
    ),
]


@pytest.mark.parametrize(
    ("name", "data", "answer"),
    OCPP_REFUSALS,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(OCPP_REFUSALS)],
)
async def test_an_ocpp_request_gets_its_refusal_at_once(
    station: Station,
    josev: JosevClient,
    caplog: pytest.LogCaptureFixture,
    name: str,
    data: dict[str, Any],
    answer: dict[str, Any],
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge")
    response = await josev.request(name, data, timeout=5)
    assert response.data == answer
    jsonschema.validate(response.data, JOSEV_RESPONSE_RULES[name])
    assert station.engine.counters.get("ocpp_refused", name) == 1
    logged = [r.getMessage() for r in caplog.records if "event=ocpp_refused" in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].startswith(f"event=ocpp_refused message={name} ")
    josev.assert_no_problems()


async def test_a_flood_of_ocpp_requests_is_answered_every_time_and_logged_once(
    station: Station, josev: JosevClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge")
    for _ in range(10):
        response = await josev.request("data_transfer", {"vendor_id": "v"}, timeout=5)
        assert response.data == {"status": "unknown_vendor_id"}
    assert station.engine.counters.get("ocpp_refused", "data_transfer") == 10
    assert len([r for r in caplog.records if "event=ocpp_refused" in r.getMessage()]) == 1
    josev.assert_no_problems()
