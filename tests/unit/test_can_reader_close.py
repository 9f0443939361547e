"""Closing a bus read by a thread of our own never holds the event loop: detach asks the thread
to stop and returns; the thread closes the bus after its last read (never under one); the loop
awaits that end, bounded, before opening the bus again or finishing a stop."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import can
import pytest

from csbridge.sources.can import bus as bus_module
from csbridge.sources.can.bus import BusLink
from csbridge.testing.harness import wait_until
from tests.unit.test_can_bursts import _can0_link

DETACH_BOUND_S = 0.5
"""Far above what a detach that waits for nothing takes, half the join it used to make."""
RELEASE_SAFETY_S = 10.0
"""A read the test forgot to release still ends, so no thread outlives the run."""


class _DriverRead(can.BusABC):
    """A bus without a socket whose reads block until released (a driver that does not honour
    the timeout); it records what happens to it, in order."""

    def __init__(self, events: list[str] | None = None, *, close_takes_s: float = 0.0) -> None:
        super().__init__(channel="test")
        self.released = threading.Event()
        self.reading = threading.Event()
        self.in_read = False
        self.events: list[str] = [] if events is None else events
        self.reader: threading.Thread | None = None
        self._close_takes_s = close_takes_s

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        self.reader = threading.current_thread()
        self.in_read = True
        self.reading.set()
        try:
            self.released.wait(RELEASE_SAFETY_S)
        finally:
            self.in_read = False
        return None, False

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        raise NotImplementedError

    def shutdown(self) -> None:
        self.events.append("shutdown under a read" if self.in_read else "shutdown")
        # A driver that takes its time to close (a USB adapter flushing): modelled, not waited on.
        threading.Event().wait(self._close_takes_s)
        self.events.append("closed")
        super().shutdown()


def _link_on(*buses: can.BusABC, events: list[str] | None = None) -> BusLink:
    """can0's link opening these buses in turn, as its own `open` does (kept as `link.bus`)."""
    _, link, _ = _can0_link()
    waiting = iter(buses)

    def open_next() -> can.BusABC:
        if events is not None:
            events.append("open")
        link.bus = next(waiting)
        return link.bus

    link.open = open_next  # type: ignore[method-assign]  # the adapters under test
    return link


async def test_detach_returns_while_the_reader_is_still_in_its_read() -> None:
    bus = _DriverRead()
    link = _link_on(bus)
    loop = asyncio.get_running_loop()
    link.attach(loop)
    try:
        assert await asyncio.to_thread(bus.reading.wait, 5), "the reader is in its read"

        started = time.monotonic()
        link.detach(loop)
        took = time.monotonic() - started

        assert took < DETACH_BOUND_S
        assert bus.events == []  # not closed under the read in progress
        bus.released.set()
        await link.closed()
        assert bus.events == ["shutdown", "closed"]
        reader = bus.reader
        assert reader is not None
        await wait_until(lambda: not reader.is_alive(), 2, "the reader thread's end")
    finally:
        bus.released.set()


async def test_a_reader_stuck_in_its_driver_is_waited_for_a_bounded_time_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(bus_module, "CLOSE_WAIT_S", 0.05)
    caplog.set_level(logging.ERROR, logger="csbridge.can")
    bus = _DriverRead()
    link = _link_on(bus)
    loop = asyncio.get_running_loop()
    link.attach(loop)
    try:
        assert await asyncio.to_thread(bus.reading.wait, 5)
        await link.close(loop)  # returns although the read never does
        lines = [r.getMessage() for r in caplog.records]
        assert [line for line in lines if "event=can_reader_stuck bus=can0" in line] == lines
        assert len(lines) == 1
        assert bus.events == []
    finally:
        bus.released.set()
    reader = bus.reader
    assert reader is not None
    await wait_until(lambda: not reader.is_alive(), 2, "the reader thread's end")
    assert bus.events == ["shutdown", "closed"]


class _FailsOnce(_DriverRead):
    """Its first read fails as a pulled adapter's does; closing it takes a while."""

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        raise can.CanOperationError("the adapter is gone")


async def test_a_failed_bus_is_opened_again_only_once_its_reader_has_closed_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bus_module, "REOPEN_DELAYS_S", (0.0,))
    events: list[str] = []
    first = _FailsOnce(events, close_takes_s=0.2)
    second = _DriverRead()
    link = _link_on(first, second, events=events)
    loop = asyncio.get_running_loop()
    supervising = asyncio.create_task(link.supervise(loop))
    try:
        await wait_until(second.reading.is_set, 5, "the second bus read")
    finally:
        supervising.cancel()
        await asyncio.gather(supervising, return_exceptions=True)
        second.released.set()
        link.detach(loop)
        await link.closed()
    # The second open came after the first bus had finished closing, not while it closed.
    assert events == ["open", "shutdown", "closed", "open"]
    assert link.opens == 2
    assert second.events == ["shutdown", "closed"]
