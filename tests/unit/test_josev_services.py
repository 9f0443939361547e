"""What Josev says of itself (session/services.py) and what it tells the driver
(protocol/display.py), without a broker: which service going down ends energy flow, what an
answer, a timeout and an unknown service leave behind, the clock offset, the report block and
the display document against their schemas; and the new message schemas, as wide as Josev's
rules inbound and never wider outbound, in both validator backends."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from csbridge.config import JosevServicesConfig
from csbridge.messages import (
    CostUpdatedUpdate,
    Direction,
    EnvelopeCodec,
    InboundRejected,
    Message,
    Payload,
    RejectReason,
    SchemaRegistry,
    SchemaViolation,
    ServiceState,
    ServiceStatusRequest,
    ServiceStatusResponse,
    ServiceStatusUpdate,
    check_document,
)
from csbridge.messages.registry import Backend, fast_backend_available
from csbridge.protocol.display import DisplayRepublisher
from csbridge.protocol.local_topics import LocalTopics
from csbridge.session import JosevServices
from csbridge.support import Counted, Counters
from csbridge.testing.harness import wait_until
from csbridge.tools.status_view import evse_text, josev_line
from tests.support import dc_report

NOW = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
DC = "DE*CSB*E0001"
AC = "DE*CSB*E0002"
REGISTRY = SchemaRegistry()

BACKENDS = [Backend.REFERENCE] + ([Backend.FAST] if fast_backend_available() else [])


class Rig:
    """JosevServices with its switch-off recorded and a fixed wall clock."""

    def __init__(self, ask: list[Any] | None = None) -> None:
        self.offs: list[str] = []
        self.blocks: list[dict[str, Any]] = []
        self.counters = Counters()
        settings = JosevServicesConfig.model_validate(
            {"ask": ask if ask is not None else ["slac", "iso15118", "ocpp"], "timeout_s": 0.1}
        )
        self.josev = JosevServices(
            settings, self.offs.append, self.counters, lambda: 0.0, lambda: NOW
        )
        self.josev.on_change = lambda block: self.blocks.append(dict(block))


def _update(status: str, service: str | None = None, **versions: str) -> ServiceStatusUpdate:
    data: dict[str, Any] = {"status": status, **versions}
    if service is not None:
        data["service"] = service
    return ServiceStatusUpdate.from_json(data)


# -- which service ends energy flow --------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "status"),
    [
        ("iso15118", "error"),
        ("iso15118", "stopping"),
        ("slac", "error"),
        ("slac", "stopping"),
        (None, "error"),
        (None, "stopping"),
    ],
)
def test_the_services_that_run_sessions_going_down_switch_everything_off(
    service: str | None, status: str
) -> None:
    rig = Rig()
    rig.josev.on_service_status(_update(status, service))
    assert rig.offs == [f"Josev's {service or 'josev'} reports {status}"]
    assert rig.josev.services[service or "josev"].status == status


@pytest.mark.parametrize("service", ["ocpp", "smart_charging", "gridcode"])
@pytest.mark.parametrize("status", ["error", "stopping"])
def test_other_services_going_down_are_shown_and_logged_only(
    service: str, status: str, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig()
    rig.josev.on_service_status(_update(status, service))
    assert rig.offs == []
    assert rig.josev.services[service].status == status
    assert rig.blocks[-1]["services"][service]["status"] == status
    assert f"event=josev_service_down service={service} status={status}" in caplog.text


@pytest.mark.parametrize("status", ["ready", "starting", "busy"])
def test_a_service_that_is_up_switches_nothing_off(status: str) -> None:
    rig = Rig()
    for service in ("iso15118", "slac", None):
        rig.josev.on_service_status(_update(status, service))
    assert rig.offs == []


def test_an_unknown_service_is_counted_and_kept_out(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig()
    rig.josev.on_service_status(_update("error", "billing"))
    assert rig.offs == []
    assert "billing" not in rig.josev.services
    assert rig.counters.get(Counted.JOSEV_NOTICE_IGNORED, "service_status/unknown_service") == 1
    assert "event=josev_service_ignored service='billing'" in caplog.text
    assert rig.blocks == []


# -- asking ------------------------------------------------------------------------------


def _asker(answers: dict[str, Payload | None]) -> tuple[list[Payload], Any]:
    asked: list[Payload] = []

    async def ask(payload: Payload, timeout_s: float) -> Payload | None:
        asked.append(payload)
        assert timeout_s == 0.1
        assert isinstance(payload, ServiceStatusRequest)
        return answers.get(str(payload.service))

    return asked, ask


def _answer(service: str, status: ServiceState, version: str = "3.10.0") -> ServiceStatusResponse:
    return ServiceStatusResponse(
        service=service, software_version=version, api_version="3.10.0", status=status
    )


async def test_every_configured_service_is_asked_and_its_answer_kept() -> None:
    rig = Rig()
    asked, rig.josev.ask = _asker(
        {"slac": _answer("slac", "ready"), "iso15118": _answer("iso15118", "busy", "x" * 100)}
    )
    assert {name: view.status for name, view in rig.josev.services.items()} == dict.fromkeys(
        ("slac", "iso15118", "ocpp"), "unknown"
    )
    await rig.josev.ask_all()
    assert sorted(str(p.to_json()["service"]) for p in asked) == ["iso15118", "ocpp", "slac"]
    services = rig.josev.services
    assert services["slac"].status == "ready"
    assert services["iso15118"].status == "busy"
    assert services["iso15118"].software_version == "x" * 64  # cut for the report
    assert services["ocpp"].status == "unknown"  # no answer
    assert services["ocpp"].at == NOW
    assert rig.offs == []


async def test_an_answer_that_iso15118_is_in_error_switches_everything_off() -> None:
    rig = Rig(["iso15118"])
    _, rig.josev.ask = _asker({"iso15118": _answer("iso15118", "error")})
    await rig.josev.ask_all()
    assert rig.offs == ["Josev's iso15118 reports error"]


async def test_an_unanswered_question_after_an_error_leaves_unknown_and_switches_nothing() -> None:
    rig = Rig(["ocpp"])
    rig.josev.on_service_status(_update("error", "ocpp"))
    _, rig.josev.ask = _asker({})
    await rig.josev.ask_about("ocpp")
    assert rig.josev.services["ocpp"].status == "unknown"
    assert rig.offs == []


async def test_without_a_bridge_nothing_is_asked_and_everything_is_unknown() -> None:
    rig = Rig()
    await rig.josev.ask_all()
    assert {view.status for view in rig.josev.services.values()} == {"unknown"}


# -- the clock and the notices -------------------------------------------------------------


@pytest.mark.parametrize(
    ("current_time", "offset"),
    [
        ("2026-12-01T22:00:30Z", 30.0),
        ("2026-12-01T21:59:59.5+00:00", -0.5),
        ("2026-12-01T23:00:00.250+01:00", 0.25),
        ("2026-12-01t22:00:02", 2.0),  # no offset: UTC, as Josev's rule reads it
    ],
)
def test_the_clock_offset_is_josevs_time_minus_ours(current_time: str, offset: float) -> None:
    rig = Rig()
    rig.josev.on_clock_sync(
        Message.from_data("clock_sync", "update", {"current_time": current_time}).payload  # type: ignore[arg-type]
    )
    assert rig.josev.clock_offset_s == offset
    assert rig.blocks[-1]["clock_offset_s"] == offset


def test_a_clock_far_off_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig()
    later = (NOW + timedelta(minutes=10)).isoformat()
    rig.josev.on_clock_sync(
        Message.from_data("clock_sync", "update", {"current_time": later}).payload  # type: ignore[arg-type]
    )
    assert "event=josev_clock offset_s=600.000" in caplog.text
    assert any(record.levelname == "WARNING" for record in caplog.records)


def test_a_clock_no_calendar_holds_is_ignored() -> None:
    rig = Rig()
    message = Message.from_data("clock_sync", "update", {"current_time": "2026-02-30T00:00:00Z"})
    rig.josev.on_clock_sync(message.payload)  # type: ignore[arg-type]
    assert rig.josev.clock_offset_s is None
    assert rig.counters.get(Counted.JOSEV_NOTICE_IGNORED, "clock_sync/impossible_date") == 1


def test_the_report_block_passes_the_limits_reports_schema() -> None:
    rig = Rig()
    rig.josev.on_service_status(
        _update("ready", "iso15118", software_version="0.31.2", api_version="3.10.0")
    )
    rig.josev.on_service_status(_update("error", "ocpp"))
    for name, data in (
        ("boot_status", {"status": "Accepted", "interval": 300}),
        ("websocket_status", {"connected": True}),
        ("certificate_installation_status", {"status": "Failed"}),
        ("clock_sync", {"current_time": "2026-12-01T22:00:01Z"}),
    ):
        payload = Message.from_data(name, "update", data).payload
        handler = rig.josev.handlers().get(type(payload))
        assert handler is not None, name
        handler(payload)
    block = rig.josev.report_block()
    assert block["boot_status"] == {
        "at": "2026-12-01T22:00:00.000Z",
        "data": {"status": "Accepted", "interval": 300},
    }
    assert block["websocket_status"]["data"] == {"connected": True}
    assert "certificate_installation_status" not in block  # logged, not shown
    assert rig.josev.certificate_installation_status is not None
    assert block["services"]["iso15118"] == {
        "status": "ready",
        "software_version": "0.31.2",
        "api_version": "3.10.0",
        "at": "2026-12-01T22:00:00.000Z",
    }
    report = dc_report(("m1",)) | {"josev": block}
    assert REGISTRY.violation("EvseLimitsReport", report) is None
    broken = copy.deepcopy(report)
    broken["josev"]["services"]["billing"] = {"status": "ready"}
    assert REGISTRY.violation("EvseLimitsReport", broken) is not None


# -- the display -------------------------------------------------------------------------


class Screens:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []
        self.counters = Counters()
        self.display = DisplayRepublisher(
            LocalTopics("csbridge"),
            (DC, AC),
            REGISTRY,
            self.counters,
            lambda: 0.0,
            publish=self._publish,
            wall_clock=lambda: NOW,
        )

    async def _publish(self, topic: str, payload: bytes) -> bool:
        self.published.append((topic, payload))
        return True


async def test_a_display_without_an_evse_goes_to_every_evse() -> None:
    screens = Screens()
    await screens.display.on_cost_updated(CostUpdatedUpdate.from_json({"total_cost": 2.0}))
    assert [topic for topic, _ in screens.published] == [
        f"csbridge/{DC}/display",
        f"csbridge/{AC}/display",
    ]
    for document in screens.display.shown.values():
        assert document == {
            "latest": "cost_updated",
            "cost_updated": {"at": "2026-12-01T22:00:00.000Z", "data": {"total_cost": 2.0}},
        }
        assert REGISTRY.violation("EvseDisplay", document) is None


@pytest.mark.parametrize("evse_id", ["DE*XXX*E9", 1, ""])
async def test_a_display_for_an_evse_the_station_lacks_is_counted_not_shown(
    evse_id: object,
) -> None:
    screens = Screens()
    await screens.display.on_cost_updated(CostUpdatedUpdate.from_json({"evse_id": evse_id}))
    assert screens.published == []
    assert screens.counters.get(Counted.JOSEV_NOTICE_IGNORED, "cost_updated/unknown_evse") == 1


async def test_each_kind_keeps_its_latest_and_latest_says_which_came_last() -> None:
    screens = Screens()
    display = screens.display
    params = Message.from_data("display_params", "update", {"evse_id": DC, "present_soc": 10})
    await display.on_display_params(params.payload)  # type: ignore[arg-type]
    params = Message.from_data("display_params", "update", {"evse_id": DC, "present_soc": 11})
    await display.on_display_params(params.payload)  # type: ignore[arg-type]
    message = Message.from_data("display_and_personal_msg", "update", {"evse_id": DC, "id": 7})
    await display.on_display_and_personal_msg(message.payload)  # type: ignore[arg-type]
    shown = display.shown[DC]
    assert shown["latest"] == "display_and_personal_msg"
    assert shown["display_params"]["data"] == {"evse_id": DC, "present_soc": 11}
    assert shown["display_and_personal_msg"]["data"] == {"evse_id": DC, "id": 7}
    assert AC not in display.shown
    before = len(screens.published)
    await display.republish()
    assert len(screens.published) == before + 1


def test_the_display_schema_refuses_what_it_does_not_name() -> None:
    good = {"latest": "cost_updated", "cost_updated": {"at": "2026-12-01T22:00:00Z", "data": {}}}
    assert REGISTRY.violation("EvseDisplay", good) is None
    for broken in (
        {"cost_updated": good["cost_updated"]},
        good | {"latest": "clock_sync"},
        good | {"extra": 1},
        good | {"cost_updated": {"at": "2026-12-01T22:00:00Z", "data": []}},
        good | {"cost_updated": {"at": "2026-12-01T22:00:00.0001Z", "data": {}}},
    ):
        assert REGISTRY.violation("EvseDisplay", broken) is not None, broken


# -- the message schemas -------------------------------------------------------------------

FROM_JOSEV_VALID: list[tuple[str, str, dict[str, Any]]] = [
    (
        "service_status",
        "response",
        {"service": "ocpp", "software_version": "1", "api_version": "3.10.0", "status": "busy"},
    ),
    ("clock_sync", "update", {"current_time": "2026-12-01T22:00:00Z"}),
    ("clock_sync", "update", {"current_time": "2026-12-01T22:00:00.1", "newer": 1}),
    ("display_params", "update", {"evse_id": DC}),
    (
        "display_params",
        "update",
        {
            "evse_id": DC,
            "present_soc": 40.5,
            "charging_complete": False,
            "remaining_time_to_target_soc": 600,
            "inlet_hot": None,
            "newer": "x",
        },
    ),
    ("display_and_personal_msg", "update", {}),
    ("display_and_personal_msg", "update", {"message": {"format": "UTF8", "content": "Hi"}}),
    ("cost_updated", "update", {"total_cost": 12.3, "transaction_id": "abc"}),
    ("boot_status", "update", {"status": "Accepted"}),
    ("websocket_status", "update", {"connected": True}),
    ("certificate_installation_status", "update", {"status": "Accepted", "anything": [1]}),
]
FROM_JOSEV_INVALID: list[tuple[str, str, Any, str]] = [
    (
        "service_status",
        "response",
        {"service": "ocpp", "software_version": "1", "api_version": "3", "status": "down"},
        "$.data.status",
    ),
    ("service_status", "response", {"service": "ocpp", "status": "ready"}, "$.data"),
    (
        "service_status",
        "response",
        {
            "service": "ocpp",
            "software_version": "1",
            "api_version": "3",
            "status": "ready",
            "extra": 1,
        },
        "$.data",
    ),
    ("clock_sync", "update", {}, "$.data"),
    ("clock_sync", "update", {"current_time": 1764626400}, "$.data.current_time"),
    ("clock_sync", "update", {"current_time": "2026-12-01 22:00:00Z"}, "$.data.current_time"),
    ("display_params", "update", {"present_soc": 1}, "$.data"),
    ("display_params", "update", {"evse_id": None}, "$.data.evse_id"),
    ("cost_updated", "update", "12.3", "$.data"),
    ("websocket_status", "update", None, "$.data"),
]


def _document(name: str, message_type: str, data: Any) -> dict[str, Any]:
    return {"id": ID, "name": name, "type": message_type, "data": data}


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize(("name", "message_type", "data"), FROM_JOSEV_VALID)
def test_what_josev_may_send_is_accepted_and_decoded(
    backend: Backend, name: str, message_type: str, data: dict[str, Any]
) -> None:
    registry = SchemaRegistry(backend=backend)
    check_document(registry, _document(name, message_type, data), Direction.FROM_JOSEV)
    codec = EnvelopeCodec(registry, Direction.FROM_JOSEV, 65536)
    message = codec.decode(orjson.dumps(_document(name, message_type, data)))
    assert message.name == name


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize(("name", "message_type", "data", "where"), FROM_JOSEV_INVALID)
def test_what_josevs_rules_refuse_is_refused_where_it_breaks(
    backend: Backend, name: str, message_type: str, data: Any, where: str
) -> None:
    registry = SchemaRegistry(backend=backend)
    with pytest.raises(InboundRejected) as caught:
        check_document(registry, _document(name, message_type, data), Direction.FROM_JOSEV)
    assert caught.value.reason in (RejectReason.SCHEMA, RejectReason.ENVELOPE)
    assert caught.value.where == where


def test_open_updates_keep_their_data_whole() -> None:
    data = {"evse_id": DC, "message": {"content": "Hi"}, "priority": 1}
    update = CostUpdatedUpdate.from_json(data)
    assert update.to_json() == data
    assert update == CostUpdatedUpdate.from_json(dict(data))
    assert update != CostUpdatedUpdate.from_json({})
    assert Message(update).as_json()["data"] == data


@pytest.mark.parametrize("service", ["slac", "iso15118", "ocpp", "gridcode", "smart_charging"])
def test_the_station_asks_in_josevs_words(service: str) -> None:
    codec = EnvelopeCodec(REGISTRY, Direction.FROM_JOSEV, 65536)
    codec.encode(Message(ServiceStatusRequest(service=service)))  # type: ignore[arg-type]
    codec.encode(Message(ServiceStatusRequest()))


@pytest.mark.parametrize(
    "data", [{"service": "billing"}, {"service": "ocpp", "extra": 1}, {"service": None}]
)
def test_the_station_never_asks_wider_than_josevs_rule(data: dict[str, Any]) -> None:
    codec = EnvelopeCodec(REGISTRY, Direction.FROM_JOSEV, 65536)
    with pytest.raises(SchemaViolation):
        codec.encode_document(_document("service_status", "request", data))


# -- csbridge status -------------------------------------------------------------------------


def test_the_status_view_shows_the_josev_block_in_one_line() -> None:
    report = dc_report(("m1",))
    assert josev_line(report) is None  # a bridge from before it asked
    assert josev_line(report | {"josev": {"services": {}}}) is None  # asks nothing
    block = {
        "services": {"slac": {"status": "ready"}, "ocpp": {"status": "unknown"}},
        "boot_status": {"at": "2026-12-01T22:00:00Z", "data": {"status": "Pending"}},
        "websocket_status": {"at": "2026-12-01T22:00:00Z", "data": {"connected": True}},
        "clock_offset_s": -1.25,
    }
    line = "josev  ocpp unknown  slac ready  boot Pending  websocket received  clock -1.2 s"
    assert josev_line(report | {"josev": block}) == line
    assert f"  {line}" in evse_text(DC, report | {"josev": block}).splitlines()


async def test_a_round_that_fails_is_logged_and_polling_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig(["iso15118"])
    connected = asyncio.Event()
    connected.set()

    async def ask(payload: Payload, timeout_s: float) -> Payload | None:
        raise RuntimeError("a bug")

    rig.josev.ask = ask
    poll = asyncio.create_task(rig.josev.poll(connected))
    try:
        await wait_until(lambda: "event=josev_services_ask_failed" in caplog.text, 2, "logged")
        assert not poll.done()  # waiting for the next round, not crashed
    finally:
        poll.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poll
