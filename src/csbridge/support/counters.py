"""Counters of what the bridge did with every message, by outcome and label, and histograms of
how long it took. Both are read from another thread by the metrics endpoint (service.metrics),
which is why the readers hand out copies."""

from __future__ import annotations

import enum
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field

DURATION_BOUNDS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
"""Upper bounds of the duration buckets: handling a message takes well under a millisecond when
all is well, so the resolution is there; a slow second still lands in a bucket of its own."""


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """How one counted event is shown to Prometheus: its metric name (no `_total`/`_seconds`
    suffix), what it means, and the label names its label splits into at "/"."""

    name: str
    documentation: str
    labels: tuple[str, ...] = ()


_MESSAGE = ("name", "type")


class Counted(enum.StrEnum):
    """Every event `Counters` counts. Each has exactly one metric (`.metric`), so what is counted
    and what is exported cannot drift apart."""

    INBOUND_RECEIVED = "inbound_received"
    INBOUND_ACCEPTED = "inbound_accepted"
    INBOUND_UNHANDLED = "inbound_unhandled"
    INBOUND_REJECTED = "inbound_rejected"
    HANDLER_FAILED = "handler_failed"
    OUTBOUND_PUBLISHED = "outbound_published"
    PUBLISH_DEFERRED = "publish_deferred"
    PUBLISH_FAILED = "publish_failed"
    OUTBOUND_REJECTED = "outbound_rejected"
    CAN_FRAMES = "can_frames"
    CAN_ERROR_FRAMES = "can_error_frames"
    CAN_BUS_OFF = "can_bus_off"
    CAN_BUS_FAILED = "can_bus_failed"
    CAN_BUS_OPEN_FAILED = "can_bus_open_failed"
    CAN_BUS_REOPENED = "can_bus_reopened"
    CAN_BUS_SILENT = "can_bus_silent"
    CAN_SEND_FAILED = "can_send_failed"
    CAN_SEND_SKIPPED = "can_send_skipped"
    READING_INGESTED = "reading_ingested"
    READING_SANITIZED = "reading_sanitized"
    READING_IGNORED = "reading_ignored"
    EVALUATION_FAILED = "evaluation_failed"
    WATCHDOG_PINGS = "watchdog_pings"
    WATCHDOG_WITHHELD = "watchdog_withheld"
    REQUEST_UNANSWERED = "request_unanswered"
    STATE_FILE_FAILED = "state_file_failed"
    SESSION_REFUSED = "session_refused"
    MQTT_TAKEOVER_LOOPS = "mqtt_takeover_loops"
    INBOUND_DROPPED = "inbound_dropped"
    INBOUND_SUPERSEDED = "inbound_superseded"
    INBOUND_HELD = "inbound_held"
    INBOUND_PAUSED = "inbound_paused"
    UNKNOWN_EVSE = "unknown_evse"
    RESETS = "resets"
    DEVICE_MODEL_UNANSWERED = "device_model_unanswered"
    MAINTENANCE_JOBS = "maintenance_jobs"
    MAINTENANCE_WORDS_IGNORED = "maintenance_words_ignored"
    JOSEV_NOTICE_IGNORED = "josev_notice_ignored"
    OCPP_REFUSED = "ocpp_refused"
    METER_READS = "meter_reads"
    METER_VALUES_INTEGRATED = "meter_values_integrated"
    METER_DISAGREEMENTS = "meter_disagreements"
    METER_REQUEST_FAILED = "meter_request_failed"
    SIGNED_VALUE_MISSING = "signed_value_missing"
    METER_PUSH_SKIPPED = "meter_push_skipped"
    POOL_DECISIONS = "pool_decisions"
    POOL_MODULE_MOVES = "pool_module_moves"
    HARDWARE_FAULTS = "hardware_faults"
    CAN_LOG_LINES_REFUSED = "can_log_lines_refused"
    MATRIX_FRAMES_REJECTED = "matrix_frames_rejected"
    MATRIX_BOARD_SILENT = "matrix_board_silent"

    @property
    def metric(self) -> MetricSpec:
        return _COUNTED_METRICS[self]


class Timed(enum.StrEnum):
    """Every duration `Counters` keeps a histogram of; each is one Prometheus histogram."""

    INBOUND_HANDLING = "inbound_handling"
    OUTBOUND_HANDLING = "outbound_handling"
    POOL_MODULE_MOVE = "pool_module_move"

    @property
    def metric(self) -> MetricSpec:
        return _TIMED_METRICS[self]


