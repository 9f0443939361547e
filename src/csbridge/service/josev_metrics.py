"""What Josev says of itself, as Prometheus metrics: each service's status, the OCPP boot and
websocket status words, and how far the station's clock is from Josev's. Read at scrape time
from JosevServices, which replaces what it holds whole (scrapes run in other threads)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from csbridge.session import JosevServices, status_word

PREFIX = "csbridge"
SERVICE_STATUSES = ("ready", "starting", "stopping", "error", "busy", "unknown")


class JosevCollector:
    def __init__(self, josev: JosevServices) -> None:
        self._josev = josev

    def collect(self) -> Iterator[Metric]:
        services = GaugeMetricFamily(
            f"{PREFIX}_josev_service_status",
            "1 for the status Josev last gave of each of its services (unknown: no answer to"
            " the last question), 0 for every other status.",
            labels=("service", "status"),
        )
        for name, view in sorted(self._josev.services.items()):
            for status in SERVICE_STATUSES:
                services.add_metric((name, status), 1 if status == view.status else 0)
        yield services
        notices = GaugeMetricFamily(
            f"{PREFIX}_josev_status",
            "1 for the latest boot_status and websocket_status from Josev, labelled with their"
            " status word (received: the update carries no short status text).",
            labels=("kind", "status"),
        )
        for kind, notice in (
            ("boot_status", self._josev.boot_status),
            ("websocket_status", self._josev.websocket_status),
        ):
            if notice is not None:
                notices.add_metric((kind, status_word(notice.data)), 1)
        yield notices
        offset = self._josev.clock_offset_s
        if offset is not None:
            clock = GaugeMetricFamily(
                f"{PREFIX}_josev_clock_offset_seconds",
                "Josev's time (its last clock_sync) minus the station's clock when it came.",
            )
            clock.add_metric((), offset)
            yield clock
