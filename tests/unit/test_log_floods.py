"""Floods of bad input through Bridge.handle, in process: each kind of fault writes one line per
interval however many arrive and whatever topic or evse_id they carry, the limiters remember a
bounded number of kinds, a failing handler logs one traceback per kind per interval, and a name
written to forge a log line stays on its own line."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import pytest

from csbridge.config import Config
from csbridge.engine import LimitsEngine
from csbridge.messages import (
    Direction,
    HandlerTable,
    Message,
    MessageType,
    PowerElectronicsSetpointRequest,
    PowerElectronicsSetpointResponse,
    SchemaRegistry,
    StopChargingRequest,
    StopChargingResponse,
    handles,
)
from csbridge.protocol import Bridge, Leaf
from csbridge.service.station import Station
from csbridge.support import log_limit
from csbridge.support.logging_setup import journal_formatter, plain_formatter
from tests.support import fixture_names, load_fixture, station_config
from tests.unit.test_log_limit import Clock

FLOOD = 100_000
RATE_PER_S = 5_000.0
"""The issue's flood: 5,000 msg/s for 20 s, on the engine's clock."""


@contextmanager
def _written(formatter: logging.Formatter | None = None) -> Iterator[io.StringIO]:
    """Every line csbridge's loggers write at WARNING and above, as a terminal would get it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter or plain_formatter())
    logger = logging.getLogger("csbridge")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _config() -> Config:
    return station_config("mqtt://127.0.0.1:1", "floods")


def _random_evse_id() -> str:
    return f"DE*X*E{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize(("interval_s", "lines"), [(60.0, 1), (5.0, 4)])
async def test_a_flood_to_random_operator_topics_writes_one_line_per_interval(
    interval_s: float, lines: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_limit, "_interval_s", interval_s)
    config = _config()
    clock = Clock()
    bridge = Bridge(config, LimitsEngine(config, clock=clock))
    with _written() as stream:
        for index in range(FLOOD):
            clock.now = 1000.0 + index / RATE_PER_S
            topic = f"{config.mqtt.local_prefix}/{_random_evse_id()}/operator"
            await bridge.handle(topic, b'{"enabled": false}')
    written = stream.getvalue().splitlines()
    # 20 s of flood: one line at once, then one per interval, each with the count held back.
    assert len(written) == lines, written
    assert all("event=inbound_rejected" in line for line in written)
    assert all("reason=unknown_evse message=operator" in line for line in written)
    held = [int(line.rsplit("repeats=", 1)[1]) for line in written]
    per_interval = int(interval_s * RATE_PER_S)
    assert held == [0] + [per_interval - 1] * (lines - 1)
    assert bridge.counters.get("inbound_rejected", "unknown_evse") == FLOOD
    assert len(bridge._faults.limiter) == 1  # noqa: SLF001 - the table the flood would grow