_COUNTED_METRICS: dict[Counted, MetricSpec] = {
    Counted.INBOUND_RECEIVED: MetricSpec(
        "messages_received", "Every inbound MQTT message, whatever became of it."
    ),
    Counted.INBOUND_ACCEPTED: MetricSpec(
        "messages_in", "Inbound messages acted on, by message name or local topic.", ("name",)
    ),
    Counted.INBOUND_UNHANDLED: MetricSpec(
        "messages_unhandled", "Valid inbound messages that no handler takes.", ("name",)
    ),
    Counted.INBOUND_REJECTED: MetricSpec(
        "inbound_rejected", "Inbound payloads not acted on, by reason.", ("reason",)
    ),
    Counted.HANDLER_FAILED: MetricSpec(
        "handler_failures", "Inbound messages whose handler raised (a bug), by topic.", ("topic",)
    ),
    Counted.OUTBOUND_PUBLISHED: MetricSpec(
        "messages_out",
        "Messages handed to MQTT, by name and type (type is empty for limits reports).",
        _MESSAGE,
    ),
    Counted.PUBLISH_DEFERRED: MetricSpec(
        "publish_deferred",
        "Messages not sent while MQTT was down; the full state follows the reconnect.",
        _MESSAGE,
    ),
    Counted.PUBLISH_FAILED: MetricSpec(
        "publish_failures", "Messages MQTT refused to queue while connected.", _MESSAGE
    ),
    Counted.OUTBOUND_REJECTED: MetricSpec(
        "outbound_rejected", "Messages that failed their own schema, never sent (a bug).", ("name",)
    ),
    Counted.CAN_FRAMES: MetricSpec(
        "can_frames",
        "CAN frames by bus, device profile and outcome.",
        ("bus", "profile", "outcome"),
    ),
    Counted.CAN_ERROR_FRAMES: MetricSpec(
        "can_error_frames", "CAN error frames by bus and error class.", ("bus", "class")
    ),
    Counted.CAN_BUS_OFF: MetricSpec("can_bus_off", "Bus-off error frames on a CAN bus.", ("bus",)),
    Counted.CAN_BUS_FAILED: MetricSpec(
        "can_bus_error",
        "Errors receiving from a CAN bus (the bus is closed and opened again).",
        ("bus",),
    ),
    Counted.CAN_BUS_OPEN_FAILED: MetricSpec(
        "can_bus_open_failures", "Attempts to open a CAN bus that failed.", ("bus",)
    ),
    Counted.CAN_BUS_REOPENED: MetricSpec(
        "can_bus_reopened", "A CAN bus opened again after it had failed.", ("bus",)
    ),
    Counted.CAN_BUS_SILENT: MetricSpec(
        "can_bus_silent", "Checks that found a CAN bus silent for too long.", ("bus",)
    ),
    Counted.CAN_SEND_FAILED: MetricSpec("can_send_failed", "Frames a CAN bus refused.", ("bus",)),
    Counted.CAN_SEND_SKIPPED: MetricSpec(
        "can_send_skipped", "Frames not sent because the CAN bus was closed.", ("bus",)
    ),
    Counted.READING_INGESTED: MetricSpec(
        "readings_ingested", "Source readings stored by the limits engine.", ("kind",)
    ),
    Counted.READING_SANITIZED: MetricSpec(
        "readings_sanitized", "Readings with values the engine had to clean up.", ("kind",)
    ),
    Counted.READING_IGNORED: MetricSpec(
        "readings_ignored", "Readings for no configured EVSE or source.", ("reason",)
    ),
    Counted.EVALUATION_FAILED: MetricSpec(
        "evaluation_failures", "Evaluations that could not be reported, by EVSE.", ("evse_id",)
    ),
    Counted.WATCHDOG_PINGS: MetricSpec("watchdog_pings", "WATCHDOG=1 pings sent to systemd."),
    Counted.WATCHDOG_WITHHELD: MetricSpec(
        "watchdog_withheld",
        "Watchdog pings withheld because a part stalled, by the stalled parts.",
        ("stalled",),
    ),
    Counted.REQUEST_UNANSWERED: MetricSpec(
        "requests_unanswered",
        "Requests the station sent to Josev that got no answer in time or could not be sent.",
        ("name",),
    ),
    Counted.STATE_FILE_FAILED: MetricSpec(
        "state_file_failures",
        "State files that could not be read (corrupt) or written (the state stays in memory).",
        ("problem",),
    ),
    Counted.SESSION_REFUSED: MetricSpec(
        "session_refusals",
        "Requests and events an EVSE's session state refused (a setpoint out of sequence...).",
        ("event",),
    ),
    Counted.MQTT_TAKEOVER_LOOPS: MetricSpec(
        "mqtt_takeover_loops",
        "Takeover loops recognised: the broker closed the connection right after each connect,"
        " several times in a few seconds (another client with the same client id).",
    ),
    Counted.INBOUND_DROPPED: MetricSpec(
        "inbound_dropped",
        "Inbound messages dropped unhandled because their class's intake queue was full.",
        ("class",),
    ),
    Counted.INBOUND_SUPERSEDED: MetricSpec(
        "inbound_superseded",
        "Inbound state messages (an external limit, an operator command) replaced, before they"
        " were handled, by a newer one on the same topic: the newest is handled.",
        ("class",),
    ),
    Counted.INBOUND_HELD: MetricSpec(
        "inbound_held",
        "Times Josev's intake queue filled and csbridge held back its MQTT acknowledgements"
        " (its next requests then wait in the broker's queue: none is dropped by csbridge).",
    ),
    Counted.INBOUND_PAUSED: MetricSpec(
        "inbound_paused",
        "Times Josev's intake queue ran far over its bound even with acknowledgements held back"
        " and csbridge paused reading from the broker until it drained.",
    ),
    Counted.UNKNOWN_EVSE: MetricSpec(
        "unknown_evse_messages",
        "Josev's messages naming an EVSE the station does not have (a request among them is"
        " answered with its refusal), by message name.",
        ("name",),
    ),
    Counted.RESETS: MetricSpec(
        "resets",
        "Josev's resets by scope (evse, station) and step (rejected, deferred, started, done).",
        ("scope", "step"),
    ),
    Counted.DEVICE_MODEL_UNANSWERED: MetricSpec(
        "device_model_unanswered",
        "device_model requests left unanswered: no [station.identity] is configured.",
    ),
    Counted.MAINTENANCE_JOBS: MetricSpec(
        "maintenance_jobs",
        "Firmware updates and log uploads by kind (firmware, logs) and outcome: rejected,"
        " started, succeeded, failed (non-zero exit or no start), timed_out (killed).",
        ("kind", "outcome"),
    ),
    Counted.MAINTENANCE_WORDS_IGNORED: MetricSpec(
        "maintenance_words_ignored",
        "Lines a maintenance command printed that are no status word of its kind (not sent).",
        ("kind",),
    ),
    Counted.JOSEV_NOTICE_IGNORED: MetricSpec(
        "josev_notices_ignored",
        "Valid updates from Josev (a display or service status) the station could not use:"
        " an EVSE it does not have, a service it does not know.",
        ("name", "why"),
    ),
    Counted.OCPP_REFUSED: MetricSpec(
        "ocpp_requests_refused",
        "OCPP requests Josev Pro relayed that csbridge refused (it speaks no OCPP), by name.",
        ("name",),
    ),
    Counted.METER_READS: MetricSpec(
        "meter_reads",
        "Reads of the EVSEs' energy meters by meter kind (can, modbus, simulated) and outcome:"
        " ok; refused (a bad frame or register, the last good value kept until its deadline);"
        " exception (a Modbus exception answer); timeout; error (the link failed).",
        ("kind", "outcome"),
    ),
    Counted.METER_VALUES_INTEGRATED: MetricSpec(
        "meter_values_integrated",
        "meter_values answered from present voltage times current integrated over time (the"
        " EVSE has no meter), by EVSE.",
        ("evse",),
    ),
    Counted.METER_DISAGREEMENTS: MetricSpec(
        "meter_disagreements",
        "Times an EVSE's meter and its power modules started to disagree by more than the"
        " configured tolerance, by EVSE and quantity (voltage, current).",
        ("evse", "quantity"),
    ),
    Counted.METER_REQUEST_FAILED: MetricSpec(
        "meter_request_failures",
        "Requests to a meter that gave nothing usable (timeout, unreachable, HTTP status, a bad"
        " body or OCMF record, a transaction the meter would refuse), by meter kind and request.",
        ("meter", "request", "why"),
    ),
    Counted.SIGNED_VALUE_MISSING: MetricSpec(
        "signed_meter_values_missing",
        "Transaction starts and ends pushed without the meter's signed value, by moment and why"
        " (the meter gave no record or key, or one over Josev's length limits).",
        ("moment", "why"),
    ),
    Counted.METER_PUSH_SKIPPED: MetricSpec(
        "meter_values_push_skipped",
        "meter_values updates of a transaction not pushed for want of a meter reading, by moment.",
        ("moment", "why"),
    ),
    Counted.POOL_DECISIONS: MetricSpec(
        "pool_decisions",
        "Allocation decisions of a shared module pool that changed where its modules go, by pool.",
        ("pool",),
    ),
    Counted.POOL_MODULE_MOVES: MetricSpec(
        "pool_module_moves",
        "Modules of a shared pool that completed a move to another EVSE (or out of service),"
        " by pool.",
        ("pool",),
    ),
    Counted.HARDWARE_FAULTS: MetricSpec(
        "hardware_faults",
        "Modules taken out of a shared pool for a hardware fault (a contactor whose feedback"
        " disagrees, a module that will not stop or start), by module.",
        ("module",),
    ),
    Counted.CAN_LOG_LINES_REFUSED: MetricSpec(
        "can_log_lines_refused",
        "Lines (or records) of a replayed CAN log that could not be read, by log.",
        ("log",),
    ),
    Counted.MATRIX_FRAMES_REJECTED: MetricSpec(
        "matrix_frames_rejected",
        "Contactor matrix feedback frames refused (not a data frame of its length), by pool.",
        ("pool",),
    ),
    Counted.MATRIX_BOARD_SILENT: MetricSpec(
        "matrix_board_silent",
        "Times a pool's contactor matrix board on CAN went unheard past its deadline (every"
        " contact then unknown), by pool.",
        ("pool",),
    ),
}

