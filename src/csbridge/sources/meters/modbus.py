"""A meter on Modbus (RTU on a serial line, or TCP) through pymodbus, read by its register map
every poll period.

A poll is all or nothing: an exception answer, a timeout, a lost link or a register that does
not decode (a float that is no number) refuses the whole poll, counted by its outcome and logged
(rate-limited). The last good sample stays until the meter's deadline makes the EVSE's
composition call the meter silent: the safe side."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from csbridge.config import ModbusMeterConfig
from csbridge.sources import MeterSample, ReadingSink
from csbridge.sources.meters.register_map import ReadBlock, RegisterMap
from csbridge.sources.meters.sample import sample_from_values
from csbridge.support import Counted, Counters, RateLimitedLog

log = logging.getLogger("csbridge.meters")


ModbusClient = AsyncModbusTcpClient | AsyncModbusSerialClient


def modbus_client(config: ModbusMeterConfig) -> ModbusClient:
    """pymodbus's client for the configured link; it retries nothing itself (the next poll is
    the retry) and never waits longer than the configured timeout."""
    if config.tcp is not None:
        return AsyncModbusTcpClient(
            config.tcp.host, port=config.tcp.port, timeout=config.timeout_s, retries=0
        )
    assert config.serial is not None  # ModbusMeterConfig guarantees one of the two
    serial = config.serial
    return AsyncModbusSerialClient(
        serial.port,
        baudrate=serial.baudrate,
        parity=serial.parity,
        bytesize=serial.bytesize,
        stopbits=serial.stopbits,
        timeout=config.timeout_s,
        retries=0,
    )


class PollRefusedError(Exception):
    """One poll gave no sample; `outcome` is the counter's word, `detail` the log's."""

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


class ModbusMeter:
    kind = "modbus"

    def __init__(
        self,
        evse_id: str,
        register_map: RegisterMap,
        config: ModbusMeterConfig,
        *,
        poll_period_s: float,
        sink: ReadingSink,
        counters: Counters,
        clock: Callable[[], float] = time.monotonic,
        client: ModbusClient | None = None,
    ) -> None:
        self.evse_id = evse_id
        self.register_map = register_map
        self.config = config
        self.poll_period_s = poll_period_s
        self._blocks = register_map.blocks()
        self._sink = sink
        self._counters = counters
        self._clock = clock
        self._faults = RateLimitedLog(log, clock)
        self.client = client or modbus_client(config)

    async def poll(self) -> MeterSample | None:
        """Read every block once; the sample goes to the sink. None: refused (counted, logged)."""
        try:
            sample = await self._read_all()
        except PollRefusedError as refused:
            self._counters.add(Counted.METER_READS, f"{self.kind}/{refused.outcome}")
            self._faults.warning(
                ("poll", refused.outcome),
                "event=meter_poll_refused evse=%s kind=modbus map=%s outcome=%s why=%s -- last"
                " good value kept until its deadline",
                self.evse_id,
                self.register_map.name,
                refused.outcome,
                refused.detail,
            )
            return None
        self._counters.add(Counted.METER_READS, f"{self.kind}/ok")
        self._sink(self.evse_id, sample)
        return sample

    async def _read_all(self) -> MeterSample:
        try:
            connected = self.client.connected or await self.client.connect()
        except (ModbusException, OSError, ValueError) as error:
            raise PollRefusedError("error", f"cannot connect: {error!r}") from error
        if not connected:
            raise PollRefusedError("error", "cannot connect")
        values: dict[str, float | None] = {}
        for block in self._blocks:
            registers = await self._read(block)
            decoded = block.decode(registers)
            bad = sorted(name for name, value in decoded.items() if value is None)
            if bad:
                raise PollRefusedError("refused", f"registers of {','.join(bad)} do not decode")
            values.update(decoded)
        return sample_from_values(self._clock(), values)

    async def _read(self, block: ReadBlock) -> Sequence[int]:
        read = (
            self.client.read_input_registers
            if block.function == 4
            else self.client.read_holding_registers
        )
        where = f"fc={block.function} address={block.address} count={block.count}"
        try:
            response = await asyncio.wait_for(
                read(block.address, count=block.count, device_id=self.config.device_id),
                # pymodbus keeps its own timeout; this one only guards against it not firing.
                self.config.timeout_s * 2,
            )
        except (TimeoutError, ModbusIOException) as error:
            raise PollRefusedError("timeout", f"{where}: no answer ({error})") from error
        except ConnectionException as error:
            raise PollRefusedError("error", f"{where}: link lost ({error})") from error
        except (ModbusException, OSError, ValueError) as error:
            # A garbled answer or a port that vanished: the link's fault, not a crash.
            raise PollRefusedError("error", f"{where}: {error!r}") from error
        if response.isError():
            code = getattr(response, "exception_code", "?")
            raise PollRefusedError("exception", f"{where}: exception code {code}")
        registers = list(response.registers)
        if len(registers) != block.count:
            raise PollRefusedError("refused", f"{where}: {len(registers)} registers answered")
        return registers

    async def run(self) -> None:
        """Until cancelled: one poll every poll period."""
        try:
            while True:
                started = self._clock()
                await self.poll()
                await asyncio.sleep(max(0.0, self.poll_period_s - (self._clock() - started)))
        finally:
            self.client.close()
