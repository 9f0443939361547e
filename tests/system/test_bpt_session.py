"""The issue's check for bidirectional charging, as a user runs it: the played LEM DCBM, `csbridge
run --config examples/bpt-station.toml` and `csbridge emulate --scenario bpt-session`, three
real processes on a real broker. The example's two loopback ports (the LEM's, the SDM630's) are
moved to free ones in a copy of it, so that nothing else on the machine can hold them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import orjson
import pytest

from csbridge.config import broker_address
from csbridge.mqtt import free_port
from csbridge.support.resources import example_config
from csbridge.testing.brokers import Broker

CSBRIDGE = [sys.executable, "-m", "csbridge"]
PLAY_LEM = [sys.executable, "-m", "csbridge.testing.play_lem_dcbm"]
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
DC = "DE*CSB*E0001"
LEM_URL = "http://127.0.0.1:8710"
SDM630_PORT = "port = 15020"


def _example_on_free_ports(folder: Path, lem_port: int) -> Path:
    text = example_config("bpt-station.toml").read_text(encoding="utf-8")
    assert text.count(LEM_URL) == 1
    assert text.count(SDM630_PORT) == 1
    text = text.replace(LEM_URL, f"http://127.0.0.1:{lem_port}")
    text = text.replace(SDM630_PORT, f"port = {free_port()}")
    path = folder / "bpt-station.toml"
    path.write_text(text, encoding="utf-8")
    return path


@contextlib.asynccontextmanager
async def _played_lem(port: int) -> AsyncIterator[None]:
    """The played meter's process, once it says where it serves."""
    lem = await asyncio.create_subprocess_exec(
        *PLAY_LEM, "--port", str(port), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert lem.stdout is not None
        line = await asyncio.wait_for(lem.stdout.readline(), 15)
        assert line.decode().strip() == f"serving http://127.0.0.1:{port}", line
        yield
    finally:
        lem.terminate()
        await lem.wait()


def _ready_for_bpt(payload: bytes) -> bool:
    """A cs_status_and_limits update with the DC EVSE ready (its meter heard) and able to take
    the scenario's 8 kW back."""
    message = orjson.loads(payload)
    if (message["name"], message["type"]) != ("cs_status_and_limits", "update"):
        return False
    return any(
        entry["evse_id"] == DC
        and entry["status_code"] == "evse_ready"
        and entry.get("dc_bpt", {}).get("evse_max_discharge_power", 0) >= 8000
        for entry in message["data"]["evses"]
    )


async def _until_ready(url: str, timeout: float) -> None:
    host, port, _ = broker_address(url)
    async with aiomqtt.Client(host, port) as client, asyncio.timeout(timeout):
        await client.subscribe("cs/josev", qos=1)
        async for message in client.messages:
            if isinstance(message.payload, bytes) and _ready_for_bpt(message.payload):
                return


def test_check_config_accepts_the_bpt_example() -> None:
    result = subprocess.run(
        [*CSBRIDGE, "check-config", str(example_config("bpt-station.toml"))],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{DC}: dc + bpt" in result.stdout


@pytest.mark.timeout(150)
async def test_the_bpt_session_passes_against_csbridge_run_on_the_example(
    broker: Broker, tmp_path: Path
) -> None:
    lem_port = free_port()
    config = _example_on_free_ports(tmp_path, lem_port)
    with tempfile.TemporaryFile() as station_log:
        async with _played_lem(lem_port):
            run = await asyncio.create_subprocess_exec(
                *CSBRIDGE,
                "run",
                "--config",
                str(config),
                "--broker",
                broker.url,
                stdout=subprocess.DEVNULL,
                stderr=station_log,  # a file: a pipe nobody reads would stall it once full
            )
            try:
                await _until_ready(broker.url, 20)
                emulate = await asyncio.create_subprocess_exec(
                    *CSBRIDGE,
                    "emulate",
                    "--broker",
                    broker.url,
                    "--scenario",
                    "bpt-session",
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=ENV,
                )
                out, err = await asyncio.wait_for(emulate.communicate(), 90)
            finally:
                run.kill()
                await run.wait()
        text = out.decode()
        if emulate.returncode != 0:
            station_log.seek(0)
            log_tail = station_log.read()[-20_000:].decode(errors="replace")
            pytest.fail(f"{text}{err.decode()}\n-- the station's log --\n{log_tail}")
    assert "OK: 17 of 17 steps passed" in text
    assert "readings BE" in text  # the end's record holds the begin and the end
    assert "imported " in text
    assert "exported " in text
