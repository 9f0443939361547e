"""Meters on real transports: the IVT-S shunt on python-can's virtual bus (frames built here from
its public facts), and the SDM630 through pymodbus against pymodbus's own TCP server on
loopback serving the meter's registers (values encoded here with struct from the facts:
IEEE-754 float32, high word first, kWh). Modbus exceptions, timeouts and bad registers fall to
the safe side: a counter, the last good value kept until the meter's deadline, then a fault.

The Modbus set-up: pymodbus.server.ModbusTcpServer on 127.0.0.1 (a free port), SimDevice
contexts with raw input registers (function 4):
  device 1: the SDM630 block 0x00..0x4B (230.2/231.0/229.5 V, 10/11/12 A, 7.59 kW, PF 0.95,
            50 Hz, 12.5 kWh imported, 0.75 kWh exported);
  device 2: the same with L1's voltage a NaN (a register that does not decode);
  device 3: only 0x00..0x47 (the energies missing: exception 2, illegal data address).
For RTU, pymodbus's serial server with device 1 on one end of two raw pseudo-terminals whose
masters the test relays to each other: the meter opens the other end as its serial port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
import tty
from collections.abc import AsyncIterator, Iterator

import can
import pytest
from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from csbridge.config import BusConfig, Config, MeterConfig, ModbusMeterConfig
from csbridge.engine import LimitsEngine
from csbridge.limits import StatusCode
from csbridge.mqtt import LOOPBACK, free_port
from csbridge.sources import MeterSample, SourceReading
from csbridge.sources.meters import (
    CanMeter,
    ModbusMeter,
    load_can_meter_profile,
    load_register_map,
    meter_profile_path,
)
from csbridge.support import Counted, Counters
from csbridge.testing.harness import wait_until
from tests.support import station_config, unique_prefix

IVTS = load_can_meter_profile(meter_profile_path("isabellenhuette-ivt-s"))
SDM630 = load_register_map(meter_profile_path("eastron-sdm630"))


class Taken:
    """A sink that keeps what a meter hands on."""

    def __init__(self) -> None:
        self.samples: list[MeterSample] = []

    def __call__(self, evse_id: str, reading: SourceReading) -> None:
        assert evse_id == "E1"
        assert isinstance(reading, MeterSample)
        self.samples.append(reading)


# -- the IVT-S on a virtual CAN bus ----------------------------------------------------------


def _result(
    frame_id: int, index: int, value: int, *, flags: int = 0, counter: int = 0
) -> can.Message:
    data = bytes([index, (flags << 4) | counter]) + struct.pack(">i", value)
    return can.Message(arbitration_id=frame_id, data=data, is_extended_id=False)


def _cycle(current_ma: int, voltage_mv: int, power_w: int, energy_wh: int) -> list[can.Message]:
    """One cycle as the shunt sends it: U1, power, energy, then the current that closes it."""
    return [
        _result(0x522, 1, voltage_mv),
        _result(0x526, 5, power_w),
        _result(0x528, 7, energy_wh),
        _result(0x521, 0, current_ma),
    ]


@contextlib.asynccontextmanager
async def running(coroutine_owner: CanMeter | ModbusMeter) -> AsyncIterator[None]:
    task = asyncio.create_task(coroutine_owner.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_ivts_meter_reads_its_results_from_the_bus() -> None:
    channel = f"{unique_prefix()}-meter"
    counters = Counters()
    taken = Taken()
    meter = CanMeter(
        "E1", IVTS, BusConfig(name=channel, interface="virtual"), sink=taken, counters=counters
    )
    sender = can.Bus(channel=channel, interface="virtual")
    try:
        async with running(meter):

            async def sample_arrived() -> bool:
                # The meter opens its bus in a thread: send a cycle until it listens.
                for frame in _cycle(-50_250, 398_000, -19_999, 4321):
                    sender.send(frame)
                await asyncio.sleep(0.05)
                return bool(taken.samples)

            await wait_until(sample_arrived, 5, "a sample from the IVT-S", every=0.1)
            sample = taken.samples[-1]
            assert sample.dc_current_a == pytest.approx(-50.25)
            assert sample.dc_voltage_v == pytest.approx(398.0)
            assert sample.power_w == -19_999.0
            assert sample.energy_import_wh == 4321.0
            assert counters.get(Counted.METER_READS, "can/ok") >= 1

            # A result flagged with a system error is refused: counted, nothing handed on.
            before = len(taken.samples)
            sender.send(_result(0x521, 0, 1_000_000, flags=0x8))
            await wait_until(
                lambda: counters.get(Counted.METER_READS, "can/refused") == 1, 3, "the refusal"
            )
            assert len(taken.samples) == before
            # Frames of other devices on the bus are no concern of the meter's.
            sender.send(can.Message(arbitration_id=0x37, data=bytes(6), is_extended_id=False))
            for frame in _cycle(10_000, 400_000, 4000, 4322):
                sender.send(frame)
            await wait_until(lambda: len(taken.samples) > before, 3, "the next good cycle")
            assert taken.samples[-1].dc_current_a == 10.0
            assert taken.samples[-1].energy_import_wh == 4322.0
    finally:
        sender.shutdown()


# -- the SDM630 against pymodbus's server ----------------------------------------------------


def _float_registers(value: float) -> tuple[int, int]:
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return high, low


def sdm630_registers() -> list[int]:
    """The input registers 0x00..0x4B of a three-phase meter, from the register facts."""
    registers = [0] * 0x4C
    facts = {
        0x00: 230.2,
        0x02: 231.0,
        0x04: 229.5,
        0x06: 10.0,
        0x08: 11.0,
        0x0A: 12.0,
        0x34: 7590.0,
        0x3E: 0.95,
        0x46: 50.0,
        0x48: 12.5,  # kWh
        0x4A: 0.75,
    }
    for address, value in facts.items():
        registers[address], registers[address + 1] = _float_registers(value)
    return registers


def _device(device_id: int, input_registers: list[int]) -> SimDevice:
    bits = [SimData(0, values=[False], datatype=DataType.BITS)]
    return SimDevice(
        device_id,
        simdata=(
            bits,
            list(bits),
            [SimData(0, values=[0], datatype=DataType.REGISTERS)],
            [SimData(0, values=input_registers, datatype=DataType.REGISTERS)],
        ),
    )


@pytest.fixture
async def sdm630_server() -> AsyncIterator[int]:
    """pymodbus's TCP server on loopback; yields its port."""
    good = sdm630_registers()
    nan = [0x7FC0, 0x0000, *good[2:]]
    port = free_port()
    server = ModbusTcpServer(
        [_device(1, good), _device(2, nan), _device(3, good[:0x48])], address=(LOOPBACK, port)
    )
    task = asyncio.create_task(server.serve_forever())

    async def listening() -> bool:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(LOOPBACK, port)
            writer.close()
            return True
        return False

    await wait_until(listening, 5, "the Modbus server", every=0.05)
    try:
        yield port
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def modbus_meter(
    port: int, device_id: int, sink: Taken | LimitsEngine, clock: list[float] | None = None
) -> tuple[ModbusMeter, Counters]:
    counters = sink.counters if isinstance(sink, LimitsEngine) else Counters()
    config = ModbusMeterConfig.model_validate(
        {"device_id": device_id, "tcp": {"host": LOOPBACK, "port": port}, "timeout_s": 0.5}
    )
    now = clock or [0.0]
    meter = ModbusMeter(
        "E1",
        SDM630,
        config,
        poll_period_s=0.1,
        sink=sink.ingest if isinstance(sink, LimitsEngine) else sink,
        counters=counters,
        clock=(lambda: now[0]) if clock is not None else time.monotonic,
    )
    return meter, counters


