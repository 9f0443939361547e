"""Simulated meters played on the wire and read back by the real readers: an IVT-S sending its
frames on a virtual CAN bus, an SDM630 served by pymodbus's own TCP server on loopback. The
served registers are read here with a plain pymodbus client and decoded with struct from the
facts (float32, high word first, kWh), not by our decoder; then the station answers Josev's
meter_values from them through a real mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import struct

import pytest
from pymodbus.client import AsyncModbusTcpClient

from csbridge.config import BusConfig, Config, MeterConfig
from csbridge.mqtt import LOOPBACK, free_port
from csbridge.service.station import Station
from csbridge.sources import MeterSample, SourceReading
from csbridge.sources.meters import Flow, MeterSources
from csbridge.support import Counted, Counters
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from csbridge.testing.plugin import ConfigFactory, marked_config
from tests.conftest import READING_STATION

DC = "DE*CSB*E0001"
AC = "DE*CSB*E0002"


def metered(base: Config, prefix: str, port: int) -> Config:
    bus = BusConfig(name=f"{prefix}-meter", interface="virtual", bitrate=500_000)
    meters = {
        DC: MeterConfig.model_validate(
            {
                "kind": "can",
                "can": {"profile": "isabellenhuette-ivt-s", "bus": bus.name},
                "simulated": {},
            }
        ),
        AC: MeterConfig.model_validate(
            {
                "kind": "modbus",
                "poll_period_s": 0.2,
                "modbus": {"tcp": {"host": LOOPBACK, "port": port}},
                "simulated": {"frequency_hz": 49.9, "power_factor": 0.97},
            }
        ),
    }
    evses = [e.model_copy(update={"meter": meters[e.evse_id]}) for e in base.evse]
    return base.model_copy(update={"bus": [*base.bus, bus], "evse": evses})


def _float(high: int, low: int) -> float:
    value: float = struct.unpack(">f", struct.pack(">HH", high, low))[0]
    return value


async def test_the_simulators_serve_what_flows_and_the_readers_read_it(
    csbridge_config_factory: ConfigFactory, prefix: str
) -> None:
    port = free_port()
    config = metered(csbridge_config_factory(READING_STATION), prefix, port)
    taken: dict[str, list[MeterSample]] = {DC: [], AC: []}

    def sink(evse_id: str, reading: SourceReading) -> None:
        assert isinstance(reading, MeterSample)
        taken[evse_id].append(reading)

    def flow(evse_id: str) -> Flow:
        return Flow(400.0, 50.0) if evse_id == DC else Flow(230.0, 16.0, phases=3)

    counters = Counters()
    meters = MeterSources(config, sink, counters, measure=flow)
    assert set(meters.simulators) == {DC, AC}
    task = asyncio.create_task(meters.run())
    try:
        await wait_until(lambda: len(taken[DC]) >= 2 and len(taken[AC]) >= 2, 5, "both meters")
        client = AsyncModbusTcpClient(LOOPBACK, port=port, timeout=1, retries=0)
        await client.connect()
        try:
            served = await client.read_input_registers(0x00, count=0x4C, device_id=1)
        finally:
            client.close()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    registers = served.registers
    assert _float(*registers[0x00:0x02]) == 230.0  # L1 voltage
    assert _float(*registers[0x0A:0x0C]) == 16.0  # L3 current
    assert _float(*registers[0x46:0x48]) == pytest.approx(49.9, abs=1e-4)
    assert _float(*registers[0x48:0x4A]) > 0.0  # kWh imported so far (11 kW flows)

    dc = taken[DC][-1]
    assert (dc.dc_voltage_v, dc.dc_current_a, dc.power_w) == (400.0, 50.0, 20_000.0)
    assert dc.energy_import_wh is not None
    ac = taken[AC][-1]
    assert ac.voltage_v == (230.0, 230.0, 230.0)
    assert ac.current_a == (16.0, 16.0, 16.0)
    assert ac.power_factor == pytest.approx(0.97, abs=1e-6)
    assert ac.energy_import_wh is not None
    assert ac.energy_import_wh > 0.0
    assert counters.get(Counted.METER_READS, "modbus/ok") >= 2
    assert counters.get(Counted.METER_READS, "can/ok") >= 2


@pytest.fixture
def config(
    request: pytest.FixtureRequest, csbridge_config_factory: ConfigFactory, prefix: str
) -> Config:
    base = marked_config(request, csbridge_config_factory, prefix, default=READING_STATION)
    return metered(base, prefix, free_port())


async def test_meter_values_per_phase_from_a_simulated_sdm630(
    josev: JosevClient, csbridge_station: Station
) -> None:
    station = csbridge_station
    await josev.boot(timeout=5)

    async def per_phase_from_the_meter() -> bool:
        answer = await josev.request(
            "meter_values", {"evse_id": AC, "timestamp": "2026-12-01T10:00:00Z"}, timeout=5
        )
        data = answer.data
        # The station's AC simulation carries no current: the meter sees the phase voltages.
        return bool(
            data["voltage"] == {"l1": 230.0, "l2": 230.0, "l3": 230.0}
            and data["frequency"] == 49.9
            and data["power_factor"] == 0.97
            and "dc_voltage" not in data
        )

    await wait_until(per_phase_from_the_meter, 5, "the SDM630's phase voltages", every=0.2)
    dc = await josev.request(
        "meter_values", {"evse_id": DC, "timestamp": "2026-12-01T10:00:01Z"}, timeout=5
    )
    assert dc.data["dc_voltage"] == 0.0  # idle modules, measured by the played IVT-S
    assert dc.data["total_active_energy_imported"] == 0.0
    assert station.engine.counters.total(Counted.METER_VALUES_INTEGRATED) == 0
    assert station.engine.counters.get(Counted.METER_READS, "modbus/ok") >= 1
    josev.assert_no_problems()
