"""Discharge end to end: a real mosquitto, Josev's emulator, the station, and two Infypower BEG
wire simulators on python-can's virtual bus. Josev charges, then asks a discharge: the station
ramps the charge to 0 A, switches the modules off, puts them in import mode, and sends the
import setpoint (cut-off, voltage, current) and on. The frames are checked byte for byte against
frames built here from the protocol facts (EVerest's InfyPower_BEG1K075G CanPackets.cpp and
chargebyte's InfypowerDCSupply, see hal/infypower-beg.toml), not by csbridge's encoder.
"""

from __future__ import annotations

import struct
from typing import Any

import can
import pytest

from csbridge.config import Config, load_config
from csbridge.service.station import Station
from csbridge.sources.simulated import InfypowerBegModule
from csbridge.support.resources import example_config
from csbridge.testing.can_tap import CanTap
from csbridge.testing.harness import running_station, wait_until
from csbridge.testing.josev import JosevClient
from csbridge.testing.plugin import ConfigFactory
from tests.support import ready_to_charge

DC = "DE*CSB*E0001"
CONTROLLER = 0xF0
WRITE = 0x24
ADDRESSES = (1, 2)
VOLTAGE = 400.0
TOTAL_A = 20.0


def write_id(module: int) -> int:
    """Error 0 (28-26), device 0x0A one module (25-22), command 0x24 write (21-16), the module
    (15-8), the controller (7-0)."""
    return (0x0A << 22) | (WRITE << 16) | (module << 8) | CONTROLLER


def register(reg: int, value: int) -> bytes:
    """Bytes 0-1 the register, 2-3 zero, 4-7 the value, u32 big-endian."""
    return struct.pack(">HHI", reg, 0, value)


ON = register(0x1110, 0xA0)
OFF = register(0x1110, 0xA1)
IMPORT_MODE = register(0x2110, 0xA1)
EXPORT_MODE = register(0x2110, 0xA0)


def bpt_config(factory: ConfigFactory) -> Config:
    """The example station, its DC EVSE on two bidirectional BEG modules and advertising BPT."""
    raw: dict[str, Any] = load_config(example_config("sim-station.toml")).model_dump(
        mode="json", exclude_none=True
    )
    dc = next(evse for evse in raw["evse"] if evse["evse_id"] == DC)
    dc["bpt"] = True
    dc["dc_bpt_limits"] = {"max_discharge_current_a": 100.0, "max_discharge_power_w": 40_000}
    dc["module"] = [
        {
            "name": f"m{address}",
            "address": address,
            "bidirectional": True,
            "can": {"profile": "infypower-beg", "bus": "sim-can0"},
            "simulated": {
                "max_voltage_v": 1000,
                "min_voltage_v": 200,
                "max_current_a": 70,
                "max_power_w": 22_000,
            },
        }
        for address in ADDRESSES
    ]
    return factory(Config.model_validate(raw), settle_s=0.2)


def modules(station: Station) -> list[InfypowerBegModule]:
    found = []
    for address in ADDRESSES:
        module = station.devices.modules[(DC, f"m{address}")]
        assert isinstance(module, InfypowerBegModule)
        found.append(module)
    return found


def writes_to(frames: list[can.Message], module: int) -> list[bytes]:
    return [
        bytes(frame.data)
        for frame in frames
        if frame.is_extended_id and frame.arbitration_id == write_id(module)
    ]


def charge(current: float) -> dict[str, Any]:
    return {
        "evse_id": DC,
        "dc": {"voltage": VOLTAGE, "charge_current": current},
        "ev_limits": {"maximum_voltage": 800.0},
    }


def discharge(current: float) -> dict[str, Any]:
    return {
        "evse_id": DC,
        "dc": {"voltage": VOLTAGE, "discharge_current": current},
        "ev_limits": {"maximum_voltage": 800.0},
    }


@pytest.mark.timeout(90)
async def test_a_discharge_setpoint_puts_the_beg_modules_in_import_through_zero(
    csbridge_config_factory: ConfigFactory,
) -> None:
    config = bpt_config(csbridge_config_factory)

    def advertised(station: Station) -> bool:
        bpt = station.engine.entries.get(DC).get("dc_bpt")
        return bool(bpt and bpt["evse_max_discharge_current"] == 100.0)

    async with running_station(config, ready=advertised, ready_timeout=15.0) as station:
        wire = modules(station)
        tap = CanTap(config.bus[0])
        try:
            async with JosevClient.for_config(config) as josev:
                await ready_to_charge(station, josev, DC)
                answer = await josev.request("power_electronics_setpoint", charge(TOTAL_A))
                assert answer.data["status"] == "accepted", answer.data
                await wait_until(
                    lambda: all(
                        not m.import_mode and m.output_current == pytest.approx(10.0) for m in wire
                    ),
                    20,
                    "both modules charging at 10 A in export mode",
                )
                tap.drain()
                answer = await josev.request("power_electronics_setpoint", discharge(TOTAL_A))
                assert answer.data["status"] == "accepted", answer.data
                await wait_until(
                    lambda: all(
                        m.import_mode and m.switched_on and m.output_current == pytest.approx(10.0)
                        for m in wire
                    ),
                    20,
                    "both modules importing 10 A",
                )
                await wait_until(
                    lambda: station.engine.entries.get(DC)["dc"]["present_current"] < -19.0,
                    10,
                    "the present current reported negative while discharging",
                )
                frames = await tap.collect(1.5)
                # the end of the session ends the discharge: modules off, contactor open
                stopped = await josev.request("stop_charging", {"evse_id": DC}, timeout=5)
                assert stopped.data["status"] == "accepted", stopped.data
                await wait_until(
                    lambda: all(not m.switched_on and m.output_current == 0.0 for m in wire),
                    10,
                    "both modules off after stop_charging",
                )
                board = station.devices.boards[DC]
                await wait_until(lambda: not board.contactor_closed, 10, "the contactor open")
        finally:
            tap.close()
    assert [m.direction_changes_while_on for m in wire] == [0, 0]
    for address in ADDRESSES:
        sent = writes_to(frames, address)
        cut_off = register(0x1132, 400_000)
        volts = register(0x1001, 400_000)
        amps = register(0x1002, 10_000)
        # the import setpoint: cut-off first, then voltage and current, then on
        first = sent.index(cut_off)
        assert sent[first : first + 4] == [cut_off, volts, amps, ON], sent
        # before it: the charge down to 0 A, off, and the mode change
        mode = sent.index(IMPORT_MODE)
        assert mode < first
        assert OFF in sent[:mode]
        assert register(0x1002, 0) in sent[: sent.index(OFF)]
        assert EXPORT_MODE not in sent[mode:]
