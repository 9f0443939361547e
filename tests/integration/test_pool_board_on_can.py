"""examples/shared-pool.toml with its contactor matrix board on a (virtual) CAN bus, through a
real mosquitto (issue 18): the station commands the board with MATRIX_Command frames on the
wire and reads its MATRIX_Feedback back; the simulated board answers on the other end. The
frames a tap sees are read by the DBC's facts written here (0x320/0x330, contact from module m
to bus b = bit 4*m + b, little-endian), not by the codec."""

from __future__ import annotations

import can
import pytest

from csbridge.config import Config, load_config
from csbridge.power import CanMatrixDriver
from csbridge.resources import example_config
from csbridge.service.station import Station
from csbridge.session import PoolCoordinator
from csbridge.testing.can_tap import StationCan
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from tests.support import precharge_then_charge, ready_for_cable_check, ready_to_charge

EVSE1 = "DE*CSB*E0001"
EVSE2 = "DE*CSB*E0002"
COMMAND_ID = 0x320
FEEDBACK_ID = 0x330
BUS_OF = {EVSE1: 0, EVSE2: 1}
"""The example's contactors: module mN to EVSE1 is CLOSE_M{N-1}_B0, to EVSE2 ..._B1."""


def _board_on_can() -> Config:
    """examples/shared-pool.toml, its board simulated on the virtual bus `can0`."""
    raw = load_config(example_config("shared-pool.toml")).model_dump(mode="json", exclude_none=True)
    raw["bus"] = [{"name": "can0", "interface": "virtual", "bitrate": 250000}]
    raw["pool"][0]["board"] = {"bus": "can0", "simulated": {"delay_s": 0.02}}
    return Config.model_validate(raw)


pytestmark = [pytest.mark.csbridge_config(_board_on_can(), settle_s=0.2)]


def _contacts(data: bytes) -> dict[str, set[str]]:
    """Per module of the example, the EVSEs a frame's bits name (the DBC's facts)."""
    value = int.from_bytes(data, "little")
    found: dict[str, set[str]] = {}
    for module in range(6):
        for evse_id, bus in BUS_OF.items():
            if value >> (4 * module + bus) & 1:
                found.setdefault(f"m{module + 1}", set()).add(evse_id)
    return found


def _pool(station: Station) -> PoolCoordinator:
    [pool] = station.pools
    return pool


async def test_a_module_moves_between_evses_through_the_board_on_the_wire(
    station: Station, josev: JosevClient, csbridge_can: StationCan
) -> None:
    pool = _pool(station)
    assert isinstance(pool.matrix, CanMatrixDriver)
    tap = csbridge_can.tap("can0")
    await josev.boot(timeout=5)
    await ready_to_charge(station, josev, EVSE1)
    await wait_until(lambda: len(pool.serving(EVSE1)) == 6, 5, "six modules serve EVSE1")
    await precharge_then_charge(josev, EVSE1, 450.0)
    tap.drain()
    decision = pool.status.decision
    await ready_for_cable_check(station, josev, EVSE2)
    await wait_until(lambda: pool.sequencer.settled and pool.status.decision > decision, 5, "moved")
    assert len(pool.serving(EVSE1)) == len(pool.serving(EVSE2)) == 3
    for evse_id in (EVSE1, EVSE2):
        await wait_until(
            lambda e=evse_id: josev.view.evses[e]["dc"]["max_power"] == 90000, 5, "90 kW each"
        )
    # On the wire: the station's commands and the board's feedback both say where each
    # module is now, every module on one EVSE only.
    expected = {name: {EVSE1} for name in pool.serving(EVSE1)}
    expected |= {name: {EVSE2} for name in pool.serving(EVSE2)}

    def seen(frames: list[can.Message], frame_id: int) -> dict[str, set[str]] | None:
        latest = [f for f in frames if f.arbitration_id == frame_id and not f.is_extended_id]
        return _contacts(bytes(latest[-1].data)) if latest else None

    frames = await tap.collect(
        2.0,
        until=lambda found: (
            seen(found, COMMAND_ID) == expected and seen(found, FEEDBACK_ID) == expected
        ),
    )
    assert seen(frames, COMMAND_ID) == expected
    assert seen(frames, FEEDBACK_ID) == expected
    assert all(len(f.data) == 8 for f in frames if f.arbitration_id in (COMMAND_ID, FEEDBACK_ID))
    assert station.engine.counters.total("hardware_faults") == 0
    assert station.engine.counters.total("matrix_board_silent") == 0
    josev.assert_no_problems()


async def test_a_board_that_falls_silent_takes_its_modules_out(
    station: Station, josev: JosevClient
) -> None:
    pool = _pool(station)
    await josev.boot(timeout=5)
    await ready_for_cable_check(station, josev, EVSE1)
    await wait_until(lambda: len(pool.serving(EVSE1)) == 6, 5, "six modules serve EVSE1")
    station.devices.matrices["cabinet"].silent = True
    await wait_until(lambda: pool.matrix.feedback() is None, 2, "every contact unknown")
    await wait_until(lambda: len(pool.sequencer.faulted) == 6, 5, "every module faulted")
    assert pool.serving(EVSE1) == frozenset()
    assert station.engine.counters.get("matrix_board_silent", "cabinet") == 1
    assert station.engine.counters.total("hardware_faults") == 6
    fault = await josev.wait_for_update(
        lambda m: m.data["component_name"] == "m1", name="hardware_fault"
    )
    assert fault.data["evse_id"] == EVSE1
    # Each faulted module is switched off and, once it carries no current, its contactors are
    # told to open: the silent board still hears its commands.
    board = station.devices.matrices["cabinet"]
    await wait_until(lambda: board.commanded == frozenset(), 5, "every contactor told open")
    for (_, name), module in station.devices.modules.items():
        assert module.output_current == 0.0, name


def test_a_pool_on_a_can_board_takes_no_step_until_the_board_is_first_heard() -> None:
    """Until the board's first feedback every contact is unknown: a session event stepping the
    pool then must not start a move (the sequencer would soon fault every module for good)."""
    station = Station(_board_on_can())
    pool = _pool(station)
    assert isinstance(pool.matrix, CanMatrixDriver)
    assert pool.holding
    pool.step()  # as a plug-in or an evaluation would
    assert pool.status.decision == 0
    assert all(target is None for target in pool.sequencer.target.values())
    assert not pool.sequencer.faulted
