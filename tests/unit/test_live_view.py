"""The demo's screen (tools/live_view.py): what Josev knows of each EVSE next to the session the
bridge runs for it."""

from __future__ import annotations

from csbridge.engine.engine import LimitsEngine
from csbridge.sources.readings import BoardReading, ExternalLimit, ImdReading, ModuleReading
from csbridge.support.counters import Counters
from csbridge.tools.emulator import Exchange, StationView
from csbridge.tools.live_view import DemoView, entry_values, session_summary, value_changes
from tests.session_rig import DC, STOPS, SessionRig
from tests.support import (
    STATUS_DC,
    STATUS_MODULE_EXPORT,
    dc_report,
    line_of,
    status_engine,
    text_console,
)


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


# -- piped output: each update's changed values ---------------------------------------------


def _module(engine: LimitsEngine, name: str) -> None:
    reading = ModuleReading(
        name=name,
        address=int(name[1]),
        at=engine.clock(),
        output_voltage=400.0,
        output_current=12.5,
        export=STATUS_MODULE_EXPORT,
        temperature_c=41.0,
    )
    engine.ingest(STATUS_DC, reading)


def _sent(engine: LimitsEngine, kind: str) -> Exchange:
    entry = dict(engine.reports.get(STATUS_DC)["limits"])  # as Josev was told
    data = {"evses": [entry]}
    return Exchange(0.0, False, "cs_status_and_limits", kind, "0123456789", data)


def test_a_piped_update_shows_each_changed_value_and_what_binds_it() -> None:
    engine = status_engine()
    _module(engine, "m1")
    _module(engine, "m2")
    engine.ingest(STATUS_DC, ImdReading(at=engine.clock(), resistance_ohm=5_000_000.0))
    engine.ingest(
        STATUS_DC, BoardReading(at=engine.clock(), evse_temperature_c=30.0, plug_temperature_c=33.0)
    )
    console, buffer = text_console()
    view = DemoView("mqtt://127.0.0.1:1883", console, Counters(), engine)
    view.exchange(_sent(engine, "response"))
    now = engine.clock()
    engine.ingest(STATUS_DC, ExternalLimit(at=now, until=now + 60, max_current=50))
    view.exchange(_sent(engine, "update"))
    view.exchange(_sent(engine, "update"))
    response, update, same = buffer.getvalue().splitlines()
    assert response.startswith("cs -> josev cs_status_and_limits/response id=01234567 ")
    assert f"{STATUS_DC}:" not in response, "the boot's answer is named, not diffed"
    changes = update.split(f"  {STATUS_DC}: ")[1].split(", ")
    assert "max_current 160 A -> 50 A (bound by external)" in changes
    assert all(" -> " in change for change in changes), "only what changed"
    assert same.endswith(f"  {STATUS_DC}: no change")


def test_value_changes_name_new_gone_and_per_phase_values() -> None:
    before = {"status_code": "evse_ready", "max_current": {"l1": 16, "l2": 16, "l3": 16}}
    after = {"status_code": "evse_ready", "max_current": {"l1": 10, "l2": 10, "l3": 10.5}}
    binding = {"max_current": "external"}
    assert value_changes(before, after, binding) == [
        "max_current 16/16/16 A -> 10/10/10.5 A (bound by external)"
    ]
    assert value_changes(None, {"status_code": "evse_ready"}, {}) == ["status_code evse_ready"]
    assert value_changes({"present_voltage": 400}, {}, {}) == ["present_voltage gone"]
    assert entry_values({"evse_id": "E", "status_code": "x", "dc": {"max_power": 1}}) == {
        "status_code": "x",
        "max_power": 1,
    }
