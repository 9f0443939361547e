"""Prometheus metrics of one station, served on `[metrics] listen` from threads of their own.

Everything is read at scrape time from what the station keeps anyway: `Counters` (messages,
rejections, publishing, CAN frames, handling durations), the MQTT link's connection counts, the
engine's latest limits report per EVSE, typed (a scrape makes no JSON of it), and each EVSE's
session (service/session_metrics.py). The hot path pays for nothing but the durations it
records, and one comparison per evaluation that catches each session stop as it happens.
Scrapes run in the HTTP server's threads while the event loop keeps going, so the collectors
only read: copies out of `Counters` and the stop counts, reports, which the engine replaces
whole rather than mutates, and each session's state, which the loop replaces whole.

Each station gets a registry of its own, not prometheus_client's global one, so that several
stations in one process (the tests) do not collide.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from csbridge.config import Config, listen_address
from csbridge.engine import LatestByEvse, LimitsReport
from csbridge.limits import BLOCKS, EvseSnapshot, LimitBlock, PerPhase, limit_fields
from csbridge.messages import RejectReason
from csbridge.mqtt import MqttLink
from csbridge.service.josev_metrics import JosevCollector
from csbridge.service.session_metrics import session_collector
from csbridge.service.station import Station
from csbridge.support import DURATION_BOUNDS_S, Counted, Counters, Durations, Timed

PREFIX = "csbridge"
PHASES = ("l1", "l2", "l3")
MODULE_ONLINE = "healthy"
"""The one module state in which a module is in the stack, delivering."""
POLL_S = 0.1
"""How often the server thread looks whether to stop: what closing it may take."""

LabelValues = tuple[str, ...]
Reports = Sequence[tuple[str, LimitsReport]]


ALWAYS: dict[Counted, tuple[LabelValues, ...]] = {
    Counted.INBOUND_RECEIVED: ((),),
    Counted.INBOUND_REJECTED: tuple((reason.value,) for reason in RejectReason),
}
"""Series shown at 0 before anything is counted, so a rate works from the first event."""


def split_label(label: str, names: tuple[str, ...]) -> LabelValues:
    """A `Counters` label as values for `names`: split at "/" from the right (only the first
    part, a bus name say, may hold a "/" itself); missing trailing parts are empty."""
    if not names:
        return ()
    parts = str(label).rsplit("/", len(names) - 1)
    return tuple(parts) + ("",) * (len(names) - len(parts))


# -- Counters --------------------------------------------------------------------------------


class CountersCollector:
    """Every count and duration histogram in a `Counters`."""

    def __init__(self, counters: Counters) -> None:
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        yield from _count_families(self._counters.counts())
        yield from _duration_families(self._counters.durations())


def _count_families(counts: Iterable[tuple[tuple[str, str], int]]) -> Iterator[Metric]:
    by_event: dict[Counted, dict[LabelValues, int]] = {event: {} for event in Counted}
    for (event, label), count in counts:
        counted = Counted(event)
        values = split_label(label, counted.metric.labels)
        series = by_event[counted]
        series[values] = series.get(values, 0) + count
    for event, series in by_event.items():
        spec = event.metric
        family = CounterMetricFamily(
            f"{PREFIX}_{spec.name}", spec.documentation, labels=spec.labels
        )
        for values in ALWAYS.get(event, ()):
            series.setdefault(values, 0)
        for values, count in sorted(series.items()):
            family.add_metric(values, count)
        yield family


def _duration_families(durations: Iterable[tuple[tuple[str, str], Durations]]) -> Iterator[Metric]:
    by_event: dict[Timed, dict[LabelValues, Durations]] = {}
    for (event, label), observed in durations:
        timed = Timed(event)
        values = split_label(label, timed.metric.labels)
        series = by_event.setdefault(timed, {})
        series[values] = _merged(series.get(values), observed)
    for event, series in by_event.items():
        spec = event.metric
        family = HistogramMetricFamily(
            f"{PREFIX}_{spec.name}_seconds", spec.documentation, labels=spec.labels
        )
        for values, observed in sorted(series.items()):
            family.add_metric(values, _cumulative(observed), observed.sum_s)
        yield family


def _merged(earlier: Durations | None, more: Durations) -> Durations:
    if earlier is None:
        return more
    buckets = [a + b for a, b in zip(earlier.buckets, more.buckets, strict=True)]
    return Durations(buckets, earlier.sum_s + more.sum_s)


def _cumulative(observed: Durations) -> list[tuple[str, float]]:
    bounds = [str(bound) for bound in DURATION_BOUNDS_S] + ["+Inf"]
    running = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip(bounds, observed.buckets, strict=True):
        running += count
        buckets.append((bound, running))
    return buckets


# -- the MQTT link ---------------------------------------------------------------------------


class LinkCollector:
    """Connections to the broker: made, lost, failed, and whether one is up now."""

    def __init__(self, link: MqttLink) -> None:
        self._link = link

    def collect(self) -> Iterator[Metric]:
        link = self._link
        for name, documentation, value in (
            ("mqtt_connects", "Connections to the broker made.", link.connects),
            ("mqtt_connection_losses", "Connections to the broker lost.", link.losses),
            ("mqtt_failed_connects", "Attempts to connect that failed.", link.failed_connects),
        ):
            yield CounterMetricFamily(f"{PREFIX}_{name}", documentation, value=value)
        yield GaugeMetricFamily(
            f"{PREFIX}_mqtt_connected",
            "1 while connected to the broker.",
            value=1 if link.connected.is_set() else 0,
        )


# -- what each EVSE reports ------------------------------------------------------------------


class EvseCollector:
    """Each EVSE's limits, their binding sources and the health of its sources, as the latest
    limits report (csbridge/<evse_id>/limits) has them."""

    def __init__(self, reports: LatestByEvse[LimitsReport]) -> None:
        self._reports = reports

    def collect(self) -> Iterator[Metric]:
        # Fetched once: every family then describes the same report of each EVSE.
        reports: Reports = [
            (evse_id, self._reports.get(evse_id)) for evse_id in self._reports.evse_ids
        ]
        yield _limits(reports)
        yield _info(
            "evse_binding_source",
            "1 for the source that binds each reported limit.",
            ("evse_id", "quantity", "source"),
            (
                (evse_id, quantity, str(source))
                for evse_id, report in reports
                for quantity, source in report.binding.items()
            ),
        )
        yield _info(
            "evse_status",
            "1 for the status code Josev was told.",
            ("evse_id", "status"),
            ((evse_id, report.limits.status_code.value) for evse_id, report in reports),
        )
        yield _info(
            "evse_isolation",
            "1 for the isolation status Josev was told (DC).",
            ("evse_id", "status"),
            (
                (evse_id, report.limits.dc.isolation_status.value)
                for evse_id, report in reports
                if report.limits.dc is not None and report.limits.dc.isolation_status is not None
            ),
        )
        yield from _modules(reports)
        yield from _pool(reports)
        yield from _sources(reports)


def _limits(reports: Reports) -> Metric:
    family = GaugeMetricFamily(
        f"{PREFIX}_evse_limit",
        "Each number Josev was told about an EVSE (A, V, W, W/s), per phase for AC.",
        labels=("evse_id", "quantity", "phase"),
    )
    for evse_id, report in reports:
        for quantity, phase, value in _numbers(report.limits):
            family.add_metric((evse_id, quantity, phase), value)
    return family


def _numbers(limits: EvseSnapshot) -> Iterator[tuple[str, str, float]]:
    """(quantity, phase, value) of every number in the ac/dc/.._bpt blocks, named as Josev
    names them; the blocks share no such names, so the name alone is the quantity."""
    for name in BLOCKS:
        block: LimitBlock | None = getattr(limits, name)
        if block is None:
            continue
        for spec in limit_fields(type(block)):
            value = getattr(block, spec.name)
            if isinstance(value, PerPhase):
                yield spec.wire, "l1", float(value.l1)
                yield spec.wire, "l2", float(value.l2)
                yield spec.wire, "l3", float(value.l3)
            elif _is_number(value):
                yield spec.wire, "", float(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _info(
    name: str, documentation: str, labels: tuple[str, ...], series: Iterable[LabelValues]
) -> Metric:
    """A gauge that is 1 for each present combination: Prometheus's way to carry a state."""
    family = GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=labels)
    for values in series:
        family.add_metric(values, 1)
    return family


