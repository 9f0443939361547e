"""A burst of CAN frames costs one evaluation per EVSE: every frame a socket drain reads is
stored, then each EVSE touched is evaluated once; the reader thread of a bus without a socket
(the virtual bus of the simulated stations) hands each frame over on its own."""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Iterable

import can

from csbridge.config import load_config
from csbridge.engine.engine import LimitsEngine
from csbridge.limits.compose import Composition, EvseInputs
from csbridge.sources.can.bus import BusLink, _ReaderThread
from csbridge.sources.can.router import DeviceRouter
from csbridge.sources.readings import ImdReading
from csbridge.support.resources import example_config

INFY_DC = "DE*CSB*E0001"
"""examples/infypower-dc.toml's EVSE: Infypower modules 1 to 3 on can0."""


def _capability(address: int, max_current_a: float) -> can.Message:
    """An Infypower REG read_capability reply (0x0A): 1000 V, 150 V, the current, 40 kW."""
    data = struct.pack(">HHHH", 1000, 150, round(max_current_a * 10), 4000)
    frame_id = (0x0A << 22) | (0x0A << 16) | (0xF0 << 8) | address
    return can.Message(arbitration_id=frame_id, is_extended_id=True, data=data)


class _Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def _can0_link() -> tuple[LimitsEngine, BusLink, list[str]]:
    """The engine and can0's link of examples/infypower-dc.toml, and the EVSEs evaluated."""
    config = load_config(example_config("infypower-dc.toml"))
    clock = _Clock()
    engine = LimitsEngine(config, clock=clock)
    router = DeviceRouter(config, counters=engine.counters, clock=clock)
    evaluated: list[str] = []

    def observe(evse_id: str, _: EvseInputs, __: Composition | None) -> None:
        evaluated.append(evse_id)

    engine.observers.append(observe)
    link = BusLink(router.routes["can0"], router, engine.ingest, engine.counters, clock)
    return engine, link, evaluated


def test_frames_read_in_one_callback_cost_one_evaluation_per_evse() -> None:
    engine, link, evaluated = _can0_link()
    burst = [_capability(address, 80.0) for address in (1, 2, 3)] * 2

    link.on_frames(burst)

    assert evaluated == [INFY_DC]
    assert engine.counters.get("reading_ingested", "ModuleReading") == len(burst)
    assert set(engine.inputs(INFY_DC).modules) == {"infy1", "infy2", "infy3"}


def test_a_lone_frame_is_evaluated_in_the_callback_that_reads_it() -> None:
    engine, link, evaluated = _can0_link()
    engine.ingest(INFY_DC, ImdReading(at=engine.clock(), resistance_ohm=5_000_000.0))
    link.on_frames([_capability(address, 80.0) for address in (1, 2, 3)])
    assert engine.entries.get(INFY_DC)["dc"]["max_current"] == 240.0
    engine.entries.clear_changed()
    evaluated.clear()

    link.on_frames([_capability(2, 40.0)])

    assert evaluated == [INFY_DC]
    assert engine.entries.drain_changed() == [(INFY_DC, engine.entries.get(INFY_DC))]
    assert engine.entries.get(INFY_DC)["dc"]["max_current"] == 200.0


class _WaitingFrames(can.BusABC):
    """A bus without a socket with frames waiting; it says when they have all been read."""

    def __init__(self, frames: Iterable[can.Message]) -> None:
        self.waiting = list(frames)
        self.all_read = threading.Event()
        self.stopped = threading.Event()

    def recv(self, timeout: float | None = None) -> can.Message | None:
        if self.waiting:
            return self.waiting.pop(0)
        self.all_read.set()
        self.stopped.wait(timeout)
        return None

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        raise NotImplementedError


def test_a_socket_drain_reads_every_waiting_frame_into_one_evaluation() -> None:
    engine, link, evaluated = _can0_link()
    link.bus = _WaitingFrames(_capability(address, 80.0) for address in (1, 2, 3, 1))

    link._drain()  # noqa: SLF001 - what the loop calls when the socket is readable

    assert evaluated == [INFY_DC]
    assert engine.counters.get("reading_ingested", "ModuleReading") == 4


def test_the_reader_thread_hands_each_frame_over_in_a_callback_of_its_own() -> None:
    """The virtual bus carries the simulated stations: their frames are evaluated one by one,
    as before, even those that waited for the loop (a stack fills module by module)."""
    bus = _WaitingFrames(_capability(address, 80.0) for address in (1, 2, 3, 1, 2))
    batches: list[list[can.Message]] = []
    loop = asyncio.new_event_loop()
    reader = _ReaderThread(bus, "can0", loop, lambda frames: batches.append(list(frames)), print)
    try:
        assert bus.all_read.wait(5), "the reader read every frame"
        loop.run_until_complete(asyncio.sleep(0))  # the loop's next pass: the hand-overs
    finally:
        bus.stopped.set()
        reader.stop()
        loop.close()
    assert [len(batch) for batch in batches] == [1, 1, 1, 1, 1]
