"""The Prometheus collectors: on hand-filled counts (label names, series at zero, one metric per
counted event, cumulative buckets) and on a real session walked through its states and stops
(tests/session_rig.py); the endpoint of a running station: tests/integration/test_metrics.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from csbridge.service.metrics import CountersCollector
from csbridge.service.session_metrics import (
    STOP_KINDS,
    session_collector,
    stop_kind,
)
from csbridge.session.machine import State
from csbridge.support.counters import Counted, Counters, Timed
from tests.session_rig import DC, STOPS, SessionRig
from tests.support import labelled, parse, value

AC = "DE*CSB*E0002"
STOPS_TOTAL = "csbridge_session_stops_total"

Scrape = Callable[[], list[Metric]]


def collected(counters: Counters) -> list[Metric]:
    registry = CollectorRegistry()
    registry.register(CountersCollector(counters))
    return parse(generate_latest(registry).decode())


def test_known_events_get_their_own_label_names() -> None:
    counters = Counters()
    counters.add(Counted.INBOUND_RECEIVED, amount=4)
    counters.add(Counted.INBOUND_REJECTED, "not_json", 2)
    counters.add(Counted.INBOUND_ACCEPTED, "cs_parameters")
    counters.add(Counted.OUTBOUND_PUBLISHED, "cs_status_and_limits/update", 3)
    counters.add(Counted.OUTBOUND_PUBLISHED, "limits")
    counters.add(Counted.CAN_FRAMES, "vcan/0/dc-module/decoded", 7)
    counters.add(Counted.CAN_BUS_OFF, "can1")

    families = collected(counters)

    assert value(families, "csbridge_messages_received_total") == 4
    assert value(families, "csbridge_inbound_rejected_total", reason="not_json") == 2
    assert value(families, "csbridge_messages_in_total", name="cs_parameters") == 1
    out = "csbridge_messages_out_total"
    assert value(families, out, name="cs_status_and_limits", type="update") == 3
    assert value(families, out, name="limits", type="") == 1
    frames = {"bus": "vcan/0", "profile": "dc-module", "outcome": "decoded"}
    assert value(families, "csbridge_can_frames_total", **frames) == 7
    assert value(families, "csbridge_can_bus_off_total", bus="can1") == 1


def test_nothing_counted_yet_still_shows_the_known_series_at_zero() -> None:
    families = collected(Counters())

    assert value(families, "csbridge_messages_received_total") == 0
    assert value(families, "csbridge_inbound_rejected_total", reason="schema") == 0
    assert labelled(families, "csbridge_can_frames_total") == []


def test_every_counted_event_has_its_own_metric() -> None:
    counters = Counters()
    for event in Counted:
        counters.add(event, "/".join("x" * len(event.metric.labels)))
    for timed in Timed:
        counters.observe(timed, "/".join("x" * len(timed.metric.labels)), 0.5)

    families = collected(counters)

    names = [event.metric.name for event in Counted] + [timed.metric.name for timed in Timed]
    assert len(set(names)) == len(names), "two events share one metric"
    for event in Counted:
        labels = dict.fromkeys(event.metric.labels, "x")
        assert value(families, f"csbridge_{event.metric.name}_total", **labels) == 1, event
    for timed in Timed:
        labels = dict.fromkeys(timed.metric.labels, "x")
        count = value(families, f"csbridge_{timed.metric.name}_seconds_count", **labels)
        assert count == 1, timed


def test_durations_become_cumulative_buckets() -> None:
    counters = Counters()
    for seconds in (0.0002, 0.00025, 0.003, 5.0):
        counters.observe(Timed.INBOUND_HANDLING, "accepted", seconds)

    families = collected(counters)

    def bucket(le: str) -> float:
        name = "csbridge_inbound_handling_seconds_bucket"
        return value(families, name, outcome="accepted", le=le)

    assert bucket("0.0001") == 0
    assert bucket("0.00025") == 2, "a duration equal to a bound is in that bound's bucket"
    assert bucket("0.0025") == 2
    assert bucket("0.005") == 3
    assert bucket("1.0") == 3
    assert bucket("+Inf") == 4
    assert value(families, "csbridge_inbound_handling_seconds_count", outcome="accepted") == 4
    total = value(families, "csbridge_inbound_handling_seconds_sum", outcome="accepted")
    assert total == pytest.approx(5.00345)


# -- each EVSE's session ---------------------------------------------------------------------


def session_families(rig: SessionRig, wall_clock: Callable[[], datetime] | None = None) -> Scrape:
    """A scrape function of the rig's session collector (its stops counted from now on)."""
    if wall_clock is None:
        collector = session_collector(rig.session, rig.engine)
    else:
        collector = session_collector(rig.session, rig.engine, wall_clock)
    registry = CollectorRegistry()
    registry.register(collector)
    return lambda: parse(generate_latest(registry).decode())


