"""docs/devices.md against the shipped profiles and the EVerest channels csbridge uses.

Every profile in hal/ has its section (`## \\`name\\``) with a table; every message, value, flag,
DBC signal, command and constant the profile declares (read with the project's own loader) has
a row; a row's bytes and scale agree with the profile; a row that states a scale or unit names
two sources from the doc's source list (or says `gap`, or is our own protocol); every test a row
names exists. So a profile cannot be added, or changed, without its table.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import cantools
import pytest

from csbridge.sources.can.profile import (
    FIELDS_OF_KIND,
    TYPE_SIZE,
    FlagSpec,
    Profile,
    ProfileRegistry,
)
from csbridge.sources.everest.api import CHANNELS_OF, IMD, PSU

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "devices.md"
REGISTRY = ProfileRegistry()
PROFILE_COLUMNS = (
    "item",
    "field",
    "id / selector",
    "bytes",
    "scale",
    "unit",
    "sources",
    "verified by",
)
CHANNEL_COLUMNS = ("channel", "direction", "payload", "sources", "verified by")
NOTHING = {"", "—"}

PENDING_ISSUE_20: dict[tuple[str, str, str], float] = {
    # (profile, item, field or quantity) -> the value the profile still holds. The doc gives the
    # corrected value; once the fix lands the profile agrees with the doc and this test fails
    # until the entry is deleted, so a revert of the fix can never pass unnoticed. Every fix of
    # issue 20 has landed (Huawei current 1/20 and its 42-58 V range, UUGreen Tin 0.001): empty.
}


# --- reading the markdown -----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    cells: dict[str, str]

    def __getitem__(self, column: str) -> str:
        return self.cells[column]

    def names(self, column: str) -> list[str]:
        """The `code` spans of one cell."""
        return re.findall(r"`([^`]+)`", self.cells[column])

    @property
    def item(self) -> str | None:
        names = self.names("item") if "item" in self.cells else self.names("channel")
        return names[0] if names else None


def split_cells(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip())
    return [cell.strip().replace("\\|", "|") for cell in cells[1:-1]]


def tables(lines: list[str]) -> list[tuple[tuple[str, ...], list[Row]]]:
    """Each markdown table in the lines: its header and its rows."""
    found: list[tuple[tuple[str, ...], list[Row]]] = []
    index = 0
    while index < len(lines):
        if not lines[index].startswith("|"):
            index += 1
            continue
        header = tuple(split_cells(lines[index]))
        index += 2  # the header and its separator
        rows: list[Row] = []
        while index < len(lines) and lines[index].startswith("|"):
            rows.append(Row(dict(zip(header, split_cells(lines[index]), strict=True))))
            index += 1
        found.append((header, rows))
    return found


def sections(lines: list[str], level: str = "## ") -> dict[str, list[str]]:
    """Heading text -> the lines under it, up to the next heading of the same level."""
    result: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.startswith(level):
            current = result.setdefault(line[len(level) :].strip(), [])
        elif current is not None:
            current.append(line)
    return result


def profile_rows(text: str, name: str) -> list[Row] | None:
    """The rows of a profile's table, None without the section or its table."""
    section = sections(text.splitlines()).get(f"`{name}`")
    if section is None:
        return None
    found = [rows for header, rows in tables(section) if header == PROFILE_COLUMNS]
    return found[0] if found else None


def number(cell: str) -> float | None:
    """A scale cell as a number (`1/1024`, `0.001`, `= 58`), None for `—`."""
    match = re.match(r"^=?\s*([0-9.]+)(?:\s*/\s*([0-9.]+))?", cell)
    if match is None:
        return None
    value = Fraction(match.group(1))
    if match.group(2):
        value /= Fraction(match.group(2))
    return float(value)


def span(at: int, size: int) -> str:
    return str(at) if size == 1 else f"{at}-{at + size - 1}"


def starts_with_span(cell: str, at: int, size: int) -> bool:
    return re.match(rf"^{span(at, size)}(?![-0-9])", cell) is not None


@cache
def dbc_scales(name: str) -> dict[str, float]:
    profile = REGISTRY.get(name)
    database: Any = cantools.database.load_file(str(REGISTRY.dbc_path(profile)))
    return {
        signal.name: float(signal.scale)
        for message in database.messages
        for signal in message.signals
    }


# --- what a profile needs from its table --------------------------------------------------------


def rows_of(rows: list[Row], item: str, field: str | None = None) -> list[Row]:
    return [
        row for row in rows if row.item == item and (field is None or field in row.names("field"))
    ]


