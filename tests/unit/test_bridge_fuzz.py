"""The fuzz in this process, without a broker: the seeded fuzzer is deterministic and mixes every
outcome, and Bridge.handle counts each hypothesis example exactly once under one outcome (the
hundred thousand payloads over mosquitto: tests/system/test_reliability_fuzz.py)."""

from __future__ import annotations

import functools
import itertools
import random
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csbridge.messages.envelope import RejectReason
from csbridge.protocol.local_topics import Leaf
from csbridge.service.station import Station
from csbridge.support.counters import Counters
from tests.mutations import mutations
from tests.support import (
    ADDED_KEYS,
    ODD_JSON_VALUES,
    Fuzzer,
    csbridge_logs_to_devnull,
    examples,
    expected_outcomes,
    fixture_corpus,
    station_config,
    unique_prefix,
)

SEED = 20261123
OUTCOMES = ("inbound_rejected", "inbound_accepted", "inbound_unhandled", "handler_failed")
CORPUS = fixture_corpus("messages", "messages-session", "invalid", "invalid-session")
OFFLINE = station_config("mqtt://127.0.0.1:9", unique_prefix())
"""The tests' station on a broker nobody listens on: its station is never started."""


def _outcomes(counters: Counters) -> dict[str, int]:
    return {event: counters.total(event) for event in OUTCOMES}


def test_the_fuzzer_is_deterministic_and_mixed() -> None:
    """Same seed, same batch; and a batch holds every kind of outcome."""
    first = list(itertools.islice(Fuzzer(random.Random(SEED), OFFLINE, CORPUS), 20_000))
    again = list(itertools.islice(Fuzzer(random.Random(SEED), OFFLINE, CORPUS), 20_000))
    assert first == again
    expected = expected_outcomes(OFFLINE, first)
    assert expected.must_answer.total() > 2000
    assert expected.simulate_valid > 100
    assert set(expected.local_accepted) == {"external_limit", "operator"}
    assert set(expected.decoded) >= {"cs_parameters", "cs_status_and_limits", "meter_values"}
    assert {r.value for r in RejectReason} <= set(expected.rejected), expected.rejected


# -- Bridge.handle, with examples hypothesis can shrink -------------------------------------

JSON_VALUES = st.recursive(
    st.sampled_from(ODD_JSON_VALUES) | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["id", "name", "type", "data", "evse_id"]), children)
    ),
    max_leaves=12,
)
TOPICS = st.sampled_from([OFFLINE.mqtt.request_topic]) | st.builds(
    "{}/{}/{}".format,
    st.just(OFFLINE.mqtt.local_prefix),
    st.sampled_from([e.evse_id for e in OFFLINE.evse] + ["DE*CSB*E9999", ""]),
    st.sampled_from([leaf.value for leaf in Leaf]),
)


def _dumps(document: Any) -> bytes:
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:  # integers beyond 64 bits
        return repr(document).encode()


PAYLOADS = (
    (mutations(CORPUS, st.sampled_from(ODD_JSON_VALUES), st.sampled_from(ADDED_KEYS)) | JSON_VALUES)
    .map(_dumps)
    .filter(lambda payload: len(payload) < 10_000)
) | st.binary(max_size=300)


@functools.cache
def _offline_station() -> Station:
    """A station that is never started: Bridge.handle still decodes, answers (the answer is
    encoded and checked, then deferred for want of a broker) and feeds the engine."""
    return Station(OFFLINE)


@settings(max_examples=examples(1000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=TOPICS, payload=PAYLOADS)
async def test_bridge_handle_counts_every_hypothesis_example_once(
    topic: str, payload: bytes
) -> None:
    bridge = _offline_station().bridge
    before = _outcomes(bridge.counters)
    received = bridge.counters.get("inbound_received")
    rejected_outbound = bridge.counters.total("outbound_rejected")
    with csbridge_logs_to_devnull() as errors:
        await bridge.handle(topic, payload)
    after = _outcomes(bridge.counters)
    assert bridge.counters.get("inbound_received") == received + 1
    assert after["handler_failed"] == before["handler_failed"], errors
    assert sum(after.values()) == sum(before.values()) + 1, (before, after)
    assert bridge.counters.total("outbound_rejected") == rejected_outbound, errors
