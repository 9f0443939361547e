"""The station on live CAN: python-can's virtual bus, simulators speaking the real protocols."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Iterable

import can

from csbridge.config import Config, load_config
from csbridge.engine.engine import LimitsEngine
from csbridge.limits.compose import Composition, EvseInputs
from csbridge.service.station import Station
from csbridge.sources.can.bus import BusLink, _ReaderThread
from csbridge.sources.can.router import DeviceRouter
from csbridge.sources.readings import ImdReading
from csbridge.support.resources import example_config
from csbridge.testing.brokers import Broker
from csbridge.testing.harness import wait_until as _until
from tests.conftest import stop_bridge
from tests.support import FIXTURES, unique_prefix

DC = "DE*CSB*E0001"


def _dc(station: Station) -> dict[str, float | str]:
    entry = station.engine.entries.get(DC)
    return {**entry["dc"], "status_code": entry["status_code"]}


async def test_the_real_codecs_read_three_modules_and_the_imd_off_the_bus(
    wire_station: Station,
) -> None:
    dc = _dc(wire_station)
    assert dc["status_code"] == "evse_ready"
    assert dc["max_power"] == 120000
    assert dc["isolation_status"] == "valid"
    decoded = wire_station.engine.counters.get("can_frames", "sim-can0/infypower-reg/decoded")
    assert decoded > 0
    assert wire_station.engine.counters.get("can_frames", "sim-can1/bender-iso165c/decoded") > 0


async def test_a_module_that_stops_answering_leaves_the_stack(wire_station: Station) -> None:
    wire_station.devices.modules[(DC, "m2")].silent = True
    elapsed = await _until(lambda: _dc(wire_station)["max_current"] == 160.0)
    assert elapsed < 3.0 + 1.5  # its deadline is three 1 s poll periods
    assert wire_station.engine.reported_binding(DC)["max_current"] == "module_dropout"


async def test_low_insulation_on_the_wire_is_an_emergency_shutdown(wire_station: Station) -> None:
    imd = wire_station.devices.imds[DC]
    imd.resistance_ohm = 50_000.0
    wire_station.devices.emit(imd)
    await _until(lambda: _dc(wire_station)["status_code"] == "evse_emergency_shutdown")
    assert _dc(wire_station)["isolation_status"] == "fault"
    assert _dc(wire_station)["max_current"] == 0


async def test_the_station_polls_every_module_on_its_period(
    wire_station: Station, wire_config: Config
) -> None:
    channel = wire_config.bus[0].interface_channel
    sniffer = can.Bus(channel=channel, interface="virtual")
    try:
        seen: set[int] = set()
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            frame = await asyncio.to_thread(sniffer.recv, 0.2)
            if frame is not None and frame.arbitration_id & 0xFF == 0xF0:  # source: the controller
                seen.add(frame.arbitration_id)
    finally:
        sniffer.shutdown()
    expected = {
        (0x0A << 22) | (command << 16) | (address << 8) | 0xF0
        for address in (1, 2, 3)
        for command in (0x03, 0x04, 0x0A, 0x0C)
    }
    assert expected <= seen


async def test_hostile_frames_on_the_bus_are_counted_and_change_nothing(
    wire_station: Station, wire_config: Config
) -> None:
    channel = wire_config.bus[0].interface_channel
    intruder = can.Bus(channel=channel, interface="virtual")
    counters = wire_station.engine.counters
    before = {k: v for k, v in counters.snapshot().items() if "sim-can0" in k}
    try:
        for frame in (
            can.Message(arbitration_id=0x0283F001, data=b"\x00" * 3, is_extended_id=True),  # short
            can.Message(arbitration_id=0x028AF009, data=bytes(8), is_extended_id=True),  # address 9
            can.Message(arbitration_id=0x7FF, data=b"\x01", is_extended_id=False),  # nobody's
            can.Message(  # a capability of 6553.5 A: far above the rated range
                arbitration_id=0x028AF001,
                data=bytes.fromhex("03E80096FFFF0BB8"),
                is_extended_id=True,
            ),
        ):
            intruder.send(frame)
    finally:
        intruder.shutdown()

    def grew(label: str) -> bool:
        key = f"can_frames{{sim-can0/{label}}}"
        return counters.snapshot().get(key, 0) > before.get(key, 0)

    # On SocketCAN the kernel filters drop nobody's identifier before Python; the virtual bus
    # has no kernel, so the router sees it, counts it and drops it.
    await _until(
        lambda: all(
            grew(label)
            for label in (
                "infypower-reg/wrong_dlc",
                "infypower-reg/unknown_address",
                "infypower-reg/out_of_range",
                "-/unknown_id",
            )
        )
    )
    assert _dc(wire_station)["max_current"] == 240.0


async def test_run_with_replay_feeds_the_log_at_its_pace(broker: Broker) -> None:
    config = load_config(example_config("infypower-dc.toml")).with_broker(broker.url)
    raw = config.model_dump(mode="json", exclude_none=True)
    prefix = unique_prefix()
    raw["mqtt"].update(
        client_id=prefix,
        request_topic=f"{prefix}/josev/cs",
        response_topic=f"{prefix}/cs/josev",
        status_topic=f"{prefix}/status",
        local_prefix=f"{prefix}/csbridge",
    )
    station = Station(
        Config.model_validate(raw), replay_logs=[FIXTURES / "can" / "infypower-three-modules.log"]
    )
    task = asyncio.create_task(station.run())
    try:
        elapsed = await _until(lambda: _dc(station)["max_current"] == 300.0, timeout=8)
        assert elapsed >= 1.5, "the log's own pace: its third module answers after 2 s of increases"
    finally:
        await stop_bridge(task)


# -- a burst of frames costs one evaluation per EVSE -----------------------------------------

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

    link._drain()  # what the loop calls when the socket is readable

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