def scale_problem(name: str, row: Row, item: str, field: str, actual: float) -> str | None:
    documented = number(row["scale"])
    where = f"{name} {item} {field}"
    if documented is None:
        return f"{where}: the row gives no number for the profile's {actual}"
    pending = PENDING_ISSUE_20.get((name, item, field))
    if pending is not None:
        if math.isclose(actual, documented, rel_tol=1e-9):
            return (
                f"{where}: the profile now says {actual} as documented: issue 20's fix has "
                "landed, delete the entry from PENDING_ISSUE_20"
            )
        if not math.isclose(actual, pending, rel_tol=1e-9):
            return (
                f"{where}: the profile says {actual}, neither the documented {documented} nor "
                f"the {pending} issue 20 replaces"
            )
        return None
    if not math.isclose(actual, documented, rel_tol=1e-9):
        return f"{where}: the profile says {actual}, the doc {row['scale']}"
    return None


def flag_problem(name: str, rows: list[Row], item: str, flag: FlagSpec) -> str | None:
    for row in rows_of(rows, item, flag.field):
        if starts_with_span(row["bytes"], flag.at, flag.length) and re.search(
            rf"\bbit {flag.bit}\b", row["bytes"]
        ):
            return None
    where = span(flag.at, flag.length)
    return f"{name} {item}: no row for flag {flag.field!r} at {where} bit {flag.bit}"


def message_problems(name: str, profile: Profile, rows: list[Row]) -> list[str]:
    problems: list[str] = []
    values, _ = FIELDS_OF_KIND[profile.header.kind]
    for message in profile.message:
        if not rows_of(rows, message.name):
            problems.append(f"{name}: no row for message {message.name!r}")
            continue
        for value in message.values:
            matching = [
                row
                for row in rows_of(rows, message.name, value.field)
                if starts_with_span(row["bytes"], value.at, TYPE_SIZE[value.type])
            ]
            if not matching:
                size = TYPE_SIZE[value.type]
                problems.append(
                    f"{name} {message.name}: no row for {value.field!r} at bytes "
                    f"{span(value.at, size)}"
                )
                continue
            problem = scale_problem(name, matching[0], message.name, value.field, value.scale)
            problems += [problem] if problem else []
            if value.setting is not None and value.setting not in matching[0].names("scale"):
                problems.append(
                    f"{name} {message.name} {value.field}: the row's scale does not name the "
                    f"setting {value.setting!r} it is multiplied by"
                )
        for flag in message.flags:
            problem = flag_problem(name, rows, message.name, flag)
            problems += [problem] if problem else []
        for signal in message.signals:
            matching = [
                row
                for row in rows_of(rows, message.name, signal.field)
                if signal.signal in row.names("field")
            ]
            if not matching:
                problems.append(
                    f"{name} {message.name}: no row for {signal.field!r} ← {signal.signal!r}"
                )
            elif signal.field in values:
                effective = dbc_scales(name)[signal.signal] * signal.scale
                problem = scale_problem(name, matching[0], message.name, signal.field, effective)
                problems += [problem] if problem else []
    return problems


def command_problems(name: str, profile: Profile, rows: list[Row]) -> list[str]:
    problems: list[str] = []
    for command_name in sorted({command.name for command in profile.command}):
        commands = profile.commands(command_name)
        if len(rows_of(rows, command_name)) < len(commands):
            problems.append(
                f"{name}: {len(commands)} {command_name!r} commands, fewer rows in the table"
            )
        for command in commands:
            for value in command.values:
                size = TYPE_SIZE[value.type]
                matching = [
                    row
                    for row in rows_of(rows, command_name, value.quantity)
                    if starts_with_span(row["bytes"], value.at, size)
                ]
                if not matching:
                    problems.append(
                        f"{name} {command_name}: no row for {value.quantity!r} at bytes "
                        f"{span(value.at, size)}"
                    )
                    continue
                problem = scale_problem(
                    name, matching[0], command_name, value.quantity, value.scale
                )
                problems += [problem] if problem else []
    return problems


def constant_problems(name: str, profile: Profile, rows: list[Row]) -> list[str]:
    problems: list[str] = []
    for field, value in profile.constants.items():
        matching = rows_of(rows, "constants", field)
        if not matching:
            problems.append(f"{name}: no row for constant {field!r}")
            continue
        problem = scale_problem(name, matching[0], "constants", field, value)
        problems += [problem] if problem else []
    return problems


