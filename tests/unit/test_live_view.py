"""The demo's screen (tools/live_view.py): what Josev knows of each EVSE next to the session the
bridge runs for it."""

from __future__ import annotations

from csbridge.support.counters import Counters
from csbridge.tools.emulator import StationView
from csbridge.tools.live_view import DemoView, session_summary
from tests.session_rig import DC, STOPS, SessionRig
from tests.support import dc_report, line_of, text_console


def _table(rig: SessionRig) -> str:
    console, buffer = text_console()
    view = DemoView("mqtt://127.0.0.1:1883", console, Counters(), rig.engine)
    view.station_view = StationView(evses={DC: dict(rig.engine.entries.get(DC))})
    view.print_final_view()
    return buffer.getvalue().replace("│", " ")


def test_the_evse_table_shows_the_bridges_session() -> None:
    rig = SessionRig.ready()
    assert line_of(_table(rig), DC).split()[-1] == "available"

    rig.into_cable_check()
    text = _table(rig)

    assert "session (bridge)" in text
    assert line_of(text, DC).split()[-1] == "cable_check"
    assert "auth accepted (no_authorization)" in text


def test_the_summary_names_the_last_stop_and_is_empty_without_a_session() -> None:
    rig = SessionRig.ready()
    rig.into_cable_check()
    STOPS["transaction_ended"](rig)
    summary = session_summary(dict(rig.engine.reports.get(DC)))
    assert summary.splitlines()[-1] == "last stop: the transaction ended"
    assert session_summary(dc_report(("m1",))) == ""