async def test_the_sdm630_is_read_through_pymodbus(sdm630_server: int) -> None:
    taken = Taken()
    meter, counters = modbus_meter(sdm630_server, 1, taken)
    try:
        sample = await meter.poll()
    finally:
        meter.client.close()
    assert sample is not None
    assert taken.samples == [sample]
    assert sample.voltage_v == pytest.approx((230.2, 231.0, 229.5), abs=1e-4)
    assert sample.current_a == (10.0, 11.0, 12.0)
    assert sample.power_w == 7590.0
    assert sample.power_factor == pytest.approx(0.95, abs=1e-6)
    assert sample.frequency_hz == 50.0
    assert sample.energy_import_wh == 12_500.0
    assert sample.energy_export_wh == 750.0
    assert sample.dc_voltage_v is None  # an AC meter measures no DC
    assert counters.get(Counted.METER_READS, "modbus/ok") == 1


@pytest.mark.parametrize(
    ("device_id", "outcome"),
    [
        (3, "exception"),  # the energies' registers are not there: exception 2
        (2, "refused"),  # L1's voltage is a NaN
    ],
)
async def test_a_bad_answer_is_counted_and_hands_nothing_on(
    sdm630_server: int, device_id: int, outcome: str
) -> None:
    taken = Taken()
    meter, counters = modbus_meter(sdm630_server, device_id, taken)
    try:
        assert await meter.poll() is None
    finally:
        meter.client.close()
    assert taken.samples == []
    assert counters.get(Counted.METER_READS, f"modbus/{outcome}") == 1


