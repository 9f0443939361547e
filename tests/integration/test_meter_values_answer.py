"""Josev's meter_values request, answered through a real mosquitto: with a meter, the export
register goes out beside the import one (an IVT-S shunt on a virtual CAN bus whose net counter
falls: energy back from the EV); without a meter, a DC EVSE's answer says 0 Hz, as a DC meter's
answer does, not an invented 50 Hz; while a transaction runs on an EVSE with a signing meter
(the played LEM DCBM), the answer carries the meter's signed record of its start.

The shunt's frames are built here from its public facts (hal/meters/isabellenhuette-ivt-s.toml):
byte 0 the result's index, bytes 2-5 a big-endian int32; 0x522 voltage U1 (index 1, mV), 0x526
power (5, W), 0x528 energy (7, Wh), and 0x521 current (0, mA), which closes the cycle."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import can
import pytest
import pytest_asyncio

from csbridge.config import BusConfig, CanDevice, Config, MeterConfig, RestMeterConfig
from csbridge.service.station import Station
from csbridge.sources.meters import parse_ocmf
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from csbridge.testing.lem_dcbm import PlayedLemDcbm, played_lem_dcbm
from csbridge.testing.plugin import ConfigFactory, marked_config
from tests.conftest import READING_STATION

DC = "DE*CSB*E0001"
CYCLE_S = 0.1
WHEN = "2026-12-01T10:00:00Z"


def _frame(frame_id: int, index: int, value: int) -> can.Message:
    data = bytes([index, 0x00]) + struct.pack(">i", value)
    return can.Message(arbitration_id=frame_id, data=data, is_extended_id=False)


class FallingShunt:
    """A shunt whose net energy counter the test sets: a fall is energy back from the EV."""

    def __init__(self, channel: str) -> None:
        self.bus = can.Bus(channel=channel, interface="virtual")
        self.counter_wh = 1_000
        self.task = asyncio.create_task(self._send())

    async def _send(self) -> None:
        while True:
            for frame in (
                _frame(0x522, 1, 400_000),
                _frame(0x526, 5, -4_000),
                _frame(0x528, 7, self.counter_wh),
                _frame(0x521, 0, -10_000),
            ):
                self.bus.send(frame)
            await asyncio.sleep(CYCLE_S)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.bus.shutdown()


@pytest.fixture
def dc_meter() -> str:
    """The DC EVSE's meter: "shunt" (the IVT-S), "signed" (simulated, the played LEM signing
    beside it) or "none"; a test parametrized `dc_meter` picks another."""
    return "shunt"


@pytest.fixture
def lem() -> Iterator[PlayedLemDcbm]:
    with played_lem_dcbm() as played:
        yield played


@pytest.fixture
def config(
    request: pytest.FixtureRequest,
    csbridge_config_factory: ConfigFactory,
    prefix: str,
    dc_meter: str,
) -> Config:
    base = marked_config(request, csbridge_config_factory, prefix, default=READING_STATION)
    if dc_meter == "none":
        return base
    buses = list(base.bus)
    if dc_meter == "signed":
        lem: PlayedLemDcbm = request.getfixturevalue("lem")
        meter = MeterConfig(kind="simulated", signing=RestMeterConfig(url=lem.url))
    else:
        bus = BusConfig(name=f"{prefix}-meter", interface="virtual", bitrate=500_000)
        buses.append(bus)
        meter = MeterConfig(
            kind="can",
            can=CanDevice(profile="isabellenhuette-ivt-s", bus=bus.name),
            deadline_s=1.0,
        )
    evses = [e.model_copy(update={"meter": meter}) if e.evse_id == DC else e for e in base.evse]
    return base.model_copy(update={"bus": buses, "evse": evses})


@pytest_asyncio.fixture
async def shunt(config: Config) -> AsyncIterator[FallingShunt]:
    running = FallingShunt(config.bus[-1].interface_channel)
    try:
        yield running
    finally:
        await running.stop()


async def _answer(josev: JosevClient, evse_id: str = DC) -> dict[str, Any]:
    answer = await josev.request("meter_values", {"evse_id": evse_id, "timestamp": WHEN})
    return answer.data


async def test_the_answer_carries_the_meters_export_register(
    shunt: FallingShunt, josev: JosevClient, csbridge_station: Station
) -> None:
    await josev.boot(timeout=5)
    answers: list[dict[str, Any]] = []

    async def reads(imported: float, exported: float) -> bool:
        answers.append(await _answer(josev))
        data = answers[-1]
        return bool(
            data["total_active_energy_imported"] == imported
            and data.get("total_active_energy_exported") == exported
        )

    await wait_until(lambda: reads(1_000.0, 0.0), 5, "1000 Wh imported, none exported", every=0.1)
    shunt.counter_wh = 993  # 7 Wh went back to the grid
    await wait_until(lambda: reads(1_000.0, 7.0), 5, "7 Wh exported", every=0.1)
    assert answers[-1]["dc_current"] == -10.0
    josev.assert_no_problems()


@pytest.mark.parametrize("dc_meter", ["none"])
async def test_an_unmetered_dc_answer_says_no_frequency(
    josev: JosevClient, csbridge_station: Station, dc_meter: str
) -> None:
    assert dc_meter == "none"
    await josev.boot(timeout=5)
    data = await _answer(josev)
    assert data["frequency"] == 0.0
    assert "total_active_energy_exported" not in data  # nothing keeps an export register
    josev.assert_no_problems()


@pytest.mark.parametrize("dc_meter", ["signed"])
async def test_the_answer_carries_the_running_transactions_signed_start(
    josev: JosevClient, csbridge_station: Station, lem: PlayedLemDcbm, dc_meter: str
) -> None:
    assert dc_meter == "signed"
    await josev.boot(timeout=5)
    assert "signed_meter_values" not in await _answer(josev)  # no transaction yet
    await josev.update(
        "transaction_status",
        {"transaction_id": "tx-answer", "status": "started", "evse_id": DC, "id_token": "04B7"},
    )
    answers: list[dict[str, Any]] = []

    async def signed(present: bool) -> bool:
        answers.append(await _answer(josev))
        return ("signed_meter_values" in answers[-1]) is present

    await wait_until(lambda: signed(True), 5, "the start's signed value in the answer", every=0.1)
    (value,) = answers[-1]["signed_meter_values"]
    assert value["measurand"] == "Energy.Active.Import.Register"
    assert value["public_key"] == lem.public_key_hex
    record = parse_ocmf(value["signed_meter_data"])
    assert [reading.kind for reading in record.readings] == ["B"]
    assert record.payload["ID"] == "04B7"

    await josev.update(
        "transaction_status", {"transaction_id": "tx-answer", "status": "ended", "evse_id": DC}
    )
    await wait_until(lambda: signed(False), 5, "no signed value once it ended", every=0.1)
    josev.assert_no_problems()
