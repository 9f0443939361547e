"""docs/josev-compatibility.md against the code: every row's word (answers / accepts / sends /
ignored) is what a built station does, every kind it handles or has a schema for has its row,
and every message of Josev's API a station takes part in is listed."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections import Counter
from dataclasses import dataclass

import pytest

import csbridge
from csbridge.messages import PAYLOADS, Direction, Payload, SchemaRegistry
from csbridge.service.station import Station
from tests.support import REPO, station_config

TABLE = REPO / "docs" / "josev-compatibility.md"
VERBS = frozenset({"answers", "accepts", "sends", "ignored"})
DIRECTIONS = {"from Josev": Direction.FROM_JOSEV, "to Josev": Direction.TO_JOSEV}
NOT_THE_STATION = ("csbridge.messages", "csbridge.testing", "csbridge.tools", "csbridge.__main__")
"""Modules whose use of a message class says nothing of what the running station sends: the
classes' own package, the test tools, the command-line tools (replay, scenarios)."""

JOSEV_MESSAGES = frozenset(
    {
        # Josev -> station, with the station's answers
        "cs_parameters",
        "cs_status_and_limits",
        "cs_contactor_status",
        "cable_check",
        "power_electronics_setpoint",
        "cp_pwm",
        "cs_connector",
        "meter_values",
        "stop_charging",
        "change_availability",
        "reset",
        "device_model",
        "set_variable_validate",
        "process_authorized_token",
        "generate_csr",
        "update_firmware",
        "upload_logs",
        "data_transfer",
        "ocpp_message",
        # Josev's updates
        "hlc_charging",
        "slac_status",
        "iso15118_state_info",
        "transaction_status",
        "ev_rated_limits",
        "authorization",
        "boot_status",
        "websocket_status",
        "service_status",
        "clock_sync",
        "display_params",
        "display_and_personal_msg",
        "cost_updated",
        "certificate_installation_status",
        # the station's updates and requests
        "cp_status",
        "hardware_fault",
        "cable_info",
        "connector_and_charging",
        "parking_bay",
        "notify_event",
        "device_model_update",
        "firmware_status",
        "logs_status",
        "sdp",
        "slac_link_status",
        "slac_network_info",
        "set_ocpp_network_connection",
    }
)
"""Section 2 of the reference (shared/reference/josev-mqtt-api.md): every message a charging
station takes part in."""


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    type: str
    direction: Direction
    verb: str


_ROW = re.compile(r"^\| `([a-z0-9_]+)` \|")


HEADER = "| message | type | direction | csbridge |"


