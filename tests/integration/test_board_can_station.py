"""The generic charger board on CAN against a whole station: the simulated board on python-can's
virtual bus, read, commanded (contactor, PWM, connector lock), driven as the EV's pilot and
silenced end to end (the codec itself: tests/unit/test_board_can.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import can
import pytest
import pytest_asyncio

from csbridge.config import Config
from csbridge.messages.payloads import (
    CableCheckRequest,
    CpPwmRequest,
    HlcChargingUpdate,
    StopChargingRequest,
)
from csbridge.service.station import Station
from csbridge.session.machine import Pilot
from csbridge.sources.can.codec import DbcCodec, PowerReason, board_command
from csbridge.sources.can.profile import ProfileRegistry
from csbridge.sources.readings import CpState, LockState
from csbridge.sources.simulated.can_devices import SimulatedCanBoard
from csbridge.testing.brokers import Broker
from csbridge.testing.harness import wait_until as _until
from tests.conftest import stop_bridge
from tests.support import unique_prefix, wire_station_config

REGISTRY = ProfileRegistry()
PROFILE = REGISTRY.get("generic-charger-board")
CODEC = DbcCodec(PROFILE, REGISTRY.dbc_path(PROFILE))
DC = "DE*CSB*E0001"


def _dc(station: Station) -> dict[str, Any]:
    entry = station.engine.entries.get(DC)
    return {**entry["dc"], "status_code": entry["status_code"]}


@pytest.fixture
def board_config(broker: Broker) -> Config:
    """The wire station of tests/support.py, its DC board on the IMD's bus as well."""
    raw = wire_station_config(broker.url, unique_prefix()).model_dump(
        mode="json", exclude_none=True
    )
    dc = next(evse for evse in raw["evse"] if evse["evse_id"] == DC)
    dc["board"]["can"] = {"profile": "generic-charger-board", "bus": "sim-can1"}
    assert dc["board"]["simulated"]  # kept: the simulated board is built, on the wire
    return Config.model_validate(raw)


@pytest_asyncio.fixture
async def board_station(board_config: Config) -> AsyncIterator[Station]:
    station = Station(board_config)
    task = asyncio.create_task(station.run())
    try:
        await _until(
            lambda: (
                _dc(station)["max_current"] == 240.0 and _dc(station)["status_code"] == "evse_ready"
            )
        )
        yield station
    finally:
        await stop_bridge(task)


def _wire_board(station: Station) -> SimulatedCanBoard:
    board = station.devices.boards[DC]
    assert isinstance(board, SimulatedCanBoard)
    return board


async def test_the_station_reads_the_board_off_the_bus(board_station: Station) -> None:
    assert _dc(board_station)["status_code"] == "evse_ready"
    counters = board_station.engine.counters
    decoded_frames = "sim-can1/generic-charger-board/decoded"
    await _until(lambda: counters.get("can_frames", decoded_frames) >= 12)
    reading = board_station.engine.inputs(DC).board
    assert reading is not None
    assert reading.cp_state is CpState.A
    assert reading.contactor_closed is False
    assert reading.plug_temperature_c == pytest.approx(30.0)
    assert reading.phases is None  # a DC EVSE's board
    assert board_station.devices.reading_level() == [
        board_station.devices.boards["DE*CSB*E0002"]  # the AC EVSE's board has no `can`
    ]


async def test_a_hot_plug_on_the_wire_derates_the_dc_current(board_station: Station) -> None:
    board = _wire_board(board_station)
    board.plug_temperature_c = 80.0
    board_station.devices.emit(board)
    # the plug curve: 250 A at 70 degC, 50 A at 90 degC -> 150 A at 80 degC
    await _until(lambda: _dc(board_station)["max_current"] == 150.0)
    assert board_station.engine.reported_binding(DC)["max_current"] == "temperature"
    board.plug_temperature_c = 35.0
    board_station.devices.emit(board)
    await _until(lambda: _dc(board_station)["max_current"] == 240.0)


async def test_the_e_stop_on_the_wire_is_an_emergency_shutdown(board_station: Station) -> None:
    board = _wire_board(board_station)
    board.emergency_stop = True
    board_station.devices.emit(board)
    await _until(lambda: _dc(board_station)["status_code"] == "evse_emergency_shutdown")
    assert _dc(board_station)["max_current"] == 0


