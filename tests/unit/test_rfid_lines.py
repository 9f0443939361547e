"""Tokens in their canonical spelling, a reader's byte stream cut into lines, each line a card
or a named kind of garbage, and a card left on the reader reported once."""

from __future__ import annotations

import pytest

from csbridge.sources.rfid import Token, TokenError, canonical_id
from csbridge.sources.rfid.lines import (
    MAX_LINE_BYTES,
    Debouncer,
    Garbage,
    LineSplitter,
    read_line,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("id_token", "token_type", "canonical"),
    [
        ("04a2b9c1", "ISO14443", "04A2B9C1"),
        ("04A2B9C1E05C80", "ISO14443", "04A2B9C1E05C80"),
        ("0102030405060708090a", "ISO14443", "0102030405060708090A"),
        ("e004010012345678", "ISO15693", "E004010012345678"),
        ("aBc-123", "key_code", "aBc-123"),
        ("de:ad:be:ef:00:01", "mac_address", "de:ad:be:ef:00:01"),
        ("Emp42", "local", "Emp42"),
    ],
)
def test_card_uids_are_upper_case_hex_and_other_tokens_stay_as_given(
    id_token: str, token_type: str, canonical: str
) -> None:
    assert Token.parse(id_token, token_type) == Token(canonical, token_type)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("id_token", "token_type", "reason"),
    [
        ("04A2B9C1", "RFID", "token_type"),
        ("", "key_code", "empty"),
        ("12 34", "key_code", "whitespace"),
        ("04A2B9CZ", "ISO14443", "not_hex"),
        ("04A2B9C", "ISO14443", "uid_length"),
        ("04A2B9C1E0", "ISO14443", "uid_length"),
        ("04A2B9C1", "ISO15693", "uid_length"),
        ("0x04A2B9C1", "ISO14443", "not_hex"),
    ],
)
def test_a_token_that_cannot_be_a_drivers_is_refused_with_a_reason(
    id_token: str, token_type: str, reason: str
) -> None:
    with pytest.raises(TokenError) as caught:
        Token.parse(id_token, token_type)
    assert caught.value.reason == reason


def test_canonical_id_is_what_parse_keeps() -> None:
    assert canonical_id("04a2b9c1", "ISO14443") == Token.parse("04a2b9c1", "ISO14443").id_token


def test_lines_are_cut_at_newlines_whatever_the_chunks() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"04A2") == []
    assert splitter.feed(b"B9C1\r\n0102") == [b"04A2B9C1\r"]
    assert splitter.feed(b"0304\n\n") == [b"01020304", b""]
    assert splitter.feed(b"") == []


def test_an_overlong_line_is_garbage_up_to_its_newline_and_the_next_line_is_read() -> None:
    splitter = LineSplitter()
    noise = b"\x55" * (MAX_LINE_BYTES + 10)
    assert splitter.feed(noise[:40]) == []
    lines = splitter.feed(noise[40:] + b"\n04A2B9C1\n")
    assert lines == [Garbage("too_long", noise[:MAX_LINE_BYTES]), b"04A2B9C1"]


@pytest.mark.parametrize(
    ("line", "seen"),
    [
        (b"04a2b9c1\r", Token("04A2B9C1", "ISO14443")),
        (b"  04A2B9C1E05C80 ", Token("04A2B9C1E05C80", "ISO14443")),
        (b"\r", None),
        (b"", None),
        (b"\xff\xfe04", Garbage("not_ascii", b"\xff\xfe04")),
        (b"hello\r", Garbage("not_hex", b"hello\r")),
        (b"04A2B9\r", Garbage("uid_length", b"04A2B9\r")),
        (b"04 A2 B9 C1", Garbage("whitespace", b"04 A2 B9 C1")),
    ],
)
def test_each_line_is_a_card_garbage_or_blank(line: bytes, seen: Token | Garbage | None) -> None:
    assert read_line(line, "ISO14443") == seen


def test_a_line_is_read_with_the_readers_token_type() -> None:
    assert read_line(b"E004010012345678", "ISO15693") == Token("E004010012345678", "ISO15693")
    assert read_line(b"E004010012345678", "ISO14443") == Garbage("uid_length", b"E004010012345678")


def test_a_card_held_on_the_reader_is_one_presentation() -> None:
    clock = FakeClock()
    debouncer = Debouncer(clock)
    card = Token("04A2B9C1", "ISO14443")
    assert debouncer.admit(card)
    for _ in range(10):  # the reader repeats the UID every half second for five seconds
        clock.now += 0.5
        assert not debouncer.admit(card)
    clock.now += 2.0
    assert debouncer.admit(card)


def test_debouncing_is_per_card() -> None:
    clock = FakeClock()
    debouncer = Debouncer(clock)
    first, second = Token("04A2B9C1", "ISO14443"), Token("04A2B9C2", "ISO14443")
    assert debouncer.admit(first)
    assert debouncer.admit(second)
    clock.now += 1.99
    assert not debouncer.admit(first)
    clock.now += 2.0
    assert debouncer.admit(first)
    assert debouncer.admit(second)
