"""meter_values from a real meter, through a real mosquitto: the DC EVSE of the tests' station
gets an IVT-S shunt on a virtual CAN bus of its own (its frames built here from the facts); the
AC EVSE keeps no meter and its answers stay integrated, counted as such."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from typing import Any

import can
import pytest
import pytest_asyncio

from csbridge.config import BusConfig, CanDevice, Config, MeterConfig
from csbridge.service.station import Station
from csbridge.support import Counted
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from csbridge.testing.plugin import ConfigFactory, marked_config
from tests.conftest import READING_STATION

DC = "DE*CSB*E0001"
AC = "DE*CSB*E0002"
SHUNT_CYCLE_S = 0.1
"""The shunt sends its results this often by itself (cyclic mode, as SI configures it)."""


@pytest.fixture
def config(
    request: pytest.FixtureRequest, csbridge_config_factory: ConfigFactory, prefix: str
) -> Config:
    base = marked_config(request, csbridge_config_factory, prefix, default=READING_STATION)
    bus = BusConfig(name=f"{prefix}-meter", interface="virtual", bitrate=500_000)
    meter = MeterConfig(
        kind="can",
        can=CanDevice(profile="isabellenhuette-ivt-s", bus=bus.name),
        deadline_s=1.0,
    )
    evses = [e.model_copy(update={"meter": meter}) if e.evse_id == DC else e for e in base.evse]
    assert [e.evse_id for e in evses if e.meter is not None] == [DC]
    return base.model_copy(update={"bus": [*base.bus, bus], "evse": evses})


def _result(frame_id: int, index: int, value: int) -> can.Message:
    data = bytes([index, 0x00]) + struct.pack(">i", value)
    return can.Message(arbitration_id=frame_id, data=data, is_extended_id=False)


class Shunt:
    """A shunt that sends 398 V, 25.125 A, 10 kW and its energy counter every cycle, from
    before the station starts (the EVSE is not ready until its meter is heard)."""

    def __init__(self, channel: str) -> None:
        self.bus = can.Bus(channel=channel, interface="virtual")
        self.energy_wh = 12_345
        self.task = asyncio.create_task(self._send())

    async def _send(self) -> None:
        while True:
            for frame in (
                _result(0x522, 1, 398_000),
                _result(0x526, 5, 10_000),
                _result(0x528, 7, self.energy_wh),
                _result(0x521, 0, 25_125),
            ):
                self.bus.send(frame)
            await asyncio.sleep(SHUNT_CYCLE_S)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest_asyncio.fixture
async def shunt(config: Config) -> AsyncIterator[Shunt]:
    running = Shunt(config.bus[-1].interface_channel)
    try:
        yield running
    finally:
        await running.stop()
        running.bus.shutdown()


def _status(station: Station, evse_id: str) -> str:
    return str(station.engine.entries.get(evse_id)["status_code"])


async def test_meter_values_come_from_the_meters_registers(
    shunt: Shunt,
    josev: JosevClient,
    csbridge_station: Station,
    caplog: pytest.LogCaptureFixture,
) -> None:
    station = csbridge_station
    await josev.boot(timeout=5)
    await wait_until(
        lambda: _status(station, DC) == "evse_ready", 5, "the DC EVSE ready with its meter"
    )

    async def reads(energy_wh: float) -> bool:
        answer = await josev.request(
            "meter_values", {"evse_id": DC, "timestamp": "2026-12-01T10:00:00Z"}, timeout=5
        )
        answers.append(answer.data)
        return bool(answer.data["total_active_energy_imported"] == energy_wh)

    answers: list[dict[str, Any]] = []
    await wait_until(lambda: reads(12_345.0), 5, "the meter's 12345 Wh", every=0.1)
    shunt.energy_wh = 12_350  # 5 Wh more flowed
    await wait_until(lambda: reads(12_350.0), 5, "the meter's 12350 Wh", every=0.1)
    data = answers[-1]
    assert data["dc_voltage"] == 398.0
    assert data["dc_current"] == 25.125
    # A DC shunt measures no phases: none is made up.
    assert data["voltage"] == {"l1": 0.0, "l2": 0.0, "l3": 0.0}
    assert data["current"] == {"l1": 0.0, "l2": 0.0, "l3": 0.0}
    assert data["frequency"] == 0.0
    # Josev is told the meter's present values, not the idle modules' 0 V.
    assert station.engine.entries.get(DC)["dc"]["present_voltage"] == 398.0
    assert station.engine.counters.get(Counted.METER_VALUES_INTEGRATED, DC) == 0

    # The AC EVSE has no meter: its answer is integrated, counted, and was warned of.
    await josev.request(
        "meter_values", {"evse_id": AC, "timestamp": "2026-12-01T10:00:03Z"}, timeout=5
    )
    assert station.engine.counters.get(Counted.METER_VALUES_INTEGRATED, AC) == 1
    warned = [
        r.getMessage()
        for r in caplog.get_records("setup") + caplog.records
        if "event=meter_missing" in r.getMessage()
    ]
    assert [AC in line for line in warned] == [True]

    # The shunt falls silent: past its 1 s deadline the EVSE stops serving.
    await shunt.stop()
    await wait_until(
        lambda: _status(station, DC) == "evse_malfunction", 5, "the silent meter's fault"
    )
    assert station.engine.entries.get(DC)["dc"]["max_current"] == 0.0
    # A total does not go stale: the last register stands; what the meter measured now does.
    silent = await josev.request(
        "meter_values", {"evse_id": DC, "timestamp": "2026-12-01T10:00:04Z"}, timeout=5
    )
    assert silent.data["total_active_energy_imported"] == 12_350.0
    assert "dc_voltage" not in silent.data
    assert "dc_current" not in silent.data
    josev.assert_no_problems()
