"""Josev's `reset` (for OCPP): one EVSE, or the whole station.

An EVSE's reset takes it out of service through its machine (modules off, contactors open, the
connector unlocked: the `inoperative` path, which the state file never hears of), runs again what
the EVSE goes through at start (its IMD's self-test, and every module heard from afresh: at start
a module counts only once it reports), then puts it back in service as it was. The station's
reset is the runner's graceful stop followed by the exit code systemd restarts (EXIT_RESET).

A reset asked while a session runs is answered `accepted` at once and carried out when that
session ends (for the station: when no session runs on any EVSE). The bridge never hands the
same reset over twice (a retained or repeated message is answered again, not acted on).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from csbridge.config import Config
from csbridge.engine import LimitsEngine
from csbridge.limits import Composition, EvseInputs
from csbridge.messages import ResetRequest, ResetResponse, handles, value_or
from csbridge.power import PowerStage
from csbridge.session.cable_check import SELF_TEST_TIMEOUT_S
from csbridge.session.handlers import SessionHandlers
from csbridge.session.machine import SESSION_STATES, Event, State
from csbridge.support import Counted, RateLimitedLog

log = logging.getLogger("csbridge.session")

EXIT_RESET = 75
"""`csbridge run`'s exit code after Josev's station reset (sysexits' EX_TEMPFAIL: try again).
The packaged unit restarts on it (RestartForceExitStatus=75) and counts it a success."""
CHECKS_TIMEOUT_S = SELF_TEST_TIMEOUT_S
"""An EVSE's start-up checks get as long as a cable check's self-test; then it is back in
service whatever they found (its limits say what is missing, as at start)."""


@dataclass(slots=True)
class EvseReset:
    """One EVSE's reset under way: its checks, and the availability it goes back to."""

    started: float
    operative_after: bool
    modules: frozenset[str]
    imd: bool
    seen: set[str] = field(default_factory=set)
    """Modules heard from since the reset started."""
    self_tested: bool = False
    finishing: bool = False


class Resets:
    """Josev's resets. Built once the session's `on_availability` is wired (the state file):
    it passes on every availability change but the reset's own hold and release."""

    def __init__(
        self,
        config: Config,
        session: SessionHandlers,
        stage: PowerStage,
        engine: LimitsEngine,
    ) -> None:
        self._allowed = config.station.maintenance.allow_reset
        self._evses = {evse.evse_id: evse for evse in config.evse}
        self._session = session
        self._stage = stage
        self._engine = engine
        self._clock = engine.clock
        self.on_station_reset: Callable[[], None] | None = None
        """Stops the service for its restart (the runner: graceful stop, exit EXIT_RESET)."""
        self.running: dict[str, EvseReset] = {}
        """The EVSE resets under way, by evse_id."""
        self.deferred: set[str] = set()
        """EVSEs whose reset waits for their session's end."""
        self.station_deferred = False
        """The station's reset waits for every session's end."""
        self._station_started = False
        self._own_step = False
        self._keep_availability = session.on_availability
        session.on_availability = self._availability
        session.on_step.append(self._stepped)
        engine.observers.append(self._evaluated)
        self._refusals = RateLimitedLog(log, engine.clock)

    # -- Josev's request ---------------------------------------------------------------------

    @handles(ResetRequest)
    def reset(self, message: ResetRequest) -> ResetResponse:
        evse_id = value_or(message.evse_id, None)
        scope = "station" if evse_id is None else "evse"
        if evse_id is not None and evse_id not in self._evses:
            self._refusals.warning(
                ("unknown_evse", message.NAME),
                "event=unknown_evse message=%s evse_id=%r",
                message.NAME,
                evse_id,
            )
            self._engine.counters.add(Counted.RESETS, f"{scope}/rejected")
            return ResetResponse(status="rejected")
        if not self._allowed:
            log.warning(
                "event=reset_rejected scope=%s evse=%s why=[station.maintenance] allow_reset "
                "is false",
                scope,
                evse_id or "-",
            )
            self._engine.counters.add(Counted.RESETS, f"{scope}/rejected")
            return ResetResponse(status="rejected")
        if evse_id is None:
            self._reset_station()
        else:
            self._reset_evse(evse_id)
        return ResetResponse(status="accepted")

    def _in_session(self, evse_id: str) -> bool:
        return self._session.sessions[evse_id].state in SESSION_STATES

    def _reset_evse(self, evse_id: str) -> None:
        if evse_id in self.running or evse_id in self.deferred:
            log.info("event=reset_already evse=%s why=a reset of it is under way", evse_id)
            return
        if self._in_session(evse_id):
            self.deferred.add(evse_id)
            self._engine.counters.add(Counted.RESETS, "evse/deferred")
            log.info(
                "event=reset_deferred evse=%s state=%s why=a session runs; the reset follows "
                "its end",
                evse_id,
                self._session.sessions[evse_id].state,
            )
            return
        self._start(evse_id)

    def _reset_station(self) -> None:
        busy = sorted(evse_id for evse_id in self._evses if self._in_session(evse_id))
        if busy:
            if not self.station_deferred:
                self._engine.counters.add(Counted.RESETS, "station/deferred")
            self.station_deferred = True
            log.info(
                "event=reset_deferred scope=station sessions=%s why=the restart follows the "
                "end of every session",
                ",".join(busy),
            )
            return
        self._restart_station()

    def _restart_station(self) -> None:
        self.station_deferred = False
        if self._station_started:
            return
        self._station_started = True
        self._engine.counters.add(Counted.RESETS, "station/started")
        log.warning("event=reset_station why=Josev's reset: graceful stop, then a restart")
        if self.on_station_reset is None:
            log.error("event=reset_station_unwired why=nothing can restart the service")
            return
        # After the answer has gone out: the handler returns before the stop begins.
        _soon(self.on_station_reset)

    # -- one EVSE ------------------------------------------------------------------------------

    def _start(self, evse_id: str) -> None:
        facts = self._session.sessions[evse_id].machine.facts
        evse = self._evses[evse_id]
        reset = EvseReset(
            started=self._clock(),
            operative_after=facts.operative and not facts.inoperative_pending,
            modules=frozenset(module.name for module in evse.module),
            imd=evse.imd is not None,
        )
        self._engine.counters.add(Counted.RESETS, "evse/started")
        log.warning(
            "event=reset_started evse=%s checks=modules:%d,imd_self_test:%s",
            evse_id,
            len(reset.modules),
            "yes" if reset.imd else "no",
        )
        self._feed(evse_id, Event.INOPERATIVE)
        self._feed(evse_id, Event.UNLOCK)
        if reset.imd:
            self._stage.start_imd_self_test(evse_id)
        self.running[evse_id] = reset
        self._check(evse_id, reset)

    def _feed(self, evse_id: str, event: Event) -> None:
        """The reset's own step: no availability change anyone asked for."""
        self._own_step = True
        try:
            self._session.feed(evse_id, event, "reset")
        finally:
            self._own_step = False

    def _evaluated(self, evse_id: str, _inputs: EvseInputs, _c: Composition | None) -> None:
        reset = self.running.get(evse_id)
        if reset is not None:
            self._check(evse_id, reset)

    def _check(self, evse_id: str, reset: EvseReset) -> None:
        """Done when every module reported since the start and the IMD's self-test is over;
        or, whatever is missing, once CHECKS_TIMEOUT_S ran out."""
        inputs = self._engine.inputs(evse_id)
        for name, reading in inputs.modules.items():
            if reading.at > reset.started:
                reset.seen.add(name)
        imd = inputs.imd
        if imd is not None and imd.at > reset.started and not imd.self_test_running:
            reset.self_tested = True
        complete = reset.seen >= reset.modules and (reset.self_tested or not reset.imd)
        if reset.finishing or (not complete and self._clock() - reset.started < CHECKS_TIMEOUT_S):
            return
        reset.finishing = True
        # Outside the evaluation (or step) that found it done: the release is a step of its own.
        _soon(lambda: self._finish(evse_id, reset))

    def _finish(self, evse_id: str, reset: EvseReset) -> None:
        del self.running[evse_id]
        took = self._clock() - reset.started
        missing = sorted(reset.modules - reset.seen)
        if not reset.self_tested and reset.imd:
            missing.append("imd_self_test")
        if missing:
            log.warning(
                "event=reset_checks_incomplete evse=%s missing=%s took_s=%.1f why=not done "
                "within %.0f s; the limits say what is missing",
                evse_id,
                ",".join(missing),
                took,
                CHECKS_TIMEOUT_S,
            )
        if reset.operative_after:
            self._feed(evse_id, Event.OPERATIVE)
        elif self._keep_availability is not None:
            self._keep_availability(evse_id, False)  # taken out of service during the reset
        self._engine.counters.add(Counted.RESETS, "evse/done")
        log.info(
            "event=reset_done evse=%s took_s=%.1f modules_seen=%d/%d imd_self_test=%s state=%s",
            evse_id,
            took,
            len(reset.seen & reset.modules),
            len(reset.modules),
            "-" if not reset.imd else ("done" if reset.self_tested else "unfinished"),
            self._session.sessions[evse_id].state,
        )

    # -- what the machine and the availability tell -------------------------------------------

    def _availability(self, evse_id: str, operative: bool) -> None:
        if self._own_step:
            return  # the reset's hold and release: the state file keeps what was asked
        reset = self.running.get(evse_id)
        if reset is not None:
            reset.operative_after = operative
        if self._keep_availability is not None:
            self._keep_availability(evse_id, operative)

    def _stepped(self, evse_id: str, event: Event, before: State, after: State) -> None:
        if self._own_step:
            return
        reset = self.running.get(evse_id)
        if reset is not None and event in (Event.OPERATIVE, Event.INOPERATIVE):
            # Asked during the reset (perhaps changing nothing while it holds the EVSE): kept.
            reset.operative_after = event is Event.OPERATIVE
        if before not in SESSION_STATES or after in SESSION_STATES:
            return
        if evse_id in self.deferred:
            self.deferred.discard(evse_id)
            log.info("event=reset_resumed evse=%s why=the session ended", evse_id)
            _soon(lambda: self._start_unless_busy(evse_id))
        if self.station_deferred and not any(map(self._in_session, self._evses)):
            log.info("event=reset_resumed scope=station why=every session ended")
            _soon(self._restart_station)

    def _start_unless_busy(self, evse_id: str) -> None:
        if self._in_session(evse_id):  # a new session began before this ran: wait for it
            self.deferred.add(evse_id)
            return
        if evse_id not in self.running:
            self._start(evse_id)


def _soon(action: Callable[[], None]) -> None:
    """On the loop's next pass (outside the step or handler that asks); at once without one."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        action()
        return
    loop.call_soon(action)
