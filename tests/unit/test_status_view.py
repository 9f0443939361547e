"""`csbridge status`: reports from the real limits engine rendered as text and tables, and what
the watcher makes of each payload (against a broker: tests/integration/test_status_watch.py;
the command: tests/system/test_status_command.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from csbridge.engine.engine import LimitsEngine
from csbridge.messages import parse_josev_date_time
from csbridge.messages.registry import SchemaRegistry
from csbridge.sources.readings import BoardReading, ExternalLimit, OperatorCommand
from csbridge.tools.status_view import (
    StatusBoard,
    argument_problems,
    elapsed,
    evse_text,
    header_text,
    plain_lines,
    render_evse,
    render_screen,
)
from tests.session_rig import STOPS, SessionRig
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


# -- the session (a bridge with session state machines) ------------------------------------


def _in_cable_check() -> tuple[SessionRig, dict[str, Any]]:
    rig = SessionRig.ready()
    rig.into_cable_check()
    return rig, dict(rig.engine.reports.get(DC))


def test_the_session_line_says_state_since_authorization_connector_and_lock() -> None:
    rig, report = _in_cable_check()
    since = report["session"]["since"]
    shown = parse_josev_date_time(since)
    assert shown is not None
    assert abs(shown - rig.session.sessions[DC].since) < timedelta(milliseconds=1)
    wall_now = datetime.fromisoformat(since) + timedelta(seconds=125)

    text = evse_text(DC, report, wall_now)

    lines = text.splitlines()
    assert lines[0] == f"{DC}  evse_ready  isolation valid", "the title stays as it was"
    assert lines[1].strip().split("  ") == [
        "session cable_check",
        f"since {since} (2 min 5 s)",
        "authorization accepted (no_authorization)",
        "connector occupied (ev_connected)",
        "lock locked",
    ]
    assert "last stop" not in text, "no session has stopped yet"
    assert "240 A" in line_of(text, "max_current ")


def test_the_last_stop_shows_its_reason_and_when() -> None:
    rig, _ = _in_cable_check()
    STOPS["stop_charging"](rig)
    rig.unplug()
    report = dict(rig.engine.reports.get(DC))
    stop = report["session"]["last_stop"]
    wall_now = datetime.fromisoformat(stop["at"]) + timedelta(hours=3, minutes=4, seconds=5)

    text = evse_text(DC, report, wall_now)

    assert line_of(text, "session ").strip().split("  ")[0] == "session available"
    assert line_of(text, "last stop ").strip() == (
        f"last stop stop_charging  at {stop['at']} (3 h 4 min ago)"
    )


def test_without_the_time_of_now_no_durations_are_made_up() -> None:
    _, report = _in_cable_check()
    session = line_of(evse_text(DC, report), "session ")
    assert f"since {report['session']['since']}  authorization" in session


def test_a_report_without_a_session_block_still_renders() -> None:
    report = dc_report(("m1", "m2", "m3"))
    assert "session" not in report, "an older bridge's report"
    assert SchemaRegistry().violation("EvseLimitsReport", report) is None

    text = evse_text(DC, report, datetime.now(UTC))
    console, buffer = text_console()
    console.print(render_evse(DC, report, "received 0.0 s ago", datetime.now(UTC)))

    assert not [line for line in text.splitlines() if line.strip().startswith("session")]
    assert text.splitlines()[1].strip().startswith("max_current ")
    assert "session" not in buffer.getvalue()
    assert "limits (as told to Josev)" in buffer.getvalue()


def test_the_rich_panel_has_a_session_table_with_the_columns_it_fills() -> None:
    rig, report = _in_cable_check()
    wall_now = datetime.fromisoformat(report["session"]["since"]) + timedelta(seconds=42)
    console, buffer = text_console()
    console.print(render_evse(DC, report, "received 0.0 s ago", wall_now))
    text = buffer.getvalue().replace("│", " ")
    header = line_of(text, "session ")
    assert header.split() == ["session", "since", "for", "authorization", "connector", "lock"]
    row = line_of(text, "cable_check ")
    shown = ["42", "s", "accepted", "(no_authorization)", "occupied", "(ev_connected)", "locked"]
    assert row.split()[2:] == shown

    STOPS["stop_charging"](rig)
    stopped = dict(rig.engine.reports.get(DC))
    console, buffer = text_console()
    console.print(render_evse(DC, stopped, "", wall_now))
    assert "last stop" in line_of(buffer.getvalue().replace("│", " "), "session ")


def test_a_reported_session_passes_the_watcher() -> None:
    _, report = _in_cable_check()
    board = StatusBoard("mqtt://x", prefix="p/csbridge", status_topic="p/status")
    arrival = board.take(f"p/csbridge/{DC}/limits", orjson.dumps(report), 1.0, SchemaRegistry())
    assert arrival.kind == "report"
    lines = plain_lines(board, arrival, 1.0, datetime.now(UTC))
    assert "session cable_check" in lines[1]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0 s"),
        (59.9, "59 s"),
        (60, "1 min 0 s"),
        (3599, "59 min 59 s"),
        (3600, "1 h 0 min"),
        (86399, "23 h 59 min"),
        (90061, "1 d 1 h"),
        (-5, "0 s"),
    ],
)
def test_elapsed_time_in_its_two_largest_units(seconds: float, shown: str) -> None:
    since = "2026-11-23T10:00:00.000Z"
    start = datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert elapsed(since, start + timedelta(seconds=seconds)) == shown


def test_elapsed_is_empty_when_it_cannot_be_known() -> None:
    now = datetime.now(UTC)
    assert elapsed("2026-11-23T10:00:00.000Z", None) == ""
    assert elapsed("2026-13-40T10:00:00Z", now) == ""
    assert elapsed(None, now) == ""
