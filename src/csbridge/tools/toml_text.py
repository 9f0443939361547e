"""A JSON-ready document as TOML text: what `check-config --dump` prints.

Only what a configuration holds is written: tables, arrays of tables, strings, numbers, booleans
and arrays of those. TOML has no null, so a key whose value is None is shown as a comment (`#
key: not set`): whether a setting is absent is part of the effective configuration.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_document(document: Mapping[str, Any]) -> str:
    """The document as TOML that tomllib reads back to the same values (None keys left out)."""
    lines: list[str] = []
    _table(lines, (), document)
    return "\n".join(lines).strip("\n") + "\n"


_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def string_text(text: str) -> str:
    """A TOML basic string: quotes, backslashes and every control character (DEL too, which
    TOML forbids raw) escaped."""
    escaped = "".join(
        _ESCAPES.get(char)
        or (f"\\u{ord(char):04x}" if ord(char) < 0x20 or char == "\x7f" else char)
        for char in text
    )
    return f'"{escaped}"'


def key_text(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else string_text(key)


def value_text(value: Any) -> str:
    """One value inline: a string, number, boolean, array or (inside an array) inline table."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return string_text(value)
    if isinstance(value, Mapping):
        items = ", ".join(
            f"{key_text(str(k))} = {value_text(v)}" for k, v in value.items() if v is not None
        )
        return f"{{ {items} }}" if items else "{}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(value_text(item) for item in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")


def _is_table_array(value: Any) -> bool:
    return (
        isinstance(value, list) and bool(value) and all(isinstance(item, Mapping) for item in value)
    )


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value)


def _header(path: tuple[str, ...]) -> str:
    return ".".join(key_text(part) for part in path)


def _table(lines: list[str], path: tuple[str, ...], table: Mapping[str, Any]) -> None:
    """The table's own keys first (TOML wants them before any sub-table), then its tables."""
    for key, value in table.items():
        if value is None:
            lines.append(f"# {key_text(str(key))}: not set")
        elif not _is_table(value) and not _is_table_array(value):
            lines.append(f"{key_text(str(key))} = {value_text(value)}")
    for key, value in table.items():
        inner = (*path, str(key))
        if _is_table(value):
            lines += ["", f"[{_header(inner)}]"]
            _table(lines, inner, value)
        elif _is_table_array(value):
            for item in value:
                lines += ["", f"[[{_header(inner)}]]"]
                _table(lines, inner, item)
