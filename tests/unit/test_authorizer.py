"""The three authorization modes: free-vend accepts at plug-in as no_authorization; allowlist
accepts its tokens as `local` and rejects the rest; josev asks with the configured timeout."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from csbridge.config import AuthorizationConfig, parse_config
from csbridge.session import (
    AuthorizationDecision,
    AuthorizationRequest,
    AuthorizationResult,
    Authorizer,
    build_authorizers,
)
from csbridge.sources.rfid import Token
from tests.support import small_station

EVSE = "DE*CSB*E0001"
CARD = Token("04A2B9C1", "ISO14443")
ACCEPTED = AuthorizationDecision.ACCEPTED
REJECTED = AuthorizationDecision.REJECTED


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _allowlist_mode(path: Path) -> AuthorizationConfig:
    return AuthorizationConfig(mode="allowlist", allowlist_file=path)


def test_free_vend_authorizes_a_plug_in_without_a_token() -> None:
    authorizer = Authorizer(EVSE, AuthorizationConfig())
    assert authorizer.on_plug_in() == AuthorizationResult(
        ACCEPTED, "free_vend", AuthorizationRequest(EVSE, "no_authorization", None)
    )


def test_free_vend_accepts_any_token_without_sending_it() -> None:
    authorizer = Authorizer(EVSE, AuthorizationConfig(mode="free"))
    for token in (CARD, Token("whatever", "key_code"), Token("not a uid", "ISO14443")):
        result = authorizer.on_token(token)
        assert result.decision is ACCEPTED
        assert result.request == AuthorizationRequest(EVSE, "no_authorization", None)


def test_allowlist_accepts_its_tokens_as_local_and_rejects_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "allowlist.txt"
    path.write_text("ISO14443 04a2b9c1\n", encoding="utf-8")
    authorizer = Authorizer(EVSE, _allowlist_mode(path))
    assert authorizer.on_plug_in() is None, "a plug-in waits for a token"
    assert authorizer.on_token(Token("04a2B9C1", "ISO14443")) == AuthorizationResult(
        ACCEPTED, "allowlist", AuthorizationRequest(EVSE, "local", "04A2B9C1")
    )
    assert authorizer.on_token(Token("04A2B9C2", "ISO14443")) == AuthorizationResult(
        REJECTED, "not_in_allowlist"
    )
    assert authorizer.on_token(Token("04A2B9C1", "ISO15693")).decision is REJECTED


def test_allowlist_follows_the_file_as_it_changes(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "allowlist.txt"
    config = parse_config(_station(f'mode = "allowlist"\nallowlist_file = "{path}"'))
    authorizer = build_authorizers(config, clock=clock)[EVSE]
    assert authorizer.on_token(CARD) == AuthorizationResult(REJECTED, "allowlist_missing")
    path.write_text("ISO14443 04A2B9C1\n", encoding="utf-8")
    clock.now += 1
    assert authorizer.on_token(CARD).decision is ACCEPTED
    path.write_text("# nobody today\n", encoding="utf-8")
    clock.now += 1
    assert authorizer.on_token(CARD) == AuthorizationResult(REJECTED, "not_in_allowlist")


def test_josev_mode_asks_josev_with_the_token_as_presented_and_the_timeout() -> None:
    authorizer = Authorizer(EVSE, AuthorizationConfig(mode="josev", josev_timeout_s=12.0))
    assert authorizer.on_plug_in() is None
    assert authorizer.on_token(Token("04a2b9c1", "ISO14443")) == AuthorizationResult(
        AuthorizationDecision.ASK_JOSEV,
        "josev",
        AuthorizationRequest(EVSE, "ISO14443", "04A2B9C1"),
        12.0,
    )
    key = authorizer.on_token(Token("Ab-12", "key_code"))
    assert key.request == AuthorizationRequest(EVSE, "key_code", "Ab-12")


@pytest.mark.parametrize("mode", ["allowlist", "josev"])
def test_a_token_that_cannot_be_a_card_is_rejected_without_asking(
    mode: str, tmp_path: Path
) -> None:
    path = tmp_path / "allowlist.txt"
    path.write_text("ISO14443 04A2B9C1\n", encoding="utf-8")
    config = _allowlist_mode(path) if mode == "allowlist" else AuthorizationConfig(mode="josev")
    result = Authorizer(EVSE, config).on_token(Token("04A2B9", "ISO14443"))
    assert result == AuthorizationResult(REJECTED, "invalid_token")


@pytest.mark.parametrize(
    ("status", "decision"),
    [
        ("accepted", ACCEPTED),
        ("rejected", REJECTED),
        ("deauthorized", REJECTED),
        (None, REJECTED),
        ("something new", REJECTED),
    ],
)
def test_only_josevs_accepted_lets_the_session_go_on(
    status: str | None, decision: AuthorizationDecision
) -> None:
    assert Authorizer.on_josev_answer(status) is decision


def _station(table: str, second_table: str | None = None) -> str:
    evses = [(EVSE, "[evse.authorization]\n" + table)]
    if second_table is not None:
        evses.append(("DE*CSB*E0002", "[evse.authorization]\n" + second_table))
    return small_station(*evses)


def test_each_evses_mode_is_logged_at_start_free_vend_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="csbridge.authorization")
    build_authorizers(parse_config(_station("")))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            f"event=authorization_mode evse_id={EVSE} mode=free -- FREE-VEND: anyone who plugs "
            "in charges, no token is checked",
        )
    ]
    caplog.clear()
    path = tmp_path / "allowlist.txt"
    build_authorizers(
        parse_config(_station(f'mode = "allowlist"\nallowlist_file = "{path}"', 'mode = "josev"'))
    )
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        f"event=allowlist_missing file={path} -- every token is rejected until it appears",
        f"event=authorization_mode evse_id={EVSE} mode=allowlist file={path} present=False "
        "tokens=0",
        "event=authorization_mode evse_id=DE*CSB*E0002 mode=josev timeout_s=30",
    ]


def test_evses_naming_the_same_file_share_one_reader_of_it(tmp_path: Path) -> None:
    path = tmp_path / "allowlist.txt"
    table = f'mode = "allowlist"\nallowlist_file = "{path}"'
    authorizers = build_authorizers(parse_config(_station(table, table)))
    first, second = authorizers[EVSE], authorizers["DE*CSB*E0002"]
    assert first.allowlist is not None
    assert first.allowlist is second.allowlist
