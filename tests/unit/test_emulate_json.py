"""`csbridge emulate --json` (tools/emulate_command.py): a scenario's table and an exchange as
JSON, and the overall result only ok when every planned step ran and passed."""

from __future__ import annotations

import orjson

from csbridge.tools.emulate_command import exchange_document, scenario_document
from csbridge.tools.emulator import Exchange
from csbridge.tools.scenarios.common import StepResult

STEPS = [
    StepResult("boot", True, 0.01234, "2 responses"),
    StepResult("plug in", False, 1.5, "no authorization within 5 s"),
]


def test_a_scenario_is_its_steps_with_pass_fail_ms_and_detail_then_the_result() -> None:
    document = orjson.loads(orjson.dumps(scenario_document("dc-session", STEPS, 14, [])))
    assert document["steps"] == [
        {"step": "boot", "result": "pass", "ms": 12.3, "detail": "2 responses"},
        {"step": "plug in", "result": "fail", "ms": 1500.0, "detail": STEPS[1].detail},
    ]
    assert (document["passed"], document["planned"]) == (1, 14)
    assert (document["result"], document["ok"]) == ("failed", False)


def test_ok_only_when_every_planned_step_ran_and_passed_and_nothing_else_went_wrong() -> None:
    passed = [StepResult("boot", True, 0.1, ""), StepResult("stop", True, 0.2, "")]
    assert scenario_document("s", passed, 2, [])["result"] == "ok"
    assert scenario_document("s", passed, 3, [])["result"] == "failed"
    assert scenario_document("s", passed, 2, ["update invalid"])["result"] == "failed"
    broken = scenario_document("s", [], 0, [], error="broker mqtt://x: refused")
    assert (broken["result"], broken["error"]) == ("failed", "broker mqtt://x: refused")


def test_an_exchange_carries_direction_kind_latency_problem_and_data() -> None:
    exchange = Exchange(1.0, False, "cs_parameters", "response", "abc", {"a": 1}, 0.0031234)
    assert exchange_document(exchange) == {
        "direction": "cs -> josev",
        "name": "cs_parameters",
        "type": "response",
        "id": "abc",
        "latency_ms": 3.12,
        "problem": None,
        "data": {"a": 1},
    }