def setting_problems(name: str, profile: Profile, rows: list[Row]) -> list[str]:
    """Each [settings] factor has its `settings` row, with the profile's value."""
    problems: list[str] = []
    for setting, value in profile.settings.items():
        matching = rows_of(rows, "settings", setting)
        if not matching:
            problems.append(f"{name}: no row for setting {setting!r}")
            continue
        problem = scale_problem(name, matching[0], "settings", setting, value)
        problems += [problem] if problem else []
    return problems


def mode_keys(profile: Profile) -> dict[str, float]:
    """The [profile] keys that say when and how a two-range module changes its mode."""
    header = profile.header
    if header.high_mode_above_v is None:
        return {}
    return {
        "high_mode_above_v": header.high_mode_above_v,
        "mode_switch_settle_s": header.mode_switch_settle_s,
    }


def mode_problems(name: str, profile: Profile, rows: list[Row]) -> list[str]:
    problems: list[str] = []
    for key, value in mode_keys(profile).items():
        matching = rows_of(rows, "profile", key)
        if not matching:
            problems.append(f"{name}: no row for profile key {key!r}")
            continue
        problem = scale_problem(name, matching[0], "profile", key, value)
        problems += [problem] if problem else []
    return problems


def profile_problems(text: str, name: str) -> list[str]:
    rows = profile_rows(text, name)
    if rows is None:
        return [f"docs/devices.md has no section ## `{name}` with a table {PROFILE_COLUMNS}"]
    profile = REGISTRY.get(name)
    return (
        message_problems(name, profile, rows)
        + command_problems(name, profile, rows)
        + constant_problems(name, profile, rows)
        + setting_problems(name, profile, rows)
        + mode_problems(name, profile, rows)
    )


# --- rows anywhere: sources and tests -----------------------------------------------------------


def all_rows(text: str) -> list[Row]:
    return [
        row
        for _, rows in tables(text.splitlines())
        for row in rows
        if "sources" in row.cells and "verified by" in row.cells
    ]


def listed_sources(text: str) -> set[str]:
    listed: set[str] = set()
    for header, rows in tables(sections(text.splitlines())["Sources"]):
        if header[:1] == ("key",):
            listed |= {key for row in rows for key in re.findall(r"\[(\w+)\]", row["key"])}
    return listed


def cited(row: Row) -> set[str]:
    return set(re.findall(r"\[([A-Z]+)\]", row["sources"]))


@cache
def functions_of(path: str) -> frozenset[str]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return frozenset(
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    )


def named_tests(row: Row) -> list[tuple[str, str]]:
    return re.findall(r"(tests/[\w/]+\.py)::(\w+)", row["verified by"])


def missing_tests(row: Row) -> list[str]:
    return [
        f"{path}::{function}"
        for path, function in named_tests(row)
        if not (ROOT / path).is_file() or function not in functions_of(path)
    ]


# --- the tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", REGISTRY.names())
def test_each_profile_has_its_table_with_a_row_for_everything_it_declares(
    doc: str, name: str
) -> None:
    assert profile_problems(doc, name) == []


def test_every_profile_section_belongs_to_a_profile_in_hal(doc: str) -> None:
    documented = {
        heading.strip("`")
        for heading in sections(doc.splitlines())
        if re.fullmatch(r"`[a-z0-9-]+`", heading)
    }
    assert documented == set(REGISTRY.names())


def declared(profile: Profile) -> set[tuple[str, str | None]]:
    """(item, field or signal or quantity) the profile declares; None: the item as a whole."""
    found: set[tuple[str, str | None]] = {("constants", field) for field in profile.constants}
    found |= {("settings", setting) for setting in profile.settings}
    found |= {("profile", key) for key in mode_keys(profile)}
    for message in profile.message:
        found.add((message.name, None))
        found |= {(message.name, value.field) for value in message.values}
        found |= {(message.name, flag.field) for flag in message.flags}
        found |= {(message.name, signal.signal) for signal in message.signals}
    for command in profile.command:
        found.add((command.name, None))
        found |= {(command.name, value.quantity) for value in command.values}
    return found


def of_declared(row: Row, keys: set[tuple[str, str | None]]) -> bool:
    if row.item is None:
        return False
    if row.names("field"):
        return any((row.item, name) in keys for name in row.names("field"))
    return (row.item, None) in keys