def _modules(reports: Reports) -> Iterator[Metric]:
    online = GaugeMetricFamily(
        f"{PREFIX}_modules_online",
        "Power modules in the stack, delivering (state healthy).",
        labels=("evse_id",),
    )
    configured = GaugeMetricFamily(
        f"{PREFIX}_modules_configured", "Power modules configured.", labels=("evse_id",)
    )
    states = GaugeMetricFamily(
        f"{PREFIX}_module_state",
        "1 for each power module's state.",
        labels=("evse_id", "module", "state"),
    )
    for evse_id, report in reports:
        modules: Mapping[str, Mapping[str, Any]] = report.sources.get("modules", {})
        if not modules:
            continue
        up = sum(1 for module in modules.values() if module["state"] == MODULE_ONLINE)
        online.add_metric((evse_id,), up)
        configured.add_metric((evse_id,), len(modules))
        for name, module in modules.items():
            states.add_metric((evse_id, name, str(module["state"])), 1)
    yield from (online, configured, states)


def _pool(reports: Reports) -> Iterator[Metric]:
    """A shared pool's allocation, from each pooled EVSE's report (its decisions, moves and
    their durations are counters: pool_decisions, pool_module_moves, pool_module_move)."""
    serving = GaugeMetricFamily(
        f"{PREFIX}_pool_modules_serving",
        "Modules of a shared pool connected to the EVSE alone and counted in its limits.",
        labels=("evse_id", "pool"),
    )
    share = GaugeMetricFamily(
        f"{PREFIX}_pool_share_w",
        "The power a shared pool allocates to the EVSE (or would, if its session started now).",
        labels=("evse_id", "pool"),
    )
    told = GaugeMetricFamily(
        f"{PREFIX}_pool_told_seconds",
        "For the latest decision that changed the EVSE's limits, the time until its update was "
        "sent to Josev: from the decision (after=decision, a lowered limit) or from its new "
        "modules delivering (after=delivering, a raise).",
        labels=("evse_id", "pool", "after"),
    )
    for evse_id, report in reports:
        pool = report.pool
        if pool is None:
            continue
        labels = (evse_id, str(pool["name"]))
        serving.add_metric(labels, sum(1 for m in pool["modules"] if m["serving"]))
        share.add_metric(labels, float(pool["share_w"]))
        timed = pool.get("told")
        if isinstance(timed, Mapping):
            told.add_metric((*labels, str(timed["after"])), float(timed["s"]))
    yield from (serving, share, told)


