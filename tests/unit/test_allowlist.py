"""The allowlist file: good lines load, each bad line is skipped with its file and line number,
and the file is read again when it changes (at most once a second), disappears or comes back."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from csbridge.session import Allowlist, BadLine, parse_allowlist
from csbridge.sources.rfid import Token

CARD = Token("04A2B9C1", "ISO14443")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_file_of_every_token_type_with_comments_and_blank_lines() -> None:
    parsed = parse_allowlist(
        b"# the depot's cards\n"
        b"\n"
        b"ISO14443 04a2b9c1   # Anna\n"
        b"  ISO15693\te004010012345678\r\n"
        b"key_code 12#4\n"
        b"local fleet-7\n"
        b"mac_address 00:1A:2B:3C:4D:5E\n"
        b"no_authorization any\n"
    )
    assert parsed.bad_lines == ()
    assert parsed.tokens == {
        CARD,
        Token("E004010012345678", "ISO15693"),
        Token("12#4", "key_code"),
        Token("fleet-7", "local"),
        Token("00:1A:2B:3C:4D:5E", "mac_address"),
        Token("any", "no_authorization"),
    }


def test_each_bad_line_is_named_by_its_number_and_the_rest_loads() -> None:
    parsed = parse_allowlist(
        b"\xef\xbb\xbfISO14443 04A2B9C1\n"  # an editor's byte order mark is no mistake
        b"RFID 04A2B9C2\n"
        b"ISO14443\n"
        b"ISO14443 04A2B9C3 extra\n"
        b"ISO14443 04A2B9\n"
        b"ISO14443 nothex12\n"
        b"key_code \xff\xfe\n"
        b"iso14443 04A2B9C4\n"
        b"ISO14443 04a2b9c5\n"
    )
    assert parsed.tokens == {CARD, Token("04A2B9C5", "ISO14443")}
    assert [bad.number for bad in parsed.bad_lines] == [2, 3, 4, 5, 6, 7, 8]
    assert parsed.bad_lines[0] == BadLine(2, "unknown token_type 'RFID'")
    assert parsed.bad_lines[1] == BadLine(3, "expected `token_type id_token`, got 1 words")
    assert "has 6 hex digits, not 4 or 7 or 10 bytes" in parsed.bad_lines[3].why
    assert "is not hex digits" in parsed.bad_lines[4].why
    assert parsed.bad_lines[5] == BadLine(7, "not UTF-8 text")
    assert parsed.bad_lines[6] == BadLine(8, "unknown token_type 'iso14443'")


def test_bad_lines_are_logged_with_the_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "allowlist.txt"
    path.write_text("ISO14443 04A2B9C1\nISO14443 04A2B9\n", encoding="utf-8")
    caplog.set_level(logging.INFO, logger="csbridge.authorization")
    allowlist = Allowlist(path)
    assert allowlist.contains(CARD)
    assert allowlist.bad_lines == 1
    bad = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert bad == [
        f"event=allowlist_bad_line file={path} line=2 why=ISO14443 UID '04A2B9' has 6 hex "
        "digits, not 4 or 7 or 10 bytes -- line skipped"
    ]


def test_a_presented_uid_matches_in_any_case_and_other_types_exactly(tmp_path: Path) -> None:
    path = tmp_path / "allowlist.txt"
    path.write_text("ISO14443 04a2b9c1\nkey_code Abc\n", encoding="utf-8")
    allowlist = Allowlist(path)
    assert allowlist.contains(Token.parse("04A2b9C1", "ISO14443"))
    assert not allowlist.contains(Token("04A2B9C1", "ISO15693"))
    assert allowlist.contains(Token("Abc", "key_code"))
    assert not allowlist.contains(Token("abc", "key_code"))


def test_the_file_is_read_again_when_it_changes_at_most_once_a_second(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "allowlist.txt"
    path.write_text("ISO14443 04A2B9C1\n", encoding="utf-8")
    allowlist = Allowlist(path, clock=clock)
    other = Token("04A2B9C2", "ISO14443")
    assert allowlist.contains(CARD)
    path.write_text("ISO14443 04A2B9C2\n", encoding="utf-8")  # same size: inode/mtime tell
    os.utime(path, ns=(1, 1))
    clock.now += 0.5
    assert allowlist.contains(CARD), "checked again within the second"
    clock.now += 0.5
    assert allowlist.contains(other)
    assert not allowlist.contains(CARD)
    assert allowlist.loads == 2
    clock.now += 5
    assert allowlist.contains(other)
    assert allowlist.loads == 2, "an unchanged file is not read again"


def test_a_file_replaced_by_rename_is_read(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "allowlist.txt"
    path.write_text("ISO14443 04A2B9C1\n", encoding="utf-8")
    allowlist = Allowlist(path, clock=clock)
    staged = tmp_path / "allowlist.txt.new"
    staged.write_text("ISO14443 04A2B9C1\nkey_code 1234\n", encoding="utf-8")
    staged.replace(path)  # how provisioning tools write: atomically
    clock.now += 1
    assert allowlist.contains(Token("1234", "key_code"))


def test_a_missing_file_is_an_empty_list_logged_once_until_it_appears(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    path = tmp_path / "allowlist.txt"
    caplog.set_level(logging.INFO, logger="csbridge.authorization")
    allowlist = Allowlist(path, clock=clock)
    for _ in range(3):
        assert not allowlist.contains(CARD)
        assert not allowlist.present
        clock.now += 1
    missing = [r for r in caplog.records if "allowlist_missing" in r.getMessage()]
    assert len(missing) == 1
    assert "every token is rejected until it appears" in missing[0].getMessage()

    path.write_text("ISO14443 04A2B9C1\n", encoding="utf-8")
    assert allowlist.contains(CARD)
    assert allowlist.present

    path.unlink()
    clock.now += 1
    assert not allowlist.contains(CARD), "a deleted file allows nobody"
    missing = [r for r in caplog.records if "allowlist_missing" in r.getMessage()]
    assert len(missing) == 2, "logged again: it had been there"


def test_a_file_that_cannot_be_read_keeps_the_tokens_last_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    path = tmp_path / "allowlist.txt"
    path.write_text("ISO14443 04A2B9C1\n", encoding="utf-8")
    allowlist = Allowlist(path, clock=clock)
    path.unlink()
    path.mkdir()  # root reads every file; a folder in its place is unreadable even to root
    caplog.set_level(logging.ERROR, logger="csbridge.authorization")
    for _ in range(3):
        clock.now += 1
        assert allowlist.contains(CARD)
    unreadable = [r.getMessage() for r in caplog.records]
    assert len(unreadable) == 1
    assert unreadable[0].startswith(f"event=allowlist_unreadable file={path} why=")
    assert unreadable[0].endswith("-- keeping the 1 tokens last read")
