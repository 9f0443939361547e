"""Live CAN: the configured buses (python-can), their frames into the router, poll requests out.

python-can's asyncio notifier can hang when an interface goes away (it never surfaces the
error), so silence is caught by our own deadline: the engine's freshness deadlines make every
device of a silent bus stale, and a per-bus watchdog logs and counts the silence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import can

from csbridge.config import BusConfig, Config
from csbridge.counters import Counters
from csbridge.devices.logs import merged_frames
from csbridge.devices.router import BusRoute, DeviceRouter
from csbridge.log_limit import LogLimiter
from csbridge.readings import SourceReading

log = logging.getLogger("csbridge.can")

Sink = Callable[[str, SourceReading], object]
Clock = Callable[[], float]
SILENCE_S = 5.0
CAN_ERR_BUSOFF = 0x40
"""SocketCAN error-frame class bit for bus-off (linux/can/error.h)."""
REQUEST_SPACING_S = 0.002
"""Between the frames of one poll: a 125 kbit/s bus carries about one frame per millisecond."""
DRAIN_AT_MOST = 256
"""Frames read per readiness callback, so one busy bus cannot starve the event loop."""


class BusLink:
    """One open bus: frames in through a notifier, frames out with failures counted."""

    def __init__(
        self, route: BusRoute, router: DeviceRouter, sink: Sink, counters: Counters, clock: Clock
    ) -> None:
        self.route = route
        self.name = route.bus.name
        self._router = router
        self._sink = sink
        self._counters = counters
        self._clock = clock
        self._limiter = LogLimiter()
        self.last_frame_at: float | None = None
        self.bus: can.BusABC | None = None

    def open(self) -> can.BusABC:
        bus_config: BusConfig = self.route.bus
        self.bus = can.Bus(
            channel=bus_config.interface_channel,
            interface=bus_config.interface,
            receive_own_messages=False,
            can_filters=self.route.kernel_filters() or None,
        )
        return self.bus

    def attach(self, loop: asyncio.AbstractEventLoop) -> can.Notifier | None:
        """Read frames into the loop: straight from the socket where there is one (all frames
        that are waiting in one callback, so a burst costs one evaluation), else through
        python-can's notifier thread (the virtual bus)."""
        bus = self.open()
        try:
            descriptor = bus.fileno()
        except NotImplementedError:
            descriptor = -1
        if descriptor >= 0:
            loop.add_reader(descriptor, self._drain)
            return None
        return can.Notifier(bus, [self.on_frame], loop=loop)

    def _drain(self) -> None:
        assert self.bus is not None
        for _ in range(DRAIN_AT_MOST):
            try:
                frame = self.bus.recv(0)
            except (can.CanError, OSError) as error:
                self._counters.add("can_bus_error", self.name)
                held = self._limiter.admit("recv", self._clock())
                if held is not None:
                    log.warning(
                        "event=can_bus_error bus=%s why=%s held_back=%d", self.name, error, held
                    )
                return
            if frame is None:
                return
            self.on_frame(frame)

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.bus is None:
            return
        try:
            descriptor = self.bus.fileno()
        except NotImplementedError:
            descriptor = -1
        if descriptor >= 0:
            loop.remove_reader(descriptor)
        self.bus.shutdown()
        self.bus = None

    def on_frame(self, frame: can.Message) -> None:
        now = self._clock()
        self.last_frame_at = now
        if frame.is_error_frame and frame.arbitration_id & CAN_ERR_BUSOFF:
            self._counters.add("can_bus_off", self.name)
        routed = self._router.route(self.name, frame, now)
        if routed is not None:
            self._sink(*routed)

    def send(self, frame: can.Message) -> bool:
        if self.bus is None:
            return False
        try:
            self.bus.send(frame, timeout=0.1)
        except can.CanError as error:
            self._counters.add("can_send_failed", self.name)
            held = self._limiter.admit("send", self._clock())
            if held is not None:
                log.warning(
                    "event=can_send_failed bus=%s why=%s held_back=%d", self.name, error, held
                )
            return False
        return True

    async def poll(self, period_s: float, frames: Sequence[can.Message]) -> None:
        while True:
            for frame in frames:
                self.send(frame)
                await asyncio.sleep(REQUEST_SPACING_S)
            await asyncio.sleep(max(0.0, period_s - REQUEST_SPACING_S * len(frames)))

    async def watch_silence(self, silence_s: float = SILENCE_S) -> None:
        started = self._clock()
        while True:
            await asyncio.sleep(silence_s / 2)
            last = self.last_frame_at if self.last_frame_at is not None else started
            if self._clock() - last > silence_s:
                self._counters.add("can_bus_silent", self.name)
                held = self._limiter.admit("silent", self._clock())
                if held is not None:
                    log.warning(
                        "event=can_bus_silent bus=%s for_s=%.1f", self.name, self._clock() - last
                    )


class CanBuses:
    """Every configured bus, live; or the frames of logs, paced as they were recorded."""

    def __init__(
        self, config: Config, router: DeviceRouter, sink: Sink, counters: Counters, clock: Clock
    ) -> None:
        self.config = config
        self.router = router
        self.links = {
            name: BusLink(route, router, sink, counters, clock)
            for name, route in router.routes.items()
            if route.profiles
        }
        self._sink = sink
        self._clock = clock

    async def run(self) -> None:
        """Until cancelled."""
        if not self.links:
            return
        loop = asyncio.get_running_loop()
        notifiers: list[can.Notifier] = []
        try:
            async with asyncio.TaskGroup() as tasks:
                for link in self.links.values():
                    notifier = link.attach(loop)
                    if notifier is not None:
                        notifiers.append(notifier)
                    tasks.create_task(link.watch_silence(), name=f"silence-{link.name}")
                    for period, frames in link.route.poll_frames():
                        tasks.create_task(link.poll(period, frames), name=f"poll-{link.name}")
        finally:
            for notifier in notifiers:
                notifier.stop(timeout=1.0)
            for link in self.links.values():
                link.detach(loop)

    async def replay(self, logs: Sequence[Path]) -> None:
        """The logs' frames into the router at the pace they were recorded (no bus opened)."""
        start_wall = self._clock()
        start_log: float | None = None
        for timestamp, bus, frame in merged_frames(logs, self.config.bus):
            if start_log is None:
                start_log = timestamp
            delay = (timestamp - start_log) - (self._clock() - start_wall)
            if delay > 0:
                await asyncio.sleep(delay)
            routed = self.router.route(bus, frame, self._clock())
            if routed is not None:
                self._sink(*routed)