def test_the_session_state_is_one_series_per_state_with_1_for_the_current() -> None:
    rig = SessionRig.ready()
    since = rig.session.sessions[DC].since
    scrape = session_families(rig, lambda: since + timedelta(seconds=42.5))

    families = scrape()
    states = {
        s["state"] for s in labelled(families, "csbridge_session_state") if s["evse_id"] == DC
    }
    assert states == {state.value for state in State}
    assert value(families, "csbridge_session_state", evse_id=DC, state="available") == 1
    assert value(families, "csbridge_session_state", evse_id=DC, state="charging") == 0
    assert value(families, "csbridge_session_state_seconds", evse_id=DC) == 42.5
    assert value(families, "csbridge_session_authorization", evse_id=DC, status="none") == 1

    rig.into_cable_check()
    families = scrape()
    assert value(families, "csbridge_session_state", evse_id=DC, state="available") == 0
    assert value(families, "csbridge_session_state", evse_id=DC, state="cable_check") == 1
    assert value(families, "csbridge_session_authorization", evse_id=DC, status="accepted") == 1
    assert value(families, "csbridge_session_authorization", evse_id=DC, status="none") == 0
    moved = rig.session.sessions[DC].since
    assert moved > since
    assert value(families, "csbridge_session_state_seconds", evse_id=DC) == pytest.approx(
        42.5 - (moved - since).total_seconds()
    )


def test_no_stop_yet_shows_every_kind_at_zero_for_every_evse() -> None:
    families = session_families(SessionRig.ready())()
    for evse_id in (DC, AC):
        for kind in STOP_KINDS:
            assert value(families, STOPS_TOTAL, evse_id=evse_id, reason=kind) == 0


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("stop_charging", "stop_charging"),
        ("unplugged", "unplugged"),
        ("paused", "paused"),
        ("transaction_ended", "transaction_ended"),
        ("session_stop", "session_stop"),
        ("slac_failed", "session_stop"),
        ("deauthorized", "deauthorized"),
        ("module_fault", "fault"),
        ("emergency_stop", "fault"),
        ("operator_disable", "limits"),
        ("mqtt_lost", "station"),
    ],
)
def test_each_way_a_session_ends_is_counted_under_its_kind(path: str, kind: str) -> None:
    rig = SessionRig.ready()
    scrape = session_families(rig)
    rig.into_cable_check()

    STOPS[path](rig)

    families = scrape()
    assert value(families, STOPS_TOTAL, evse_id=DC, reason=kind) == 1
    others = [s for s in labelled(families, STOPS_TOTAL) if s != {"evse_id": DC, "reason": kind}]
    assert all(value(families, STOPS_TOTAL, **labels) == 0 for labels in others)


def test_stops_between_two_scrapes_each_count() -> None:
    rig = SessionRig.ready()
    scrape = session_families(rig)
    for _ in range(3):
        rig.into_cable_check()
        STOPS["stop_charging"](rig)
        rig.unplug()

    families = scrape()

    assert value(families, STOPS_TOTAL, evse_id=DC, reason="stop_charging") == 3
    assert value(families, STOPS_TOTAL, evse_id=DC, reason="unplugged") == 0, "no energy then"
    assert value(families, "csbridge_session_state", evse_id=DC, state="available") == 1


def test_a_stop_before_the_collector_existed_is_not_counted() -> None:
    rig = SessionRig.ready()
    rig.into_cable_check()
    STOPS["stop_charging"](rig)

    families = session_families(rig)()

    assert value(families, STOPS_TOTAL, evse_id=DC, reason="stop_charging") == 0


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("stop_charging", "stop_charging"),
        ("pilot A", "unplugged"),
        ("cp_a", "unplugged"),
        ("pilot B", "paused"),
        ("pilot E", "fault"),
        ("Josev reports SessionStop", "session_stop"),
        ("Josev reports Idle", "session_stop"),
        ("the HLC session ended", "session_stop"),
        ("SLAC unmatched", "session_stop"),
        ("the transaction ended", "transaction_ended"),
        ("Josev's authorization update: rejected", "deauthorized"),
        ("Josev answered deauthorized", "deauthorized"),
        ("no answer from Josev", "deauthorized"),
        ("not_in_allowlist", "deauthorized"),
        ("isolation fault", "fault"),
        ("no IMD", "fault"),
        ("imd: ground_fault", "fault"),
        ("m2: power_loss", "fault"),
        ("the connector lock is not confirmed", "fault"),
        ("evse_malfunction", "fault"),
        ("evse_emergency_shutdown", "fault"),
        ("evse_shutdown", "limits"),
        ("evse_not_ready", "limits"),
        ("the setpoint is no longer allowed", "limits"),
        ("the requested setpoint is not allowed", "limits"),
        ("MQTT lost", "station"),
        ("the bridge stops", "station"),
        ("csbridge stops", "station"),
        ("Josev's josev reports stopping", "station"),
        ("EVerest's heartbeat stopped", "station"),
        ("EVerest: mode Off", "station"),
        ("a cosmic ray", "other"),
        ("", "other"),
    ],
)
def test_free_text_reasons_fold_into_a_bounded_set(reason: str, kind: str) -> None:
    assert stop_kind(reason) == kind
    assert kind in STOP_KINDS
