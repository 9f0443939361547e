"""Live CAN: the configured buses (python-can), their frames into the router, poll requests out.

Each bus is supervised: an interface that cannot be opened, or that fails while open (a
SocketCAN interface taken down, a USB adapter pulled), is closed and opened again with backoff
while the bridge keeps serving. Its devices fall silent meanwhile, and their freshness deadlines
take the EVSE to the safe side. Error frames (bus-off, controller and protocol errors) are
counted by class and logged at most once per interval per kind.

Frames are read straight from the socket where there is one; otherwise (the virtual bus) by a
reader thread of our own rather than python-can's Notifier, whose thread re-raises an interface
error and dies with a traceback on stderr instead of letting the owner recover. That thread also
closes its bus when told to stop, once its last read has returned (never under a read in
progress), and says so through a future: the loop awaits the end instead of joining the thread,
which would hold every callback up for as long as a read may wait.

A burst costs one evaluation per EVSE: every frame waiting on the socket is read in one
callback, each reading is stored as its frame is decoded, and each EVSE the readings touched is
evaluated once, at the end. A lone frame is evaluated in the same callback, so its update still
goes out in the same loop pass. The reader thread hands each frame over in a callback of its
own, evaluated as it comes: the virtual bus carries the simulated stations, whose sequences
(a stack that fills module by module) stay as they were.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, Protocol, TypeVar

import can

from csbridge.config import BusConfig, Config
from csbridge.sources.can.logs import merged_frames
from csbridge.sources.can.router import BusRoute, DeviceRouter
from csbridge.sources.readings import SourceReading
from csbridge.support import Clock, Counted, Counters, RateLimitedLog

log = logging.getLogger("csbridge.can")
T = TypeVar("T")

SILENCE_S = 5.0
REQUEST_SPACING_S = 0.002
"""Between the frames of one poll: a 125 kbit/s bus carries about one frame per millisecond."""
DRAIN_AT_MOST = 256
"""Frames read per readiness callback, so one busy bus cannot starve the event loop."""
REOPEN_DELAYS_S = (0.5, 1.0, 2.0, 5.0)
"""Between attempts to open a bus again; the last repeats."""
STABLE_AFTER_S = 10.0
"""A bus open this long starts its backoff afresh when it fails."""
SUPERVISE_BEAT_S = 1.0
READ_TIMEOUT_S = 0.1
CLOSE_WAIT_S = 1.0
"""How long a closing bus's reader may take to leave its read: many READ_TIMEOUT_S; a driver
that overstays it is logged and the bus opened again regardless."""

OPEN_ERRORS = (can.CanError, OSError, ValueError, ImportError, TypeError)
"""What python-can raises for a missing interface, a bad channel, a driver not installed or an
option the interface refuses (TypeError)."""

ERROR_CLASSES = {
    0x001: "tx_timeout",
    0x002: "lost_arbitration",
    0x004: "controller",
    0x008: "protocol",
    0x010: "transceiver",
    0x020: "no_ack",
    0x040: "bus_off",
    0x080: "bus_error",
    0x100: "restarted",
}
"""SocketCAN error-frame classes, the bits of the error frame's id (linux/can/error.h)."""
CAN_ERR_BUSOFF = 0x040


class DrainSink(Protocol):
    """Where a bus hands its readings (the engine's `ingest`)."""

    def store(self, evse_id: str, reading: SourceReading) -> bool:
        """Keep a reading as its source's latest, not evaluated yet; False: nobody takes it."""
        ...

    def evaluate(self, evse_ids: Iterable[str]) -> None:
        """Evaluate these EVSEs now."""
        ...


def error_classes(frame: can.Message) -> list[str]:
    named = [name for bit, name in ERROR_CLASSES.items() if frame.arbitration_id & bit]
    return named or ["unspecified"]


