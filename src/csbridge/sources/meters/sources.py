"""Every configured meter of the station, built from the configuration and run together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from csbridge.config import (
    BusConfig,
    Config,
    ConfigError,
    EvseConfig,
    MeterConfig,
    SimulatedMeterConfig,
)
from csbridge.sources import ReadingSink
from csbridge.sources.meters.can_meter import CanMeter
from csbridge.sources.meters.ivts import load_can_meter_profile
from csbridge.sources.meters.modbus import ModbusMeter
from csbridge.sources.meters.register_map import (
    MeterProfileError,
    load_register_map,
    meter_profile_path,
)
from csbridge.sources.meters.rest import RestDcMeter
from csbridge.sources.meters.rest_source import RestMeterSource
from csbridge.sources.meters.simulated import Flow, SimulatedMeter
from csbridge.sources.meters.wire_sims import (
    IVTS_CYCLE_S,
    SimulatedCanMeter,
    SimulatedModbusMeter,
)
from csbridge.support import Counters


class Meter(Protocol):
    evse_id: str
    kind: str

    async def run(self) -> None: ...


def _no_flow(_evse_id: str) -> Flow:
    return Flow(0.0, 0.0)


class MeterSources:
    """The meters, by EVSE (a `rest` meter: its client, rest_source.py, polled like the rest)."""

    def __init__(
        self,
        config: Config,
        sink: ReadingSink,
        counters: Counters,
        *,
        clock: Callable[[], float] = time.monotonic,
        measure: Callable[[str], Flow] = _no_flow,
        profile_dirs: Sequence[Path] = (),
    ) -> None:
        self.meters: dict[str, Meter] = {}
        self.simulators: dict[str, Meter] = {}
        """Meters played on the wire (`simulated` beside `can` or `modbus`), by EVSE."""
        self.signing: dict[str, RestDcMeter] = {}
        """The signing meters beside a measuring one ([evse.meter] `signing`), by EVSE."""
        buses = {bus.name: bus for bus in config.bus}
        dirs = tuple(profile_dirs) or tuple(config.station.profile_dirs)
        problems = meter_problems(config, dirs)
        if problems:
            raise ConfigError("config", problems)
        for evse in config.evse:
            meter = evse.meter
            if meter is None:
                continue
            if meter.signing is not None:
                self.signing[evse.evse_id] = RestDcMeter(
                    meter.signing.url,
                    name=evse.evse_id,
                    deadline_s=meter.deadline_s,
                    counters=counters,
                    clock=clock,
                )
            if meter.kind == "rest":
                self.meters[evse.evse_id] = RestMeterSource(
                    evse.evse_id, meter, sink, counters, clock
                )
                continue
            reader, simulator = _build(
                evse,
                meter,
                buses=buses,
                sink=sink,
                counters=counters,
                clock=clock,
                measure=measure,
                dirs=dirs,
            )
            self.meters[evse.evse_id] = reader
            if simulator is not None:
                self.simulators[evse.evse_id] = simulator

    def count(self) -> int:
        return len(self.meters)

    def signers(self) -> dict[str, RestDcMeter]:
        """The meters that sign their EVSE's transactions (the REST ones, and those named by
        `signing` beside another meter), by EVSE."""
        return {
            evse_id: meter.client
            for evse_id, meter in self.meters.items()
            if isinstance(meter, RestMeterSource)
        } | self.signing

    async def run(self) -> None:
        """Until cancelled (then the signing meters' connections are closed)."""
        try:
            async with asyncio.TaskGroup() as tasks:
                for evse_id, simulator in self.simulators.items():
                    tasks.create_task(simulator.run(), name=f"meter-simulator-{evse_id}")
                for evse_id, meter in self.meters.items():
                    tasks.create_task(meter.run(), name=f"meter-{evse_id}")
        finally:
            for client in self.signing.values():
                await client.close()


def meter_problems(config: Config, profile_dirs: Sequence[Path] = ()) -> list[str]:
    """Each configured meter's profile exists and can be used (and a CAN meter's bitrate is its
    bus's): problems named by key, for check-config and for the station's start."""
    dirs = tuple(profile_dirs) or tuple(config.station.profile_dirs)
    buses = {bus.name: bus for bus in config.bus}
    problems: list[str] = []
    for index, evse in enumerate(config.evse):
        meter = evse.meter
        where = f"evse[{index}].meter"
        try:
            if meter is not None and meter.can is not None:
                profile = load_can_meter_profile(meter_profile_path(meter.can.profile, dirs))
                bitrate = buses[meter.can.bus].bitrate
                if bitrate is not None and bitrate != profile.bitrate:
                    problems.append(
                        f"{where}.can: {profile.name} talks at {profile.bitrate} bit/s, bus"
                        f" {meter.can.bus} is set to {bitrate}"
                    )
            if meter is not None and meter.modbus is not None:
                load_register_map(meter_profile_path(meter.modbus.register_map, dirs))
        except MeterProfileError as error:
            problems.append(f"{where}: {error}")
    return problems


def _build(
    evse: EvseConfig,
    meter: MeterConfig,
    *,
    buses: dict[str, BusConfig],
    sink: ReadingSink,
    counters: Counters,
    clock: Callable[[], float],
    measure: Callable[[str], Flow],
    dirs: tuple[Path, ...],
) -> tuple[Meter, Meter | None]:
    """The meter's reader, and the simulator that plays the meter on the wire (if any)."""
    evse_id = evse.evse_id
    simulated = SimulatedMeter(
        evse_id,
        meter.simulated or SimulatedMeterConfig(),
        lambda: measure(evse_id),
        sink=sink,
        clock=clock,
    )
    if meter.kind == "can":
        assert meter.can is not None  # MeterConfig guarantees it
        profile = load_can_meter_profile(meter_profile_path(meter.can.profile, dirs))
        bus = buses[meter.can.bus]
        reader = CanMeter(evse_id, profile, bus, sink=sink, counters=counters, clock=clock)
        if meter.simulated is None:
            return reader, None
        return reader, SimulatedCanMeter(profile, bus, simulated, IVTS_CYCLE_S)
    if meter.kind == "modbus":
        assert meter.modbus is not None  # MeterConfig guarantees it
        register_map = load_register_map(meter_profile_path(meter.modbus.register_map, dirs))
        modbus = ModbusMeter(
            evse_id,
            register_map,
            meter.modbus,
            poll_period_s=meter.poll_period_s,
            sink=sink,
            counters=counters,
            clock=clock,
        )
        if meter.simulated is None or meter.modbus.tcp is None:
            return modbus, None
        server = SimulatedModbusMeter(
            register_map,
            simulated,
            device_id=meter.modbus.device_id,
            host=meter.modbus.tcp.host,
            port=meter.modbus.tcp.port,
        )
        return modbus, server
    return simulated, None
