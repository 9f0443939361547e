"""`csbridge run` as systemd runs it: READY=1 after the first full state, WATCHDOG=1 while the
parts make progress, and on SIGTERM modules off, a final evse_shutdown update, status offline,
exit 0 within 2 s. systemd's side is a real unix datagram socket, as in sd_notify(3)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import orjson
import pytest

from csbridge.config import Config, broker_address, load_config
from csbridge.service.sd_notify import SystemdNotifier
from csbridge.service.station import Station
from csbridge.service.watchdog import MIN_STALL_S, Watched, feed_watchdog
from csbridge.sources.readings import OperatorCommand
from csbridge.support.counters import Counters
from csbridge.support.resources import example_config
from csbridge.testing.brokers import MosquittoBroker
from tests.conftest import josev_for
from tests.integration.test_dc_session import _setpoint

STOP_BOUND_S = 2.0
DC = "DE*CSB*E0001"


@pytest.fixture
def systemd_socket() -> Iterator[tuple[socket.socket, str]]:
    """What systemd listens on: an abstract unix datagram socket (no path length limit)."""
    name = f"@csbridge-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    sock.settimeout(0.1)
    yield sock, name
    sock.close()


def _received(sock: socket.socket, until: float) -> list[str]:
    states = []
    while time.monotonic() < until:
        try:
            states.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
    return states


def _wait_for_state(sock: socket.socket, wanted: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    states: list[str] = []
    while time.monotonic() < deadline:
        try:
            states.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
        if states[-1] == wanted:
            return states
    raise AssertionError(f"no {wanted} within {timeout} s; got {states}")


async def _collect(client: aiomqtt.Client, into: list[tuple[str, bytes]]) -> None:
    async for message in client.messages:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        into.append((message.topic.value, payload))


async def test_run_under_systemd_readies_feeds_the_watchdog_and_stops_within_two_seconds(
    own_mosquitto: MosquittoBroker, systemd_socket: tuple[socket.socket, str]
) -> None:
    sock, name = systemd_socket
    host, port, _ = broker_address(own_mosquitto.url)
    seen: list[tuple[str, bytes]] = []
    async with aiomqtt.Client(host, port) as watcher:
        await watcher.subscribe("cs/josev", qos=1)
        await watcher.subscribe("csbridge/status", qos=1)
        collecting = asyncio.create_task(_collect(watcher, seen))
        environment = {
            **os.environ,
            "NOTIFY_SOCKET": name,
            "WATCHDOG_USEC": "1000000",
            "WATCHDOG_PID": "",
        }
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
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            before_ready = await asyncio.to_thread(_wait_for_state, sock, "READY=1", 15.0)
            assert "WATCHDOG=1" not in before_ready
            # READY=1 follows the hand-off of the full state to the broker connection.
            async with asyncio.timeout(1.0):
                while not any(
                    topic == "cs/josev" and orjson.loads(payload)["type"] == "update"
                    for topic, payload in seen
                ):
                    await asyncio.sleep(0.01)
            pings = await asyncio.to_thread(_received, sock, time.monotonic() + 1.6)
            assert pings.count("WATCHDOG=1") >= 2, pings  # every WatchdogSec/2 = 0.5 s
            seen.clear()
            stop_sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.wait, 5.0)
            stopped_in = time.monotonic() - stop_sent
            goodbye = await asyncio.to_thread(_received, sock, time.monotonic() + 0.2)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stderr = process.stderr.read().decode() if process.stderr else ""
        await asyncio.sleep(0.3)
        collecting.cancel()
    assert code == 0, stderr
    assert stopped_in < STOP_BOUND_S, f"stopped in {stopped_in:.2f} s"
    assert "STOPPING=1" in goodbye or "STOPPING=1" in pings
    updates = [
        orjson.loads(payload)
        for topic, payload in seen
        if topic == "cs/josev" and orjson.loads(payload)["type"] == "update"
    ]
    final = [u for u in updates if u["name"] == "cs_status_and_limits"][-1]
    configured = load_config(example_config("sim-station.toml"))
    assert {e["evse_id"] for e in final["data"]["evses"]} == {e.evse_id for e in configured.evse}
    for entry in final["data"]["evses"]:
        assert entry["status_code"] == "evse_shutdown"
        limits = entry.get("dc") or entry.get("ac")
        assert limits is not None
        maxima = [v for k, v in limits.items() if k.startswith("max_")]
        flat = [p for v in maxima for p in (v.values() if isinstance(v, dict) else [v])]
        assert flat
        assert all(v == 0 for v in flat), orjson.dumps(limits).decode()
    assert ("csbridge/status", b"offline") in seen
    assert "Traceback" not in stderr
    assert "event=stopped" in stderr


async def test_shut_down_switches_the_modules_off_and_no_operator_brings_them_back(
    wire_station: Station, wire_config: Config
) -> None:
    station = wire_station
    async with josev_for(wire_config) as josev:
        setpoint = _setpoint(400.0, 90.0)
        answer = await josev.request("power_electronics_setpoint", setpoint, timeout=5)
        assert answer.data["status"] == "accepted"
        async with asyncio.timeout(5):
            while station.devices.modules[(DC, "m1")].output_current == 0.0:
                await asyncio.sleep(0.02)
        await station.shut_down()
        async with asyncio.timeout(3):
            while any(m.output_current for m in station.devices.modules.values()):
                await asyncio.sleep(0.02)
        assert station.engine.entries.get(DC)["status_code"] == "evse_shutdown"
        station.engine.ingest(DC, OperatorCommand(at=station.engine.clock(), enabled=True))
        assert station.engine.entries.get(DC)["status_code"] == "evse_shutdown"
        refused = await josev.request("power_electronics_setpoint", setpoint, timeout=5)
        assert refused.data["status"] != "accepted"


async def test_the_watchdog_is_fed_only_while_every_part_makes_progress(
    systemd_socket: tuple[socket.socket, str],
) -> None:
    sock, name = systemd_socket
    notifier = SystemdNotifier(name, watchdog_s=0.2)
    stuck_since: list[float] = []

    def progress(now: float) -> float:
        return now - stuck_since[0] if stuck_since else 0.0

    counters = Counters()
    feeding = asyncio.create_task(
        feed_watchdog(notifier, [Watched("can:can0", progress)], counters)
    )
    try:
        healthy = await asyncio.to_thread(_received, sock, time.monotonic() + 0.5)
        assert healthy.count("WATCHDOG=1") >= 3
        stuck_since.append(time.monotonic() - MIN_STALL_S - 1)
        await asyncio.sleep(0.15)  # a ping already under way may still arrive
        await asyncio.to_thread(_received, sock, time.monotonic() + 0.05)
        withheld = await asyncio.to_thread(_received, sock, time.monotonic() + 0.5)
        assert withheld == []
        assert counters.get("watchdog_withheld", "can:can0") >= 2
    finally:
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)


def test_watchdog_settings_are_taken_only_when_meant_for_this_process() -> None:
    mine = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert mine.watchdog_s == 10.0
    other = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}
    )
    assert other.watchdog_s is None
    outside = SystemdNotifier.from_environment({})
    assert not outside.enabled
    assert outside.notify("READY=1") is False


def test_a_password_file_readable_by_others_is_warned_about(tmp_path: Path) -> None:
    from csbridge.config import MqttConfig, exposed_secret_files  # noqa: PLC0415

    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    config = MqttConfig(username="csbridge", password_file=secret)
    assert exposed_secret_files(config) == [secret]
    secret.chmod(0o600)
    assert exposed_secret_files(config) == []
