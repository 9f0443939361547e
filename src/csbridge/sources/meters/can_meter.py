"""A meter on CAN (the IVT-S shunt): its result frames read from a bus socket of its own (the
kernel hands every socket on an interface each frame; python-can's virtual bus every instance
on a channel), each cycle's values handed on as one sample.

A frame the profile refuses is counted and logged (rate-limited); the last good sample stays
until the meter's deadline makes the EVSE's composition call it silent. A bus that fails is
closed and opened again with backoff, the meter silent meanwhile."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import can

from csbridge.config import BusConfig
from csbridge.sources import ReadingSink
from csbridge.sources.meters.ivts import CanMeterProfile, CanMeterState, Refused
from csbridge.support import Counted, Counters, RateLimitedLog

log = logging.getLogger("csbridge.meters")

RECV_WAIT_S = 0.25
"""How long one read waits for a frame: also how soon a cancelled meter lets go of its bus."""
REOPEN_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)


class CanMeter:
    kind = "can"

    def __init__(
        self,
        evse_id: str,
        profile: CanMeterProfile,
        bus: BusConfig,
        *,
        sink: ReadingSink,
        counters: Counters,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.evse_id = evse_id
        self.profile = profile
        self.bus_config = bus
        self._sink = sink
        self._counters = counters
        self._clock = clock
        self._faults = RateLimitedLog(log, clock)
        self.state = CanMeterState(profile)

    def open(self) -> can.BusABC:
        filters: list[can.typechecking.CanFilter] = [
            {"can_id": frame_id, "can_mask": 0x7FF, "extended": self.profile.extended}
            for frame_id in sorted(self.profile.frame_ids)
        ]
        arguments: dict[str, Any] = {"receive_own_messages": False}
        arguments.update(self.bus_config.bus_arguments())  # the interface's own options
        return can.Bus(**arguments, can_filters=filters)

    def take(self, frame: can.Message) -> None:
        """One frame from the bus."""
        if frame.is_error_frame or frame.is_remote_frame:
            return
        if frame.is_extended_id != self.profile.extended:
            return
        outcome = self.state.take(frame.arbitration_id, bytes(frame.data), self._clock())
        if isinstance(outcome, Refused):
            self._counters.add(Counted.METER_READS, f"{self.kind}/refused")
            self._faults.warning(
                ("refused", outcome.reason),
                "event=meter_frame_refused evse=%s kind=can id=0x%03X why=%s -- last good "
                "value kept until its deadline",
                self.evse_id,
                frame.arbitration_id,
                outcome.reason,
            )
        elif outcome is not None:
            self._counters.add(Counted.METER_READS, f"{self.kind}/ok")
            self._sink(self.evse_id, outcome)

    async def run(self) -> None:
        """Until cancelled."""
        failures = 0
        while True:
            try:
                bus = await asyncio.to_thread(self.open)
            except (can.CanError, OSError, ValueError) as error:
                failures = await self._after_failure(failures, "open", error)
                continue
            read: asyncio.Future[can.Message | None] | None = None
            try:
                failures = 0
                while True:
                    read = asyncio.ensure_future(asyncio.to_thread(bus.recv, RECV_WAIT_S))
                    frame = await asyncio.shield(read)
                    if frame is not None:
                        self.take(frame)
            except (can.CanError, OSError) as error:
                failures = await self._after_failure(failures, "read", error)
            finally:
                if read is not None and not read.done():
                    # Never close the bus under a read in progress: it ends within RECV_WAIT_S.
                    await asyncio.wait([read])
                bus.shutdown()

    async def _after_failure(self, failures: int, step: str, error: Exception) -> int:
        self._counters.add(Counted.METER_READS, f"{self.kind}/error")
        self._faults.error(
            ("bus", step),
            "event=meter_bus_failed evse=%s bus=%s step=%s why=%s -- trying again",
            self.evse_id,
            self.bus_config.name,
            step,
            error,
        )
        await asyncio.sleep(REOPEN_BACKOFF_S[min(failures, len(REOPEN_BACKOFF_S) - 1)])
        return failures + 1