async def test_random_topics_of_every_shape_keep_to_a_few_kinds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(log_limit, "_interval_s", 3600.0)
    config = _config()
    bridge = Bridge(config, LimitsEngine(config, clock=Clock()))
    leaves = [leaf.value for leaf in Leaf] + ["coffee", "operator/x"]
    with _written() as stream:
        for index in range(FLOOD // 10):
            leaf = leaves[index % len(leaves)]
            await bridge.handle(f"{config.mqtt.local_prefix}/{_random_evse_id()}/{leaf}", b"{}")
            await bridge.handle(f"elsewhere/{uuid.uuid4().hex}", b"{}")
    written = stream.getvalue().splitlines()
    kinds = sorted(line.split("reason=", 1)[1].split(" where=")[0] for line in written)
    assert kinds == [
        "unknown_evse message=external_limit",
        "unknown_evse message=operator",
        "unknown_evse message=simulate",
        "unknown_evse message=token",
        # limits (an outbound leaf), coffee and operator/x under our prefix; then elsewhere.
        "unknown_message message=?",
        "unknown_message message=?",
    ]
    assert len(bridge._faults.limiter) == len(kinds)  # noqa: SLF001 - what 20,000 topics left


def _requests_naming_an_evse() -> list[dict[str, object]]:
    """One of each request and update Josev sends that names an EVSE (the session fixtures)."""
    registry = SchemaRegistry()
    documents = []
    for name in fixture_names("messages-session"):
        document = load_fixture(name, "messages-session")
        kind = registry.kind(document["name"], document["type"])
        if (
            kind is not None
            and kind.direction is Direction.FROM_JOSEV
            and document["type"] != MessageType.RESPONSE
            and "evse_id" in document["data"]
        ):
            documents.append(document)
    return documents


async def test_a_flood_of_requests_for_unknown_evses_writes_one_line_per_message_kind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(log_limit, "_interval_s", 3600.0)  # the whole flood in one interval
    config = _config()
    station = Station(config)
    bridge = station.bridge
    documents = _requests_naming_an_evse()
    names = {str(document["name"]) for document in documents}
    assert len(names) >= 14, names
    with _written() as stream:
        for index in range(FLOOD):
            document = documents[index % len(documents)]
            data = {**document["data"], "evse_id": _random_evse_id()}  # type: ignore[dict-item]
            message = {**document, "id": str(uuid.uuid4()), "data": data}
            await bridge.handle(config.mqtt.request_topic, orjson.dumps(message))
        for task in list(bridge._answering):  # noqa: SLF001 - cs_connector answers later
            await task
    written = stream.getvalue().splitlines()
    assert all("event=unknown_evse" in line for line in written), written
    logged = sorted(line.split("message=", 1)[1].split(" ")[0] for line in written)
    # Every kind is logged, process_authorized_token too (answered `discarded`, as Josev allows).
    assert logged == sorted(names)
    assert bridge.counters.total("handler_failed") == 0
    assert bridge.counters.get("inbound_received") == FLOOD
    limiters = [station.session._refusals, station.session.authorization._warnings]  # noqa: SLF001
    assert sum(len(limited.limiter) for limited in limiters) == len(logged)


class Failing:
    """A handler with a bug, one synchronous and one waiting on the hardware first."""

    @handles(StopChargingRequest)
    def stop(self, message: StopChargingRequest) -> StopChargingResponse:
        raise RuntimeError(f"a bug for {message.evse_id}")

    @handles(PowerElectronicsSetpointRequest)
    async def setpoint(
        self, message: PowerElectronicsSetpointRequest
    ) -> PowerElectronicsSetpointResponse:
        raise RuntimeError(f"a bug for {message.evse_id}")


def _request(name: str) -> bytes:
    document = load_fixture(f"{name}_request", "messages-session")
    document["id"] = str(uuid.uuid4())
    return orjson.dumps(document)


async def test_a_failing_handler_logs_one_traceback_per_kind_per_interval() -> None:
    config = _config()
    clock = Clock()
    bridge = Bridge(config, LimitsEngine(config, clock=clock), session=HandlerTable.of(Failing()))
    topic = config.mqtt.request_topic

    async def fail(count: int) -> None:
        for _ in range(count):
            for name in ("stop_charging", "power_electronics_setpoint"):
                await bridge.handle(topic, _request(name))
        for task in list(bridge._answering):  # noqa: SLF001 - the setpoint fails when awaited
            await task

    with _written() as stream:
        await fail(5_000)
        clock.now += 60.0
        await fail(1)
    text = stream.getvalue()
    assert text.count("Traceback (most recent call last)") == 4, "2 kinds, 2 intervals"
    events = [line for line in text.splitlines() if "event=handler_failed" in line]
    assert [line.split("message=", 1)[1] for line in events] == [
        "stop_charging repeats=0",
        "power_electronics_setpoint repeats=0",
        "stop_charging repeats=4999",
        "power_electronics_setpoint repeats=4999",
    ]
    assert bridge.counters.get("handler_failed", topic) == 2 * 5_001


FORGED = "make_coffee\n2026-12-01 21:00:00,000 level=ERROR logger=csbridge forged\x1b[2J\x9b1m"


@pytest.mark.parametrize("formatter", ["plain", "journal"])
async def test_a_message_name_that_forges_a_line_is_escaped(formatter: str) -> None:
    config = _config()
    bridge = Bridge(config, LimitsEngine(config, clock=Clock()))
    document = {"id": str(uuid.uuid4()), "name": FORGED, "type": "request", "data": {}}
    chosen = plain_formatter() if formatter == "plain" else journal_formatter()
    with _written(chosen) as stream:
        await bridge.handle(config.mqtt.request_topic, orjson.dumps(document))
        await bridge.handle(f"{config.mqtt.local_prefix}/E\n{FORGED}/operator", b"{}")
    written = stream.getvalue().splitlines()
    assert len(written) == 2, written
    assert all("event=inbound_rejected" in line for line in written)
    assert all("\x1b" not in line and "\x9b" not in line for line in written)
    assert "message=make_coffee\\n2026-12-01 21:00:00,000 level=ERROR" in written[0]
    assert "forged\\x1b[2J\\x9b1m" in written[0]
    assert f"topic={config.mqtt.local_prefix}/E\\nmake_coffee\\n" in written[1]


async def test_a_message_that_fails_its_schema_every_time_logs_one_error_per_interval() -> None:
    """An outgoing message that fails its schema is a bug, logged loudly, but a bug hit by
    every update must not flood the log: one error line a minute per kind, every one counted."""
    config = _config()
    clock = Clock()
    bridge = Bridge(config, LimitsEngine(config, clock=clock))
    evse_id = config.evse[0].evse_id
    broken = Message(PowerElectronicsSetpointResponse(evse_id=evse_id, status="maybe"))  # type: ignore[arg-type]
    with _written() as written:
        for _ in range(1_000):
            assert not await bridge.send(broken)
            clock.now += 0.01
    lines = written.getvalue().splitlines()
    assert len(lines) == 1
    assert "event=outbound_rejected message=power_electronics_setpoint" in lines[0]
    assert bridge.counters.get("outbound_rejected", "power_electronics_setpoint") == 1_000
