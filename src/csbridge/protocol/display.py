"""What Josev tells the driver (display_params, display_and_personal_msg, cost_updated),
republished retained on csbridge/<evse_id>/display for an HMI: one topic per EVSE, whose
payload (EvseDisplay.json) holds the latest data of each kind and says which came last.

A message that names no evse_id (Josev's rules give the last two no fields) goes to every
EVSE's display: OCPP's station-wide messages are for every driver at the station. One that
names an EVSE the station does not have is shown nowhere (logged and counted)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from csbridge.messages import (
    CostUpdatedUpdate,
    DisplayAndPersonalMsgUpdate,
    DisplayParamsUpdate,
    HandlerTable,
    SchemaRegistry,
    SchemaViolation,
    checked_payload,
    handles,
    josev_date_time,
)
from csbridge.protocol.local_topics import SCHEMA_OF, Leaf, LocalTopics
from csbridge.support import Counted, Counters, RateLimitedLog

log = logging.getLogger("csbridge.display")

Publish = Callable[[str, bytes], Awaitable[bool]]
"""Publish retained on a topic; False when it could not go out now."""


class DisplayRepublisher:
    def __init__(
        self,
        local: LocalTopics,
        evse_ids: Collection[str],
        registry: SchemaRegistry,
        counters: Counters,
        clock: Callable[[], float],
        *,
        publish: Publish,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._local = local
        self._evse_ids = tuple(evse_ids)
        self._registry = registry
        self._counters = counters
        self._publish = publish
        self._wall_clock = wall_clock
        self._warnings = RateLimitedLog(log, clock)
        self.shown: dict[str, dict[str, Any]] = {}
        """Each EVSE's display document as last published."""

    def handlers(self) -> HandlerTable:
        return HandlerTable.of(self)

    @handles(DisplayParamsUpdate)
    async def on_display_params(self, message: DisplayParamsUpdate) -> None:
        await self.show(message.NAME, message.evse_id, message.to_json())

    @handles(DisplayAndPersonalMsgUpdate)
    async def on_display_and_personal_msg(self, message: DisplayAndPersonalMsgUpdate) -> None:
        data = message.to_json()
        await self.show(message.NAME, data.get("evse_id"), data)

    @handles(CostUpdatedUpdate)
    async def on_cost_updated(self, message: CostUpdatedUpdate) -> None:
        data = message.to_json()
        await self.show(message.NAME, data.get("evse_id"), data)

    async def show(self, kind: str, evse_id: object, data: Mapping[str, Any]) -> None:
        """`data` of `kind` on the display of `evse_id` (None: of every EVSE)."""
        if evse_id is None:
            targets = self._evse_ids
        elif isinstance(evse_id, str) and evse_id in self._evse_ids:
            targets = (evse_id,)
        else:
            self._counters.add(Counted.JOSEV_NOTICE_IGNORED, f"{kind}/unknown_evse")
            self._warnings.warning(
                ("display_unknown_evse", kind),
                "event=display_ignored message=%s evse_id=%r why=no such EVSE is configured",
                kind,
                str(evse_id)[:64],
            )
            return
        at = josev_date_time(self._wall_clock())
        for target in targets:
            shown = self.shown.get(target, {})
            document = {**shown, "latest": kind, kind: {"at": at, "data": dict(data)}}
            try:
                payload = checked_payload(self._registry, SCHEMA_OF[Leaf.DISPLAY], document)
            except SchemaViolation as violation:
                self._counters.add(Counted.OUTBOUND_REJECTED, Leaf.DISPLAY)
                log.error(
                    "event=outbound_rejected message=%s why=%s -- not published; this is a bug",
                    Leaf.DISPLAY,
                    violation,
                )
                continue
            self.shown[target] = document
            await self._publish(self._local.topic(target, Leaf.DISPLAY), payload)

    async def republish(self) -> None:
        """Every display again (after a connect: a broker that restarted lost them)."""
        for evse_id, document in list(self.shown.items()):
            payload = checked_payload(self._registry, SCHEMA_OF[Leaf.DISPLAY], document)
            await self._publish(self._local.topic(evse_id, Leaf.DISPLAY), payload)