_TIMED_METRICS: dict[Timed, MetricSpec] = {
    Timed.INBOUND_HANDLING: MetricSpec(
        "inbound_handling",
        "Time to handle one inbound message, answer included, by outcome.",
        ("outcome",),
    ),
    Timed.OUTBOUND_HANDLING: MetricSpec(
        "outbound_handling", "Time to validate and publish one message, by name and type.", _MESSAGE
    ),
    Timed.POOL_MODULE_MOVE: MetricSpec(
        "pool_module_move",
        "Time from an allocation decision to the moved module serving its new EVSE, by pool.",
        ("pool",),
    ),
}


@dataclass(slots=True)
class Durations:
    """One histogram: how many durations fell in each bucket (not cumulative; the last bucket is
    everything above the largest bound), and their sum."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BOUNDS_S) + 1))
    sum_s: float = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left puts a duration equal to a bound in that bound's bucket: Prometheus's `le`.
        self.buckets[bisect_left(DURATION_BOUNDS_S, seconds)] += 1
        self.sum_s += seconds


class Counters:
    """Monotonic counts keyed by (event, label); cheap enough for the hot path."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._durations: dict[tuple[str, str], Durations] = {}

    def add(self, event: Counted, label: str = "", amount: int = 1) -> None:
        self._counts[(event, label)] += amount

    def observe(self, event: Timed, label: str, seconds: float) -> None:
        """One duration into the histogram of (event, label)."""
        durations = self._durations.get((event, label))
        if durations is None:
            durations = self._durations[(event, label)] = Durations()
        durations.observe(seconds)

    def get(self, event: str, label: str = "") -> int:
        return self._counts[(event, label)]

    def total(self, event: str) -> int:
        return sum(count for (name, _), count in self._counts.items() if name == event)

    def counts(self) -> list[tuple[tuple[str, str], int]]:
        """Every count. list() of a dict's items is one C call under the GIL, so another thread
        gets a consistent copy while the event loop keeps adding keys."""
        return list(self._counts.items())

    def durations(self) -> list[tuple[tuple[str, str], Durations]]:
        """Every histogram, copied (see `counts`). Each copy's buckets are consistent, which
        Prometheus needs (the count is their total); its sum may miss the latest duration."""
        return [
            (key, Durations(list(durations.buckets), durations.sum_s))
            for key, durations in list(self._durations.items())
        ]

    def snapshot(self) -> dict[str, int]:
        return {
            f"{event}{{{label}}}" if label else event: count
            for (event, label), count in sorted(self._counts.items())
        }
