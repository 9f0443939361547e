"""A CAN bus that fails: error frames and bus-off are counted and logged once per interval, an
interface that disappears is closed and opened again, one that cannot be opened is retried, and
throughout the bridge keeps serving with its EVSEs on the safe side."""

from __future__ import annotations

import asyncio
import logging

import can
import pytest

from csbridge.config import Config
from csbridge.service.station import Station
from csbridge.sources.can.bus import BusLink
from csbridge.testing.harness import wait_until as _until
from tests.conftest import josev_for, stop_bridge
from tests.integration.test_can_runtime import DC, _dc

BUS_OFF = 0x040
CONTROLLER = 0x004


def _link(station: Station, name: str = "sim-can0") -> BusLink:
    return station.buses.links[name]


async def test_error_frames_and_bus_off_are_counted_by_class_and_logged_once_per_kind(
    wire_station: Station, wire_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    counters = wire_station.engine.counters
    before = _dc(wire_station)
    caplog.set_level(logging.WARNING, logger="csbridge.can")
    injector = can.Bus(channel=wire_config.bus[0].interface_channel, interface="virtual")
    try:
        for _ in range(50):
            injector.send(can.Message(arbitration_id=BUS_OFF, is_error_frame=True, dlc=8))
            injector.send(can.Message(arbitration_id=CONTROLLER, is_error_frame=True, dlc=8))
        await _until(lambda: counters.get("can_bus_off", "sim-can0") == 50)
    finally:
        injector.shutdown()
    assert counters.get("can_error_frames", "sim-can0/bus_off") == 50
    assert counters.get("can_error_frames", "sim-can0/controller") == 50
    lines = [r.getMessage() for r in caplog.records if "event=can_error_frame" in r.getMessage()]
    assert len([line for line in lines if "class=bus_off" in line]) == 1
    assert len([line for line in lines if "class=controller" in line]) == 1
    assert all("repeats=0" in line for line in lines)
    # Error frames are no device's frames: nothing decoded from them, no limit raised.
    after = _dc(wire_station)
    assert float(after["max_current"]) <= float(before["max_current"])
    assert after["status_code"] == "evse_ready"


async def test_an_interface_that_disappears_is_opened_again_and_the_stack_comes_back(
    wire_station: Station,
) -> None:
    link = _link(wire_station)
    counters = wire_station.engine.counters
    bus = link.bus
    assert bus is not None
    bus.shutdown()  # as if the adapter were pulled: every read and write now fails
    await _until(lambda: counters.get("can_bus_failed", "sim-can0") == 1, timeout=5)
    await _until(lambda: counters.get("can_bus_reopened", "sim-can0") == 1, timeout=5)
    assert link.bus is not None
    assert link.bus is not bus
    await _until(lambda: _dc(wire_station)["max_current"] == 240.0, timeout=10)
    assert _dc(wire_station)["status_code"] == "evse_ready"


async def test_a_bus_gone_for_good_takes_its_evse_to_the_safe_side_and_the_bridge_serves_on(
    wire_station: Station, wire_config: Config
) -> None:
    link = _link(wire_station)
    counters = wire_station.engine.counters

    def fail_to_open() -> can.BusABC:
        raise can.CanInitializationError("No such device: sim-can0")

    link.open = fail_to_open  # type: ignore[method-assign]  # the interface is not there any more
    assert link.bus is not None
    link.bus.shutdown()
    await _until(lambda: counters.get("can_bus_open_failed", "sim-can0") >= 2, timeout=8)
    # The modules fall silent; their 3 s deadline takes the EVSE out of service.
    await _until(lambda: _dc(wire_station)["status_code"] == "evse_malfunction", timeout=8)
    assert _dc(wire_station)["max_current"] == 0.0
    async with josev_for(wire_config) as josev:
        await josev.boot(timeout=5)
        assert josev.problems == []
        assert josev.view.evses[DC]["status_code"] == "evse_malfunction"


async def test_a_bus_that_cannot_be_opened_at_start_is_retried_while_the_bridge_serves(
    wire_config: Config,
) -> None:
    raw = wire_config.model_dump(mode="json", exclude_none=True)
    # Real modules on an interface this machine lacks: python-can fails to open it (ENODEV
    # where SocketCAN exists, EAFNOSUPPORT where it does not), as on a board whose can0 is down.
    raw["bus"][0].update(interface="socketcan", channel="csbnone0")
    for module in raw["evse"][0]["module"]:
        del module["simulated"]
    config = Config.model_validate(raw)
    station = Station(config)
    task = asyncio.create_task(station.run())
    try:
        counters = station.engine.counters
        await _until(lambda: counters.get("can_bus_open_failed", "sim-can0") >= 2, timeout=5)
        assert not task.done()
        await asyncio.wait_for(station.bridge.link.connected.wait(), 5)
        entry = _dc(station)
        assert entry["status_code"] == "evse_not_ready"
        assert entry["max_current"] == 0.0
    finally:
        await stop_bridge(task)
