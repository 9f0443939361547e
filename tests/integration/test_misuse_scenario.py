"""The emulator's misuse scenario against the simulated station in this process: every
out-of-sequence request refused, no module ever delivering output; and stations that break one
of those rules each fail it (against `csbridge run`: tests/system/test_cli.py)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiomqtt
import pytest
import pytest_asyncio

from csbridge.config import Config
from csbridge.limits import DcRequest
from csbridge.messages import (
    Absent,
    PowerElectronicsSetpointRequest,
    PowerElectronicsSetpointResponse,
    handles,
)
from csbridge.protocol import Bridge
from csbridge.protocol.recent import Handled, RecentMessages
from csbridge.session import SessionHandlers
from csbridge.session.power_path import PowerPath
from csbridge.testing.brokers import Broker
from csbridge.testing.josev import JosevClient
from csbridge.tools.scenarios.common import StepResult
from csbridge.tools.scenarios.misuse import Misuse
from csbridge.tools.scenarios.watch import OutputWatch
from tests.conftest import start_station, stop_bridge
from tests.support import station_config, unique_prefix

RETAINED = "(g) a retained setpoint on Josev's topic"
REPEATED = "(h) one request id twice: same answer, acted on once"


@dataclass(frozen=True, slots=True)
class Played:
    results: list[StepResult]
    problems: list[str]
    request_topic: str


Play = Callable[..., Awaitable[Played]]


@pytest_asyncio.fixture
async def play(broker: Broker) -> AsyncIterator[Play]:
    """Start a station (after the test's patches), then play misuse against it: every step, or
    boot and the steps named."""
    tasks = []

    async def played(*only: str) -> Played:
        config: Config = station_config(broker.url, unique_prefix())
        _, task = await start_station(config)
        tasks.append(task)
        async with (
            JosevClient.for_config(config) as josev,
            OutputWatch.connect(config.mqtt.broker, config.mqtt.local_prefix) as watch,
        ):
            misuse = Misuse(
                josev, watch, config.mqtt.local_prefix, station_client_id=config.mqtt.client_id
            )
            results = await misuse.run(only)
            return Played(results, josev.problems, config.mqtt.request_topic)

    yield played
    for task in tasks:
        await stop_bridge(task)


async def _kept_retained(raw_client: aiomqtt.Client, topic: str) -> list[bytes]:
    """What the broker keeps retained on `topic`. A live probe published after subscribing comes
    after every retained message the subscription brought (one client's messages keep their
    order), so once it arrives nothing more is to come."""
    probe = f"{topic}/probe-{uuid.uuid4().hex}"
    await raw_client.subscribe(topic, qos=1)
    await raw_client.subscribe(probe, qos=1)
    await raw_client.publish(probe, b"probe", qos=1)
    kept: list[bytes] = []
    async with asyncio.timeout(5):
        async for message in raw_client.messages:
            if message.topic.value == probe:
                return kept
            if message.retain and isinstance(message.payload, bytes):
                kept.append(message.payload)
    raise AssertionError("unreachable: the probe ends the loop or the timeout raises")


def _failed(results: list[StepResult]) -> list[StepResult]:
    return [result for result in results if not result.passed]


async def test_every_misuse_is_refused_and_no_module_delivers_output(
    play: Play, raw_client: aiomqtt.Client
) -> None:
    played = await play()
    results = played.results
    assert _failed(results) == [], results
    assert len(results) == 10
    assert played.problems == []
    assert await _kept_retained(raw_client, played.request_topic) == [], "cleared at the end"
    by_name = {r.name: r.detail for r in results}
    assert by_name[RETAINED] == (
        "kept retained; live copy answered rejected; "
        "replayed at the station's new subscription: not answered"
    )
    assert "verdict kept (valid)" in by_name[REPEATED]


def _number(value: float | Absent, default: float) -> float:
    return default if isinstance(value, Absent) else value


def _drive(handlers: SessionHandlers, message: PowerElectronicsSetpointRequest) -> None:
    """The setpoint straight to the modules, as csbridge did before issue 14."""
    dc = message.dc
    assert not isinstance(dc, Absent), "the scenario's setpoints are DC"
    handlers.power.run(
        message.evse_id,
        DcRequest(
            voltage=_number(dc.voltage, 0.0),
            ev_max_voltage=message.ev_limits.maximum_voltage,
            current=_number(dc.charge_current, 0.0),
        ),
    )


@handles(PowerElectronicsSetpointRequest)
def _accept_every_setpoint(
    self: SessionHandlers, message: PowerElectronicsSetpointRequest
) -> PowerElectronicsSetpointResponse:
    _drive(self, message)
    return PowerElectronicsSetpointResponse(evse_id=message.evse_id, status="accepted")


@handles(PowerElectronicsSetpointRequest)
def _refuse_but_drive(
    self: SessionHandlers, message: PowerElectronicsSetpointRequest
) -> PowerElectronicsSetpointResponse:
    _drive(self, message)
    return PowerElectronicsSetpointResponse(evse_id=message.evse_id, status="rejected")


async def test_a_station_that_accepts_every_setpoint_fails_at_the_first_misuse(
    play: Play, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SessionHandlers, "setpoint", _accept_every_setpoint)
    results = (await play()).results
    assert [r.name for r in _failed(results)] == ["(a) setpoint before plug-in"], results
    assert _failed(results)[0].detail == "before plug-in: the precharge setpoint was accepted"


async def test_output_behind_a_refusal_is_named_with_its_module_and_time(
    play: Play, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SessionHandlers, "setpoint", _refuse_but_drive)
    # ...and never switches them off again: the session's own all-off would hide the output.
    monkeypatch.setattr(PowerPath, "off", lambda self, evse_id: False)
    monkeypatch.setattr(PowerPath, "hold_off", lambda self, now: {})
    monkeypatch.setattr(PowerPath, "keep_alive", lambda self, evse_id: None)
    monkeypatch.setattr(PowerPath, "follow_limits", lambda self, evse_id: None)
    results = (await play()).results
    (failed,) = _failed(results)
    assert results[-1] is failed, "the scenario stops at the first failed step"
    assert re.search(
        r"module m\d \(limits report\) of DE\*CSB\*E0001 at [\d.]+ A, seen [\d.]+ s in, during '\(",
        failed.detail,
    ), failed


async def test_a_station_that_acts_on_a_replayed_retained_setpoint_fails_g(
    play: Play, monkeypatch: pytest.MonkeyPatch, raw_client: aiomqtt.Client
) -> None:
    taken = Bridge.handle

    async def retain_flag_ignored(
        self: Bridge, topic: str, payload: bytes, retained: bool = False
    ) -> None:
        await taken(self, topic, payload, False)

    monkeypatch.setattr(Bridge, "handle", retain_flag_ignored)
    played = await play(RETAINED)
    assert [r.name for r in played.results] == ["boot", RETAINED]
    assert played.results[1].detail == (
        "the setpoint replayed at a new subscription was answered ['rejected']"
    )
    assert await _kept_retained(raw_client, played.request_topic) == [], "cleared after a failure"


async def test_a_station_that_acts_on_a_repeated_request_fails_h(
    play: Play, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never_seen(self: RecentMessages, message: object) -> Handled | None:
        return None

    monkeypatch.setattr(RecentMessages, "earlier", never_seen)
    results = (await play(REPEATED)).results
    assert [r.name for r in results] == ["boot", REPEATED]
    assert not results[1].passed
    assert results[1].detail.startswith("the repeated start ran the check again"), results[1]
