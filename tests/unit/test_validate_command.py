"""`csbridge validate`'s verdicts (tools/validate_command.py): one per message, at the file and
line where the message starts, valid or naming what, where and why."""

from __future__ import annotations

from csbridge.messages.registry import SchemaRegistry
from csbridge.tools.validate_command import Verdict, json_lines, whole_file
from tests.support import FIXTURES

REQUEST = (FIXTURES / "messages" / "cs_parameters_request.json").read_bytes()
MISSING_RIPPLE = (FIXTURES / "invalid" / "response_dc_missing_ripple.json").read_bytes()


def test_a_whole_file_is_one_message_at_the_line_where_it_starts() -> None:
    registry = SchemaRegistry()
    assert whole_file(registry, "a.json", REQUEST) == Verdict(
        "a.json:1", True, "cs_parameters/request"
    )
    late = whole_file(registry, "b.json", b"\n\n  " + MISSING_RIPPLE)
    assert late.where == "b.json:3"
    assert not late.valid
    assert late.line().startswith("invalid: b.json:3: message=cs_status_and_limits ")
    assert "where=$.data.evses[0].dc" in late.detail
    assert "peak_current_ripple" in late.detail


def test_json_lines_give_a_verdict_per_line_and_skip_blank_ones() -> None:
    one_line = b" ".join(REQUEST.split())
    raw = b"\n".join([one_line, b"", b"[1, 2]", b'{"id": "x"', b"   ", one_line]) + b"\n"
    verdicts = list(json_lines(SchemaRegistry(), "m.jsonl", raw))
    assert [v.where for v in verdicts] == ["m.jsonl:1", "m.jsonl:3", "m.jsonl:4", "m.jsonl:6"]
    assert [v.valid for v in verdicts] == [True, False, False, True]
    assert verdicts[1].detail == "a message is a JSON object, got list"
    assert verdicts[2].detail.startswith("not JSON: ")
