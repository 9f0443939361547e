"""Every shipped module family end to end on python-can's virtual bus: the example station with
its DC EVSE's modules swapped for one family's wire simulators (`simulated = {...}`), their
answers read into limits, Josev's setpoint clamped and split into the family's command frames,
which the simulators obey. The frames are read here by decoders written from the public facts
(hal/*.toml name the sources), not by csbridge's codec. Infypower runs the same way in
test_dc_session.py."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import can
import pytest

from csbridge.config import Config, load_config
from csbridge.service.station import Station
from csbridge.sources.simulated.can_devices import SimulatedCanModule
from csbridge.support.resources import example_config
from csbridge.testing.can_tap import CanTap
from csbridge.testing.harness import running_station, wait_until
from csbridge.testing.josev import JosevClient
from csbridge.testing.plugin import ConfigFactory
from tests.support import ready_to_charge

DC = "DE*CSB*E0001"
CONTROLLER = 0xF0

Setpoint = tuple[str, int, float]
"""What a command frame sets, read from the facts: ("voltage" | "current", module, value)."""


def huawei_setpoint(frame: can.Message) -> Setpoint | None:
    # 0x108180FE, byte0 0x01, byte1 0x00 online V (x 1024) / 0x03 online I (x 20), bytes 6-7
    data = bytes(frame.data)
    if frame.arbitration_id != 0x108180FE or data[0] != 0x01:
        return None
    raw = int.from_bytes(data[6:8], "big")
    if data[1] == 0x00:
        return ("voltage", 0, raw / 1024)
    return ("current", 0, raw / 20) if data[1] == 0x03 else None


def uugreen_setpoint(frame: can.Message) -> Setpoint | None:
    # bits 28-25 version 1, 24-21 monitor 1, 20-14 module; byte0 SetData (0), byte1 the command:
    # 2 VoutReference [mV], 3 IoutLimit [mA]
    data = bytes(frame.data)
    identifier = frame.arbitration_id
    if identifier >> 21 != 0b10001 or data[0] != 0x00:
        return None
    module = (identifier >> 14) & 0x7F
    value = int.from_bytes(data[4:], "big") / 1000
    return {2: ("voltage", module, value), 3: ("current", module, value)}.get(data[1])


def winline_setpoint(frame: can.Message) -> Setpoint | None:
    # bits 28-20 protocol 0x060, 18-11 destination, 10-3 source; function 0x03 set, bytes 2-3
    # the register: 0x0021 Vout (float V), 0x001B Iout (u32, A x 1024)
    data = bytes(frame.data)
    identifier = frame.arbitration_id
    if identifier >> 20 != 0x060 or (identifier >> 3) & 0xFF != CONTROLLER or data[0] != 0x03:
        return None
    module = (identifier >> 11) & 0xFF
    register = int.from_bytes(data[2:4], "big")
    if register == 0x0021:
        return ("voltage", module, struct.unpack(">f", data[4:])[0])
    if register == 0x001B:
        return ("current", module, int.from_bytes(data[4:], "big") / 1024)
    return None


@dataclass(frozen=True)
class Family:
    profile: str
    addresses: tuple[int, ...]
    simulated: dict[str, float]
    full_current: float
    """The EVSE's max_current once every module is read."""
    setpoint: tuple[float, float]
    reads: Callable[[can.Message], Setpoint | None]
    dc_limits: dict[str, float] = field(default_factory=dict)


FAMILIES = [
    Family(
        "huawei-r4850",
        (0,),
        {"max_voltage_v": 58, "min_voltage_v": 42, "max_current_a": 50, "max_power_w": 3000},
        50.0,
        (53.5, 20.0),
        huawei_setpoint,
        {"min_voltage_v": 40.0},
    ),
    Family(
        "uugreen-ur1000x0",
        (1, 2),
        {"max_voltage_v": 1000, "min_voltage_v": 150, "max_current_a": 100, "max_power_w": 40000},
        200.0,
        (400.0, 30.0),
        uugreen_setpoint,
    ),
    Family(
        "winline-nxr",
        (1, 2),
        {"max_voltage_v": 1000, "min_voltage_v": 200, "max_current_a": 100, "max_power_w": 30000},
        200.0,
        (500.0, 40.0),
        winline_setpoint,
    ),
]


def family_config(factory: ConfigFactory, family: Family) -> Config:
    """The example station, its DC EVSE fed by `family`'s modules on sim-can0."""
    raw: dict[str, Any] = load_config(example_config("sim-station.toml")).model_dump(
        mode="json", exclude_none=True
    )
    dc = next(evse for evse in raw["evse"] if evse["evse_id"] == DC)
    dc["module"] = [
        {
            "name": f"m{index}",
            "address": address,
            "can": {"profile": family.profile, "bus": "sim-can0"},
            "simulated": family.simulated,
        }
        for index, address in enumerate(family.addresses, start=1)
    ]
    dc["dc_limits"].update(family.dc_limits)
    return factory(Config.model_validate(raw), settle_s=0.2)