@pytest.mark.parametrize("name", REGISTRY.names())
def test_each_row_of_a_declared_item_names_a_test_that_decodes_or_builds_it(
    doc: str, name: str
) -> None:
    rows = profile_rows(doc, name)
    assert rows is not None
    keys = declared(REGISTRY.get(name))
    untested = [
        f"{row['item']} {row['field']}"
        for row in rows
        if of_declared(row, keys) and not named_tests(row)
    ]
    assert untested == []


def test_a_row_of_a_declared_field_without_a_test_is_found(doc: str) -> None:
    rows = profile_rows(doc, "bender-iso165c")
    assert rows is not None
    keys = declared(REGISTRY.get("bender-iso165c"))
    (system,) = [row for row in rows if "IMC_SYSTEM_FAILURE" in row.names("field")]
    assert of_declared(system, keys)
    assert named_tests(system)
    untested = Row({**system.cells, "verified by": "—"})
    assert of_declared(untested, keys)
    assert not named_tests(untested)


def test_every_named_test_exists(doc: str) -> None:
    assert [name for row in all_rows(doc) for name in missing_tests(row)] == []


def test_every_cited_source_is_in_the_source_list(doc: str) -> None:
    listed = listed_sources(doc)
    assert {"EC", "EV", "OWN"} <= listed
    assert sorted({key for row in all_rows(doc) for key in cited(row)} - listed) == []


def single_source_rows(text: str) -> list[str]:
    """Rows that state a scale or unit on fewer than two sources, neither ours nor a `gap`."""
    return [
        f"{row['item']} {row['field']}"
        for row in all_rows(text)
        if "unit" in row.cells
        and (row["unit"] not in NOTHING or number(row["scale"]) is not None)
        and len(cited(row)) < 2
        and "OWN" not in cited(row)
        and "gap" not in row["sources"]
    ]


def test_a_row_with_a_scale_or_unit_names_two_sources_or_says_gap(doc: str) -> None:
    assert single_source_rows(doc) == []


@pytest.mark.parametrize("interface", [PSU, IMD])
def test_every_everest_channel_csbridge_uses_has_a_row(doc: str, interface: str) -> None:
    api = sections(sections(doc.splitlines())["EVerest API"], "### ")
    found = [rows for header, rows in tables(api[interface]) if header == CHANNEL_COLUMNS]
    assert found, f"no channel table under ### {interface}"
    documented = {row.item for row in found[0]}
    assert sorted(CHANNELS_OF[interface] - documented) == []
    assert all("EV" in cited(row) for row in found[0])


# --- the checker itself finds what is missing ---------------------------------------------------


def without_lines(text: str, *needles: str) -> str:
    return "\n".join(
        line for line in text.splitlines() if not any(needle in line for needle in needles)
    )


def test_a_missing_section_is_found(doc: str) -> None:
    text = doc.replace("## `winline-nxr`", "## winline")
    assert profile_problems(text, "winline-nxr") == [
        f"docs/devices.md has no section ## `winline-nxr` with a table {PROFILE_COLUMNS}"
    ]


def test_a_missing_message_value_flag_or_command_row_is_found(doc: str) -> None:
    text = without_lines(doc, "| `read_after_diode` |", "| 6 bit 4 |", "cmd 0x1C | 4-7")
    assert profile_problems(text, "infypower-reg") == [
        "infypower-reg read_status: no row for flag 'over_temperature' at 6 bit 4",
        "infypower-reg: no row for message 'read_after_diode'",
        "infypower-reg set_output: no row for 'current' at bytes 4-7",
    ]


def test_a_scale_that_disagrees_with_the_profile_is_found(doc: str) -> None:
    row = "| `read_capability` | `export.max_current` | cmd 0x0A | 4-5 u16 BE | 0.1 |"
    assert row in doc
    text = doc.replace(row, row.replace("| 0.1 |", "| 1 |"))
    assert profile_problems(text, "infypower-reg") == [
        "infypower-reg read_capability export.max_current: the profile says 0.1, the doc 1"
    ]


def test_a_dbc_signal_is_checked_with_its_dbc_scale(doc: str) -> None:
    row = "| `IMD_Info` | `resistance_ohm` ← `R_ISO` | 0x37 | 0-1 u16 LE | 1000 |"
    assert row in doc
    text = doc.replace(row, row.replace("| 1000 |", "| 1 |"))
    assert profile_problems(text, "bender-iso165c") == [
        "bender-iso165c IMD_Info resistance_ohm: the profile says 1000.0, the doc 1"
    ]


