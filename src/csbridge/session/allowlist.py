"""The local allowlist: a file of `token_type id_token` lines, read again when it changes.

The file is the operator's, edited by hand or replaced by a provisioning tool at any time, so
it is checked as tokens are checked (at most once a second, by its inode, size and mtime), and
a mistake in it costs only its line: each bad line is skipped with one log line naming the file,
the line number and why, and the rest loads. A file that is missing means nobody is allowed
(logged once, until it appears); one that cannot be read keeps the tokens last read from it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from csbridge.sources.rfid import Token, TokenError
from csbridge.support import Clock

log = logging.getLogger("csbridge.authorization")

CHECK_EVERY_S = 1.0
"""The file is looked at no more often than this, however many tokens are checked."""
_BOM = b"\xef\xbb\xbf"

FileSignature = tuple[int, int, int, int]
"""Device, inode, size and mtime (ns): a replaced, rewritten or touched file differs."""


@dataclass(frozen=True, slots=True)
class BadLine:
    number: int
    """From 1, as an editor shows it."""
    why: str


@dataclass(frozen=True, slots=True)
class ParsedAllowlist:
    tokens: frozenset[Token]
    bad_lines: tuple[BadLine, ...]


def parse_allowlist(data: bytes) -> ParsedAllowlist:
    """Every good line's token, and why each bad line is bad. `#` starts a comment where it
    begins a word, so an id_token may still hold one (a key code `12#4`)."""
    tokens: set[Token] = set()
    bad: list[BadLine] = []
    for number, raw in enumerate(data.removeprefix(_BOM).split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(BadLine(number, "not UTF-8 text"))
            continue
        words = _before_comment(text.split())
        if not words:
            continue
        if len(words) != 2:
            bad.append(BadLine(number, f"expected `token_type id_token`, got {len(words)} words"))
            continue
        token_type, id_token = words
        try:
            tokens.add(Token.parse(id_token, token_type))
        except TokenError as invalid:
            bad.append(BadLine(number, str(invalid)))
    return ParsedAllowlist(frozenset(tokens), tuple(bad))


def _before_comment(words: list[str]) -> list[str]:
    for index, word in enumerate(words):
        if word.startswith("#"):
            return words[:index]
    return words


class Allowlist:
    """The tokens of one allowlist file, as the file is now (checked at most once a second)."""

    def __init__(
        self, path: Path, *, clock: Clock = time.monotonic, check_every_s: float = CHECK_EVERY_S
    ) -> None:
        self.path = path
        self.tokens: frozenset[Token] = frozenset()
        self.present = False
        """False while the file is missing (every token is then rejected)."""
        self.loads = 0
        self.bad_lines = 0
        """Bad lines skipped, counted at every load that met them."""
        self._clock = clock
        self._check_every_s = check_every_s
        self._checked_at: float | None = None
        self._signature: FileSignature | None = None
        self._complaint: str | None = None
        """What was last logged about the file not being there to read, until it loads."""
        self.refresh()

    def contains(self, token: Token) -> bool:
        self.refresh()
        return token in self.tokens

    def refresh(self) -> None:
        """Read the file again if it changed; at most once per `check_every_s`."""
        now = self._clock()
        if self._checked_at is not None and now - self._checked_at < self._check_every_s:
            return
        self._checked_at = now
        try:
            stat = os.stat(self.path)
            signature = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if signature == self._signature:
                return
            data = self.path.read_bytes()
        except FileNotFoundError:
            self._missing()
        except OSError as error:
            self._unreadable(error)
        else:
            self._load(data, signature)

    def _load(self, data: bytes, signature: FileSignature) -> None:
        parsed = parse_allowlist(data)
        for bad in parsed.bad_lines:
            log.warning(
                "event=allowlist_bad_line file=%s line=%d why=%s -- line skipped",
                self.path,
                bad.number,
                bad.why,
            )
        self.bad_lines += len(parsed.bad_lines)
        self.tokens = parsed.tokens
        self.present = True
        self.loads += 1
        self._signature = signature
        self._complaint = None
        log.info(
            "event=allowlist_loaded file=%s tokens=%d bad_lines=%d",
            self.path,
            len(parsed.tokens),
            len(parsed.bad_lines),
        )

    def _missing(self) -> None:
        self.tokens = frozenset()
        self.present = False
        self._signature = None
        if self._complaint != "missing":
            self._complaint = "missing"
            log.warning(
                "event=allowlist_missing file=%s -- every token is rejected until it appears",
                self.path,
            )

    def _unreadable(self, error: OSError) -> None:
        # The signature is kept as it was, so the file is tried again at the next check.
        if self._complaint != "unreadable":
            self._complaint = "unreadable"
            log.error(
                "event=allowlist_unreadable file=%s why=%s -- keeping the %d tokens last read",
                self.path,
                error,
                len(self.tokens),
            )
