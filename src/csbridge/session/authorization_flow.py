"""EIM authorization as the session runs it: a plug-in offers free vend, a presented token goes
through the EVSE's authorizer (locally or to Josev), and Josev's own authorization updates and
process_authorized_token requests reach the state machine. A token accepted while nothing is
plugged in is kept for the next plug-in within PREAUTHORIZED_FOR_S (tap, then plug)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass

from csbridge.messages import (
    ABSENT,
    AuthorizationResponse,
    AuthorizationUpdate,
    Payload,
    ProcessAuthorizedTokenRequest,
    ProcessAuthorizedTokenResponse,
    handles,
    value_or,
)
from csbridge.messages import AuthorizationRequest as AuthorizationRequestMessage
from csbridge.session.authorization import (
    AuthorizationDecision,
    AuthorizationRequest,
    AuthorizationResult,
    Authorizer,
)
from csbridge.session.machine import Event, State, Step
from csbridge.sources.rfid import Token
from csbridge.support import RateLimitedLog

log = logging.getLogger("csbridge.authorization")

PREAUTHORIZED_FOR_S = 60.0
"""How long a token accepted before the plug-in waits for it (OCPP's EVConnectionTimeOut
default is of this order)."""

Ask = Callable[[Payload, float], Awaitable[Payload | None]]
"""Send Josev a request and await its response (None: none in time)."""
Feed = Callable[[str, Event, str], Step]

ANNOUNCE_TIMEOUT_S = 30.0
"""How long a free-vend or allowlist decision waits for Josev's word on it."""
_WELCOME = frozenset({State.OCCUPIED, State.AUTHORIZING})
"""Where a token can authorize a session now."""
_BUSY = frozenset(
    {
        State.AUTHORIZED,
        State.CABLE_CHECK,
        State.PRECHARGE,
        State.CHARGING,
        State.PAUSED,
        State.STOPPING,
        State.FINISHING,
    }
)


@dataclass(slots=True)
class Authorization:
    """One EVSE's authorization as the limits report shows it."""

    status: str = "none"
    token_type: str | None = None
    id_token: str | None = None
    preauthorized_until: float | None = None
    withdrawn: bool = False
    """Refused or withdrawn for this plug-in: free vend does not authorize it again."""


