"""EIM authorization per EVSE: given a presented token (or a plug-in without one), what to do
and what to tell Josev. Pure decisions; the allowlist file is read behind `Allowlist`, and the
caller builds and sends the `authorization` request and waits for Josev's answer.

- `free`: everyone charges; Josev hears token_type `no_authorization` (free-vend).
- `allowlist`: a token in the local file is accepted here and sent to Josev as token_type
  `local`; any other is rejected and nothing is sent.
- `josev`: every token is sent as presented; Josev's answer decides, and none within
  `josev_timeout_s` is a rejection.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from csbridge.config import AuthorizationConfig, Config
from csbridge.session.allowlist import Allowlist
from csbridge.sources.rfid import Token, TokenError, TokenType
from csbridge.support import Clock

log = logging.getLogger("csbridge.authorization")


class AuthorizationDecision(enum.StrEnum):
    ACCEPTED = "accepted"
    """Decided here: the session may go on; `request` tells Josev (and OCPP behind it)."""
    REJECTED = "rejected"
    """Decided here: no session, nothing is sent."""
    ASK_JOSEV = "ask_josev"
    """Send `request` and wait up to `timeout_s`; `Authorizer.on_josev_answer` reads the reply."""


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """The data of the `authorization` request to send Josev (id_token None: leave it out)."""

    evse_id: str
    token_type: TokenType
    id_token: str | None


@dataclass(frozen=True, slots=True)
class AuthorizationResult:
    decision: AuthorizationDecision
    reason: str
    """Why, in a word fit for a log, the status and a metric label: free_vend, allowlist,
    not_in_allowlist, allowlist_missing, invalid_token, josev."""
    request: AuthorizationRequest | None = None
    timeout_s: float | None = None
    """ASK_JOSEV: how long to wait for the answer."""


class Authorizer:
    """One EVSE's authorization mode; `on_plug_in` and `on_token` say what to do."""

    def __init__(
        self, evse_id: str, config: AuthorizationConfig, allowlist: Allowlist | None = None
    ) -> None:
        self.evse_id = evse_id
        self.config = config
        if config.mode == "allowlist" and allowlist is None:
            if config.allowlist_file is None:  # the config refuses this; a guard for mypy
                raise ValueError('mode = "allowlist" needs allowlist_file')
            allowlist = Allowlist(config.allowlist_file)
        self.allowlist = allowlist if config.mode == "allowlist" else None

    @property
    def mode(self) -> str:
        return self.config.mode

    def on_plug_in(self) -> AuthorizationResult | None:
        """A vehicle plugged in, no token yet: free-vend authorizes it now; the other modes
        wait for a token (None)."""
        if self.config.mode != "free":
            return None
        return self._free_vend()

    def on_token(self, token: Token) -> AuthorizationResult:
        result = self._decide(token)
        log.info(
            "event=authorization evse_id=%s mode=%s token_type=%s id_token=%s decision=%s "
            "reason=%s",
            self.evse_id,
            self.config.mode,
            token.token_type,
            token.id_token,
            result.decision,
            result.reason,
        )
        return result

    def _decide(self, token: Token) -> AuthorizationResult:
        if self.config.mode == "free":
            return self._free_vend()
        try:  # a Token built without Token.parse still matches in its canonical spelling
            token = Token.parse(token.id_token, token.token_type)
        except TokenError:
            return AuthorizationResult(AuthorizationDecision.REJECTED, "invalid_token")
        if self.config.mode == "josev":
            return AuthorizationResult(
                AuthorizationDecision.ASK_JOSEV,
                "josev",
                AuthorizationRequest(self.evse_id, token.token_type, token.id_token),
                self.config.josev_timeout_s,
            )
        return self._from_allowlist(token)

    def _from_allowlist(self, token: Token) -> AuthorizationResult:
        if self.allowlist is None:  # only an allowlist-mode authorizer gets here
            return AuthorizationResult(AuthorizationDecision.REJECTED, "allowlist_missing")
        if self.allowlist.contains(token):
            return AuthorizationResult(
                AuthorizationDecision.ACCEPTED,
                "allowlist",
                AuthorizationRequest(self.evse_id, "local", token.id_token),
            )
        reason = "not_in_allowlist" if self.allowlist.present else "allowlist_missing"
        return AuthorizationResult(AuthorizationDecision.REJECTED, reason)

    def _free_vend(self) -> AuthorizationResult:
        return AuthorizationResult(
            AuthorizationDecision.ACCEPTED,
            "free_vend",
            AuthorizationRequest(self.evse_id, "no_authorization", None),
        )

    @staticmethod
    def on_josev_answer(status: str | None) -> AuthorizationDecision:
        """Josev's `authorization` response status (None: no answer in time) as a decision:
        only `accepted` lets the session go on; `rejected`, `deauthorized` and silence stop
        it."""
        if status == "accepted":
            return AuthorizationDecision.ACCEPTED
        return AuthorizationDecision.REJECTED


def build_authorizers(config: Config, *, clock: Clock = time.monotonic) -> dict[str, Authorizer]:
    """An authorizer per EVSE, each mode logged; EVSEs naming the same file share its reader."""
    files: dict[Path, Allowlist] = {}
    authorizers: dict[str, Authorizer] = {}
    for evse in config.evse:
        settings = evse.authorization
        allowlist = None
        if settings.allowlist_file is not None:
            allowlist = files.get(settings.allowlist_file)
            if allowlist is None:
                allowlist = files[settings.allowlist_file] = Allowlist(
                    settings.allowlist_file, clock=clock
                )
        authorizers[evse.evse_id] = Authorizer(evse.evse_id, settings, allowlist)
        _log_mode(evse.evse_id, authorizers[evse.evse_id])
    return authorizers


def _log_mode(evse_id: str, authorizer: Authorizer) -> None:
    settings = authorizer.config
    if settings.mode == "free":
        log.warning(
            "event=authorization_mode evse_id=%s mode=free -- FREE-VEND: anyone who plugs in "
            "charges, no token is checked",
            evse_id,
        )
    elif authorizer.allowlist is not None:
        log.info(
            "event=authorization_mode evse_id=%s mode=allowlist file=%s present=%s tokens=%d",
            evse_id,
            authorizer.allowlist.path,
            authorizer.allowlist.present,
            len(authorizer.allowlist.tokens),
        )
    else:
        log.info(
            "event=authorization_mode evse_id=%s mode=josev timeout_s=%g",
            evse_id,
            settings.josev_timeout_s,
        )
    if settings.reader is not None:
        log.info(
            "event=authorization_reader evse_id=%s kind=%s port=%s token_type=%s",
            evse_id,
            settings.reader.kind,
            settings.reader.port,
            settings.reader.token_type,
        )
