"""Josev's service status and what Josev tells the driver and the station, through a real
mosquitto: the station asks about Josev's services after connecting and shows the answers in
`csbridge status`, the limits report and the metrics; only SLAC or ISO 15118 going down stops
a session; clock_sync, display_params, display_and_personal_msg, cost_updated, boot_status,
websocket_status and certificate_installation_status are accepted, and the three display kinds
appear retained on csbridge/<evse_id>/display; bad input is refused or ignored, never acted on.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import orjson
import pytest
from prometheus_client import generate_latest

from csbridge.config import Config
from csbridge.messages import SchemaRegistry, josev_date_time
from csbridge.protocol import Leaf
from csbridge.service.metrics import station_registry
from csbridge.service.station import Station
from csbridge.support import Counted
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from csbridge.tools.status_view import evse_text
from tests.support import parse, ready_to_charge, value

DC = "DE*CSB*E0001"
AC = "DE*CSB*E0002"
ASK_TIMEOUT_S = 0.5
NAME = "service_status"


@pytest.fixture
def config(config: Config) -> Config:
    """The tests' station (which asks nothing by default), asking as a station does by
    default, a question unanswered after half a second leaving its service unknown."""
    raw = config.model_dump(mode="json", exclude_none=True)
    raw["station"]["josev_services"] = {
        "ask": ["slac", "iso15118", "ocpp"],
        "timeout_s": ASK_TIMEOUT_S,
        "interval_s": 60.0,
    }
    return Config.model_validate(raw)


@pytest.fixture
def josev_without_ocpp(josev: JosevClient) -> JosevClient:
    """Josev Community: no OCPP service answers (set before the station starts)."""
    josev.service_answers["ocpp"] = None
    return josev


def _status(station: Station, service: str) -> str:
    return station.josev.services[service].status


def _stack_on(station: Station) -> bool:
    return any(station.devices.modules[(DC, n)].output_current for n in ("m1", "m2", "m3"))


def _setpoint(current: float) -> dict[str, Any]:
    return {
        "evse_id": DC,
        "dc": {"voltage": 400.0, "charge_current": current},
        "ev_limits": {"maximum_voltage": 800.0},
    }


async def _charging(station: Station, josev: JosevClient) -> None:
    await josev.boot(timeout=5)
    await ready_to_charge(station, josev, DC)
    answer = await josev.request("power_electronics_setpoint", _setpoint(90.0), timeout=5)
    assert answer.data["status"] == "accepted"
    await wait_until(lambda: _stack_on(station), 5, "the stack delivering")


async def _raw_update(
    raw_client: aiomqtt.Client, config: Config, name: str, data: Any, message_type: str = "update"
) -> None:
    """As a broken or hostile sender writes it: nothing checks it on the way."""
    message = {"id": str(uuid.uuid4()), "name": name, "type": message_type, "data": data}
    await raw_client.publish(config.mqtt.request_topic, orjson.dumps(message), qos=1)


def _rejected(station: Station) -> int:
    return station.bridge.counters.total(Counted.INBOUND_REJECTED)


def _accepted(station: Station, name: str) -> int:
    return station.bridge.counters.get(Counted.INBOUND_ACCEPTED, name)


async def _retained(josev: JosevClient, station: Station, evse_id: str, leaf: Leaf) -> Any:
    topic = station.bridge.local.topic(evse_id, leaf)
    return orjson.loads(await josev.first_message(topic, timeout=5))


# -- asking ------------------------------------------------------------------------------


async def test_the_station_asks_at_start_and_shows_the_answers(
    josev_without_ocpp: JosevClient, station: Station
) -> None:
    josev = josev_without_ocpp
    await wait_until(lambda: _status(station, "iso15118") == "ready", 5, "iso15118 answered")
    await wait_until(lambda: _status(station, "slac") == "ready", 5, "slac answered")
    await wait_until(
        lambda: station.josev.services["ocpp"].at is not None, 5, "the ocpp question timed out"
    )
    assert _status(station, "ocpp") == "unknown"
    asked = sorted(str(r.data["service"]) for r in josev.station_requests if r.name == NAME)
    assert asked == ["iso15118", "ocpp", "slac"]
    assert station.josev.services["iso15118"].software_version == "emulated"

    # the limits report (retained, as `csbridge status` reads it)
    def reported() -> dict[str, Any]:
        return dict(station.engine.reports.get(DC)["josev"]["services"])

    await wait_until(lambda: reported().get("ocpp", {}).get("at") is not None, 5, "the report")
    retained: list[dict[str, Any]] = []

    async def published() -> bool:
        retained.append(await _retained(josev, station, DC, Leaf.LIMITS))
        return retained[-1]["josev"]["services"]["ocpp"].get("at") is not None

    await wait_until(published, 5, "the report retained", every=0.1)
    report = retained[-1]
    services = report["josev"]["services"]
    assert {name: entry["status"] for name, entry in services.items()} == {
        "iso15118": "ready",
        "ocpp": "unknown",
        "slac": "ready",
    }
    assert services["iso15118"]["api_version"] == "3.10.0"
    assert "josev  iso15118 ready  ocpp unknown  slac ready" in evse_text(DC, report)

    families = parse(generate_latest(station_registry(station)).decode())
    metric = "csbridge_josev_service_status"
    assert value(families, metric, service="iso15118", status="ready") == 1
    assert value(families, metric, service="iso15118", status="error") == 0
    assert value(families, metric, service="ocpp", status="unknown") == 1
    # ocpp's silence is one counted, rate-limited unanswered request, nothing more
    assert station.bridge.counters.get(Counted.REQUEST_UNANSWERED, "service_status") >= 1
    assert josev.problems == []


async def test_an_answer_that_iso15118_is_in_error_stops_the_session(
    josev: JosevClient, station: Station
) -> None:
    await _charging(station, josev)
    josev.service_answers["iso15118"] = "error"
    await station.josev.ask_all()
    assert _status(station, "iso15118") == "error"
    await wait_until(lambda: not _stack_on(station), 5, "the stack switched off")


# -- Josev's unsolicited service_status --------------------------------------------------


@pytest.mark.parametrize(
    ("service", "status"),
    [("iso15118", "error"), ("slac", "stopping"), (None, "error")],
    ids=["iso15118-error", "slac-stopping", "no-service-error"],
)
async def test_the_services_that_run_sessions_going_down_stop_energy(
    josev: JosevClient, station: Station, service: str | None, status: str
) -> None:
    await _charging(station, josev)
    data: dict[str, Any] = {"status": status}
    if service is not None:
        data["service"] = service
    await josev.update("service_status", data)
    await wait_until(lambda: not _stack_on(station), 5, "the stack switched off")
    assert _status(station, service or "josev") == status


@pytest.mark.parametrize(
    ("service", "status"),
    [("ocpp", "error"), ("ocpp", "stopping"), ("smart_charging", "error"), ("gridcode", "error")],
)
async def test_other_services_going_down_change_nothing_else(
    josev: JosevClient, station: Station, service: str, status: str
) -> None:
    await _charging(station, josev)
    accepted = _accepted(station, "service_status")
    await josev.update("service_status", {"service": service, "status": status})
    await wait_until(lambda: _accepted(station, "service_status") > accepted, 5, "the update")
    await wait_until(
        lambda: (
            station.engine.reports.get(DC)["josev"]["services"].get(service, {}).get("status")
            == status
        ),
        5,
        "the report showing it",
    )
    assert _stack_on(station)
    assert station.session.sessions[DC].state.value == "charging"
    answer = await josev.request("power_electronics_setpoint", _setpoint(60.0), timeout=5)
    assert answer.data["status"] == "accepted"


# -- what Josev tells the driver -----------------------------------------------------------


async def test_display_kinds_appear_retained_on_the_display_topic(
    josev: JosevClient, station: Station
) -> None:
    rejected = _rejected(station)

    def displays() -> int:
        return station.bridge.counters.get(Counted.OUTBOUND_PUBLISHED, Leaf.DISPLAY)

    await josev.update("display_params", {"evse_id": DC, "present_soc": 42, "inlet_hot": False})
    await wait_until(lambda: displays() == 1, 5, "DC's display")
    # no evse_id: every EVSE's display
    await josev.update("cost_updated", {"total_cost": 3.5, "transaction_id": "t-1"})
    await wait_until(lambda: displays() == 3, 5, "both displays")
    await josev.update(
        "display_and_personal_msg", {"evse_id": AC, "message": {"content": "Welcome"}}
    )
    await wait_until(lambda: displays() == 4, 5, "AC's display")

    registry = SchemaRegistry()
    dc = await _retained(josev, station, DC, Leaf.DISPLAY)
    assert registry.violation("EvseDisplay", dc) is None
    assert dc["latest"] == "cost_updated"
    assert dc["display_params"]["data"] == {"evse_id": DC, "present_soc": 42, "inlet_hot": False}
    assert dc["cost_updated"]["data"] == {"total_cost": 3.5, "transaction_id": "t-1"}
    assert "display_and_personal_msg" not in dc
    ac = await _retained(josev, station, AC, Leaf.DISPLAY)
    assert ac["latest"] == "display_and_personal_msg"
    assert ac["display_and_personal_msg"]["data"]["message"] == {"content": "Welcome"}
    assert ac["cost_updated"]["data"]["total_cost"] == 3.5
    assert _rejected(station) == rejected


async def test_a_display_for_an_evse_the_station_lacks_is_shown_nowhere(
    josev: JosevClient, station: Station, caplog: pytest.LogCaptureFixture
) -> None:
    ignored = (Counted.JOSEV_NOTICE_IGNORED, "cost_updated/unknown_evse")
    await josev.update("cost_updated", {"evse_id": "DE*XXX*E9", "total_cost": 1.0})
    await josev.update("display_params", {"evse_id": "DE*XXX*E9", "present_soc": 1})
    await wait_until(lambda: station.bridge.counters.get(*ignored) == 1, 5, "counted")
    await wait_until(
        lambda: (
            station.bridge.counters.get(Counted.JOSEV_NOTICE_IGNORED, "display_params/unknown_evse")
            == 1
        ),
        5,
        "counted",
    )
    assert station.bridge.counters.get(Counted.OUTBOUND_PUBLISHED, Leaf.DISPLAY) == 0
    assert station.bridge.display.shown == {}
    assert "event=display_ignored message=cost_updated" in caplog.text


# -- what Josev tells the station ----------------------------------------------------------


async def test_station_updates_are_accepted_and_shown(josev: JosevClient, station: Station) -> None:
    rejected = _rejected(station)
    ahead = datetime.now(UTC) + timedelta(seconds=30)
    await josev.update("clock_sync", {"current_time": josev_date_time(ahead)})
    await josev.update("boot_status", {"status": "Accepted", "interval": 300})
    await josev.update("websocket_status", {"status": "connected"})
    await josev.update("certificate_installation_status", {"status": "Accepted"})
    names = ("clock_sync", "boot_status", "websocket_status", "certificate_installation_status")
    await wait_until(lambda: all(_accepted(station, n) == 1 for n in names), 5, "all accepted")
    assert _rejected(station) == rejected
    offset = station.josev.clock_offset_s
    assert offset is not None
    assert 25.0 < offset <= 30.0

    await wait_until(
        lambda: "websocket_status" in station.engine.reports.get(DC)["josev"], 5, "the report"
    )
    block = station.engine.reports.get(DC)["josev"]
    assert block["boot_status"]["data"] == {"status": "Accepted", "interval": 300}
    assert block["clock_offset_s"] == offset
    line = evse_text(DC, station.engine.reports.get(DC))
    assert f"boot Accepted  websocket connected  clock {offset:+.1f} s" in line

    families = parse(generate_latest(station_registry(station)).decode())
    assert value(families, "csbridge_josev_status", kind="boot_status", status="Accepted") == 1
    assert (
        value(families, "csbridge_josev_status", kind="websocket_status", status="connected") == 1
    )
    assert value(families, "csbridge_josev_clock_offset_seconds") == offset


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("clock_sync", {}, "schema"),
        ("clock_sync", {"current_time": "yesterday"}, "schema"),
        ("clock_sync", {"current_time": "2026-12-01T10:00:00.1234Z"}, "schema"),
        ("display_params", {"present_soc": 40}, "schema"),
        ("display_params", {"evse_id": 1}, "schema"),
        ("cost_updated", [1, 2], "bad_envelope"),
        ("boot_status", "Accepted", "bad_envelope"),
        ("service_status", {"service": "ocpp", "status": "sleeping"}, "schema"),
        ("clock_sync", {"current_time": "2026-01-01T00:00:00Z"}, "unexpected_type"),
    ],
    ids=[
        "clock-without-time",
        "clock-not-a-date",
        "clock-four-fraction-digits",
        "display-params-without-evse",
        "display-params-numeric-evse",
        "cost-not-an-object",
        "boot-not-an-object",
        "service-status-unknown-status",
        "clock-as-a-response",
    ],
)
async def test_invalid_updates_are_refused_and_change_nothing(
    josev: JosevClient,
    station: Station,
    config: Config,
    raw_client: aiomqtt.Client,
    name: str,
    data: Any,
    reason: str,
) -> None:
    before = station.bridge.counters.get(Counted.INBOUND_REJECTED, reason)
    accepted = _accepted(station, name)
    message_type = "response" if reason == "unexpected_type" else "update"
    await _raw_update(raw_client, config, name, data, message_type)
    await wait_until(
        lambda: station.bridge.counters.get(Counted.INBOUND_REJECTED, reason) > before,
        5,
        "refused",
    )
    if name != "service_status":  # Josev's answers to the station's questions count there
        assert _accepted(station, name) == accepted
    assert station.josev.clock_offset_s is None
    assert station.bridge.display.shown == {}
    assert station.josev.boot_status is None
    assert _status(station, "ocpp") in ("ready", "unknown")


async def test_a_clock_no_calendar_holds_and_an_unknown_service_are_ignored(
    josev: JosevClient, station: Station
) -> None:
    await josev.update("clock_sync", {"current_time": "2026-13-01T00:00:00Z"})
    await josev.update("service_status", {"service": "billing", "status": "error"})
    ignored = station.bridge.counters.get
    await wait_until(
        lambda: (
            ignored(Counted.JOSEV_NOTICE_IGNORED, "clock_sync/impossible_date") == 1
            and ignored(Counted.JOSEV_NOTICE_IGNORED, "service_status/unknown_service") == 1
        ),
        5,
        "both ignored",
    )
    assert station.josev.clock_offset_s is None
    assert "billing" not in station.josev.services