def _sources(reports: Reports) -> Iterator[Metric]:
    yield _info(
        "source_state",
        "1 for the state of each EVSE's IMD and board.",
        ("evse_id", "source", "state"),
        (
            (evse_id, source, str(report.sources[source]["state"]))
            for evse_id, report in reports
            for source in ("imd", "board")
            if source in report.sources
        ),
    )
    external = GaugeMetricFamily(
        f"{PREFIX}_external_limit_active",
        "1 while an energy manager's limit is in force.",
        labels=("evse_id",),
    )
    operator = GaugeMetricFamily(
        f"{PREFIX}_operator_enabled",
        "0 while an operator has disabled the EVSE.",
        labels=("evse_id",),
    )
    for evse_id, report in reports:
        sources = report.sources
        external.add_metric((evse_id,), 1 if sources["external"]["active"] else 0)
        operator.add_metric((evse_id,), 1 if sources["operator"]["enabled"] else 0)
    yield from (external, operator)


# -- serving ---------------------------------------------------------------------------------


def station_registry(station: Station) -> CollectorRegistry:
    """A registry of this station's metrics alone."""
    registry = CollectorRegistry()
    registry.register(CountersCollector(station.bridge.counters))
    registry.register(LinkCollector(station.bridge.link))
    registry.register(EvseCollector(station.engine.limits_reports))
    registry.register(session_collector(station.session, station.engine))
    registry.register(JosevCollector(station.josev))
    return registry


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in flight never holds up the bridge's exit


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, fmt: str, *args: Any) -> None:
        """Nothing: wsgiref would write every scrape to stderr."""


class MetricsServer:
    """The running /metrics endpoint."""

    def __init__(self, server: WSGIServer) -> None:
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(POLL_S,), name="csbridge-metrics", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        """The port bound: the configured one, or the one the OS chose for port 0."""
        return int(self._server.server_port)

    def close(self) -> None:
        """Stop serving and release the port; blocks for up to POLL_S."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """Serve `registry` at http://host:port/metrics (port 0: one the OS picks) until closed;
    OSError when the address cannot be bound."""
    server_class = _Server6 if ":" in host else _Server
    server = make_server(host, port, make_wsgi_app(registry), server_class, _QuietHandler)
    return MetricsServer(server)


def start_metrics(config: Config, station: Station) -> MetricsServer | None:
    """Serve the station's metrics on `[metrics] listen`; None when that is not set."""
    if config.metrics.listen is None:
        return None
    host, port = listen_address(config.metrics.listen)
    return serve_metrics(station_registry(station), host, port)