class _ReaderThread:
    """Reads one bus without a file descriptor into the loop, each frame in a callback of its
    own; reports a failure once and ends. It owns the bus's closing: `stop` asks, and the
    thread shuts the bus down after its last read, then resolves `ended` on the loop."""

    def __init__(
        self,
        bus: can.BusABC,
        name: str,
        loop: asyncio.AbstractEventLoop,
        on_frames: Callable[[Iterable[can.Message]], None],
        on_failed: Callable[[BaseException], None],
    ) -> None:
        self._bus = bus
        self._name = name
        self._loop = loop
        self._on_frames = on_frames
        self._on_failed = on_failed
        self._stopping = threading.Event()
        self.ended: asyncio.Future[None] = loop.create_future()
        """Done once the thread has closed the bus and posted its last callback."""
        self._thread = threading.Thread(target=self._run, name=f"can-rx-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._read_until_stopped()
        finally:
            try:
                self._bus.shutdown()
            except Exception as error:  # a driver's failure to close must not keep `ended` open
                log.debug("event=can_bus_shutdown_failed thread=%s why=%r", self._name, error)
            # Posted after every other callback of this thread, so whoever awaits `ended` has
            # seen them all: no late failure report can land on the next bus of this link.
            self._call(_resolve, self.ended)

    def _read_until_stopped(self) -> None:
        while not self._stopping.is_set():
            try:
                frame = self._bus.recv(READ_TIMEOUT_S)
            except Exception as error:  # any failure ends this reader; the owner reopens
                if not self._stopping.is_set():
                    self._call(self._on_failed, error)
                return
            if frame is not None and not self._call(self._on_frames, (frame,)):
                return

    def _call(self, callback: Callable[[T], None], argument: T) -> bool:
        try:
            self._loop.call_soon_threadsafe(callback, argument)
        except RuntimeError:  # the loop is closed: nobody is left to read for
            return False
        return True

    def stop(self) -> None:
        """Ask the thread to end; returns at once (the read in progress ends within
        READ_TIMEOUT_S, then the thread closes the bus)."""
        self._stopping.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class BusLink:
    """One bus: opened and reopened by `supervise`, frames in, frames out, failures counted."""

    def __init__(
        self,
        route: BusRoute,
        router: DeviceRouter,
        sink: DrainSink,
        counters: Counters,
        clock: Clock,
    ) -> None:
        self.route = route
        self.name = route.bus.name
        self._router = router
        self._sink = sink
        self._counters = counters
        self._clock = clock
        self._faults = RateLimitedLog(log, clock)
        self.last_frame_at: float | None = None
        self.bus: can.BusABC | None = None
        self.opens = 0
        self._reader: _ReaderThread | None = None
        self._closing: _ReaderThread | None = None
        self._failed = asyncio.Event()
        self._beat_at = time.monotonic()

    def open(self) -> can.BusABC:
        bus_config: BusConfig = self.route.bus
        # Filters pay only in the kernel (SocketCAN), where error frames pass them by their own
        # mask. Elsewhere python-can filters in Python, no cheaper than our router, and would
        # drop the error frames (bus-off) we must see.
        in_kernel = bus_config.interface == "socketcan"
        arguments: dict[str, Any] = {"receive_own_messages": False}
        arguments.update(bus_config.bus_arguments())  # the interface's own options may differ
        arguments["can_filters"] = (self.route.kernel_filters() or None) if in_kernel else None
        self.bus = can.Bus(**arguments)
        return self.bus

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open the bus and read its frames into the loop: all frames that are waiting in one
        callback where there is a socket, else one by one as a thread hands them over."""
        self._failed = asyncio.Event()
        bus = self.open()
        descriptor = _descriptor(bus)
        if descriptor >= 0:
            loop.add_reader(descriptor, self._drain)
        else:
            self._reader = _ReaderThread(bus, self.name, loop, self.on_frames, self._fail)

    def _drain(self) -> None:
        if self.bus is not None:
            self.on_frames(self._waiting_frames(self.bus))

    def _waiting_frames(self, bus: can.BusABC) -> Iterator[can.Message]:
        for _ in range(DRAIN_AT_MOST):
            try:
                frame = bus.recv(0)
            except (can.CanError, OSError) as error:
                self._fail(error)
                return
            if frame is None:
                return
            yield frame

    def _fail(self, error: object) -> None:
        if self._failed.is_set():
            return
        self._counters.add(Counted.CAN_BUS_FAILED, self.name)
        self._faults.error(
            "failed",
            "event=can_bus_failed bus=%s why=%s -- closing it to open again",
            self.name,
            error,
        )
        self._failed.set()

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stop reading and close the bus, without waiting: a socket's bus closes here, a
        reader thread's bus in that thread once its read returns (await `closed` for that)."""
        bus, self.bus = self.bus, None
        reader, self._reader = self._reader, None
        if reader is not None:
            self._closing = reader
            reader.stop()
        if bus is None:
            return
        descriptor = _descriptor(bus)
        if descriptor >= 0:
            loop.remove_reader(descriptor)
        if reader is None:
            with suppress(*OPEN_ERRORS):
                bus.shutdown()

    async def closed(self) -> None:
        """Until the bus detached last is closed (its reader thread, if any, has ended), at
        most CLOSE_WAIT_S: then a reader stuck in its driver is logged and left behind."""
        reader = self._closing
        if reader is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(reader.ended), CLOSE_WAIT_S)
        except TimeoutError:
            self._faults.error(
                "reader_stuck",
                "event=can_reader_stuck bus=%s waited_s=%.1f -- its read has not returned; "
                "going on without it",
                self.name,
                CLOSE_WAIT_S,
            )
        # Kept until awaited to the end: a wait cut short by a cancellation is taken up by the
        # next one (CanBuses.run's, as the station stops).
        if self._closing is reader:
            self._closing = None

    async def close(self, loop: asyncio.AbstractEventLoop) -> None:
        """`detach`, then `closed`."""
        self.detach(loop)
        await self.closed()

    async def supervise(self, loop: asyncio.AbstractEventLoop) -> None:
        """Keep the bus open; on a failure close it and open it again. Until cancelled."""
        attempt = 0
        while True:
            self._beat_at = time.monotonic()
            try:
                self.attach(loop)
            except OPEN_ERRORS as error:
                await self.close(loop)
                self._counters.add(Counted.CAN_BUS_OPEN_FAILED, self.name)
                self._faults.error(
                    "open",
                    "event=can_bus_open_failed bus=%s interface=%s channel=%s why=%s",
                    self.name,
                    self.route.bus.interface,
                    self.route.bus.interface_channel,
                    error,
                )
            else:
                opened_at = time.monotonic()
                self._opened()
                await self._until_failed()
                await self.close(loop)
                if time.monotonic() - opened_at >= STABLE_AFTER_S:
                    attempt = 0
            await self._back_off(REOPEN_DELAYS_S[min(attempt, len(REOPEN_DELAYS_S) - 1)])
            attempt += 1

    def _opened(self) -> None:
        if self.opens:
            self._counters.add(Counted.CAN_BUS_REOPENED, self.name)
            log.info("event=can_bus_reopened bus=%s opens=%d", self.name, self.opens + 1)
        self.opens += 1

    async def _until_failed(self) -> None:
        while not self._failed.is_set():
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation
            # that arrives as the failure does, and the stop would wait on this loop forever.
            with suppress(TimeoutError):
                async with asyncio.timeout(SUPERVISE_BEAT_S):
                    await self._failed.wait()
            self._beat_at = time.monotonic()

    async def _back_off(self, delay: float) -> None:
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, SUPERVISE_BEAT_S))
            self._beat_at = time.monotonic()

    def stalled_for(self, now: float) -> float:
        """Seconds since the supervisor last went round: a stuck or dead one stops the
        systemd watchdog."""
        return now - self._beat_at

    def on_frames(self, frames: Iterable[can.Message]) -> None:
        """Store the reading of each frame; then evaluate each EVSE they touched, once."""
        touched: dict[str, None] = {}  # insertion-ordered set
        try:
            for frame in frames:
                evse_id = self.on_frame(frame)
                if evse_id is not None:
                    touched[evse_id] = None
        finally:  # what was stored is evaluated, whatever stopped the batch
            if touched:
                self._sink.evaluate(touched)

    def on_frame(self, frame: can.Message) -> str | None:
        """Decode and store one frame's reading; the EVSE it touched, if any."""
        now = self._clock()
        self.last_frame_at = now
        if frame.is_error_frame:
            self._error_frame(frame)
            return None
        routed = self._router.route(self.name, frame, now)
        if routed is None or not self._sink.store(*routed):
            return None
        return routed[0]

    def _error_frame(self, frame: can.Message) -> None:
        for name in error_classes(frame):
            self._counters.add(Counted.CAN_ERROR_FRAMES, f"{self.name}/{name}")
            self._faults.warning(
                ("error_frame", name),
                "event=can_error_frame bus=%s class=%s id=0x%X data=%s",
                self.name,
                name,
                frame.arbitration_id,
                bytes(frame.data).hex(),
            )
        if frame.arbitration_id & CAN_ERR_BUSOFF:
            self._counters.add(Counted.CAN_BUS_OFF, self.name)

    def send(self, frame: can.Message) -> bool:
        if self.bus is None:
            self._counters.add(Counted.CAN_SEND_SKIPPED, self.name)
            return False
        try:
            self.bus.send(frame, timeout=0.1)
        except can.CanError as error:
            self._counters.add(Counted.CAN_SEND_FAILED, self.name)
            self._faults.warning(
                "send",
                "event=can_send_failed bus=%s id=0x%X why=%s",
                self.name,
                frame.arbitration_id,
                error,
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
                self._counters.add(Counted.CAN_BUS_SILENT, self.name)
                self._faults.warning(
                    "silent",
                    "event=can_bus_silent bus=%s for_s=%.1f",
                    self.name,
                    self._clock() - last,
                )


def _descriptor(bus: can.BusABC) -> int:
    """The bus's file descriptor to watch, or -1: read by a thread of our own (most adapters
    but SocketCAN; slcan's serial port where the platform has one)."""
    try:
        return bus.fileno()
    except (NotImplementedError, can.CanError, OSError, ValueError):
        return -1


class CanBuses:
    """Every configured bus, live; or the frames of logs, paced as they were recorded."""

    def __init__(
        self,
        config: Config,
        router: DeviceRouter,
        sink: DrainSink,
        counters: Counters,
        clock: Clock,
    ) -> None:
        self.config = config
        self.router = router
        self.links = {
            name: BusLink(route, router, sink, counters, clock)
            for name, route in router.routes.items()
            if route.in_use
        }
        self._sink = sink
        self._clock = clock
        self._counters = counters
        self.before_close: Callable[[], None] | None = None
        """Called as the buses stop, while they can still send."""

    async def run(self) -> None:
        """Until cancelled."""
        if not self.links:
            return
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.TaskGroup() as tasks:
                for link in self.links.values():
                    tasks.create_task(link.supervise(loop), name=f"bus-{link.name}")
                    tasks.create_task(link.watch_silence(), name=f"silence-{link.name}")
                    for period, frames in link.route.poll_frames():
                        tasks.create_task(link.poll(period, frames), name=f"poll-{link.name}")
        finally:
            # The last frames out (modules off) must go before the buses close.
            if self.before_close is not None:
                self.before_close()
            for link in self.links.values():
                link.detach(loop)
            # Every reader thread told first, then awaited together: the buses are closed
            # (adapters free for whoever opens them next) when run returns.
            await asyncio.gather(*(link.closed() for link in self.links.values()))

    async def replay(self, logs: Sequence[Path]) -> None:
        """The logs' frames into the router at the pace they were recorded (no bus opened)."""
        start_wall = self._clock()
        start_log: float | None = None
        for timestamp, bus, frame in merged_frames(logs, self.config.bus, counters=self._counters):
            if start_log is None:
                start_log = timestamp
            delay = (timestamp - start_log) - (self._clock() - start_wall)
            if delay > 0:
                await asyncio.sleep(delay)
            if frame.is_error_frame:  # as on a live bus: counted by class, never decoded
                for name in error_classes(frame):
                    self._counters.add(Counted.CAN_ERROR_FRAMES, f"{bus}/{name}")
                continue
            routed = self.router.route(bus, frame, self._clock())
            if routed is not None and self._sink.store(*routed):
                self._sink.evaluate((routed[0],))
