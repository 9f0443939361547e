"""The emulator's whole AC session against the simulated station in this process: every step
must pass, and a station that fails the session must fail a step (against `csbridge run`:
tests/system/test_cli.py)."""

from __future__ import annotations

import pytest

from csbridge.messages import StopChargingRequest, StopChargingResponse, handles
from csbridge.session import SessionHandlers
from csbridge.testing.brokers import Broker
from csbridge.testing.josev import JosevClient
from csbridge.tools.scenarios.ac_session import AcSession
from csbridge.tools.scenarios.common import StepResult
from tests.conftest import start_station, stop_bridge
from tests.support import station_config, unique_prefix


async def _played(broker: Broker) -> tuple[list[StepResult], list[str]]:
    config = station_config(broker.url, unique_prefix())
    _, task = await start_station(config)
    try:
        async with JosevClient.for_config(config) as josev:
            results = await AcSession(josev, config.mqtt.local_prefix).run()
            return results, josev.problems
    finally:
        await stop_bridge(task)


async def test_a_whole_ac_session_passes_every_step(broker: Broker) -> None:
    results, problems = await _played(broker)
    assert [r.name for r in results if not r.passed] == [], results
    assert len(results) == 12
    assert problems == []
    by_name = {r.name: r.detail for r in results}
    assert by_name["authorized (free vend)"] == "no_authorization, connector occupied"
    assert by_name["the socket locks"] == "cs_connector status locked"
    assert by_name["the socket unlocks"] == "cs_connector status unlocked"


@handles(StopChargingRequest)
def _stop_that_does_nothing(
    self: SessionHandlers, message: StopChargingRequest
) -> StopChargingResponse:
    """A station that says it stopped and leaves the contactor closed."""
    return StopChargingResponse(evse_id=message.evse_id, status="accepted")


async def test_a_station_that_only_says_it_stopped_fails_the_stop(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SessionHandlers, "stop_charging", _stop_that_does_nothing)
    results, _ = await _played(broker)
    failed = [r for r in results if not r.passed]
    assert [r.name for r in failed] == ["stop: contactor opened"], results
    assert "cs_contactor_status" in failed[0].detail
    assert results[-1] is failed[0], "the scenario stops at the first failed step"
