"""Simulated devices that speak the real wire protocols on a CAN bus (python-can's virtual bus
in the demo and the tests, or a vcan): modules answer the controller's polls as the real ones
do, the IMD sends its cyclic frame. The station under test runs its real codecs against them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import can

from csbridge.config import BusConfig, ImdConfig, ModuleConfig
from csbridge.devices.codec import DbcCodec, IdFieldsCodec
from csbridge.devices.encoder import reply_frame
from csbridge.devices.profile import MessageSpec, ProfileRegistry

log = logging.getLogger("csbridge.sim")

OVER_TEMPERATURE_TRIP_C = 100.0
Clock = Callable[[], float]


@dataclass(slots=True)
class WireModule:
    """An id-fields power module: replies to requests addressed to it, unless silent."""

    evse_id: str
    config: ModuleConfig
    codec: IdFieldsCodec
    silent: bool = False
    fault: bool = False
    input_lost: bool = False
    temperature_c: float = 35.0
    output_voltage: float = 0.0
    output_current: float = 0.0
    _requests: dict[int, MessageSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for spec in self.codec.profile.message:
            if spec.poll:
                self._requests[self.codec.request_id(spec, self.config.address)] = spec

    def values(self) -> dict[str, float]:
        rated = self.config.simulated
        assert rated is not None
        values = {
            "output_voltage": self.output_voltage,
            "output_current": self.output_current,
            "temperature_c": self.temperature_c,
            "export.max_voltage": rated.max_voltage_v,
            "export.min_voltage": rated.min_voltage_v,
            "export.max_current": rated.max_current_a,
            "export.max_power": rated.max_power_w,
        }
        if rated.max_import_current_a is not None:
            values["import.max_current"] = rated.max_import_current_a
            values["import.max_power"] = rated.max_import_power_w or 0.0
        return values

    def flags(self) -> dict[str, bool]:
        return {
            "fault": self.fault,
            "input_lost": self.input_lost,
            "over_temperature": self.temperature_c >= OVER_TEMPERATURE_TRIP_C,
        }

    def answer(self, frame: can.Message) -> can.Message | None:
        if self.silent or frame.is_error_frame:
            return None
        spec = self._requests.get(frame.arbitration_id)
        if spec is None:
            return None
        return reply_frame(self.codec, spec, self.config.address, self.values(), self.flags())


@dataclass(slots=True)
class WireImd:
    """A dbc-family IMD: its cyclic frame, with resistance and status bits."""

    evse_id: str
    config: ImdConfig
    codec: DbcCodec
    resistance_ohm: float = 5_000_000.0
    silent: bool = False
    device_fault: bool = False
    self_test_until: float = 0.0
    clock: Clock = field(default=lambda: 0.0)

    def start_self_test(self, now: float) -> None:
        assert self.config.simulated is not None
        self.self_test_until = now + self.config.simulated.self_test_s

    @property
    def can_bus(self) -> str | None:
        return self.config.can.bus if self.config.can is not None else None

    def frame(self) -> can.Message:
        testing = self.clock() < self.self_test_until
        return self.codec.encode(
            "IMD_Info",
            {
                "R_ISO": min(65535, round(self.resistance_ohm / 1000)),
                "IMC_ISO_FAILURE": 0,
                "IMC_CHASSIS_FAULT": 0,
                "IMC_SYSTEM_FAILURE": int(self.device_fault),
                "IMC_CALIBRATION_RUNNING": 0,
                "IMC_SELF_TEST_RUNNING": int(testing),
                "IMC_ISO_WARNING": 0,
                "VIFC_MEASUREMENT_DEACTIVATED": 0,
                "VIFC_IMC_CONNECTION_ERROR": 0,
                "VIFC_IMC_ALIVE_ERROR": 0,
                "VIFC_COMMAND_ERROR": 0,
                "VIFC_R_ISO_OUTDATED": int(testing),
                "VIFC_SELF_TEST_OVERALL_NOT_EXECUTED": 0,
                "VIFC_SELF_TEST_PARAMETER_NOT_EXECUTED": 0,
            },
        )

    @property
    def period_s(self) -> float:
        assert self.config.simulated is not None
        return self.config.simulated.period_s


@dataclass(slots=True)
class WireBus:
    """The simulators' own end of one bus."""

    config: BusConfig
    modules: list[WireModule] = field(default_factory=list)
    imds: list[WireImd] = field(default_factory=list)
    bus: can.BusABC | None = None

    def send(self, frame: can.Message) -> None:
        if self.bus is None:
            return
        try:
            self.bus.send(frame)
        except can.CanError:
            log.debug("event=sim_send_failed bus=%s", self.config.name)

    def on_frame(self, frame: can.Message) -> None:
        for module in self.modules:
            reply = module.answer(frame)
            if reply is not None:
                self.send(reply)

    def emit(self, imd: WireImd) -> None:
        if not imd.silent:
            self.send(imd.frame())

    async def run(self) -> None:
        self.bus = can.Bus(channel=self.config.interface_channel, interface=self.config.interface)
        notifier = can.Notifier(self.bus, [self.on_frame], loop=asyncio.get_running_loop())
        try:
            async with asyncio.TaskGroup() as tasks:
                for imd in self.imds:
                    tasks.create_task(self._cyclic(imd))
                if not self.imds:
                    await asyncio.Event().wait()
        finally:
            notifier.stop(timeout=1.0)
            self.bus.shutdown()
            self.bus = None

    async def _cyclic(self, imd: WireImd) -> None:
        while True:
            self.emit(imd)
            await asyncio.sleep(imd.period_s)


def wire_bus_for(buses: dict[str, WireBus], configs: dict[str, BusConfig], name: str) -> WireBus:
    if name not in buses:
        buses[name] = WireBus(configs[name])
    return buses[name]


def build_wire_module(
    evse_id: str, module: ModuleConfig, bus: BusConfig, registry: ProfileRegistry
) -> WireModule:
    assert module.can is not None
    assert module.simulated is not None
    codec = IdFieldsCodec(registry.get(module.can.profile), bus.controller_address)
    return WireModule(evse_id, module, codec, temperature_c=module.simulated.temperature_c)


def build_wire_imd(
    evse_id: str, imd: ImdConfig, registry: ProfileRegistry, clock: Clock
) -> WireImd:
    assert imd.can is not None
    assert imd.simulated is not None
    profile = registry.get(imd.can.profile)
    codec = DbcCodec(profile, registry.dbc_path(profile))
    return WireImd(evse_id, imd, codec, resistance_ohm=imd.simulated.resistance_ohm, clock=clock)