async def test_a_power_on_command_closes_the_simulated_contactor(
    board_station: Station, board_config: Config
) -> None:
    board = _wire_board(board_station)
    channel = next(b for b in board_config.bus if b.name == "sim-can1").interface_channel
    controller = can.Bus(channel=channel, interface="virtual")

    def engine_contactor() -> bool | None:
        reading = board_station.engine.inputs(DC).board
        return None if reading is None else reading.contactor_closed

    try:
        controller.send(
            board_command(
                CODEC,
                allow_power_on=True,
                reason=PowerReason.FULL_POWER_CHARGING,
                pwm_on=True,
                duty_percent=5.0,
            )
        )
        elapsed = await _until(lambda: engine_contactor() is True, timeout=3.0)
        assert elapsed < 1.0  # 0.1 s pull-in, told at once
        assert board.contactor_closed
        assert (board.pwm_on, board.pwm_duty_percent) == (True, 5.0)
        assert board.last_command is not None
        assert board.last_command.reason is PowerReason.FULL_POWER_CHARGING
        controller.send(board_command(CODEC, allow_power_on=False, reason=PowerReason.POWER_OFF))
        await _until(lambda: engine_contactor() is False, timeout=3.0)
    finally:
        controller.shutdown()


async def test_a_silent_board_is_a_malfunction(board_station: Station) -> None:
    _wire_board(board_station).silent = True
    elapsed = await _until(lambda: _dc(board_station)["status_code"] == "evse_malfunction")
    assert elapsed < 3.0 + 1.0  # the board's deadline


def _contactor(station: Station) -> bool | None:
    board = station.engine.inputs(DC).board
    return None if board is None else board.contactor_closed


async def test_the_session_drives_the_board_over_can(board_station: Station) -> None:
    """cable_check closes the contactors with BOARD_Command; cp_pwm turns the PWM on; stop opens
    them: all over the bus, seen back in the board's own status frames."""
    session = board_station.session
    board = _wire_board(board_station)
    board.cp_state = CpState.B  # plugged in: free vend authorizes
    board_station.devices.emit(board)
    session.hlc_charging(HlcChargingUpdate(evse_id=DC, status=True))
    board.cp_state = CpState.C  # the EV closed S2
    board_station.devices.emit(board)
    await _until(lambda: session.sessions[DC].machine.facts.pilot is Pilot.CD)
    message = CableCheckRequest(evse_id=DC, cable_check_action="start")
    started = session.cable_check(message)
    assert started is not None
    assert started.cable_check_status == "ongoing"
    await _until(lambda: _contactor(board_station) is True)
    pwm = CpPwmRequest(evse_id=DC, hlc=True, error_state=False, fault_state=False)
    answered = session.cp_pwm(pwm)
    assert answered is not None
    assert answered.status == "valid"
    await _until(lambda: _wire_board(board_station).pwm_on)
    assert _wire_board(board_station).pwm_duty_percent == pytest.approx(5.0)
    stop = StopChargingRequest(evse_id=DC)
    stopped = session.stop_charging(stop)
    assert stopped is not None
    assert stopped.status == "accepted"
    await _until(lambda: _contactor(board_station) is False)


def _lock(station: Station) -> LockState | None:
    board = station.engine.inputs(DC).board
    return None if board is None else board.lock


async def test_the_station_locks_and_unlocks_over_can(board_station: Station) -> None:
    """PowerStage.lock sends BOARD_Command with CMD_LOCK; the board's status frames tell the
    travel back (moving, then locked) well within the 1 s a lock has to confirm."""
    assert _lock(board_station) is LockState.UNLOCKED
    seen: list[LockState | None] = []

    def locked() -> bool:
        seen.append(_lock(board_station))
        return seen[-1] is LockState.LOCKED

    assert board_station.stage.lock(DC) is True
    elapsed = await _until(locked, timeout=3.0)
    assert elapsed < 1.0
    assert LockState.MOVING in seen
    command = _wire_board(board_station).last_command
    assert command is not None
    assert command.lock is True
    assert board_station.stage.unlock(DC) is True
    await _until(lambda: _lock(board_station) is LockState.UNLOCKED, timeout=3.0)


async def test_a_jammed_lock_is_not_confirmed_and_then_faults(board_station: Station) -> None:
    _wire_board(board_station).lock_jammed = True
    board_station.stage.lock(DC)
    await _until(lambda: _lock(board_station) is LockState.MOVING, timeout=3.0)
    elapsed = await _until(lambda: _lock(board_station) is LockState.FAULT, timeout=5.0)
    assert elapsed > 1.0  # unconfirmed past the station's 1 s before the board gives up


async def test_the_wire_board_plays_the_evs_pilot(board_station: Station) -> None:
    def cp() -> CpState | None:
        board = board_station.engine.inputs(DC).board
        return None if board is None else board.cp_state

    devices = board_station.devices
    assert devices.apply(DC, {"action": "ev_ready"}) is not None  # not plugged in
    for action, state in [
        ("plug_in", CpState.B),
        ("ev_ready", CpState.C),
        ("ev_pause", CpState.B),
        ("unplug", CpState.A),
    ]:
        assert devices.apply(DC, {"action": action}) is None
        await _until(lambda state=state: cp() is state, timeout=3.0, what=f"CP {state}")
