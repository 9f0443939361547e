"""A REST meter ([evse.meter] kind = "rest") as a source like the others: its client polled
every poll_period_s, each new good reading handed to the engine as a MeterSample (a failed
request hands nothing: the last reading ages out at the meter's deadline, as any silent source)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from csbridge.config import MeterConfig
from csbridge.sources import MeterSample
from csbridge.sources.meters.rest import RestDcMeter, RestMeterSample
from csbridge.sources.readings import ReadingSink
from csbridge.support import Counters


def meter_sample(reading: RestMeterSample) -> MeterSample:
    """The REST meter's reading in the shape every meter hands on (DC: no per-phase values)."""
    return MeterSample(
        at=reading.time,
        energy_import_wh=reading.energy_import_wh,
        energy_export_wh=reading.energy_export_wh,
        dc_voltage_v=reading.dc_voltage,
        dc_current_a=reading.dc_current,
        power_w=reading.power,
    )


class RestMeterSource:
    """The reader of one EVSE's REST meter; `client` also signs its transactions."""

    kind = "rest"

    def __init__(
        self,
        evse_id: str,
        config: MeterConfig,
        sink: ReadingSink,
        counters: Counters,
        clock: Callable[[], float],
    ) -> None:
        assert config.rest is not None
        self.evse_id = evse_id
        self._sink = sink
        self._poll_period_s = config.poll_period_s
        self.client = RestDcMeter(
            config.rest.url,
            name=evse_id,
            deadline_s=config.deadline_s,
            counters=counters,
            clock=clock,
        )

    async def run(self) -> None:
        """Until cancelled (then the client's connections are closed)."""
        handed: float | None = None
        try:
            while True:
                reading = await self.client.read()
                if reading is not None and reading.time != handed:
                    handed = reading.time
                    self._sink(self.evse_id, meter_sample(reading))
                await asyncio.sleep(self._poll_period_s)
        finally:
            await self.client.close()
