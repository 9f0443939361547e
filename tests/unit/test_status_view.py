"""`csbridge status`: reports from the real limits engine rendered as text and tables, and the
command against a live station on the session's mosquitto."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from typing import Any

import aiomqtt
import orjson
import pytest
from rich.console import Console

from csbridge.config import Config
from csbridge.engine.engine import LimitsEngine
from csbridge.messages.registry import SchemaRegistry
from csbridge.mqtt.embedded_broker import free_port
from csbridge.sources.readings import (
    BoardReading,
    Capability,
    ExternalLimit,
    ImdReading,
    ModuleReading,
    OperatorCommand,
)
from csbridge.testing.brokers import Broker
from csbridge.tools.status_view import (
    StatusBoard,
    argument_problems,
    evse_text,
    header_text,
    render_evse,
    render_screen,
    watch_status,
)
from tests.conftest import start_station, stop_bridge
from tests.support import station_config

DC = "DE*CSB*E0001"
AC = "DE*CSB*E0002"
MODULE_EXPORT = Capability(max_voltage=1000, min_voltage=150, max_current=80, max_power=40000)
CSBRIDGE = [sys.executable, "-m", "csbridge"]
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}


def _engine() -> LimitsEngine:
    return LimitsEngine(station_config("mqtt://127.0.0.1:1", "unit"))


def _dc_report(modules: tuple[str, ...]) -> dict[str, Any]:
    """The DC EVSE's report with only `modules` of m1/m2/m3 ever heard from."""
    engine = _engine()
    for name in modules:
        reading = ModuleReading(
            name=name,
            address=int(name[1]),
            at=engine.clock(),
            output_voltage=400.0,
            output_current=12.5,
            export=MODULE_EXPORT,
            temperature_c=41.0,
        )
        engine.ingest(DC, reading)
    engine.ingest(DC, ImdReading(at=engine.clock(), resistance_ohm=5_000_000.0))
    engine.ingest(
        DC, BoardReading(at=engine.clock(), evse_temperature_c=30.0, plug_temperature_c=33.0)
    )
    return dict(engine.reports.get(DC))


def _ac_engine() -> LimitsEngine:
    engine = _engine()
    board = BoardReading(at=engine.clock(), max_current_a=32, max_discharge_current_a=16, phases=3)
    engine.ingest(AC, board)
    return engine


def _line(text: str, start: str) -> str:
    """The one line of `text` that starts with `start` (after the indent)."""
    lines = [line for line in text.splitlines() if line.strip().startswith(start)]
    assert len(lines) == 1, f"{start!r} in:\n{text}"
    return lines[0]


def _console(*, terminal: bool = False) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=200, force_terminal=terminal, color_system=None, highlight=False
    )
    return console, buffer


# -- rendering a real report ---------------------------------------------------------------


def test_a_module_never_heard_from_shows_and_binds_the_current() -> None:
    report = _dc_report(("m1", "m2"))
    dc = report["limits"]["dc"]
    assert (dc["max_current"], report["binding"]["max_current"]) == (160, "module_dropout")
    text = evse_text(DC, report)
    assert text.splitlines()[0] == f"{DC}  evse_ready  isolation valid"
    max_current = _line(text, "max_current ")
    assert "160 A" in max_current
    assert max_current.endswith("bound by module_dropout")
    assert _line(text, "max_power ").split()[1:] == ["80000", "W", "bound", "by", "module_dropout"]
    assert _line(text, "max_voltage ").split()[1:] == ["920", "V", "bound", "by", "hardware"]
    assert _line(text, "min_voltage ").split()[1:] == ["150", "V", "bound", "by", "hardware"]
    assert "bound by module_dropout" in _line(text, "evse_max_discharge_current ")
    assert _line(text, "module m3 ").split() == ["module", "m3", "@3", "never_seen"]
    m1 = _line(text, "module m1 ")
    for shown in ("healthy", "age 0.0 s", "400 V", "12.5 A", "max 80 A", "max 40000 W", "41 degC"):
        assert shown in m1
    imd = _line(text, "imd ")
    assert "fresh" in imd
    assert "5 MOhm" in imd
    assert "isolation valid" in imd
    assert "evse 30 degC, plug 33 degC" in _line(text, "board ")
    assert _line(text, "external limit ").split() == ["external", "limit", "inactive"]
    assert _line(text, "operator ").split() == ["operator", "enabled"]


