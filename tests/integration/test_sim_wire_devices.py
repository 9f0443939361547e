"""The wire simulators on python-can's virtual bus, without a station: a module that switches
itself off when the controller's commands stop for its profile's watchdog (an injected clock
moves time; nothing sleeps), and the board's connector lock obeyed from BOARD_Command and told
in BOARD_Status as it travels. The codecs read the frames back; a tap is the controller."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import can
import pytest_asyncio

from csbridge.config import BusConfig, load_config
from csbridge.sources.can import (
    DbcCodec,
    IdFieldsCodec,
    Outcome,
    PowerReason,
    ProfileRegistry,
    board_command,
    setpoint_frames,
    switch_frames,
)
from csbridge.sources.can.state import BoardState
from csbridge.sources.readings import LockState
from csbridge.sources.simulated import SimulatedCanBoard
from csbridge.sources.simulated.can_devices import SimulatedCanBus, build_wire_module
from csbridge.support.resources import example_config
from csbridge.testing.can_tap import CanTap
from csbridge.testing.harness import wait_until
from tests.support import unique_prefix

REGISTRY = ProfileRegistry()
DC = "DE*CSB*E0001"
BOARD = REGISTRY.get("generic-charger-board")
BOARD_CODEC = DbcCodec(BOARD, REGISTRY.dbc_path(BOARD))


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Wire:
    bus: SimulatedCanBus
    tap: CanTap
    clock: Clock


@pytest_asyncio.fixture
async def wire() -> AsyncIterator[Wire]:
    """sim-station's m1 and the DC board on one virtual channel of this test's own."""
    config = load_config(example_config("sim-station.toml"))
    bus_config = BusConfig(name=f"{unique_prefix()}-can", interface="virtual", bitrate=125000)
    clock = Clock()
    bus = SimulatedCanBus(bus_config)
    bus.modules.append(build_wire_module(DC, config.evse[0].module[0], bus_config, REGISTRY, clock))
    board = config.evse[0].board
    assert board is not None
    bus.boards.append(SimulatedCanBoard(evse_id=DC, config=board, codec=BOARD_CODEC))
    task = asyncio.create_task(bus.run())
    await wait_until(lambda: bus.bus is not None, what="the simulators' bus open")
    tap = CanTap(bus_config)
    try:
        yield Wire(bus, tap, clock)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        tap.bus.shutdown()


def module_codec() -> IdFieldsCodec:
    return IdFieldsCodec(REGISTRY.get("infypower-reg"), 0xF0)


async def polled_current(wire: Wire) -> float:
    """Poll m1 as the station does and read its output current from the reply."""
    codec = module_codec()
    wire.tap.drain()
    for request in codec.poll_requests(1):
        wire.tap.send(request)
    found = await wire.tap.collect(
        3.0,
        lambda frame: "output_current" in _values(codec, frame),
        until=bool,
    )
    assert found, "m1 did not answer the poll"
    return _values(codec, found[0])["output_current"]


def _values(codec: IdFieldsCodec, frame: can.Message) -> dict[str, float]:
    outcome, decoded = codec.decode(frame)
    return dict(decoded.values) if outcome is Outcome.DECODED and decoded is not None else {}


async def test_a_wire_module_switches_itself_off_after_its_watchdog(wire: Wire) -> None:
    codec = module_codec()
    commands = setpoint_frames(codec, 1, 400.0, 25.0) + switch_frames(codec, 1, on=True)
    for frame in commands:
        wire.tap.send(frame)
    module = wire.bus.modules[0]
    await wait_until(lambda: module.output_current == 25.0, what="m1 on")
    assert await polled_current(wire) == 25.0
    watchdog = REGISTRY.get("infypower-reg").header.watchdog_s
    assert watchdog == 10.0
    wire.clock.now += watchdog - 0.5
    assert await polled_current(wire) == 25.0  # polls are no commands, but not yet due
    wire.clock.now += 0.5
    assert await polled_current(wire) == 0.0
    assert not module.switched_on


def _lock(frame: can.Message) -> LockState | None:
    outcome, decoded = BOARD_CODEC.decode(frame)
    if outcome is not Outcome.DECODED or decoded is None or decoded.message != "BOARD_Status":
        return None
    return BoardState().apply(decoded, 0.0).lock


async def test_the_wire_board_tells_its_lock_moving_then_locked(wire: Wire) -> None:
    wire.tap.drain()
    wire.tap.send(
        board_command(BOARD_CODEC, allow_power_on=False, reason=PowerReason.POWER_OFF, lock=True)
    )
    states = await wire.tap.collect(
        3.0,
        lambda frame: _lock(frame) is not None,
        until=lambda frames: any(_lock(f) is LockState.LOCKED for f in frames),
    )
    seen = [_lock(frame) for frame in states]
    assert LockState.LOCKED in seen, seen
    first_locked = seen.index(LockState.LOCKED)
    assert LockState.MOVING in seen[:first_locked]
    assert set(seen[:first_locked]) <= {LockState.UNLOCKED, LockState.MOVING}


async def test_a_jammed_wire_lock_reports_fault(wire: Wire) -> None:
    board = wire.bus.boards[0]
    board.lock_jammed = True
    wire.tap.drain()
    wire.tap.send(
        board_command(BOARD_CODEC, allow_power_on=False, reason=PowerReason.POWER_OFF, lock=True)
    )
    states = await wire.tap.collect(
        4.0,
        lambda frame: _lock(frame) is not None,
        until=lambda frames: any(_lock(f) is LockState.FAULT for f in frames),
    )
    seen = [_lock(frame) for frame in states]
    assert LockState.FAULT in seen, seen
    assert LockState.LOCKED not in seen
