"""`csbridge validate`: Josev's messages checked against the envelope and their own schemas, from
whole JSON files or JSON lines, each verdict naming the file and the line the message starts on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from csbridge.messages import InboundRejected, SchemaRegistry, check_document

STDIN = "-"
STDIN_NAME = "<stdin>"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one message (or one input that could not be read) came to."""

    where: str
    """`file:line`, or the file alone when it could not be read."""
    valid: bool
    detail: str
    """name/type when valid; what, where and why when not."""

    def line(self) -> str:
        return f"{'valid' if self.valid else 'invalid'}: {self.where}: {self.detail}"


def display_name(source: str) -> str:
    return STDIN_NAME if source == STDIN else source


def check_message(registry: SchemaRegistry, raw: bytes, where: str) -> Verdict:
    """One message's bytes: JSON, an object, the envelope and its kind's schema."""
    try:
        document: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return Verdict(where, False, f"not JSON: {error}")
    if not isinstance(document, dict):
        return Verdict(where, False, f"a message is a JSON object, got {type(document).__name__}")
    try:
        check_document(registry, document)
    except InboundRejected as rejected:
        detail = f"message={rejected.message} where={rejected.where} why={rejected.why}"
        return Verdict(where, False, detail)
    return Verdict(where, True, f"{document['name']}/{document['type']}")


def whole_file(registry: SchemaRegistry, name: str, raw: bytes) -> Verdict:
    """A file holding one message (pretty-printed or not): its verdict at the line where the
    message starts."""
    stripped = raw.lstrip()
    line = 1 + raw[: len(raw) - len(stripped)].count(b"\n")
    return check_message(registry, raw, f"{name}:{line}")


def json_lines(registry: SchemaRegistry, name: str, raw: bytes) -> Iterator[Verdict]:
    """A file of one message per line (blank lines skipped): a verdict per message."""
    for number, line in enumerate(raw.splitlines(), start=1):
        if line.strip():
            yield check_message(registry, line, f"{name}:{number}")
