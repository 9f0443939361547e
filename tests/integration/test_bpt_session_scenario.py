"""The emulator's bidirectional DC session against examples/bpt-station.toml in this process (its
BEG modules, IMD and IVT-S on virtual CAN buses of this test's own, the SDM630 served on a free
loopback port, the played LEM DCBM signing): every step must pass, and a station whose meter
cannot see the current run back must fail the discharge (against `csbridge run`:
tests/system/test_cli.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from csbridge.config import Config
from csbridge.mqtt import free_port
from csbridge.service.station import Station
from csbridge.sources.meters import Flow
from csbridge.support.resources import example_config
from csbridge.testing.brokers import Broker
from csbridge.testing.harness import isolated_config, wait_until
from csbridge.testing.josev import JosevClient
from csbridge.testing.lem_dcbm import PlayedLemDcbm, played_lem_dcbm
from csbridge.tools.scenarios.bpt_session import BptSession
from csbridge.tools.scenarios.common import StepResult
from tests.conftest import start_station, stop_bridge
from tests.support import unique_prefix

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def lem() -> Iterator[PlayedLemDcbm]:
    with played_lem_dcbm() as played:
        yield played


def bpt_station(broker: Broker, lem_url: str) -> Config:
    """The example on this test's topics and CAN channels, its loopback meters on ports of
    this test's own."""
    base = isolated_config(example_config("bpt-station.toml"), broker.url, unique_prefix())
    raw: dict[str, Any] = base.model_dump(mode="json", exclude_none=True)
    dc, ac = raw["evse"]
    dc["meter"]["signing"]["url"] = lem_url
    ac["meter"]["modbus"]["tcp"]["port"] = free_port()
    return Config.model_validate(raw)


def _closed(lem: PlayedLemDcbm) -> bool:
    """The signing meter saw one transaction, and its end."""
    with lem.lock:
        transactions = list(lem.state.transactions.values())
    return len(transactions) == 1 and not transactions[0].running


async def _played(broker: Broker, lem: PlayedLemDcbm) -> tuple[list[StepResult], list[str]]:
    """The scenario's results and the emulator's problems, once the signing meter has seen
    the transaction end (passed or failed, the scenario leaves none open)."""
    config = bpt_station(broker, lem.url)
    _, task = await start_station(config)
    try:
        async with JosevClient.for_config(config) as josev:
            results = await BptSession(josev, config.mqtt.local_prefix).run()
            await wait_until(lambda: _closed(lem), 10, "the transaction ended on the LEM")
            return results, josev.problems
    finally:
        await stop_bridge(task)


async def test_a_whole_bpt_session_passes_every_step(broker: Broker, lem: PlayedLemDcbm) -> None:
    results, problems = await _played(broker, lem)
    assert [r.name for r in results if not r.passed] == [], results
    assert len(results) == 17
    assert problems == []
    by_name = {r.name: r.detail for r in results}
    assert by_name["charge 10 s at 20 A"].startswith("+")
    assert by_name["discharge 10 s at 8000 W"].startswith("-")
    assert "readings B," in by_name["transaction start: signed value"]
    assert "readings BE," in by_name["transaction end: signed value"]
    assert by_name["energy from the meter registers"].startswith("imported ")


def _magnitude_only(self: Station, evse_id: str) -> Flow:
    """A meter fed the modules' measurement as it is: a magnitude in either direction."""
    power = self.session.power
    return Flow(power.measured_voltage(evse_id), power.measured_current(evse_id))


async def test_a_meter_that_never_sees_the_current_run_back_fails_the_discharge(
    broker: Broker, lem: PlayedLemDcbm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Station, "meter_flow", _magnitude_only)
    results, _ = await _played(broker, lem)
    failed = [r for r in results if not r.passed]
    assert [r.name for r in failed] == ["discharge 10 s at 8000 W"], results
    assert "the wrong way" in failed[0].detail
    assert results[-1] is failed[0], "the scenario stops at the first failed step"
