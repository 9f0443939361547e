"""A module that broadcasts instead of answering polls (the made-up 30 kW ACME BC30 of
fixtures/hal/acme-bc30.toml: status every 100 ms, capability every second), simulated on
python-can's virtual bus: it sends its profile's cyclic messages at their periods, obeys its
commands, and a whole station built on it becomes ready. Frames are read and built here by
hand from the profile's comments, not by the codec under test."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import Any

import can
import pytest_asyncio

from csbridge.config import BusConfig, Config
from csbridge.service.station import Station
from csbridge.sources.can import ProfileRegistry
from csbridge.sources.simulated.can_devices import SimulatedCanBus, build_wire_module
from csbridge.testing.brokers import Broker
from csbridge.testing.can_tap import CanTap
from csbridge.testing.harness import wait_until
from tests.conftest import stop_bridge
from tests.support import FIXTURES, unique_prefix, wire_station_config

DC = "DE*CSB*E0001"
ADDRESS = 5
STATUS_ID = 0x00AC0100 | ADDRESS
"""Group 0x0AC (from the module) in bits 16-28, message 0x01, the address in bits 0-7."""
CAPABILITY_ID = 0x00AC0200 | ADDRESS
SETPOINT_ID = 0x00AD1000 | ADDRESS
"""Group 0x0AD (to the module), message 0x10."""
SWITCH_ID = 0x00AD1100 | ADDRESS
BC30 = {
    "name": "bc30",
    "address": ADDRESS,
    "can": {"profile": "acme-bc30", "bus": "sim-can1"},
    "simulated": {
        "max_voltage_v": 1000,
        "min_voltage_v": 150,
        "max_current_a": 100,
        "max_power_w": 30000,
    },
}


def _config(broker_url: str) -> Config:
    """The wire station, its DC EVSE on one BC30 (on the 250 kbit/s bus), the fixtures' profile
    folder in profile_dirs."""
    raw = wire_station_config(broker_url, unique_prefix()).model_dump(
        mode="json", exclude_none=True
    )
    raw["station"]["profile_dirs"] = [str(FIXTURES / "hal")]
    dc = next(evse for evse in raw["evse"] if evse["evse_id"] == DC)
    dc["module"] = [BC30]
    return Config.model_validate(raw)


def _status(frame: can.Message) -> tuple[float, float] | None:
    """(voltage, current) of a status frame: u16 little-endian at 0 and 2, 0.1 V and 0.1 A."""
    if frame.arbitration_id != STATUS_ID or not frame.is_extended_id:
        return None
    volts, amps = struct.unpack_from("<HH", bytes(frame.data), 0)
    return volts / 10, amps / 10


@pytest_asyncio.fixture
async def wire(broker: Broker) -> AsyncIterator[tuple[SimulatedCanBus, CanTap]]:
    config = _config(broker.url)
    bus_config = next(bus for bus in config.bus if bus.name == "sim-can1")
    registry = ProfileRegistry(extra=config.station.profile_dirs)
    module_config = next(e for e in config.evse if e.evse_id == DC).module[0]
    bus = SimulatedCanBus(bus_config)
    bus.modules.append(build_wire_module(DC, module_config, bus_config, registry))
    tap = CanTap(BusConfig(name="tap", interface="virtual", channel=bus_config.channel))
    task = asyncio.create_task(bus.run())
    try:
        await wait_until(lambda: bus.bus is not None, what="the simulators' bus open")
        yield bus, tap
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        tap.close()


async def test_the_module_broadcasts_status_ten_times_as_often_as_capability(
    wire: tuple[SimulatedCanBus, CanTap],
) -> None:
    _, tap = wire
    tap.drain()
    frames = await tap.collect(2.5, lambda f: f.arbitration_id in (STATUS_ID, CAPABILITY_ID))
    status = [f for f in frames if f.arbitration_id == STATUS_ID]
    capability = [f for f in frames if f.arbitration_id == CAPABILITY_ID]
    assert 1 <= len(capability) <= 4, len(capability)
    assert len(status) >= 10
    assert len(status) >= 4 * len(capability), (len(status), len(capability))
    max_v, min_v, max_a, max_w = struct.unpack("<HHHH", bytes(capability[0].data))
    assert (max_v / 10, min_v / 10, max_a / 10, max_w) == (1000.0, 150.0, 100.0, 30000)
    assert _status(status[-1]) == (0.0, 0.0)


async def test_the_broadcasting_module_obeys_its_commands(
    wire: tuple[SimulatedCanBus, CanTap],
) -> None:
    bus, tap = wire
    tap.send(
        can.Message(
            arbitration_id=SETPOINT_ID, is_extended_id=True, data=struct.pack("<HH", 4000, 250)
        )
    )
    tap.send(can.Message(arbitration_id=SWITCH_ID, is_extended_id=True, data=b"\x01"))
    tap.drain()
    found = await tap.collect(3.0, lambda f: _status(f) == (400.0, 25.0), until=bool)
    assert found, "the status never showed the commanded output"
    assert bus.modules[0].switched_on
    tap.send(can.Message(arbitration_id=SWITCH_ID, is_extended_id=True, data=b"\x00"))
    found = await tap.collect(3.0, lambda f: _status(f) == (0.0, 0.0), until=bool)
    assert found, "the status never showed the output off"


def _dc(station: Station) -> dict[str, Any]:
    entry = station.engine.entries.get(DC)
    return {**entry["dc"], "status_code": entry["status_code"]}


async def test_a_station_on_the_broadcasting_module_becomes_ready(broker: Broker) -> None:
    station = Station(_config(broker.url))
    task = asyncio.create_task(station.run())
    try:
        await wait_until(
            lambda: (
                _dc(station)["status_code"] == "evse_ready"
                and _dc(station)["max_power"] == 30000.0
                and _dc(station)["max_current"] == 100.0
            ),
            timeout=15.0,
            what="the DC EVSE ready on the BC30's capability",
        )
        counters = station.engine.counters
        assert counters.get("can_frames", "sim-can1/acme-bc30/decoded") > 0
    finally:
        await stop_bridge(task)