def test_with_every_module_the_hardware_binds() -> None:
    text = evse_text(DC, _dc_report(("m1", "m2", "m3")))
    max_current = _line(text, "max_current ")
    assert "240 A" in max_current
    assert max_current.endswith("bound by hardware")
    assert "never_seen" not in text
    assert _line(text, "module m3 ").split()[3] == "healthy"


def test_ac_shows_each_phase_and_an_external_limit_with_its_expiry() -> None:
    engine = _ac_engine()
    before = evse_text(AC, engine.reports.get(AC))
    assert "25 / 25 / 25 A" in _line(before, "max_current ")
    assert _line(before, "max_current ").endswith("bound by installation")
    assert f"{AC}  evse_ready  isolation -" in before

    now = engine.clock()
    engine.ingest(AC, ExternalLimit(at=now, until=now + 60, max_current=10))
    after = evse_text(AC, engine.reports.get(AC))
    assert "10 / 10 / 10 A" in _line(after, "max_current ")
    assert _line(after, "max_current ").endswith("bound by external")
    external = _line(after, "external limit ")
    assert "active" in external.split()
    assert "max 10 A" in external
    assert "expires in 60.0 s" in external


def test_an_operator_disable_shows_its_reason_and_binds() -> None:
    engine = _ac_engine()
    engine.ingest(AC, OperatorCommand(at=engine.clock(), enabled=False, reason="commissioning"))
    text = evse_text(AC, engine.reports.get(AC))
    assert text.splitlines()[0].startswith(f"{AC}  evse_shutdown")
    assert _line(text, "max_current ").endswith("bound by operator")
    assert _line(text, "operator ").split() == ["operator", "disabled", "commissioning"]


def test_the_rich_panel_puts_each_limit_next_to_its_binding_source() -> None:
    console, buffer = _console()
    console.print(render_evse(DC, _dc_report(("m1", "m2")), "received 0.0 s ago"))
    text = buffer.getvalue()
    assert f"{DC}  evse_ready  isolation valid" in text
    assert "received 0.0 s ago" in text
    max_current = _line(text.replace("│", " "), "max_current ")
    assert "160 A" in max_current
    assert "module_dropout" in max_current
    m3 = _line(text.replace("│", " "), "module m3 ")
    assert "never_seen" in m3


def test_the_screen_says_when_the_bridge_is_offline_and_what_is_awaited() -> None:
    board = StatusBoard("mqtt://127.0.0.1:1883", prefix="site/csbridge", bridge="offline")
    console, buffer = _console()
    console.print(render_screen(board, 0.0))
    text = buffer.getvalue()
    assert "bridge offline" in text
    assert "not online" in text
    assert "waiting for retained reports on site/csbridge/+/limits" in text
    assert "last report none yet" in header_text(board, 0.0)


# -- what arrives on the topics ------------------------------------------------------------


def test_the_board_keeps_valid_reports_by_topic_and_warns_about_the_rest() -> None:
    registry = SchemaRegistry()
    board = StatusBoard("mqtt://x", prefix="p/csbridge", status_topic="p/status")
    report = _dc_report(("m1",))
    topic = f"p/csbridge/{DC}/limits"

    assert board.take("p/status", b"online", 1.0, registry).kind == "status"
    assert board.bridge == "online"
    assert board.take(topic, orjson.dumps(report), 2.0, registry).kind == "report"
    assert board.reports[DC] == report
    assert "last report 1.0 s ago" in header_text(board, 3.0)

    broken = {**report, "binding": {"max_current": "gremlins"}}
    bad = [
        (b"{not json", "not JSON"),
        (orjson.dumps(broken), "invalid EvseLimitsReport"),
        (orjson.dumps(_ac_engine().reports.get(AC)), f"is for {AC!r}"),
    ]
    for payload, why in bad:
        arrival = board.take(topic, payload, 4.0, registry)
        assert arrival.kind == "warning"
        assert why in arrival.text
        assert board.reports[DC] == report, "a bad payload keeps the last good report"
    assert len(board.warnings) == 3

    assert board.take("p/csbridge/a/b/limits", b"{}", 5.0, registry).kind == "ignored"
    assert board.take(topic, b"", 6.0, registry).kind == "cleared"
    assert DC not in board.reports


