"""Josev's station `reset` against `csbridge run` as a real process: the answer goes out, then
the same goodbye as SIGTERM (every EVSE at evse_shutdown, status offline) and exit 75, the code
the packaged unit restarts on. And `check-config` warns about a configuration without
[station.identity] (device_model would go unanswered)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from pathlib import Path

import aiomqtt
import orjson

from csbridge.config import broker_address
from csbridge.session import EXIT_RESET
from csbridge.support.resources import example_config
from csbridge.testing.brokers import MosquittoBroker
from csbridge.testing.harness import wait_until

STOP_BOUND_S = 5.0
UNIT = Path(__file__).resolve().parents[2] / "packaging" / "systemd" / "csbridge.service"


async def _collect(client: aiomqtt.Client, into: list[tuple[str, bytes]]) -> None:
    async for message in client.messages:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        into.append((message.topic.value, payload))


def _josev(seen: list[tuple[str, bytes]]) -> list[dict[str, object]]:
    return [orjson.loads(payload) for topic, payload in seen if topic == "cs/josev"]


async def test_a_station_reset_answers_stops_gracefully_and_exits_for_a_restart(
    own_mosquitto: MosquittoBroker,
) -> None:
    host, port, _ = broker_address(own_mosquitto.url)
    seen: list[tuple[str, bytes]] = []
    async with aiomqtt.Client(host, port) as josev:
        await josev.subscribe("cs/josev", qos=1)
        await josev.subscribe("csbridge/status", qos=1)
        collecting = asyncio.create_task(_collect(josev, seen))
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "csbridge",
                "run",
                "--config",
                str(example_config("sim-station.toml")),
                "--broker",
                own_mosquitto.url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            await wait_until(
                lambda: any(m["type"] == "update" for m in _josev(seen)), 15, "the full state"
            )
            request_id = str(uuid.uuid4())
            request = {"id": request_id, "name": "reset", "type": "request", "data": {}}
            await josev.publish("josev/cs", orjson.dumps(request), qos=1)
            code = await asyncio.to_thread(process.wait, STOP_BOUND_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stderr = process.stderr.read().decode() if process.stderr else ""
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: ("csbridge/status", b"offline") in seen, 2, "offline")
        collecting.cancel()
    assert code == EXIT_RESET == 75, stderr
    answers = [m for m in _josev(seen) if m["id"] == request_id]
    assert answers == [
        {"id": request_id, "name": "reset", "type": "response", "data": {"status": "accepted"}}
    ]
    updates = [m for m in _josev(seen) if m["name"] == "cs_status_and_limits"]
    final = updates[-1]["data"]
    assert isinstance(final, dict)
    assert {entry["status_code"] for entry in final["evses"]} == {"evse_shutdown"}
    assert ("csbridge/status", b"offline") in seen
    assert "event=reset_station" in stderr
    assert "event=stopped why=reset" in stderr
    assert "Traceback" not in stderr


def test_the_packaged_unit_restarts_on_the_reset_code_and_counts_it_a_success() -> None:
    lines = [line.strip() for line in UNIT.read_text(encoding="utf-8").splitlines()]
    assert f"RestartForceExitStatus={EXIT_RESET}" in lines
    assert f"SuccessExitStatus={EXIT_RESET}" in lines
    assert "RestartPreventExitStatus=2" in lines


def _check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "csbridge", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_warns_without_an_identity_and_not_with_one(tmp_path: Path) -> None:
    example = example_config("sim-station.toml").read_text(encoding="utf-8")
    start = example.index("[station.identity]")
    without = tmp_path / "no-identity.toml"
    without.write_text(example[:start] + example[example.index("[mqtt]") :], encoding="utf-8")
    warned = _check_config(without)
    assert warned.returncode == 0, warned.stderr
    assert "warning: no [station.identity]" in warned.stderr
    assert "device_model" in warned.stderr
    quiet = _check_config(example_config("sim-station.toml"))
    assert quiet.returncode == 0, quiet.stderr
    assert "ok" in quiet.stdout
    assert "warning" not in quiet.stderr
