"""`csbridge run` as systemd runs it: READY=1 after the first full state, WATCHDOG=1 while the
parts make progress, and on SIGTERM modules off, a final evse_shutdown update, status offline,
exit 0 within 2 s. systemd's side is a real unix datagram socket, as in sd_notify(3)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import aiomqtt
import orjson

from csbridge.config import broker_address, load_config
from csbridge.support.resources import example_config
from csbridge.testing.brokers import MosquittoBroker
from csbridge.testing.harness import wait_until
from tests.support import notifications_until, notifications_within

STOP_BOUND_S = 2.0


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
            before_ready = await notifications_until(sock, "READY=1", 15.0)
            assert "WATCHDOG=1" not in before_ready
            # READY=1 follows the hand-off of the full state to the broker connection.
            await wait_until(
                lambda: any(
                    topic == "cs/josev" and orjson.loads(payload)["type"] == "update"
                    for topic, payload in seen
                ),
                1.0,
                "the full state on cs/josev",
            )
            pings = await notifications_within(sock, 1.6)
            assert pings.count("WATCHDOG=1") >= 2, pings  # every WatchdogSec/2 = 0.5 s
            seen.clear()
            stop_sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.wait, 5.0)
            stopped_in = time.monotonic() - stop_sent
            goodbye = await notifications_within(sock, 0.2)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stderr = process.stderr.read().decode() if process.stderr else ""
        # The goodbye (a final update, then status offline) is on its way to the watcher; the
        # assertions below say what is missing if it never comes.
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: ("csbridge/status", b"offline") in seen, 2, "offline")
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
