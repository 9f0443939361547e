"""The Prometheus collector on hand-filled counts: label names, series at zero, one metric per
counted event, cumulative buckets (the endpoint of a running station:
tests/integration/test_metrics.py)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from csbridge.service.metrics import CountersCollector
from csbridge.support.counters import Counted, Counters, Timed
from tests.support import labelled, parse, value


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