async def test_a_meter_that_never_answers_times_out() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)  # takes the request, answers nothing
        writer.close()

    server = await asyncio.start_server(mute, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    taken = Taken()
    meter, counters = modbus_meter(port, 1, taken)
    try:
        assert await meter.poll() is None
    finally:
        meter.client.close()
        server.close()
    assert taken.samples == []
    assert counters.get(Counted.METER_READS, "modbus/timeout") == 1


async def test_no_server_at_all_is_a_link_error() -> None:
    taken = Taken()
    meter, counters = modbus_meter(free_port(), 1, taken)
    try:
        assert await meter.poll() is None
    finally:
        meter.client.close()
    assert counters.get(Counted.METER_READS, "modbus/error") == 1


def metered_config(port: int) -> Config:
    base = station_config("mqtt://127.0.0.1:1883", "meters-on-the-wire")
    meter = MeterConfig.model_validate(
        {"kind": "modbus", "deadline_s": 5.0, "modbus": {"tcp": {"host": LOOPBACK, "port": port}}}
    )
    evses = [base.evse[0].model_copy(update={"evse_id": "E1", "meter": meter})]
    return base.model_copy(update={"evse": evses})


async def test_after_failed_polls_the_last_good_value_holds_until_the_deadline(
    sdm630_server: int,
) -> None:
    clock = [100.0]
    engine = LimitsEngine(metered_config(sdm630_server), clock=lambda: clock[0])
    meter, counters = modbus_meter(sdm630_server, 1, engine, clock)
    try:
        good = await meter.poll()
        assert good is not None
        meter.config = meter.config.model_copy(update={"device_id": 3})  # now it fails
        clock[0] = 104.0
        assert await meter.poll() is None
        engine.evaluate()
        assert engine.inputs("E1").meter == good
        composition = engine.composition("E1")
        assert composition is not None
        assert not composition.facts.meter_failed
        clock[0] = 105.5  # past the 5 s deadline of the last good sample
        assert await meter.poll() is None
        engine.evaluate()
    finally:
        meter.client.close()
    composition = engine.composition("E1")
    assert composition is not None
    assert composition.facts.meter_failed
    assert composition.snapshot.status_code is StatusCode.EVSE_MALFUNCTION
    assert counters.get(Counted.METER_READS, "modbus/exception") == 2


async def test_the_meter_polls_by_itself_until_cancelled(sdm630_server: int) -> None:
    taken = Taken()
    meter, _ = modbus_meter(sdm630_server, 1, taken)
    async with running(meter):
        await wait_until(lambda: len(taken.samples) >= 3, 5, "three polls")
    assert not meter.client.connected


# -- the SDM630 on RTU, over a pair of pseudo-terminals ----------------------------------------


@contextlib.contextmanager
def serial_line() -> Iterator[tuple[str, str]]:
    """Two raw pseudo-terminals wired to each other like the two ends of an RS-485 pair: yields
    (the meter's end, csbridge's end)."""
    loop = asyncio.get_running_loop()
    ends = [os.openpty(), os.openpty()]
    for _, device in ends:
        tty.setraw(device)
    (master_a, device_a), (master_b, device_b) = ends

    def relay(source: int, target: int) -> None:
        with contextlib.suppress(OSError):
            os.write(target, os.read(source, 4096))

    loop.add_reader(master_a, relay, master_a, master_b)
    loop.add_reader(master_b, relay, master_b, master_a)
    try:
        yield os.ttyname(device_a), os.ttyname(device_b)
    finally:
        for master, device in ends:
            loop.remove_reader(master)
            os.close(master)
            os.close(device)


def rtu_meter(port: str, taken: Taken) -> tuple[ModbusMeter, Counters]:
    counters = Counters()
    config = ModbusMeterConfig.model_validate(
        {"serial": {"port": port, "baudrate": 9600}, "timeout_s": 0.5}
    )
    meter = ModbusMeter("E1", SDM630, config, poll_period_s=0.1, sink=taken, counters=counters)
    return meter, counters


async def test_the_sdm630_is_read_over_rtu() -> None:
    with serial_line() as (meter_end, our_end):
        server = ModbusSerialServer(
            _device(1, sdm630_registers()), framer=FramerType.RTU, port=meter_end, baudrate=9600
        )
        task = asyncio.create_task(server.serve_forever())
        taken = Taken()
        meter, counters = rtu_meter(our_end, taken)
        try:

            async def answered() -> bool:
                return await meter.poll() is not None

            await wait_until(answered, 5, "an RTU answer", every=0.1)
        finally:
            meter.client.close()
            await server.shutdown()  # type: ignore[no-untyped-call]
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    sample = taken.samples[-1]
    assert sample.voltage_v == pytest.approx((230.2, 231.0, 229.5), abs=1e-4)
    assert sample.energy_import_wh == 12_500.0
    assert counters.get(Counted.METER_READS, "modbus/ok") >= 1


async def test_a_silent_rtu_line_times_out() -> None:
    with serial_line() as (_nobody, our_end):
        taken = Taken()
        meter, counters = rtu_meter(our_end, taken)
        try:
            assert await meter.poll() is None
        finally:
            meter.client.close()
    assert taken.samples == []
    assert counters.get(Counted.METER_READS, "modbus/timeout") == 1
