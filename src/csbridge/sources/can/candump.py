"""candump's text as CAN frames, one line at a time: its log format (`candump -L`, the `-l`
files) and its screen format (`candump can0`, bare or with `-ta` / `-tA` timestamps).

The forms, as can-utils prints them (candump.c `sprint_timestamp`, lib.c `snprintf_canframe`
and `snprintf_long_canframe`):

- log:    `(1700000000.000000) can0 1A2#0102` with an optional ` R`/` T` (received, sent);
  the identifier is 3 hex digits (standard) or 8 (extended); `R` then an optional length is a
  remote frame, `#` then a flags nibble starts CAN FD data, `_X` after 8 bytes a raw DLC.
- screen: `  can0  1A2   [8]  01 02 03 04 05 06 07 08`, optionally `(timestamp)` first and
  `RX - -` after the interface (`-x`), `{8}` for the length (`-8`), `'....'` after the data
  (`-a`), `remote request` or `ERRORFRAME` in place of or after the data; `-e` adds tab-indented
  lines that explain an error frame.

An identifier with CAN_ERR_FLAG (0x20000000: Linux include/uapi/linux/can.h; python-can's
can/io/canutils.py) is an error frame; its other bits name the error classes. The screen
format's `-td` (delta) and `-tz` (zero-based) timestamps are printed alike and cannot be told
apart, so they are refused for the whole log.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

import can

CAN_ERR_FLAG = 0x20000000
CAN_ERR_MASK = 0x1FFFFFFF
CAN_SFF_MASK = 0x7FF
CLASSIC_MAX_LEN = 8
FD_LENGTHS = frozenset((0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64))

LOG_FORM = "(timestamp) interface id#data"
SCREEN_FORM = "interface id [len] data"
EXPECTED = f"expected '{LOG_FORM}' (candump -L) or '{SCREEN_FORM}' (candump)"

_LOG_LINE = re.compile(r"^\((?P<ts>[^)]*)\)\s+(?P<iface>\S+)\s+(?P<frame>\S+)(?:\s+[RrTt])?$")
_SCREEN_LINE = re.compile(
    r"^(?:\((?P<ts>[^)]*)\)\s+)?(?P<iface>\S+)\s+(?:[RT]X\s+\S\s+\S\s+)?"
    r"(?P<id>[0-9A-Fa-f]{3}|[0-9A-Fa-f]{8})\s+(?:\[(?P<len>\d{1,2})\]|\{(?P<dlc>[0-9A-Fa-f])\})"
    r"(?P<rest>.*)$"
)
_HEX_BYTE = re.compile(r"^[0-9A-Fa-f]{2}$")
_ABSOLUTE = re.compile(r"^\d{10,}\.\d+$")
_RELATIVE = re.compile(r"^\d{1,9}\.\d+$")
_DATED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+$")


class CandumpLineError(ValueError):
    """One line that is no candump frame: why, in words a vendor can act on."""


class CandumpFormError(ValueError):
    """A form of candump output that cannot be replayed faithfully: the whole log is refused."""


@dataclass(frozen=True, slots=True)
class CandumpFrame:
    timestamp: float | None
    """None where the line carries none (candump without -t)."""
    frame: can.Message


def parse_line(text: str) -> CandumpFrame | None:
    """The frame on one line of candump output; None for a line that holds none (blank, a
    comment, an error frame's explanation). Raises CandumpLineError or CandumpFormError."""
    if text.startswith("\t") or not text.strip() or text.lstrip().startswith("#"):
        return None
    line = text.strip()
    log_line = _LOG_LINE.match(line)
    if log_line is not None and "#" in log_line["frame"]:
        logged = _log_timestamp(log_line["ts"])
        return CandumpFrame(logged, _log_frame(log_line["frame"], log_line["iface"]))
    screen = _SCREEN_LINE.match(line)
    if screen is not None:
        shown = None if screen["ts"] is None else _screen_timestamp(screen["ts"])
        return CandumpFrame(shown, _screen_frame(screen))
    if line.startswith("(") and "#" in line:
        raise CandumpLineError(f"expected '{LOG_FORM}'")
    raise CandumpLineError(EXPECTED)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CandumpLineError(f"timestamp {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise CandumpLineError(f"timestamp {text!r} is not a time")
    return value


def _log_timestamp(text: str) -> float:
    return _number(text.strip())


def _screen_timestamp(text: str) -> float:
    text = text.strip()
    if _ABSOLUTE.match(text):
        return _number(text)
    if _DATED.match(text):
        # candump -tA prints the local time (strftime of localtime), as this reads it back
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").timestamp()
    if _RELATIVE.match(text):
        raise CandumpFormError(
            f"timestamp ({text}) is zero-based or a delta (candump -tz / -td), which look "
            "alike: record with candump -L (or -ta / -tA)"
        )
    raise CandumpLineError(f"timestamp {text!r} is not a time")


def _identifier(text: str) -> tuple[int, bool, bool]:
    """(id, extended, error frame) of a 3- or 8-digit identifier."""
    if len(text) not in (3, 8):
        raise CandumpLineError(
            f"id {text!r}: 3 hex digits (standard) or 8 (extended), as candump writes them"
        )
    try:
        value = int(text, 16)
    except ValueError:
        raise CandumpLineError(f"id {text!r} is not hexadecimal") from None
    if len(text) == 3 and value > CAN_SFF_MASK:
        raise CandumpLineError(f"id {text!r} is over 7FF, the largest standard id")
    if value & ~(CAN_ERR_MASK | CAN_ERR_FLAG):
        raise CandumpLineError(f"id {text!r} has flag bits candump never writes")
    return value & CAN_ERR_MASK, len(text) == 8, bool(value & CAN_ERR_FLAG)


def _hex_bytes(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise CandumpLineError(f"data {text!r} is not hex bytes") from None


def _log_frame(text: str, interface: str) -> can.Message:
    id_text, _, body = text.partition("#")
    identifier, extended, error = _identifier(id_text)
    if body[:1] in ("R", "r"):
        length = body[1:] or "0"
        if not length.isdigit() or int(length) > CLASSIC_MAX_LEN:
            raise CandumpLineError(f"remote frame length {length!r} is not 0-8")
        return can.Message(
            arbitration_id=identifier,
            is_extended_id=extended,
            is_remote_frame=True,
            dlc=int(length),
            channel=interface,
        )
    fd = body.startswith("#")
    if fd:
        flags, body = body[1:2], body[2:]
        if not flags or flags not in "0123456789ABCDEFabcdef":
            raise CandumpLineError(f"CAN FD flags {flags!r} are not one hex digit")
    elif len(body) > 2 * CLASSIC_MAX_LEN and body[-2:-1] == "_":
        body = body[:-2]  # a raw DLC over 8 (len8_dlc): the 8 bytes are the data
    data = _hex_bytes(body)
    if fd and len(data) not in FD_LENGTHS:
        raise CandumpLineError(f"{len(data)} bytes is no CAN FD length")
    if not fd and len(data) > CLASSIC_MAX_LEN:
        raise CandumpLineError(f"{len(data)} data bytes: a classic frame carries at most 8")
    return _message(identifier, extended, error, data, interface, fd=fd)


def _screen_frame(match: re.Match[str]) -> can.Message:
    identifier, extended, error = _identifier(match["id"])
    if match["len"] is not None:
        length = int(match["len"])
    else:
        length = min(int(match["dlc"], 16), CLASSIC_MAX_LEN)
    rest = match["rest"].strip()
    if rest.startswith("remote request"):
        return can.Message(
            arbitration_id=identifier,
            is_extended_id=extended,
            is_remote_frame=True,
            dlc=length,
            channel=match["iface"],
        )
    words = rest.split()
    data_words = words[:length]
    if len(data_words) < length or not all(_HEX_BYTE.match(w) for w in data_words):
        raise CandumpLineError(f"[{length}] but not {length} hex bytes after it")
    tail = " ".join(words[length:])
    if tail and tail != "ERRORFRAME" and not tail.startswith("'"):
        raise CandumpLineError(f"unexpected {tail!r} after the data")
    data = bytes(int(word, 16) for word in data_words)
    return _message(identifier, extended, error, data, match["iface"], fd=length > CLASSIC_MAX_LEN)


def _message(
    identifier: int, extended: bool, error: bool, data: bytes, interface: str, *, fd: bool
) -> can.Message:
    if error:  # as python-can's socketcan reads one: the class bits stay in the id
        return can.Message(
            arbitration_id=identifier,
            is_extended_id=True,
            is_error_frame=True,
            data=data,
            channel=interface,
        )
    return can.Message(
        arbitration_id=identifier,
        is_extended_id=extended,
        is_fd=fd,
        data=data,
        channel=interface,
    )
