"""`csbridge status`: reports from the real limits engine rendered as text and tables, and what
the watcher makes of each payload (against a broker: tests/integration/test_status_watch.py;
the command: tests/system/test_status_command.py)."""

from __future__ import annotations

import orjson

from csbridge.engine.engine import LimitsEngine
from csbridge.messages.registry import SchemaRegistry
from csbridge.sources.readings import BoardReading, ExternalLimit, OperatorCommand
from csbridge.tools.status_view import (
    StatusBoard,
    argument_problems,
    evse_text,
    header_text,
    render_evse,
    render_screen,
)
from tests.support import dc_report, line_of, status_engine, text_console

DC = "DE*CSB*E0001"
AC = "DE*CSB*E0002"


def _ac_engine() -> LimitsEngine:
    engine = status_engine()
    board = BoardReading(at=engine.clock(), max_current_a=32, max_discharge_current_a=16, phases=3)
    engine.ingest(AC, board)
    return engine


# -- rendering a real report ---------------------------------------------------------------


def test_a_module_never_heard_from_shows_and_binds_the_current() -> None:
    report = dc_report(("m1", "m2"))
    dc = report["limits"]["dc"]
    assert (dc["max_current"], report["binding"]["max_current"]) == (160, "module_dropout")
    text = evse_text(DC, report)
    assert text.splitlines()[0] == f"{DC}  evse_ready  isolation valid"
    max_current = line_of(text, "max_current ")
    assert "160 A" in max_current
    assert max_current.endswith("bound by module_dropout")
    max_power = line_of(text, "max_power ")
    assert max_power.split()[1:] == ["80000", "W", "bound", "by", "module_dropout"]
    assert line_of(text, "max_voltage ").split()[1:] == ["920", "V", "bound", "by", "hardware"]
    assert line_of(text, "min_voltage ").split()[1:] == ["150", "V", "bound", "by", "hardware"]
    assert "bound by module_dropout" in line_of(text, "evse_max_discharge_current ")
    assert line_of(text, "module m3 ").split() == ["module", "m3", "@3", "never_seen"]
    m1 = line_of(text, "module m1 ")
    for shown in ("healthy", "age 0.0 s", "400 V", "12.5 A", "max 80 A", "max 40000 W", "41 degC"):
        assert shown in m1
    imd = line_of(text, "imd ")
    assert "fresh" in imd
    assert "5 MOhm" in imd
    assert "isolation valid" in imd
    assert "evse 30 degC, plug 33 degC" in line_of(text, "board ")
    assert line_of(text, "external limit ").split() == ["external", "limit", "inactive"]
    assert line_of(text, "operator ").split() == ["operator", "enabled"]


def test_with_every_module_the_hardware_binds() -> None:
    text = evse_text(DC, dc_report(("m1", "m2", "m3")))
    max_current = line_of(text, "max_current ")
    assert "240 A" in max_current
    assert max_current.endswith("bound by hardware")
    assert "never_seen" not in text
    assert line_of(text, "module m3 ").split()[3] == "healthy"


def test_ac_shows_each_phase_and_an_external_limit_with_its_expiry() -> None:
    engine = _ac_engine()
    before = evse_text(AC, engine.reports.get(AC))
    assert "25 / 25 / 25 A" in line_of(before, "max_current ")
    assert line_of(before, "max_current ").endswith("bound by installation")
    assert f"{AC}  evse_ready  isolation -" in before

    now = engine.clock()
    engine.ingest(AC, ExternalLimit(at=now, until=now + 60, max_current=10))
    after = evse_text(AC, engine.reports.get(AC))
    assert "10 / 10 / 10 A" in line_of(after, "max_current ")
    assert line_of(after, "max_current ").endswith("bound by external")
    external = line_of(after, "external limit ")
    assert "active" in external.split()
    assert "max 10 A" in external
    assert "expires in 60.0 s" in external


def test_an_operator_disable_shows_its_reason_and_binds() -> None:
    engine = _ac_engine()
    engine.ingest(AC, OperatorCommand(at=engine.clock(), enabled=False, reason="commissioning"))
    text = evse_text(AC, engine.reports.get(AC))
    assert text.splitlines()[0].startswith(f"{AC}  evse_shutdown")
    assert line_of(text, "max_current ").endswith("bound by operator")
    assert line_of(text, "operator ").split() == ["operator", "disabled", "commissioning"]


def test_the_rich_panel_puts_each_limit_next_to_its_binding_source() -> None:
    console, buffer = text_console()
    console.print(render_evse(DC, dc_report(("m1", "m2")), "received 0.0 s ago"))
    text = buffer.getvalue()
    assert f"{DC}  evse_ready  isolation valid" in text
    assert "received 0.0 s ago" in text
    max_current = line_of(text.replace("│", " "), "max_current ")
    assert "160 A" in max_current
    assert "module_dropout" in max_current
    m3 = line_of(text.replace("│", " "), "module m3 ")
    assert "never_seen" in m3


def test_the_screen_says_when_the_bridge_is_offline_and_what_is_awaited() -> None:
    board = StatusBoard("mqtt://127.0.0.1:1883", prefix="site/csbridge", bridge="offline")
    console, buffer = text_console()
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
    report = dc_report(("m1",))
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
