"""Each EVSE's charging session as Prometheus metrics: its state, how long it has been in it, its
authorization, and how many times energy stopped, by a bounded kind of reason.

State and authorization are exported enum-style: one series per possible value, 1 for the
current one and 0 for the others. Every series exists from the first scrape and none vanishes
on a transition, so Grafana's state timeline draws `max by (state) (csbridge_session_state)`
without gaps, and `avg_over_time(csbridge_session_state{state="charging"}[1d])` is the share
of the day spent charging (with only the current state present, that average would read 1
for any state seen at all).

Stops are counted as they happen, not at scrape time: the session keeps only the last one, and
two sessions ended between two scrapes must count twice. An engine observer sees every
evaluation, and the session re-evaluates whenever its report changes, which a new last stop
does; the check costs one identity comparison per evaluation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from csbridge.engine import LimitsEngine
from csbridge.session import SessionHandlers

PREFIX = "csbridge"

AUTHORIZATION_STATUSES = ("none", "pending", "accepted", "rejected", "deauthorized")
"""Every status the limits report's session block allows (EvseLimitsReport.json)."""

STOP_KINDS = (
    "stop_charging",
    "session_stop",
    "transaction_ended",
    "unplugged",
    "paused",
    "deauthorized",
    "limits",
    "fault",
    "station",
    "other",
)
"""The label values of csbridge_session_stops_total{reason}: free-text reasons folded into a set
that stays small whatever the session writes (docs/deploy.md explains each)."""

_FAULT_NAMES = (
    "overcurrent_fault",
    "emergency_stop",
    "ground_fault",
    "energy_limit_reached",
    "power_loss",
    "power_quality",
    "reboot",
    "other",
)
"""hardware_fault's fault names: a source's fault ends a session as "<component>: <fault>"."""

_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Checked in order, on the lower-cased reason: the first rule with a match wins. The texts
    # are the ones session/handlers.py and session/authorization_flow.py give `feed` (and the
    # event names it falls back to when given none); tests/unit/test_metrics_collector.py runs
    # the real session into each of them.
    ("stop_charging", ("stop_charging",)),
    ("unplugged", ("pilot a", "cp_a")),
    ("paused", ("pilot b", "cp_b")),
    ("fault", ("pilot e", "pilot f", "cp_ef")),
    (
        "session_stop",
        ("josev reports sessionstop", "josev reports idle", "session_stop", "slac ", "hlc"),
    ),
    ("transaction_ended", ("transaction ended", "transaction_ended")),
    (
        "deauthorized",
        ("deauthorized", "rejected", "authorization", "no answer from josev", "token", "allowlist"),
    ),
    (
        "fault",
        (
            "emergency",
            "malfunction",
            "fault",
            "isolation",
            "no imd",
            "connector lock",
            *(f": {name}" for name in _FAULT_NAMES),
        ),
    ),
    ("limits", ("setpoint is not allowed", "no longer allowed", "limits_not_ready", "evse_")),
    ("station", ("mqtt lost", "bridge stops", "csbridge stops", "everest", "josev's ")),
)


def stop_kind(reason: str) -> str:
    """The bounded kind of a stop's free-text reason; "other" for a reason no rule knows."""
    text = reason.lower()
    for kind, needles in _RULES:
        if any(needle in text for needle in needles):
            return kind
    return "other"


class _Session(Protocol):
    @property
    def last_stop(self) -> tuple[str, datetime] | None: ...


class StopCounter:
    """Every stop of every EVSE's session, by kind, counted as the session records it.

    `observe` runs on the event loop (an engine observer); `counts` is read by scrapes in the
    metrics server's threads, hence the lock, taken only when a stop is counted or read."""

    def __init__(self, sessions: Mapping[str, _Session]) -> None:
        self._sessions = sessions
        # A stop recorded before this counter existed is not one it saw happen.
        self._seen = {evse_id: session.last_stop for evse_id, session in sessions.items()}
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def observe(self, evse_id: str, *_: object) -> None:
        """An engine observer: counts the EVSE's last stop if it is a new one."""
        session = self._sessions.get(evse_id)
        if session is None:
            return
        stop = session.last_stop
        if stop is None or stop is self._seen.get(evse_id):
            return
        with self._lock:
            if stop is self._seen.get(evse_id):
                return
            self._seen[evse_id] = stop
            key = (evse_id, stop_kind(stop[0]))
            self._counts[key] = self._counts.get(key, 0) + 1

    def counts(self) -> dict[tuple[str, str], int]:
        """(evse_id, kind) -> stops, a copy; every EVSE's last stop taken into account."""
        for evse_id in self._sessions:
            self.observe(evse_id)
        with self._lock:
            return dict(self._counts)


class SessionCollector:
    """Each EVSE's session state, seconds in it, authorization and stops."""

    def __init__(
        self,
        session: SessionHandlers,
        stops: StopCounter,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._session = session
        self._stops = stops
        self._wall_clock = wall_clock

    def collect(self) -> Iterator[Metric]:
        sessions = dict(self._session.sessions)
        authorizations = self._session.authorization.by_evse
        now = self._wall_clock()
        state = GaugeMetricFamily(
            f"{PREFIX}_session_state",
            "1 for the state each EVSE's session is in, 0 for every other state.",
            labels=("evse_id", "state"),
        )
        seconds = GaugeMetricFamily(
            f"{PREFIX}_session_state_seconds",
            "Seconds each EVSE's session has been in its current state.",
            labels=("evse_id",),
        )
        authorized = GaugeMetricFamily(
            f"{PREFIX}_session_authorization",
            "1 for the authorization status of each EVSE's session, 0 for every other status.",
            labels=("evse_id", "status"),
        )
        for evse_id, evse in sorted(sessions.items()):
            current = evse.machine.state
            # Every state of the machine, read off the current one's enum: the session
            # package offers its State only through its handlers.
            for each in type(current):
                state.add_metric((evse_id, each.value), 1 if each is current else 0)
            seconds.add_metric((evse_id,), max(0.0, (now - evse.since).total_seconds()))
            record = authorizations.get(evse_id)
            status = record.status if record is not None else "none"
            for each_status in AUTHORIZATION_STATUSES:
                authorized.add_metric((evse_id, each_status), 1 if each_status == status else 0)
        yield from (state, seconds, authorized)
        yield self._stop_family(sessions)

    def _stop_family(self, sessions: Mapping[str, object]) -> Metric:
        family = CounterMetricFamily(
            f"{PREFIX}_session_stops",
            "Times energy stopped in each EVSE's session, by kind of reason.",
            labels=("evse_id", "reason"),
        )
        counts = self._stops.counts()
        for evse_id in sorted(sessions):
            for kind in STOP_KINDS:  # at 0 from the start, so that increase() sees the first
                family.add_metric((evse_id, kind), counts.get((evse_id, kind), 0))
        return family


def session_collector(
    session: SessionHandlers,
    engine: LimitsEngine,
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SessionCollector:
    """The collector of `session`, its stops counted from now on as the engine evaluates;
    `wall_clock` is what the seconds in a state are measured against (the session's `since`
    is a UTC wall-clock time)."""
    stops = StopCounter(session.sessions)
    engine.observers.append(stops.observe)
    return SessionCollector(session, stops, wall_clock)
