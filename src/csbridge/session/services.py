"""What Josev says of itself: the status of its services (asked after connecting and every
interval, and told unsolicited), its clock, its OCPP boot and websocket, a certificate
installation. Only SLAC or ISO 15118 in error or stopping ends energy flow, as they run the
sessions; OCPP, smart charging and gridcode are shown and logged and change nothing else.
A service_status update that names no service is read as Josev as a whole: the safe side."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from csbridge.config import JosevServicesConfig
from csbridge.messages import (
    BootStatusUpdate,
    CertificateInstallationStatusUpdate,
    ClockSyncUpdate,
    HandlerTable,
    JosevService,
    OpenData,
    Payload,
    ServiceStatusRequest,
    ServiceStatusResponse,
    ServiceStatusUpdate,
    WebsocketStatusUpdate,
    handles,
    josev_date_time,
    parse_josev_date_time,
    value_or,
)
from csbridge.support import Counted, Counters, RateLimitedLog

log = logging.getLogger("csbridge.josev")

KNOWN_SERVICES: tuple[str, ...] = ("slac", "iso15118", "ocpp", "gridcode", "smart_charging")
WHOLE = "josev"
"""Where a service_status update that names no service is kept."""
RUNS_SESSIONS = frozenset({"slac", "iso15118", WHOLE})
"""The services whose error or stop ends energy flow."""
DOWN = frozenset({"error", "stopping"})
UNKNOWN = "unknown"
MAX_TEXT = 64
"""Versions and status words are cut to this length for the report and the metrics."""
CLOCK_WARN_S = 5.0
"""A clock further off than this is logged as a warning (certificates, OCPP timestamps)."""

Ask = Callable[[Payload, float], Awaitable[Payload | None]]
"""Send Josev a request and await its response (None: none in time)."""


@dataclass(frozen=True, slots=True)
class ServiceView:
    """One service as the station last learnt it."""

    status: str
    """ready, starting, stopping, error, busy, or unknown (no answer)."""
    software_version: str | None = None
    api_version: str | None = None
    at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"status": self.status}
        if self.software_version is not None:
            document["software_version"] = self.software_version
        if self.api_version is not None:
            document["api_version"] = self.api_version
        if self.at is not None:
            document["at"] = josev_date_time(self.at)
        return document


@dataclass(frozen=True, slots=True)
class Notice:
    """An update Josev gives no fields for: its data as it came, and when."""

    data: Mapping[str, Any]
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"at": josev_date_time(self.at), "data": dict(self.data)}


def status_word(data: Mapping[str, Any]) -> str:
    """A short word for a notice (its `status`, when it has a short text one), for logs and
    metrics; `received` otherwise."""
    status = data.get("status")
    if isinstance(status, str) and 0 < len(status) <= MAX_TEXT and status.isprintable():
        return status
    return "received"


def _cut(text: str | None) -> str | None:
    return text[:MAX_TEXT] if text is not None else None


class JosevServices:
    def __init__(
        self,
        settings: JosevServicesConfig,
        switch_everything_off: Callable[[str], None],
        counters: Counters,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._switch_everything_off = switch_everything_off
        self._counters = counters
        self._wall_clock = wall_clock
        self._warnings = RateLimitedLog(log, clock)
        self.ask: Ask | None = None
        """Set once the bridge runs: without it nothing is asked."""
        self.on_change: Callable[[Mapping[str, Any]], None] | None = None
        """Told the report block after every change (the limits report shows it)."""
        self.services: Mapping[str, ServiceView] = {
            name: ServiceView(UNKNOWN) for name in settings.ask
        }
        """Replaced whole on every change: the metrics read it from another thread."""
        self.boot_status: Notice | None = None
        self.websocket_status: Notice | None = None
        self.certificate_installation_status: Notice | None = None
        self.clock_offset_s: float | None = None
        """Josev's clock minus ours when its last clock_sync came."""

    def handlers(self) -> HandlerTable:
        return HandlerTable.of(self)

    # -- service status --------------------------------------------------------------------

    async def poll(self, connected: asyncio.Event, published: asyncio.Event | None = None) -> None:
        """Until cancelled: ask about every configured service once connected (and, the first
        time, once the station's state has gone out: Josev hears the limits first), then every
        interval while connected."""
        if published is not None:
            await published.wait()
        while True:
            await connected.wait()
            try:
                await self.ask_all()
            except Exception:
                # A bug in one round must not take the station down: the next round asks again.
                self._warnings.exception(("ask_failed",), "event=josev_services_ask_failed")
            await asyncio.sleep(self._settings.interval_s)

    async def ask_all(self) -> None:
        """One question per configured service, all at once (one slow answer delays none)."""
        await asyncio.gather(*(self.ask_about(name) for name in self._settings.ask))

    async def ask_about(self, service: JosevService) -> None:
        """Ask Josev about `service`; no answer in time leaves it unknown."""
        ask = self.ask
        answer = (
            await ask(ServiceStatusRequest(service=service), self._settings.timeout_s)
            if ask is not None
            else None
        )
        if not isinstance(answer, ServiceStatusResponse):
            self._learn(service, ServiceView(UNKNOWN, at=self._wall_clock()), "no answer")
            return
        # Kept under the service asked about: the answer is to that question.
        self._learn(
            service,
            ServiceView(
                answer.status,
                _cut(answer.software_version),
                _cut(answer.api_version),
                self._wall_clock(),
            ),
            "answer",
        )

    @handles(ServiceStatusUpdate)
    def on_service_status(self, message: ServiceStatusUpdate) -> None:
        """Josev telling the state of one of its services unasked."""
        service = value_or(message.service, WHOLE)
        if service not in KNOWN_SERVICES and service != WHOLE:
            self._counters.add(Counted.JOSEV_NOTICE_IGNORED, f"{message.NAME}/unknown_service")
            self._warnings.warning(
                ("unknown_service",),
                "event=josev_service_ignored service=%r status=%s why=not one of %s",
                service[:MAX_TEXT],
                message.status,
                ",".join(KNOWN_SERVICES),
            )
            return
        view = ServiceView(
            message.status,
            _cut(value_or(message.software_version, None)),
            _cut(value_or(message.api_version, None)),
            self._wall_clock(),
        )
        self._learn(service, view, "update")

    def _learn(self, service: str, view: ServiceView, how: str) -> None:
        before = self.services.get(service)
        self.services = {**self.services, service: view}
        if before is None or before.status != view.status:
            log.info(
                "event=josev_service service=%s status=%s was=%s via=%s",
                service,
                view.status,
                before.status if before is not None else "-",
                how,
            )
        if view.status in DOWN:
            if service in RUNS_SESSIONS:
                self._switch_everything_off(f"Josev's {service} reports {view.status}")
            elif before is None or before.status != view.status:
                log.warning(
                    "event=josev_service_down service=%s status=%s -- shown only: %s runs no "
                    "session, energy flow goes on",
                    service,
                    view.status,
                    service,
                )
        self._changed()

    # -- the other updates -----------------------------------------------------------------

    @handles(ClockSyncUpdate)
    def on_clock_sync(self, message: ClockSyncUpdate) -> None:
        """Log and keep how far our clock is from Josev's (setting it is the OS's job)."""
        josev_time = parse_josev_date_time(message.current_time)
        if josev_time is None:
            self._counters.add(Counted.JOSEV_NOTICE_IGNORED, f"{message.NAME}/impossible_date")
            self._warnings.warning(
                ("clock_sync_unreadable",),
                "event=josev_clock_ignored current_time=%r why=no calendar holds that date",
                message.current_time,
            )
            return
        offset = round((josev_time - self._wall_clock()).total_seconds(), 3)
        self.clock_offset_s = offset
        if abs(offset) > CLOCK_WARN_S:
            self._warnings.warning(
                ("clock_off",),
                "event=josev_clock offset_s=%.3f josev_time=%s -- the station's clock is off; "
                "the operating system sets it (NTP), csbridge does not",
                offset,
                message.current_time,
            )
        else:
            log.info("event=josev_clock offset_s=%.3f", offset)
        self._changed()

    @handles(BootStatusUpdate)
    def on_boot_status(self, message: BootStatusUpdate) -> None:
        self.boot_status = self._notice(message)
        self._changed()

    @handles(WebsocketStatusUpdate)
    def on_websocket_status(self, message: WebsocketStatusUpdate) -> None:
        self.websocket_status = self._notice(message)
        self._changed()

    @handles(CertificateInstallationStatusUpdate)
    def on_certificate_installation_status(
        self, message: CertificateInstallationStatusUpdate
    ) -> None:
        """Logged and kept (not in the report: nothing the station does depends on it)."""
        self.certificate_installation_status = self._notice(message)

    def _notice(self, message: OpenData) -> Notice:
        data = message.to_json()
        log.info("event=josev_update message=%s status=%s", message.NAME, status_word(data))
        return Notice(data, self._wall_clock())

    # -- what the report shows -------------------------------------------------------------

    def report_block(self) -> dict[str, Any]:
        """The limits report's `josev` block (EvseLimitsReport.json)."""
        block: dict[str, Any] = {
            "services": {name: view.to_json() for name, view in sorted(self.services.items())}
        }
        if self.boot_status is not None:
            block["boot_status"] = self.boot_status.to_json()
        if self.websocket_status is not None:
            block["websocket_status"] = self.websocket_status.to_json()
        if self.clock_offset_s is not None:
            block["clock_offset_s"] = self.clock_offset_s
        return block

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.report_block())
