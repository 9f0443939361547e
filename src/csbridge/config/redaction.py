"""The configuration as it may leave the station (a log upload): every secret taken out.

What counts as a secret is decided by the key's name, not by a list of today's fields, so a
secret someone adds later (a CSMS password, an API token) is removed without anyone
remembering to list it: a password, a passphrase, a secret, a token (not a token's type), a
credential, a private key or the file holding one. Passwords written into URLs
(`ftp://user:password@host`) are removed too.
"""

from __future__ import annotations

import re
from typing import Any

from csbridge.config.station import Config

REMOVED = "<removed>"
_SECRET_KEY = re.compile(
    r"password|passphrase|secret|token|credential|key_file|private_key|api_key"
)
_NOT_SECRET_KEY = re.compile(r"_type$|_types$")
"""A token's type (ISO14443...) says nothing secret."""
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s]*):[^/@\s]*@")


def secret_key(key: str) -> bool:
    lowered = key.lower()
    return bool(_SECRET_KEY.search(lowered)) and not _NOT_SECRET_KEY.search(lowered)


def without_url_password(text: str) -> str:
    """`ftp://user:pw@host/x` -> `ftp://user:<removed>@host/x`; anything else as it is."""
    return _URL_PASSWORD.sub(lambda match: f"{match['head']}:{REMOVED}@", text)


def redacted(value: Any) -> Any:
    """A JSON-ready document with every secret's value replaced by `<removed>` (an absent one,
    None, stays None: whether a secret is configured is worth knowing)."""
    if isinstance(value, dict):
        return {
            key: (REMOVED if item is not None else None) if secret_key(str(key)) else redacted(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redacted(item) for item in value]
    if isinstance(value, str):
        return without_url_password(value)
    return value


def redacted_config(config: Config) -> dict[str, Any]:
    """The effective configuration (defaults filled in) without its secrets."""
    document: dict[str, Any] = redacted(config.model_dump(mode="json"))
    return document
