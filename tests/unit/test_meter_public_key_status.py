"""The Eichrecht meter's public key from the session to `csbridge status`: set on the session
(as MeterPush does once the meter gave it), carried in the limits report's session block
(valid by its schema), shown whole in the plain and the rich view; a report without it shows
no such line."""

from __future__ import annotations

from typing import Any

import pytest

from csbridge.tools.status_view import evse_text, render_evse
from tests.session_rig import SessionRig
from tests.support import schema_oracle, text_console

DC = "DE*CSB*E0001"
KEY = "3059301306072A8648CE3D020106082A8648CE3D03010703420004" + "A1" * 64
REPORT_SCHEMA = schema_oracle()["EvseLimitsReport"]


def _report(rig: SessionRig) -> dict[str, Any]:
    report: dict[str, Any] = rig.engine.reports.get(DC)
    return report


def test_the_key_travels_in_the_report_and_shows_in_both_views() -> None:
    rig = SessionRig.ready()
    assert "meter_public_key" not in _report(rig)["session"]
    rig.session.set_meter_public_key(DC, KEY)
    report = _report(rig)
    assert report["session"]["meter_public_key"] == KEY
    assert list(REPORT_SCHEMA.iter_errors(report)) == []

    text = evse_text(DC, report)
    assert f"  meter public key {KEY}" in text.splitlines()
    console, buffer = text_console()
    console.print(render_evse(DC, report))
    assert KEY in buffer.getvalue().replace("\n", "").replace("│", "").replace(" ", "")


def test_a_report_without_a_meter_shows_no_key_line() -> None:
    rig = SessionRig.ready()
    text = evse_text(DC, _report(rig))
    assert "meter public key" not in text
    console, buffer = text_console()
    console.print(render_evse(DC, _report(rig)))
    assert "meter public key" not in buffer.getvalue()


def test_a_key_for_an_evse_the_station_does_not_have_is_dropped() -> None:
    rig = SessionRig.ready()
    rig.session.set_meter_public_key("DE*CSB*E9999", KEY)
    assert rig.session.meter_public_keys == {}


def test_a_key_over_the_reports_bound_is_left_out_and_the_report_stays_valid(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The block's bound is Josev's public_key bound (2500): a longer key would stop the whole
    report, so it is left out with a warning; one at the bound goes."""
    rig = SessionRig.ready()
    rig.session.set_meter_public_key(DC, "A" * 2501)
    assert "meter_public_key" not in _report(rig)["session"]
    assert "event=meter_public_key_refused evse=DE*CSB*E0001" in caplog.text
    rig.session.set_meter_public_key(DC, "A" * 2500)
    report = _report(rig)
    assert report["session"]["meter_public_key"] == "A" * 2500
    assert list(REPORT_SCHEMA.iter_errors(report)) == []