class AuthorizationFlow:
    def __init__(
        self,
        authorizers: Mapping[str, Authorizer],
        feed: Feed,
        state_of: Callable[[str], State],
        clock: Callable[[], float],
        *,
        unknown_evse: Callable[[str, str], None] | None = None,
    ) -> None:
        self._authorizers = dict(authorizers)
        self._feed = feed
        self._state_of = state_of
        self._clock = clock
        self.ask: Ask | None = None
        """Set once the bridge runs: without it nothing is sent to Josev."""
        self.by_evse = {evse_id: Authorization() for evse_id in authorizers}
        self._tasks: set[asyncio.Task[None]] = set()
        self._warnings = RateLimitedLog(log, clock)
        """What a token or Josev's word can cause, one line a minute per kind (never per token
        or evse_id as sent)."""
        self._unknown_evse = unknown_evse or self._warn_unknown_evse
        """Told (message name, evse_id as sent) of Josev naming an EVSE the station lacks: the
        session's own counter and log when it runs this flow."""

    # -- from the station --------------------------------------------------------------------

    def forget(self, evse_id: str) -> None:
        """The EV is gone: its authorization, and any refusal, go with it."""
        self.by_evse[evse_id] = Authorization()

    def on_plug_in(self, evse_id: str) -> None:
        """An EV plugged in and nobody authorized it yet."""
        record = self.by_evse[evse_id]
        waiting = record.preauthorized_until
        if waiting is not None and self._clock() <= waiting:
            record.preauthorized_until = None
            self._feed(evse_id, Event.AUTH_ACCEPTED, "a token presented before the plug-in")
            return
        record.preauthorized_until = None
        if record.withdrawn:
            return  # refused for this plug-in: a new one (or a token) is needed
        result = self._authorizers[evse_id].on_plug_in()
        if result is None:
            record.status = "none"
            return
        self._accepted(evse_id, result, "free vend")

    def present(self, evse_id: str, token: Token) -> None:
        """A token from the token topic or a reader."""
        state = self._state_of(evse_id)
        if state not in _WELCOME and state is not State.AVAILABLE:
            self._warnings.warning(
                ("token_ignored", state),
                "event=token_ignored evse=%s state=%s why=no session can start now",
                evse_id,
                state,
            )
            return
        result = self._authorizers[evse_id].on_token(token)
        match result.decision:
            case AuthorizationDecision.ACCEPTED:
                self._accepted(evse_id, result, result.reason)
            case AuthorizationDecision.REJECTED:
                self._record(evse_id, "rejected", result.request, token)
                self._feed(evse_id, Event.AUTH_REJECTED, result.reason)
            case AuthorizationDecision.ASK_JOSEV:
                self._record(evse_id, "pending", result.request, token)
                if state is not State.AVAILABLE:
                    self._feed(evse_id, Event.AUTH_PENDING, "asking Josev")
                self._spawn(self._ask_josev(evse_id, result))

    def _accepted(self, evse_id: str, result: AuthorizationResult, why: str) -> None:
        self._record(evse_id, "accepted", result.request)
        if self._state_of(evse_id) is State.AVAILABLE:
            self.by_evse[evse_id].preauthorized_until = self._clock() + PREAUTHORIZED_FOR_S
        else:
            self._feed(evse_id, Event.AUTH_ACCEPTED, why)
        if result.request is not None and self.ask is not None:
            # Josev (and OCPP behind it) hears of it; a refusal from there still stops it.
            self._spawn(self._announce(evse_id, result.request))

    def _record(
        self,
        evse_id: str,
        status: str,
        request: AuthorizationRequest | None,
        token: Token | None = None,
    ) -> None:
        record = self.by_evse[evse_id]
        record.status = status
        if request is not None:
            record.token_type, record.id_token = request.token_type, request.id_token
        elif token is not None:
            record.token_type, record.id_token = token.token_type, token.id_token

    async def _ask_josev(self, evse_id: str, result: AuthorizationResult) -> None:
        assert result.request is not None  # ASK_JOSEV always carries its request
        answer = await self._send(result.request, result.timeout_s or ANNOUNCE_TIMEOUT_S)
        status = answer.status if isinstance(answer, AuthorizationResponse) else None
        decision = Authorizer.on_josev_answer(status)
        if decision is AuthorizationDecision.ACCEPTED:
            self._accepted(evse_id, AuthorizationResult(decision, "josev"), "Josev accepted")
            return
        self._record(evse_id, "rejected", None)
        why = f"Josev answered {status}" if status is not None else "no answer from Josev"
        self._feed(evse_id, Event.AUTH_REJECTED, why)

    async def _announce(self, evse_id: str, request: AuthorizationRequest) -> None:
        answer = await self._send(request, ANNOUNCE_TIMEOUT_S)
        if not isinstance(answer, AuthorizationResponse) or answer.status == "accepted":
            return  # silence is no refusal: a station without OCPP behind Josev never answers
        self._warnings.warning(
            ("authorization_withdrawn", answer.status),
            "event=authorization_withdrawn evse=%s status=%s",
            evse_id,
            answer.status,
        )
        self._record(evse_id, answer.status, None)
        self.by_evse[evse_id].preauthorized_until = None
        self.by_evse[evse_id].withdrawn = True
        event = Event.DEAUTHORIZED if answer.status == "deauthorized" else Event.AUTH_REJECTED
        self._feed(evse_id, event, f"Josev answered {answer.status}")

    async def _send(self, request: AuthorizationRequest, timeout_s: float) -> Payload | None:
        if self.ask is None:
            return None
        message = AuthorizationRequestMessage(
            token_type=request.token_type,
            id_token=request.id_token if request.id_token is not None else ABSENT,
            evse_id=request.evse_id,
        )
        return await self.ask(message, timeout_s)

    def _spawn(self, work: Coroutine[None, None, None]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a script driving the session): nobody to ask
            work.close()
            log.warning("event=authorization_not_sent why=no event loop")
            return

        async def run() -> None:
            try:
                await work
            except Exception:
                self._warnings.exception("authorization_failed", "event=authorization_failed")

        task = loop.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- from Josev --------------------------------------------------------------------------

    def _warn_unknown_evse(self, name: str, evse_id: str) -> None:
        """Keyed by the message's name alone: the evse_id is whatever the sender wrote."""
        self._warnings.warning(
            ("unknown_evse", name), "event=unknown_evse message=%s evse_id=%r", name, evse_id
        )

    @handles(AuthorizationUpdate)
    def authorization_update(self, message: AuthorizationUpdate) -> None:
        """An authorization made elsewhere: remote start, Plug & Charge, or its withdrawal."""
        evse_id = message.evse_id
        if evse_id not in self.by_evse:
            self._unknown_evse(message.NAME, evse_id)
            return
        record = self.by_evse[evse_id]
        record.status = message.status
        record.token_type = message.token_type
        record.id_token = value_or(message.id_token, None)
        event = {
            "accepted": Event.AUTH_ACCEPTED,
            "rejected": Event.AUTH_REJECTED,
            "deauthorized": Event.DEAUTHORIZED,
        }[message.status]
        record.withdrawn = event is not Event.AUTH_ACCEPTED
        if event is Event.AUTH_ACCEPTED and self._state_of(evse_id) is State.AVAILABLE:
            record.preauthorized_until = self._clock() + PREAUTHORIZED_FOR_S
            return
        self._feed(evse_id, event, f"Josev's authorization update: {message.status}")

    @handles(ProcessAuthorizedTokenRequest)
    def process_authorized_token(
        self, message: ProcessAuthorizedTokenRequest
    ) -> ProcessAuthorizedTokenResponse:
        """Accepted (and used) unless the EVSE is unavailable, busy or unknown."""
        evse_id = value_or(message.evse_id, None)
        if evse_id is not None and evse_id not in self.by_evse:
            self._unknown_evse(message.NAME, evse_id)
            return ProcessAuthorizedTokenResponse(status="discarded", evse_id=evse_id)
        candidates = [evse_id] if evse_id is not None else list(self.by_evse)
        for candidate in candidates:
            if candidate not in self.by_evse:
                continue
            state = self._state_of(candidate)
            if state in _BUSY or state in (State.FAULTED, State.UNAVAILABLE):
                continue
            record = self.by_evse[candidate]
            record.status = "accepted"
            record.token_type = message.token_type
            record.id_token = value_or(message.id_token, None)
            if state is State.AVAILABLE:
                record.preauthorized_until = self._clock() + PREAUTHORIZED_FOR_S
            else:
                self._feed(candidate, Event.AUTH_ACCEPTED, "process_authorized_token")
            return ProcessAuthorizedTokenResponse(status="accepted", evse_id=candidate)
        answer_evse = evse_id if evse_id is not None else ABSENT
        return ProcessAuthorizedTokenResponse(status="discarded", evse_id=answer_evse)
