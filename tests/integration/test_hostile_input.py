"""Bad input never crashes the bridge, never gets an answer, is counted by reason, and the next
valid request is still answered."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

import aiomqtt
import orjson
import pytest

from csbridge.config import Config
from csbridge.messages.envelope import RejectReason
from csbridge.protocol.bridge import Bridge
from csbridge.support.logging_setup import journal_formatter, plain_formatter
from csbridge.testing.harness import wait_until
from csbridge.tools.emulator import JosevEmulator
from tests.support import load_fixture


def _request(**overrides: object) -> bytes:
    document: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "name": "cs_status_and_limits",
        "type": "request",
        "data": {},
    }
    document.update(overrides)
    return orjson.dumps({k: v for k, v in document.items() if v is not ...})


def _deeply_nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


HOSTILE: dict[str, tuple[bytes, RejectReason]] = {
    "empty": (b"", RejectReason.NOT_JSON),
    "not_json": (b"{not json", RejectReason.NOT_JSON),
    "invalid_utf8": (b'{"id": "\xff\xfe"}', RejectReason.NOT_JSON),
    "nested_too_deep": (_deeply_nested(100_000), RejectReason.TOO_LARGE),
    "nested_deep_but_small": (_deeply_nested(2_000), RejectReason.NOT_JSON),
    "json_array": (b"[1, 2, 3]", RejectReason.NOT_OBJECT),
    "json_string": (b'"cs_status_and_limits"', RejectReason.NOT_OBJECT),
    "json_number": (b"42", RejectReason.NOT_OBJECT),
    "json_null": (b"null", RejectReason.NOT_OBJECT),
    "unknown_name": (_request(name="make_coffee"), RejectReason.UNKNOWN_MESSAGE),
    "unknown_type": (_request(type="command"), RejectReason.ENVELOPE),
    "response_type_for_a_request_name": (
        _request(type="update", data={}),
        RejectReason.WRONG_DIRECTION,
    ),
    "name_is_a_number": (_request(name=7), RejectReason.ENVELOPE),
    "id_is_a_number": (_request(id=12345), RejectReason.ENVELOPE),
    "id_not_uuid": (_request(id="not-a-uuid"), RejectReason.ENVELOPE),
    "data_as_string": (_request(data="{}"), RejectReason.ENVELOPE),
    "missing_data": (_request(data=...), RejectReason.ENVELOPE),
    "missing_id": (_request(id=...), RejectReason.ENVELOPE),
    "extra_envelope_key": (_request(timestamp="2026-11-23T12:00:00Z"), RejectReason.ENVELOPE),
    "response_on_request_topic": (
        orjson.dumps(load_fixture("cs_status_and_limits_response_dc")),
        RejectReason.WRONG_DIRECTION,
    ),
    "update_on_request_topic": (
        orjson.dumps(load_fixture("cs_status_and_limits_update_dc")),
        RejectReason.WRONG_DIRECTION,
    ),
    "number_as_string_in_a_response": (
        orjson.dumps(load_fixture("response_number_as_string", "invalid")),
        RejectReason.WRONG_DIRECTION,
    ),
    "one_megabyte": (_request(data={"pad": "x" * 1_000_000}), RejectReason.TOO_LARGE),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_hostile_payload_is_counted_and_the_next_request_answered(
    case: str,
    bridge: Bridge,
    josev: JosevEmulator,
    config: Config,
    raw_client: aiomqtt.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    payload, reason = HOSTILE[case]
    caplog.set_level(logging.WARNING, logger="csbridge")
    await raw_client.publish(config.mqtt.request_topic, payload, qos=1)
    response = await josev.request("cs_status_and_limits", timeout=5)

    assert response.data["evses"]
    assert bridge.counters.get("inbound_received") == 2
    assert bridge.counters.get("inbound_rejected", reason.value) == 1
    assert bridge.counters.total("inbound_rejected") == 1
    assert bridge.counters.get("inbound_accepted", "cs_status_and_limits") == 1
    assert len(josev.responses) == 1, "the hostile message must not be answered"
    assert josev.problems == []
    rejected_lines = [
        r.getMessage() for r in caplog.records if "inbound_rejected" in r.getMessage()
    ]
    assert len(rejected_lines) == 1
    assert f"reason={reason.value}" in rejected_lines[0]
    assert "where=" in rejected_lines[0]
    assert "why=" in rejected_lines[0]


@pytest.mark.soak
async def test_flood_of_ten_thousand_requests_is_answered_and_counted_exactly(
    bridge: Bridge,
    josev: JosevEmulator,
    config: Config,
    raw_client: aiomqtt.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge")
    flood = 10_000
    garbage_every = 10
    ids = []
    sends = []
    for index in range(flood):
        if index % garbage_every == 0:
            sends.append(raw_client.publish(config.mqtt.request_topic, b"\x00garbage", qos=1))
        else:
            request_id = str(uuid.uuid4())
            ids.append(request_id)
            sends.append(
                raw_client.publish(config.mqtt.request_topic, _request(id=request_id), qos=1)
            )
    for start in range(0, flood, 500):
        await asyncio.gather(*sends[start : start + 500])

    await wait_until(
        lambda: bridge.counters.get("inbound_received") >= flood, 60, "the whole flood received"
    )
    last = await josev.request("cs_parameters", timeout=10)
    assert last.name == "cs_parameters"
    # The raw client's requests are answered to the emulator too, which never asked for them:
    # every one of those ids must come back exactly once.
    answered = [e.id for e in josev.exchanges if e.problem and "nobody asked" in e.problem]
    assert sorted(answered) == sorted(ids)

    garbage = flood // garbage_every
    assert bridge.counters.get("inbound_received") == flood + 1
    assert bridge.counters.get("inbound_rejected", RejectReason.NOT_JSON.value) == garbage
    assert bridge.counters.get("inbound_accepted", "cs_status_and_limits") == flood - garbage
    assert (
        bridge.counters.get("outbound_published", "cs_status_and_limits/response")
        == flood - garbage
    )
    assert bridge.counters.total("publish_failed") == 0
    # A thousand of one kind of garbage within the minute: one log line, the counter has all.
    rejected_lines = [r for r in caplog.records if "event=inbound_rejected" in r.getMessage()]
    assert len(rejected_lines) == 1


async def test_a_flood_to_random_operator_topics_logs_one_line(
    bridge: Bridge,
    config: Config,
    raw_client: aiomqtt.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge")
    flood = 2_000
    sends = [
        raw_client.publish(
            f"{config.mqtt.local_prefix}/E{uuid.uuid4().hex}/operator", b'{"enabled": false}', qos=1
        )
        for _ in range(flood)
    ]
    for start in range(0, flood, 500):
        await asyncio.gather(*sends[start : start + 500])
    await wait_until(
        lambda: bridge.counters.get("inbound_rejected", RejectReason.UNKNOWN_EVSE.value) == flood,
        30,
        "the whole flood rejected",
    )
    lines = [r.getMessage() for r in caplog.records if "event=inbound_rejected" in r.getMessage()]
    assert len(lines) == 1, "one line a minute per kind, not one per topic"
    assert "reason=unknown_evse message=operator" in lines[0]
    assert len(bridge._faults.limiter) == 1  # noqa: SLF001 - one kind, not 2,000 topics


@pytest.mark.parametrize("formatter", [plain_formatter, journal_formatter])
async def test_a_name_written_to_forge_a_log_line_stays_on_one_line(
    formatter: Callable[[], logging.Formatter],
    bridge: Bridge,
    config: Config,
    raw_client: aiomqtt.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge")
    forged = "x\n2026-12-01 21:00:00,000 level=ERROR event=forged\x1b[2J"
    await raw_client.publish(config.mqtt.request_topic, _request(name=forged), qos=1)
    await wait_until(
        lambda: bridge.counters.total("inbound_rejected") == 1,
        5,
        "the forged name rejected",
    )
    written = [formatter().format(r) for r in caplog.records if r.name.startswith("csbridge")]
    rejected = [line for line in written if "event=inbound_rejected" in line]
    assert len(rejected) == 1
    assert "\n" not in rejected[0]
    assert "\x1b" not in rejected[0]
    assert "message=x\\n2026-12-01 21:00:00,000 level=ERROR" in rejected[0]
    assert "event=forged\\x1b[2J" in rejected[0]