def test_fewer_rows_than_commands_of_a_name_is_found(doc: str) -> None:
    text = without_lines(doc, "| `set_output` | `voltage` | 0x108180FE")
    assert profile_problems(text, "huawei-r4850") == [
        "huawei-r4850: 2 'set_output' commands, fewer rows in the table",
        "huawei-r4850 set_output: no row for 'voltage' at bytes 6-7",
    ]


def test_a_missing_constant_row_is_found(doc: str) -> None:
    text = without_lines(doc, "| `constants` | `export.min_voltage` | NXR")
    assert profile_problems(text, "winline-nxr") == [
        "winline-nxr: no row for constant 'export.min_voltage'"
    ]


def test_a_missing_setting_row_or_a_setting_the_row_does_not_name_is_found(doc: str) -> None:
    text = without_lines(doc, "| `settings` | `module_current_limit_point` |")
    assert profile_problems(text, "winline-nxr") == [
        "winline-nxr: no row for setting 'module_current_limit_point'"
    ]
    row = "| `read_rated_current` | `export.max_current` | reg 0x0012, type 0x41 | 4-7 f32 BE |"
    assert row in doc
    times = "\N{MULTIPLICATION SIGN}"
    text = doc.replace(f"{row} 1 {times} `module_current_limit_point` |", f"{row} 1 |")
    assert profile_problems(text, "winline-nxr") == [
        "winline-nxr read_rated_current export.max_current: the row's scale does not name the "
        "setting 'module_current_limit_point' it is multiplied by"
    ]


def test_a_setting_that_disagrees_with_the_profile_is_found(doc: str) -> None:
    row = (
        "| `settings` | `module_current_limit_point` | `[settings]`, named by `setting` on 0x0012"
        " | — |"
    )
    assert f"{row} = 1.0 |" in doc
    text = doc.replace(f"{row} = 1.0 |", f"{row} = 3.3325 |")
    assert profile_problems(text, "winline-nxr") == [
        "winline-nxr settings module_current_limit_point: the profile says 1.0, the doc = 3.3325"
    ]


def test_a_missing_or_wrong_mode_key_row_is_found(doc: str) -> None:
    text = without_lines(doc, "| `profile` | `mode_switch_settle_s` |")
    assert profile_problems(text, "uugreen-ur1000x0") == [
        "uugreen-ur1000x0: no row for profile key 'mode_switch_settle_s'"
    ]
    row = "| `profile` | `high_mode_above_v` | `[profile]` | — |"
    assert f"{row} = 500 |" in doc
    text = doc.replace(f"{row} = 500 |", f"{row} = 600 |")
    assert profile_problems(text, "uugreen-ur1000x0") == [
        "uugreen-ur1000x0 profile high_mode_above_v: the profile says 500.0, the doc = 600"
    ]
    # a profile without the mode declares no such keys: nothing asked of its table
    assert mode_keys(REGISTRY.get("winline-nxr")) == {}


def test_a_pending_fix_is_checked_both_before_and_after_it_lands(
    doc: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 20's Huawei current fix, as it stood before it landed: the profile said 1/30.
    monkeypatch.setitem(
        PENDING_ISSUE_20, ("huawei-r4850", "max_current", "export.max_current"), 1 / 30
    )
    rows = profile_rows(doc, "huawei-r4850")
    assert rows is not None
    (row,) = rows_of(rows, "max_current", "export.max_current")
    key = ("huawei-r4850", row, "max_current", "export.max_current")
    assert scale_problem(*key, 1 / 30) is None  # still the known error: pending
    landed = scale_problem(*key, 0.05)
    assert landed is not None
    assert "delete the entry from PENDING_ISSUE_20" in landed
    other = scale_problem(*key, 1 / 25)
    assert other is not None
    assert "neither the documented 0.05 nor the" in other


def test_a_named_test_that_does_not_exist_is_found() -> None:
    row = Row(
        {
            "sources": "[EC] x; [KF] y",
            "verified by": "`tests/unit/test_profiles.py::test_no_such_test`, "
            "`tests/unit/test_profiles.py::test_huawei_replies_decode`",
        }
    )
    assert missing_tests(row) == ["tests/unit/test_profiles.py::test_no_such_test"]


def test_a_single_source_without_gap_is_found(doc: str) -> None:
    cell = "[EC] UUGreenCanDevice.cpp:155; [LP] CanParser.cpp:31-33"
    assert cell in doc
    text = doc.replace(cell, "UUGreenCanDevice.cpp:155; [LP] CanParser.cpp:31-33")
    assert single_source_rows(text) == ["`read_vout` `output_voltage`"]
