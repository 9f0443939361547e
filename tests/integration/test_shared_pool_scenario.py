"""Issue 18's check: the shared-pool scenario against `csbridge run --config
examples/shared-pool.toml` (a process of its own, the example as shipped) on a mosquitto of this
test's own (the example's topics and client id stay as they are; nothing else is on that
broker). The scenario runs here, so each decision's timing can be read."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import tempfile
from typing import IO

import pytest

from csbridge.config import load_config
from csbridge.support.resources import example_config
from csbridge.testing.brokers import MosquittoBroker
from csbridge.testing.harness import wait_until
from csbridge.tools.emulator import JosevEmulator
from csbridge.tools.scenarios.pool_view import PoolView
from csbridge.tools.scenarios.shared_pool import SharedPool
from csbridge.tools.scenarios.watch import OutputWatch

pytestmark = pytest.mark.timeout(120)

EXAMPLE = "shared-pool.toml"
START_TIMEOUT_S = 20.0


def _pooled_reports(watch: OutputWatch) -> int:
    return sum(PoolView.of(report) is not None for report in watch.reports.values())


async def _station(url: str, log: IO[bytes]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csbridge",
        "run",
        "--config",
        str(example_config(EXAMPLE)),
        "--broker",
        url,
        stdout=subprocess.DEVNULL,
        stderr=log,  # a file: a pipe nobody reads would stall it once full
    )


async def test_the_shared_pool_scenario_passes_against_csbridge_run(
    own_mosquitto: MosquittoBroker,
) -> None:
    config = load_config(example_config(EXAMPLE))
    url = own_mosquitto.url
    with tempfile.TemporaryFile() as log:
        station = await _station(url, log)
        try:
            async with (
                JosevEmulator.connect(
                    url,
                    request_topic=config.mqtt.request_topic,
                    response_topic=config.mqtt.response_topic,
                ) as josev,
                OutputWatch.connect(url, config.mqtt.local_prefix) as watch,
            ):
                await wait_until(
                    lambda: _pooled_reports(watch) >= 2,
                    START_TIMEOUT_S,
                    "two EVSEs' limits reports with a pool block",
                )
                scenario = SharedPool(josev, watch, config.mqtt.local_prefix)
                results = await scenario.run()
                problems = list(josev.problems)
        finally:
            station.kill()
            await station.wait()
        failed = [r for r in results if not r.passed]
        if failed or problems or len(results) != len(scenario.steps()):
            log.seek(0)
            tail = log.read()[-20_000:].decode(errors="replace")
            table = "\n".join(
                f"{'pass' if r.passed else 'FAIL'} {r.name}: {r.detail}" for r in results
            )
            pytest.fail(f"{table}\nproblems: {problems}\n-- the station's log --\n{tail}")
    # Every change was told to Josev, and every decision's moves completed.
    assert len(scenario.moves) == 5, scenario.moves
    for move in scenario.moves:
        if move.decided:
            assert move.moved_s is not None, move
            assert move.moved_s >= 0, move
        for seconds in move.updates_s.values():
            assert seconds is None or not math.isnan(seconds), move
    by_name = {r.name: r.detail for r in results}
    assert "EV1 180 kW" in by_name["EV1 charges alone: the whole pool"]
    assert "EV1 90 kW, EV2 90 kW" in by_name["EV2 charges: half each"]
    assert "EV1 150 kW, EV2 30 kW" in by_name["EV2 asks for one module: the rest back to EV1"]
    assert "EV1 120 kW" in by_name["one of EV1's modules fails"]
    # The dropout is a decision of its own (issue 18: re-allocation on a module dropout): the
    # silent module is held where it is, not serving, and says why.
    assert "absent: stale" in by_name["one of EV1's modules fails"]
    assert scenario.moves[3].decided, scenario.moves[3]
    assert "EV2 150 kW" in by_name["EV2 asks for full power: all that remains"]
