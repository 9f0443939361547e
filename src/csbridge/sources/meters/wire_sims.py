"""Simulated meters on the wire: the IVT-S sending its result frames on a (virtual) CAN bus, and
a Modbus meter served by pymodbus's own TCP server from its register map. Each plays what a
SimulatedMeter measures; the station reads them with the real CanMeter and ModbusMeter, so the
whole path from the wire on is the one a real meter takes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import can
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from csbridge.config import BusConfig
from csbridge.sources.meters.ivts import CanMeterProfile
from csbridge.sources.meters.register_map import RegisterMap
from csbridge.sources.meters.sample import values_of
from csbridge.sources.meters.simulated import SimulatedMeter

IVTS_CYCLE_S = 0.1
"""The shunt's cyclic results come every 100 ms (the cycle SI configures)."""


class SimulatedCanMeter:
    """A CAN meter's results, every cycle, from the simulated measurement."""

    kind = "simulated-can"

    def __init__(
        self, profile: CanMeterProfile, bus: BusConfig, meter: SimulatedMeter, cycle_s: float
    ) -> None:
        self.evse_id = meter.evse_id
        self.profile = profile
        self.bus_config = bus
        self.meter = meter
        self.cycle_s = cycle_s
        self._counter = 0

    def frames(self) -> list[can.Message]:
        """One cycle; the result that closes a cycle (the profile's first) goes last."""
        sample = self.meter.measure()
        values = values_of(sample)
        values["energy_counter_wh"] = (sample.energy_import_wh or 0.0) - (
            sample.energy_export_wh or 0.0
        )
        self._counter = (self._counter + 1) % 16
        frames = []
        for result in (*self.profile.results[1:], self.profile.results[0]):
            message = self.profile.database.get_message_by_frame_id(result.frame_id)
            signals: dict[str, Any] = {signal.name: 0 for signal in message.signals}
            signals[f"{result.signal}_INDEX"] = result.index
            signals[f"{result.signal}_COUNTER"] = self._counter
            signals[result.signal] = values.get(result.field) or 0.0
            frames.append(
                can.Message(
                    arbitration_id=result.frame_id,
                    data=message.encode(signals, strict=False),
                    is_extended_id=self.profile.extended,
                )
            )
        return frames

    async def run(self) -> None:
        """Until cancelled; silent while the meter is told to be."""
        bus = can.Bus(
            channel=self.bus_config.interface_channel, interface=self.bus_config.interface
        )
        try:
            while True:
                if not self.meter.silent:
                    for frame in self.frames():
                        bus.send(frame)
                await asyncio.sleep(self.cycle_s)
        finally:
            bus.shutdown()


class SimulatedModbusMeter:
    """A Modbus meter at `host:port`: pymodbus's server, whose registers are refilled from the
    simulated measurement on every read (through its device's action hook)."""

    kind = "simulated-modbus"

    def __init__(
        self,
        register_map: RegisterMap,
        meter: SimulatedMeter,
        *,
        device_id: int,
        host: str,
        port: int,
    ) -> None:
        self.evse_id = meter.evse_id
        self.register_map = register_map
        self.meter = meter
        self.device_id = device_id
        self.address = (host, port)

    def device(self) -> SimDevice:
        def span(function: int) -> list[SimData]:
            ends = [v.address + v.count for v in self.register_map.values if v.function == function]
            return [SimData(0, values=[0] * max(ends, default=1), datatype=DataType.REGISTERS)]

        bits = [SimData(0, values=[False], datatype=DataType.BITS)]
        return SimDevice(
            self.device_id, simdata=(bits, list(bits), span(3), span(4)), action=self._refill
        )

    async def _refill(
        self,
        function_code: int,
        start_address: int,
        _address: int,
        _count: int,
        current_registers: list[int],
        _set_values: list[int] | list[bool] | None,
    ) -> None:
        values = values_of(self.meter.measure())
        for value in self.register_map.values:
            offset = value.address - start_address
            if value.function != function_code or offset < 0:
                continue
            registers = value.encode(values.get(value.field) or 0.0)
            current_registers[offset : offset + len(registers)] = registers

    async def run(self) -> None:
        """Until cancelled."""
        server = ModbusTcpServer(self.device(), address=self.address)
        try:
            await server.serve_forever()
        finally:
            with contextlib.suppress(Exception):
                await server.shutdown()  # type: ignore[no-untyped-call]
