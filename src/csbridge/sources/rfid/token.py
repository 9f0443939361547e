"""The token a driver presents at an EVSE, in one canonical spelling wherever it came from.

Card UIDs are hex, and readers, files and people write them in either case: they are compared
and sent in upper case. A card UID has a length its standard fixes (ISO/IEC 14443-3: 4, 7 or 10
bytes; ISO/IEC 15693: 8 bytes; sources in docs/authorization.md), so a wrong length is a
misread or a typing mistake, never a card. Other token types are opaque and kept as given.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Literal, get_args

from csbridge.support import CsbridgeError

TokenType = Literal["ISO14443", "ISO15693", "key_code", "local", "no_authorization", "mac_address"]
"""The token types of Josev's `authorization` request."""

TOKEN_TYPES: frozenset[str] = frozenset(get_args(TokenType))

UID_BYTES: dict[str, tuple[int, ...]] = {"ISO14443": (4, 7, 10), "ISO15693": (8,)}
"""The UID lengths each card standard allows."""

_HEX = frozenset(string.hexdigits)


class TokenError(CsbridgeError):
    """A token that cannot be any driver's; `reason` is a short key fit for a counter label."""


@dataclass(frozen=True, slots=True)
class Token:
    """A presented identification: build it with `Token.parse` to get the canonical spelling."""

    id_token: str
    token_type: TokenType

    @classmethod
    def parse(cls, id_token: str, token_type: str) -> Token:
        """The canonical token, or TokenError saying why there is none."""
        if token_type not in TOKEN_TYPES:
            raise TokenError("token_type", f"unknown token_type {token_type!r}")
        checked: TokenType = token_type  # type: ignore[assignment]  # checked just above
        return cls(canonical_id(id_token, checked), checked)


def canonical_id(id_token: str, token_type: TokenType) -> str:
    """`id_token` as it is compared and sent; TokenError when it cannot be one."""
    if not id_token:
        raise TokenError("empty", "id_token is empty")
    if any(character.isspace() for character in id_token):
        raise TokenError("whitespace", f"id_token {id_token!r} holds whitespace")
    lengths = UID_BYTES.get(token_type)
    if lengths is None:
        return id_token
    if not set(id_token) <= _HEX:
        raise TokenError("not_hex", f"{token_type} UID {id_token!r} is not hex digits")
    if len(id_token) % 2 or len(id_token) // 2 not in lengths:
        allowed = " or ".join(str(length) for length in lengths)
        raise TokenError(
            "uid_length",
            f"{token_type} UID {id_token!r} has {len(id_token)} hex digits, not {allowed} bytes",
        )
    return id_token.upper()
