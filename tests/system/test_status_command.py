"""`csbridge status` as a user runs it: a process of its own, refusing a bad or unreachable
broker, and showing a running station's reports from the session's mosquitto."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import orjson
import pytest

from csbridge.config import Config
from csbridge.mqtt.embedded_broker import free_port
from csbridge.sources.readings import CpState, ExternalLimit
from csbridge.testing.brokers import Broker
from csbridge.testing.harness import wait_until
from tests.conftest import start_station, stop_bridge
from tests.support import line_of

DC = "DE*CSB*E0001"
AC = "DE*CSB*E0002"
CSBRIDGE = [sys.executable, "-m", "csbridge"]
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}


@pytest.mark.parametrize(
    ("url", "code"),
    [("http://127.0.0.1:1", 2), ("mqtt://", 2), ("unreachable", 1)],
)
async def test_the_command_refuses_a_bad_or_unreachable_broker(url: str, code: int) -> None:
    if url == "unreachable":
        url = f"mqtt://127.0.0.1:{free_port()}"
    process = await asyncio.create_subprocess_exec(
        *CSBRIDGE,
        "status",
        "--broker",
        url,
        "--duration",
        "2",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == code, out.decode() + err.decode()
    assert ("--broker" if code == 2 else "could not connect") in (out + err).decode()


async def test_status_command_shows_a_running_station(config: Config, broker: Broker) -> None:
    station, task = await start_station(config)
    try:
        # Straight into the engine: with a prefix that holds a "/" (as every test prefix does)
        # the bridge does not take <prefix>/<evse>/external_limit from MQTT.
        now = station.engine.clock()
        station.engine.ingest(AC, ExternalLimit(at=now, until=now + 60, max_current=10))
        await wait_until(
            lambda: station.engine.reported_binding(AC).get("max_current") == "external",
            5,
            "the external limit binding",
        )
        text = await _status_for_3_s(broker, config)
    finally:
        await stop_bridge(task)
    assert f"-- bridge online ({config.mqtt.status_topic})" in text
    assert "bridge online  EVSEs 2" in text
    assert f"{DC}  evse_ready  isolation valid" in text
    assert f"{AC}  evse_ready  isolation -" in text
    dc_block = text[text.rindex(f"{DC}  evse_ready") :].split("\n\n")[0]
    assert "240 A" in line_of(dc_block, "max_current ")
    assert line_of(dc_block, "max_current ").endswith("bound by hardware")
    assert line_of(dc_block, "module m3 ").split()[3] == "healthy"
    ac_block = text[text.rindex(f"{AC}  evse_ready") :].split("\n\n")[0]
    assert "10 / 10 / 10 A" in line_of(ac_block, "max_current ")
    assert line_of(ac_block, "max_current ").endswith("bound by external")
    assert "warning" not in text


async def test_status_command_shows_each_evse_session(config: Config, broker: Broker) -> None:
    station, task = await start_station(config)
    try:
        board = station.devices.boards[DC]
        board.cp_state = CpState.B  # plugged in: free vend authorizes
        station.devices.emit(board)

        def reported_authorized() -> bool:
            session = station.engine.reports.get(DC).get("session") or {}
            return bool(session.get("state") == "authorized")

        await wait_until(reported_authorized, 5, "the retained report's session authorized")
        text = await _status_for_3_s(broker, config)
    finally:
        await stop_bridge(task)
    dc_block = text[text.rindex(f"{DC}  evse_ready") :].split("\n\n")[0]
    dc_session = line_of(dc_block, "session ").strip().split("  ")
    assert dc_session[0] == "session authorized"
    assert dc_session[1].startswith("since 20")
    assert dc_session[1].endswith(" s)"), "how long, from the command's own clock"
    assert dc_session[2:] == [
        "authorization accepted (no_authorization)",
        "connector occupied (ev_connected)",
        "lock unlocked",  # a DC connector locks for the cable check
    ]
    ac_block = text[text.rindex(f"{AC}  evse_ready") :].split("\n\n")[0]
    ac_session = line_of(ac_block, "session ").strip().split("  ")
    assert ac_session[0] == "session available"
    assert ac_session[2:4] == ["authorization none", "connector available (idle)"]
    assert "warning" not in text


async def _status_for_3_s(broker: Broker, config: Config) -> str:
    """`csbridge status` on the station's topics for 3 s: what it printed (it must exit 0)."""
    process = await asyncio.create_subprocess_exec(
        *CSBRIDGE,
        "status",
        "--broker",
        broker.url,
        "--prefix",
        config.mqtt.local_prefix,
        "--status-topic",
        config.mqtt.status_topic,
        "--duration",
        "3",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out.decode() + err.decode()
    return out.decode()


async def test_status_json_is_one_object_once_and_one_per_change_when_watching(
    config: Config, broker: Broker
) -> None:
    _, task = await start_station(config)
    try:
        once = await _status(broker, config, "--json")
        watched = await _status(broker, config, "--json", "--duration", "2")
    finally:
        await stop_bridge(task)
    (line,) = once.splitlines()
    document = orjson.loads(line)
    assert document["bridge"] == "online"
    assert sorted(document["evses"]) == [DC, AC]
    assert document["evses"][DC]["limits"]["dc"]["max_current"] == 240
    assert document["evses"][DC]["binding"]["max_current"] == "hardware"
    assert document["warnings"] == []
    changes = [orjson.loads(line) for line in watched.splitlines()]
    assert {"change": "status", "bridge": "online"}.items() <= changes[0].items()
    reported = {change["evse_id"] for change in changes if change["change"] == "report"}
    assert reported == {DC, AC}, "the retained reports come first, each as a change"


async def _status(broker: Broker, config: Config, *options: str) -> str:
    """`csbridge status` with `options` on the station's topics: its stdout (it must exit 0
    and say nothing on stderr)."""
    process = await asyncio.create_subprocess_exec(
        *CSBRIDGE,
        "status",
        "--broker",
        broker.url,
        "--prefix",
        config.mqtt.local_prefix,
        "--status-topic",
        config.mqtt.status_topic,
        *options,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out.decode() + err.decode()
    assert err == b""
    return out.decode()
