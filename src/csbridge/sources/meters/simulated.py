"""A meter without hardware: every period it measures what the station says flows (the EVSE's
simulated modules, or its AC current) and keeps its own import and export registers, as a real
meter counts inside itself. For the demo, the tests and the scenarios."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from csbridge.config import SimulatedMeterConfig
from csbridge.sources import MeterSample, ReadingSink

SIMULATED_PERIOD_S = 0.5


@dataclass(frozen=True, slots=True)
class Flow:
    """What flows now. DC: voltage and current (negative: back from the EV). AC: the phase
    voltage and the current per phase in use (negative: back to the grid)."""

    voltage: float
    current: float
    phases: int = 0
    """0: DC; 1 or 3: AC phases in use."""


class SimulatedMeter:
    kind = "simulated"

    def __init__(
        self,
        evse_id: str,
        config: SimulatedMeterConfig,
        measure: Callable[[], Flow],
        *,
        sink: ReadingSink,
        clock: Callable[[], float] = time.monotonic,
        period_s: float = SIMULATED_PERIOD_S,
    ) -> None:
        self.evse_id = evse_id
        self.config = config
        self._measure = measure
        self._sink = sink
        self._clock = clock
        self.period_s = period_s
        self.imported_wh = 0.0
        self.exported_wh = 0.0
        self.silent = False
        """A test's switch: the meter stops sending (its deadline then makes it a fault)."""
        self._last: tuple[float, float] | None = None
        """(time, power) of the last measurement: its power flowed until now."""

    def measure(self) -> MeterSample:
        now = self._clock()
        flow = self._measure()
        power = flow.voltage * flow.current * max(1, flow.phases)
        if self._last is not None:
            at, previous_power = self._last
            energy = previous_power * (now - at) / 3600.0
            if energy >= 0:
                self.imported_wh += energy
            else:
                self.exported_wh -= energy
        self._last = (now, power)
        if flow.phases:
            used = range(flow.phases)
            voltage = tuple(flow.voltage if i < flow.phases else 0.0 for i in range(3))
            current = tuple(flow.current if i in used else 0.0 for i in range(3))
            return MeterSample(
                at=now,
                energy_import_wh=self.imported_wh,
                energy_export_wh=self.exported_wh,
                voltage_v=(voltage[0], voltage[1], voltage[2]),
                current_a=(current[0], current[1], current[2]),
                power_factor=self.config.power_factor,
                frequency_hz=self.config.frequency_hz,
                power_w=power,
            )
        return MeterSample(
            at=now,
            energy_import_wh=self.imported_wh,
            energy_export_wh=self.exported_wh,
            dc_voltage_v=flow.voltage,
            dc_current_a=flow.current,
            power_w=power,
        )

    async def run(self) -> None:
        """Until cancelled."""
        while True:
            sample = self.measure()
            if not self.silent:
                self._sink(self.evse_id, sample)
            await asyncio.sleep(self.period_s)