def test_arguments_are_checked_and_named() -> None:
    assert argument_problems("mqtt://127.0.0.1:1883", "csbridge", "csbridge/status", 3) == []
    problems = argument_problems("http://127.0.0.1:1", "a/#", "s/+", -1)
    assert [problem.split(":")[0] for problem in problems] == [
        "--broker",
        "--prefix",
        "--status-topic",
        "--duration",
    ]


async def test_an_unreachable_broker_returns_one_and_says_why() -> None:
    console, buffer = _console()
    url = f"mqtt://127.0.0.1:{free_port()}"
    assert await watch_status(url, duration_s=2, console=console) == 1
    assert f"could not connect to broker {url}" in buffer.getvalue()


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


# -- against the broker --------------------------------------------------------------------


async def test_plain_watch_shows_retained_reports_and_warns_about_bad_ones(
    prefix: str, broker: Broker, raw_client: aiomqtt.Client
) -> None:
    report = _dc_report(("m1", "m2"))
    status_topic = f"{prefix}/status"
    published = [
        (status_topic, b"online"),
        (f"{prefix}/{DC}/limits", orjson.dumps(report)),
        (f"{prefix}/{AC}/limits", b"{not json"),
    ]
    for topic, payload in published:
        await raw_client.publish(topic, payload, qos=1, retain=True)
    console, buffer = _console()
    try:
        code = await watch_status(
            broker.url,
            prefix=prefix,
            status_topic=status_topic,
            duration_s=1.5,
            console=console,
        )
    finally:
        for topic, _ in published:
            await raw_client.publish(topic, b"", qos=1, retain=True)
    text = buffer.getvalue()
    assert code == 0, text
    assert f"-- bridge online ({status_topic})" in text
    assert f"{DC}  evse_ready  isolation valid" in text
    assert _line(text, "max_current ").endswith("bound by module_dropout")
    assert f"warning: {prefix}/{AC}/limits: ignored: not JSON" in text


async def test_live_watch_on_a_terminal_draws_the_tables(
    prefix: str, broker: Broker, raw_client: aiomqtt.Client
) -> None:
    topic = f"{prefix}/{DC}/limits"
    await raw_client.publish(topic, orjson.dumps(_dc_report(("m1", "m2"))), qos=1, retain=True)
    console, buffer = _console(terminal=True)
    try:
        code = await watch_status(broker.url, prefix=prefix, duration_s=1.0, console=console)
    finally:
        await raw_client.publish(topic, b"", qos=1, retain=True)
    text = buffer.getvalue()
    assert code == 0, text
    assert "limits (as told to Josev)" in text
    assert "module_dropout" in text
    assert "bridge unknown" in text


async def test_status_command_shows_a_running_station(config: Config, broker: Broker) -> None:
    station, task = await start_station(config)
    try:
        # Straight into the engine: with a prefix that holds a "/" (as every test prefix does)
        # the bridge does not take <prefix>/<evse>/external_limit from MQTT.
        now = station.engine.clock()
        station.engine.ingest(AC, ExternalLimit(at=now, until=now + 60, max_current=10))
        async with asyncio.timeout(5):
            while station.engine.reported_binding(AC).get("max_current") != "external":
                await asyncio.sleep(0.01)
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
    finally:
        await stop_bridge(task)
    text = out.decode()
    assert process.returncode == 0, text + err.decode()
    assert f"-- bridge online ({config.mqtt.status_topic})" in text
    assert "bridge online  EVSEs 2" in text
    assert f"{DC}  evse_ready  isolation valid" in text
    assert f"{AC}  evse_ready  isolation -" in text
    dc_block = text[text.rindex(f"{DC}  evse_ready") :].split("\n\n")[0]
    assert "240 A" in _line(dc_block, "max_current ")
    assert _line(dc_block, "max_current ").endswith("bound by hardware")
    assert _line(dc_block, "module m3 ").split()[3] == "healthy"
    ac_block = text[text.rindex(f"{AC}  evse_ready") :].split("\n\n")[0]
    assert "10 / 10 / 10 A" in _line(ac_block, "max_current ")
    assert _line(ac_block, "max_current ").endswith("bound by external")
    assert "warning" not in text
