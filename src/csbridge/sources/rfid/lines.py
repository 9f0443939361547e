"""What a serial reader's bytes mean: lines cut from the stream, each a card's UID or garbage,
and the same card held on the reader reported once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from csbridge.config import CardTokenType
from csbridge.sources.rfid.token import Token, TokenError
from csbridge.support import Clock

MAX_LINE_BYTES = 64
"""Far above the longest UID (10 bytes = 20 hex digits): more without a newline is noise (a
wrong baud rate, a reader speaking a binary protocol), dropped up to the next newline."""

DEBOUNCE_S = 2.0
"""A card seen again within this long of its last sighting is the same presentation: readers
repeat the UID while a card lies on them."""


@dataclass(frozen=True, slots=True)
class Garbage:
    """A line that is no card: `kind` names what is wrong (a counter label), `line` shows it."""

    kind: str
    line: bytes


@dataclass(slots=True)
class LineSplitter:
    """Bytes in, whole lines out (without their `\\n`); an overlong line comes out as Garbage."""

    max_line_bytes: int = MAX_LINE_BYTES
    _pending: bytearray = field(default_factory=bytearray)
    _overflowed: bool = False

    def feed(self, data: bytes) -> list[bytes | Garbage]:
        *complete, rest = data.split(b"\n")
        out: list[bytes | Garbage] = []
        for piece in complete:
            self._keep(piece)
            out.append(self._take())
        self._keep(rest)
        return out

    def _take(self) -> bytes | Garbage:
        line, overflowed = bytes(self._pending), self._overflowed
        self._pending.clear()
        self._overflowed = False
        return Garbage("too_long", line) if overflowed else line

    def _keep(self, piece: bytes) -> None:
        room = self.max_line_bytes - len(self._pending)
        if len(piece) > room:
            self._overflowed = True
        self._pending += piece[: max(room, 0)]


def read_line(line: bytes, token_type: CardTokenType) -> Token | Garbage | None:
    """The card a line names, Garbage, or None for a blank line (a reader's `\\r\\n\\r\\n`)."""
    try:
        text = line.decode("ascii").strip()
    except UnicodeDecodeError:
        return Garbage("not_ascii", line)
    if not text:
        return None
    try:
        return Token.parse(text, token_type)
    except TokenError as invalid:
        return Garbage(invalid.reason, line)


@dataclass(slots=True)
class Debouncer:
    """Admits a card unless it was seen within `window_s` of now; each sighting restarts its
    window, so a card left on the reader is one presentation however long it stays."""

    clock: Clock
    window_s: float = DEBOUNCE_S
    _seen: dict[Token, float] = field(default_factory=dict)

    def admit(self, token: Token) -> bool:
        now = self.clock()
        last = self._seen.get(token)
        self._seen = {seen: at for seen, at in self._seen.items() if now - at < self.window_s}
        self._seen[token] = now
        return last is None or now - last >= self.window_s
