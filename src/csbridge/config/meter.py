"""An EVSE's energy meter ([evse.meter]): where it is read (a CAN shunt, a Modbus meter, a DC
meter's REST interface, or a simulated one), how often meter values go to Josev, how long it may
stay silent, and how far it may disagree with the power modules."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from csbridge.config.base import NonNegative, Positive, Strict
from csbridge.config.devices import CanDevice

MeterKind = Literal["can", "modbus", "simulated", "rest"]


class ModbusTcpConfig(Strict):
    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 502


class ModbusSerialConfig(Strict):
    """Modbus RTU on a serial line; the defaults are the Eastron SDM630's factory settings."""

    port: Annotated[str, Field(min_length=1)]
    """The device, e.g. /dev/ttyUSB0 (better a stable /dev/serial/by-id/... link)."""
    baudrate: Annotated[int, Field(gt=0)] = 9600
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1


class ModbusMeterConfig(Strict):
    register_map: Annotated[str, Field(min_length=1)] = "eastron-sdm630"
    """A register map in hal/meters/ (or a profile folder), by its file's stem."""
    device_id: Annotated[int, Field(ge=1, le=247)] = 1
    tcp: ModbusTcpConfig | None = None
    serial: ModbusSerialConfig | None = None
    timeout_s: Annotated[float, Field(gt=0, le=30)] = 1.0
    """One request's answer time; then it counts as a timeout (retried on the next poll)."""

    @model_validator(mode="after")
    def _one_link(self) -> Self:
        if (self.tcp is None) == (self.serial is None):
            raise ValueError("a Modbus meter is reached over `tcp` or `serial`, exactly one")
        return self


class RestMeterConfig(Strict):
    url: Annotated[str, Field(min_length=1, pattern=r"^https?://")]
    """The meter's base address, e.g. http://192.168.1.2 (LEM DCBM)."""


class SimulatedMeterConfig(Strict):
    """A meter without hardware: it measures what the EVSE's simulated modules deliver."""

    frequency_hz: Positive = 50.0
    power_factor: Annotated[float, Field(ge=-1, le=1)] = 1.0


class MeterConfig(Strict):
    kind: MeterKind
    can: CanDevice | None = None
    """kind = "can": the meter's profile in hal/meters/ and the bus it talks on."""
    modbus: ModbusMeterConfig | None = None
    rest: RestMeterConfig | None = None
    simulated: SimulatedMeterConfig | None = None
    """Alone (kind = "simulated"): a meter without a wire. Beside `can` or `modbus` (TCP): the
    meter is played on that wire (frames on the bus, pymodbus's server at the address) and read
    back as a real one."""
    signing: RestMeterConfig | None = None
    """An Eichrecht DC meter (LEM DCBM) that signs this EVSE's transactions (OCMF at start and
    end, its public key) while the meter of `kind` measures: e.g. a fast CAN shunt for the
    present values beside the legal meter for billing. A `rest` meter signs by itself."""
    poll_period_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    """How often a polled meter (Modbus, REST) is read; a CAN meter sends by itself."""
    update_interval_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """During a transaction, a meter_values update this often."""
    deadline_s: Annotated[float, Field(gt=0, le=600)] = 5.0
    """A meter silent for longer is a source fault (the EVSE stops serving), and its last good
    value is no longer used."""
    voltage_tolerance_v: NonNegative = 10.0
    current_tolerance_a: NonNegative = 2.0
    """Meter and modules may disagree by this much before the disagreement is counted."""

    @model_validator(mode="after")
    def _settings_of_its_kind(self) -> Self:
        given = {name for name in ("can", "modbus", "rest") if getattr(self, name) is not None}
        needed = {self.kind} & {"can", "modbus", "rest"}
        if needed - given:
            raise ValueError(f'kind = "{self.kind}" needs [evse.meter.{self.kind}]')
        extra = given - needed
        if extra:
            names = ", ".join(sorted(extra))
            raise ValueError(f'[evse.meter] kind = "{self.kind}" does not read {names}')
        if self.kind == "rest" and self.simulated is not None:
            raise ValueError("a `rest` meter is played by its own HTTP server, not simulated")
        if self.kind == "rest" and self.signing is not None:
            raise ValueError("a `rest` meter signs its own transactions: no `signing` beside it")
        modbus = self.modbus
        if self.simulated is not None and modbus is not None and modbus.tcp is None:
            raise ValueError("a simulated Modbus meter is served on `tcp`, not `serial`")
        return self

    @property
    def polled(self) -> bool:
        return self.kind in ("modbus", "rest")
