"""The emulator's whole DC session against the simulated station: every step must pass."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from csbridge.service.station import Station
from csbridge.support.resources import example_config
from csbridge.testing.brokers import Broker
from csbridge.tools.emulator import JosevEmulator
from csbridge.tools.scenarios.dc_session import DcSession
from tests.conftest import start_station, stop_bridge
from tests.support import station_config, unique_prefix

CSBRIDGE = [sys.executable, "-m", "csbridge"]


async def test_a_whole_dc_session_passes_every_step(broker: Broker) -> None:
    config = station_config(broker.url, unique_prefix())
    station, task = await start_station(config)
    try:
        async with JosevEmulator.connect(
            config.mqtt.broker,
            request_topic=config.mqtt.request_topic,
            response_topic=config.mqtt.response_topic,
        ) as josev:
            results = await DcSession(josev, config.mqtt.local_prefix).run()
            assert [r.name for r in results if not r.passed] == [], results
            assert len(results) == 11
            assert josev.problems == []
    finally:
        await stop_bridge(task)
    drop = next(r for r in results if r.name.startswith("a module falls silent"))
    assert "240.0 -> 160.0 A" in drop.detail
    assert isinstance(station, Station)


async def test_the_scenario_passes_against_csbridge_run_on_the_example(broker: Broker) -> None:
    """The issue's check: `csbridge emulate --scenario dc-session` against `csbridge run
    --config examples/sim-station.toml` (modules and IMD on the virtual CAN bus)."""
    run = await asyncio.create_subprocess_exec(
        *CSBRIDGE,
        "run",
        "--config",
        str(example_config("sim-station.toml")),
        "--broker",
        broker.url,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await asyncio.sleep(2.0)  # the stack fills up module by module
        emulate = await asyncio.create_subprocess_exec(
            *CSBRIDGE,
            "emulate",
            "--broker",
            broker.url,
            "--scenario",
            "dc-session",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"COLUMNS": "200", "NO_COLOR": "1", **os.environ},
        )
        out, err = await asyncio.wait_for(emulate.communicate(), 90)
        text = out.decode()
        assert emulate.returncode == 0, text + err.decode()
        assert "OK: 11 of 11 steps passed" in text
    finally:
        run.kill()
        await run.wait()
