"""`csbridge replay` of a station whose modules form a shared pool: its limits reports and its
summary show what each EVSE would get (no session runs in a replay)."""

from __future__ import annotations

import re

from csbridge.config import Config, parse_config
from csbridge.support.resources import example_config
from csbridge.tools.replay import ReplayRun
from csbridge.tools.replay_summary import summary_document, summary_lines
from tests.support import FIXTURES

LOG = FIXTURES / "can" / "infypower-three-modules.log"
EVSE1 = "DE*CSB*E0001"
EVSE2 = "DE*CSB*E0002"
MODULE = re.compile(r"\[\[evse\.module\]\]\n(?:[^\[\n][^\n]*\n)*")


def _pooled() -> Config:
    """examples/infypower-dc.toml with its three modules moved into a pool that also feeds a
    second DC EVSE through a full contactor matrix."""
    text = example_config("infypower-dc.toml").read_text()
    modules = MODULE.findall(text)
    assert len(modules) == 3
    text = MODULE.sub("", text)
    # Without modules of its own, a pooled EVSE states its maxima (its cable and contactors).
    text = text.replace(
        "[evse.dc_limits]",
        "[evse.dc_limits]\nmax_current_a = 500.0\nmax_voltage_v = 1000.0\nmax_power_w = 90000",
        1,
    )
    text += f"""
[[evse]]
evse_id = "{EVSE2}"
kind = "dc"
network_interface = "eth2"
connectors = [{{ id = 1, connector_type = "DC_extended" }}]
[evse.dc_limits]
max_current_a = 300.0
max_voltage_v = 1000.0
max_power_w = 90000
min_current_a = 1.0
peak_current_ripple_a = 2.0
current_reg_tolerance_a = 5.0

[[pool]]
name = "cabinet"
evse = [{{ evse_id = "{EVSE1}" }}, {{ evse_id = "{EVSE2}" }}]
"""
    text += "".join(m.replace("[[evse.module]]", "[[pool.module]]") for m in modules)
    for index in range(3):
        for bus, evse_id in enumerate((EVSE1, EVSE2)):
            text += (
                f'\n[[pool.contactor]]\nmodule = "infy{index + 1}"\nevse = "{evse_id}"\n'
                f'command = "CLOSE_M{index:02d}_B{bus}"\nfeedback = "CLOSED_M{index:02d}_B{bus}"\n'
            )
    return parse_config(text, "pooled.toml")


def test_the_replay_shows_what_each_evse_of_the_pool_would_get() -> None:
    run = ReplayRun(_pooled())
    publications = run.publications([LOG])
    powers = {
        entry["evse_id"]: entry["dc"]["max_power"]
        for p in publications
        if p.topic == "cs/josev"
        for entry in p.payload["data"]["evses"]
    }
    # Either EVSE would get every module that answers if it started now (infy3 falls silent
    # near the log's end: two are left).
    assert powers[EVSE1] == powers[EVSE2] > 0
    reports = [p.payload for p in publications if p.topic.endswith("/limits")]
    assert {r["binding"]["max_current"] for r in reports if r["limits"]["evse_id"] == EVSE2} >= {
        "pool"
    }
    lines = summary_lines(run, len(publications))
    assert "pool cabinet (equal_share), no session: each EVSE would get" in lines
    assert any(line.startswith(f"  {EVSE2}: ") and line.endswith("infy1, infy2") for line in lines)
    document = summary_document(run, len(publications))
    assert document["pools"]["cabinet"]["would_get"][EVSE2]["modules"] == ["infy1", "infy2"]
