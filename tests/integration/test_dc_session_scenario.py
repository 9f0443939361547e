"""The emulator's whole DC session against the simulated station in this process: every step
must pass (against `csbridge run`: tests/system/test_cli.py)."""

from __future__ import annotations

from csbridge.service.station import Station
from csbridge.testing.brokers import Broker
from csbridge.testing.josev import JosevClient
from csbridge.tools.scenarios.dc_session import DcSession
from tests.conftest import start_station, stop_bridge
from tests.support import station_config, unique_prefix


async def test_a_whole_dc_session_passes_every_step(broker: Broker) -> None:
    config = station_config(broker.url, unique_prefix())
    station, task = await start_station(config)
    try:
        async with JosevClient.for_config(config) as josev:
            results = await DcSession(josev, config.mqtt.local_prefix).run()
            assert [r.name for r in results if not r.passed] == [], results
            assert len(results) == 14
            assert josev.problems == []
    finally:
        await stop_bridge(task)
    drop = next(r for r in results if r.name.startswith("a module falls silent"))
    assert "240.0 -> 160.0 A" in drop.detail
    assert isinstance(station, Station)