def modules(station: Station, family: Family) -> list[SimulatedCanModule]:
    found = []
    for index in range(1, len(family.addresses) + 1):
        module = station.devices.modules[(DC, f"m{index}")]
        assert isinstance(module, SimulatedCanModule)
        found.append(module)
    return found


def setpoint(voltage: float, current: float) -> dict[str, Any]:
    return {
        "evse_id": DC,
        "dc": {"voltage": voltage, "charge_current": current},
        "ev_limits": {"maximum_voltage": 800.0},
        "is_precharge": False,
    }


async def seen_setpoints(tap: CanTap, family: Family) -> dict[tuple[str, int], float]:
    """The latest voltage and current the station sent each module, read off the bus."""
    wanted = {
        (quantity, address) for quantity in ("voltage", "current") for address in family.addresses
    }
    latest: dict[tuple[str, int], float] = {}

    def note(frame: can.Message) -> bool:
        read = family.reads(frame)
        if read is None:
            return False
        latest[(read[0], read[1])] = read[2]
        return True

    tap.drain()
    await tap.collect(5.0, note, until=lambda _: set(latest) >= wanted)
    assert set(latest) >= wanted, f"no setpoint frames for {wanted - set(latest)}"
    return latest


@pytest.mark.parametrize("family", FAMILIES, ids=[family.profile for family in FAMILIES])
async def test_a_family_runs_module_to_limits_to_setpoint_to_frames(
    csbridge_config_factory: ConfigFactory, family: Family
) -> None:
    config = family_config(csbridge_config_factory, family)

    def full(station: Station) -> bool:
        return bool(station.engine.entries.get(DC)["dc"]["max_current"] == family.full_current)

    async with running_station(config, ready=full, ready_timeout=15.0) as station:
        counters = station.engine.counters
        assert counters.get("can_frames", f"sim-can0/{family.profile}/decoded") > 0
        readings = station.engine.inputs(DC).modules
        for name in readings:
            assert readings[name].temperature_c == pytest.approx(35.0)  # the simulators' own
        tap = CanTap(config.bus[0])
        try:
            async with JosevClient.for_config(config) as josev:
                await ready_to_charge(station, josev, DC)
                voltage, current = family.setpoint
                answer = await josev.request(
                    "power_electronics_setpoint", setpoint(voltage, current)
                )
                assert answer.data["status"] == "accepted", answer.data
                share = current / len(family.addresses)
                await wait_until(
                    lambda: all(
                        module.output_voltage == pytest.approx(voltage, abs=0.01)
                        and module.output_current == pytest.approx(share, abs=0.01)
                        for module in modules(station, family)
                    ),
                    15,
                    f"every {family.profile} module at {voltage} V, {share} A",
                )
                sent = await seen_setpoints(tap, family)
        finally:
            tap.close()
    for address in family.addresses:
        assert sent[("voltage", address)] == pytest.approx(voltage, abs=0.01)
        assert sent[("current", address)] == pytest.approx(share, abs=0.01)
        assert sent[("current", address)] <= share


async def test_uugreen_goes_to_high_mode_above_500_v_and_never_gets_a_setpoint_before(
    csbridge_config_factory: ConfigFactory,
) -> None:
    family = next(family for family in FAMILIES if family.profile == "uugreen-ur1000x0")
    config = family_config(csbridge_config_factory, family)

    def full(station: Station) -> bool:
        return bool(station.engine.entries.get(DC)["dc"]["max_current"] == family.full_current)

    async with running_station(config, ready=full, ready_timeout=15.0) as station:
        wire = modules(station, family)
        async with JosevClient.for_config(config) as josev:
            await ready_to_charge(station, josev, DC)
            for voltage in (400.0, 650.0, 450.0):
                answer = await josev.request("power_electronics_setpoint", setpoint(voltage, 20.0))
                assert answer.data["status"] == "accepted", answer.data
                await wait_until(
                    lambda voltage=voltage: all(
                        module.output_voltage == pytest.approx(voltage) for module in wire
                    ),
                    15,
                    f"both modules at {voltage} V",
                )
                assert all(module.high_mode is (voltage > 500.0) for module in wire)
    assert [module.setpoints_above_low_mode for module in wire] == [0, 0]
    assert [module.mode_changes_while_on for module in wire] == [0, 0]