def parse_table(text: str) -> list[Row]:
    """The rows of the table under HEADER (up to the first line that is no row):
    `| `name` | type | direction | verb | what |`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(HEADER))
    rows = []
    for line in lines[start + 2 :]:
        if not _ROW.match(line):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 5, f"a row has 5 cells: {line}"
        name, message_type, direction, verb, _what = cells
        assert message_type in ("request", "response", "update"), line
        assert direction in DIRECTIONS, line
        assert verb in VERBS, line
        rows.append(Row(name.strip("`"), message_type, DIRECTIONS[direction], verb))
    return rows


def table_rows() -> list[Row]:
    return parse_table(TABLE.read_text(encoding="utf-8"))


@dataclass(frozen=True, slots=True)
class Code:
    """What a built station does: the kinds it handles, the kinds it sends, the kinds that have
    a schema and the way each travels."""

    handled: frozenset[tuple[str, str]]
    sent: frozenset[tuple[str, str]]
    kinds: dict[tuple[str, str], Direction]


def _kind(payload: type[Payload]) -> tuple[str, str]:
    return payload.NAME, str(payload.TYPE)


def _used_by_the_station() -> frozenset[type[Payload]]:
    """Message classes some module of the station holds (imports or defines)."""
    classes = set(PAYLOADS.values())
    used: set[type[Payload]] = set()
    for module in pkgutil.walk_packages(csbridge.__path__, "csbridge."):
        if module.name.startswith(NOT_THE_STATION):
            continue
        for value in vars(importlib.import_module(module.name)).values():
            if isinstance(value, type) and value in classes:
                used.add(value)
    return frozenset(used)


@pytest.fixture(scope="module")
def code() -> Code:
    station = Station(station_config("mqtt://127.0.0.1:1", "compatibility"))
    table = station.bridge._handlers  # noqa: SLF001 - the table the bridge dispatches with
    handled = frozenset(_kind(kind) for kind in table.kinds())
    registry = SchemaRegistry()
    kinds = {key: kind.direction for key, kind in registry.kinds.items()}
    used = _used_by_the_station()
    sent = {
        _kind(payload)
        for payload in used
        if kinds.get(_kind(payload)) is Direction.TO_JOSEV and payload.TYPE != "response"
    }
    sent |= {
        (name, message_type)
        for (name, message_type), direction in kinds.items()
        if message_type == "response"
        and direction is Direction.TO_JOSEV
        and (name, "request") in handled
    }
    return Code(handled, frozenset(sent), kinds)


def test_the_table_parses_one_row_per_kind() -> None:
    rows = table_rows()
    keys = [(row.name, row.type) for row in rows]
    assert len(rows) > 40
    assert [key for key, count in Counter(keys).items() if count > 1] == []


def test_every_message_of_josevs_api_has_a_row() -> None:
    assert {row.name for row in table_rows()} == JOSEV_MESSAGES


def handled_but_not_listed(rows: list[Row], code: Code) -> list[tuple[str, str]]:
    """Kinds a handler takes whose row is missing or does not say answers / accepts."""
    verbs = {(row.name, row.type): row.verb for row in rows}
    return sorted(key for key in code.handled if verbs.get(key) not in ("answers", "accepts"))


def test_every_handled_kind_has_its_row(code: Code) -> None:
    assert handled_but_not_listed(table_rows(), code) == []


def test_every_sent_kind_has_its_row(code: Code) -> None:
    rows = {(row.name, row.type): row for row in table_rows()}
    missing = sorted(key for key in code.sent if key not in rows)
    assert missing == [], f"sent, but not in {TABLE.name}"
    assert sorted(key for key in code.sent if rows[key].verb != "sends") == []


def test_every_kind_with_a_schema_has_its_row(code: Code) -> None:
    rows = {(row.name, row.type) for row in table_rows()}
    assert sorted(key for key in code.kinds if key not in rows) == []


def _answers(row: Row, code: Code) -> str | None:
    key = (row.name, row.type)
    if row.type != "request" or row.direction is not Direction.FROM_JOSEV:
        return "only a request from Josev is answered"
    if key not in code.handled:
        return "no handler answers it"
    if (row.name, "response") not in code.kinds:
        return "no schema for its answer"
    return None


def _accepts(row: Row, code: Code) -> str | None:
    if row.direction is not Direction.FROM_JOSEV or row.type == "request":
        return "only an update or a response from Josev is accepted"
    if row.type == "update" and (row.name, row.type) not in code.handled:
        return "no handler takes it"
    if row.type == "response" and (row.name, "request") not in code.sent:
        return "the station never asks for it"
    return None


def _sends(row: Row, code: Code) -> str | None:
    if row.direction is not Direction.TO_JOSEV:
        return "the station sends only to Josev"
    if (row.name, row.type) not in code.sent:
        return "the station does not send it"
    return None


def _ignored(row: Row, code: Code) -> str | None:
    key = (row.name, row.type)
    if key in code.handled or key in code.sent:
        return "ignored, yet the code handles or sends it"
    return None


_CHECKS = {"answers": _answers, "accepts": _accepts, "sends": _sends, "ignored": _ignored}


def _why_wrong(row: Row, code: Code) -> str | None:
    """What in the code contradicts the row, or None."""
    direction = code.kinds.get((row.name, row.type))
    if direction is None:
        if row.verb == "ignored":
            return None  # no schema: nothing csbridge could handle or send
        return f"{row.verb} without a schema in schemas/"
    if direction is not row.direction:
        return f"travels {direction}, the table says {row.direction}"
    return _CHECKS[row.verb](row, code)


def test_every_row_says_what_the_code_does(code: Code) -> None:
    wrong = {
        f"{row.name} {row.type}": why
        for row in table_rows()
        if (why := _why_wrong(row, code)) is not None
    }
    assert wrong == {}


def unanswered_requests(rows: list[Row]) -> list[str]:
    """Requests from Josev the table does not say are answered."""
    return sorted(
        row.name
        for row in rows
        if row.type == "request" and row.direction is Direction.FROM_JOSEV and row.verb != "answers"
    )


def test_every_request_from_josev_is_answered() -> None:
    """Issue 16: Josev never waits out its timeout for a kind of request the station ignores
    (the rows' own check above holds each `answers` to a handler and a response schema)."""
    assert unanswered_requests(table_rows()) == []


def test_the_table_has_no_pending_mark() -> None:
    assert "pending" not in TABLE.read_text(encoding="utf-8")


def test_the_counts_line_adds_up() -> None:
    rows = table_rows()
    verbs = Counter(row.verb for row in rows)
    line = (
        f"Counts: {len(rows)} kinds of {len({row.name for row in rows})} messages; "
        f"{verbs['answers']} answers, {verbs['accepts']} accepts, {verbs['sends']} sends, "
        f"{verbs['ignored']} ignored."
    )
    assert line in TABLE.read_text(encoding="utf-8")


# -- the checker itself: a row that lies is caught ----------------------------------------------

LYING_ROWS = [
    Row("meter_values", "update", Direction.TO_JOSEV, "ignored"),
    Row("cs_parameters", "request", Direction.FROM_JOSEV, "ignored"),
    Row("cp_status", "update", Direction.FROM_JOSEV, "accepts"),
    Row("hlc_charging", "update", Direction.FROM_JOSEV, "answers"),
    Row("parking_bay", "update", Direction.TO_JOSEV, "sends"),
    Row("authorization", "response", Direction.FROM_JOSEV, "sends"),
    Row("generate_csr", "request", Direction.FROM_JOSEV, "ignored"),
    Row("ocpp_message", "response", Direction.TO_JOSEV, "ignored"),
]


@pytest.mark.parametrize("row", LYING_ROWS, ids=lambda row: f"{row.name}-{row.type}-{row.verb}")
def test_a_row_the_code_contradicts_is_caught(code: Code, row: Row) -> None:
    assert _why_wrong(row, code) is not None


def test_a_request_left_ignored_is_caught() -> None:
    rows = [
        Row(row.name, row.type, row.direction, "ignored") if row.name == "data_transfer" else row
        for row in table_rows()
    ]
    assert unanswered_requests(rows) == ["data_transfer"]


def test_a_handled_kind_left_out_is_caught(code: Code) -> None:
    rows = [row for row in table_rows() if (row.name, row.type) != ("cable_check", "request")]
    assert handled_but_not_listed(rows, code) == [("cable_check", "request")]
