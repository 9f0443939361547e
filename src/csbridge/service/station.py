"""A whole station in one process: the limits engine, its device sources and the bridge."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from csbridge.config import Config, Kind, redacted_config
from csbridge.engine import LimitsEngine
from csbridge.messages import HandlerTable, SchemaRegistry
from csbridge.power import CanMatrixDriver, SwitchingSettings, matrix_driver, wire_power
from csbridge.protocol import Bridge
from csbridge.service.everest_export import EverestExport
from csbridge.service.identity import DeviceModel
from csbridge.service.maintenance import Maintenance
from csbridge.service.meter_pushing import meter_push
from csbridge.service.state_file import StateFile
from csbridge.service.steps import Step, play
from csbridge.service.watchdog import Watched
from csbridge.session import (
    JosevServices,
    OcppRefusals,
    PoolCoordinator,
    Resets,
    SessionHandlers,
)
from csbridge.sources.can import CanBuses, DeviceRouter, ProfileRegistry
from csbridge.sources.everest import EverestSources
from csbridge.sources.rfid import serial_readers

AVAILABILITY_KEY = "availability"
"""The state file's per-EVSE availability (true: operative)."""

if TYPE_CHECKING:
    from csbridge.sources.meters import Flow, MeterSources
    from csbridge.sources.simulated import SimulatedDevices

log = logging.getLogger("csbridge.station")


class Station:
    def __init__(
        self,
        config: Config,
        on_step: Callable[[Step], None] | None = None,
        replay_logs: Sequence[Path] = (),
    ) -> None:
        self.config = config
        self.engine = LimitsEngine(config)
        registry = ProfileRegistry(extra=config.station.profile_dirs)
        self.router = DeviceRouter(config, registry, self.engine.counters, self.engine.clock)
        # Before the buses: a board's feedback is routed to its driver, and its bus opened.
        self.matrices = {
            pool.name: matrix_driver(pool, self.router, self.engine.counters, self.engine.clock)
            for pool in config.pool
        }
        self.buses = CanBuses(
            config, self.router, self.engine.ingest, self.engine.counters, self.engine.clock
        )
        for matrix in self.matrices.values():
            if isinstance(matrix, CanMatrixDriver):
                matrix.link = self.buses.links[matrix.bus_name]
        self.replay_logs = tuple(replay_logs)
        self._devices = _simulated_devices(config, self.engine, registry)
        schemas = SchemaRegistry()
        self.everest = EverestSources(config, self.engine.ingest, self.engine.clock, schemas)
        self.stage = wire_power(config, self.router, self.buses, self._devices, self.everest)
        self.state = StateFile(config.station.state_dir, self.engine.counters)
        stored = self.state.load().get(AVAILABILITY_KEY, {})
        self.session = SessionHandlers(
            config,
            self.engine,
            self.stage,
            self.engine.clock,
            operative={evse_id: bool(v) for evse_id, v in stored.items()},
        )
        self.session.on_availability = self._keep_availability
        self.pools = _pools(config, self)
        self.meters = _meters(config, self)
        self.meter_push = meter_push(
            config, self.engine, self.session, self.meters.signers() if self.meters else {}
        )
        self.resets = Resets(config, self.session, self.stage, self.engine)
        self.device_model = DeviceModel(config, self.engine.counters)
        self.josev = JosevServices(
            config.station.josev_services,
            self.session.switch_everything_off,
            self.engine.counters,
            self.engine.clock,
        )
        self.josev.on_change = self.engine.set_josev
        self.engine.set_josev(self.josev.report_block())
        self.export = EverestExport(config, self.engine, self.session, schemas)
        self.maintenance = Maintenance(
            config.station.maintenance,
            self.engine.counters,
            self.engine.clock,
            snapshot=self._maintenance_snapshot,
        )
        self.buses.before_close = lambda: self.session.switch_everything_off("the bridge stops")
        self.bridge = Bridge(
            config,
            self.engine,
            session=self.session.handlers()
            | HandlerTable.of(self.resets, self.device_model)
            | HandlerTable.of(OcppRefusals(self.engine.counters, self.engine.clock))
            | self.maintenance.handlers()
            | self.josev.handlers(),
            pushed=self.session.pushed,
            on_mqtt_lost=lambda: self.session.switch_everything_off("MQTT lost"),
            on_simulate=self._devices.apply if self._devices is not None else None,
            registry=schemas,
            topic_sources=[source for source in (self.everest, self.export) if source.count()],
            session_side=self.session,
        )
        self.session.authorization.ask = self.bridge.ask
        self.maintenance.send = self.bridge.send
        self.josev.ask = self.bridge.ask
        self.readers = serial_readers(config, self.session.authorization.present)
        self.everest.publish = lambda topic, payload: self.bridge.publish_now(
            topic, payload, "everest"
        )
        self.export.publish = lambda topic, payload: self.bridge.publish_now(
            topic, payload, "everest-export"
        )
        self.steps = _scenario(config, self._devices, self.engine)
        self.on_step = on_step

    def _keep_availability(self, evse_id: str, operative: bool) -> None:
        """Availability survives a restart: the state file holds it."""
        stored = self.state.get(AVAILABILITY_KEY, {})
        stored[evse_id] = operative
        self.state.put(AVAILABILITY_KEY, stored)

    def _maintenance_snapshot(self) -> dict[str, object]:
        """What a log upload takes from the running station: its configuration without
        secrets and each EVSE's last limits report."""
        return {
            "config": redacted_config(self.config),
            "limits_reports": {e: self.engine.reports.get(e) for e in self.engine.evse_ids},
        }

    @property
    def devices(self) -> SimulatedDevices:
        """The simulated devices (none, for a configuration that simulates nothing)."""
        if self._devices is None:
            from csbridge.sources.simulated import SimulatedDevices  # noqa: PLC0415

            self._devices = SimulatedDevices(self.engine.ingest, self.engine.clock)
        return self._devices

    def simulated_count(self) -> int:
        """How many devices are simulated (without loading the simulators to say none)."""
        return 0 if self._devices is None else self._devices.count()

    async def shut_down(self, why: str = "csbridge stops") -> None:
        """The goodbye before a deliberate stop: modules off, every EVSE to evse_shutdown, and
        that final state published (the link then says offline as it disconnects)."""
        self.session.switch_everything_off(why)
        self.everest.stop_measuring()
        self.engine.stop_serving(why)
        await self.bridge.publish_full_state()

    def watched(self) -> list[Watched]:
        """The parts whose progress keeps systemd's watchdog fed."""
        parts = [Watched("mqtt", self.bridge.link.stalled_for)]
        if not self.replay_logs:
            parts += [
                Watched(f"can:{name}", link.stalled_for) for name, link in self.buses.links.items()
            ]
        return parts

    async def run(self) -> None:
        """Until cancelled."""
        try:
            await self._run()
        finally:
            self.session.switch_everything_off("the bridge stops")
            if self.meter_push is not None:
                await self.meter_push.close()

    def meter_flow(self, evse_id: str) -> Flow:
        """What a simulated meter measures: the modules' output (DC); nothing flows through an
        AC EVSE's simulation, so its meter sees the phase voltage and no current."""
        from csbridge.sources.meters import Flow  # noqa: PLC0415 - only with a meter

        evse = next(e for e in self.config.evse if e.evse_id == evse_id)
        if evse.kind is Kind.DC:
            power = self.session.power
            current = power.measured_current(evse_id)
            # The modules measure a magnitude in either mode; a meter on the DC bus sees the
            # current run back while they are commanded to import.
            if power.step(evse_id).import_:
                current = -current
            return Flow(power.measured_voltage(evse_id), current)
        return Flow(float(evse.nominal_voltage or 0), 0.0, evse.phases)

    async def _run(self) -> None:
        await self.device_model.load()  # before the bridge connects and Josev can ask
        _warn_unmetered(self.config)
        async with asyncio.TaskGroup() as tasks:
            if self.meters is not None:
                tasks.create_task(self.meters.run(), name="meters")
            if self.meter_push is not None:
                tasks.create_task(self.meter_push.read_public_keys(), name="meter-keys")
            tasks.create_task(self.session.keep_alive(), name="setpoint-keepalive")
            if self._devices is not None:
                tasks.create_task(self._devices.run(), name="simulated-devices")
            tasks.create_task(self.everest.run(), name="everest-api")
            tasks.create_task(self.export.run(), name="everest-export")
            if self.replay_logs:
                tasks.create_task(self.buses.replay(self.replay_logs), name="can-replay")
            else:
                tasks.create_task(self.buses.run(), name="can-buses")
            tasks.create_task(self.engine.run(), name="limits-engine")
            for pool in self.pools:
                tasks.create_task(_run_pool(pool), name=f"pool-{pool.pool.name}")
                matrix = pool.matrix
                if isinstance(matrix, CanMatrixDriver) and not self.replay_logs:
                    tasks.create_task(matrix.run(), name=f"matrix-{pool.pool.name}")
            tasks.create_task(self.bridge.run(), name="bridge")
            tasks.create_task(self.maintenance.run(), name="maintenance")
            tasks.create_task(
                self.josev.poll(self.bridge.link.connected, self.bridge.state_published),
                name="josev-services",
            )
            for reader in self.readers:
                tasks.create_task(reader.run(), name=f"rfid-{reader.evse_id}")
            if self.steps:
                tasks.create_task(play(self.steps, self.on_step), name="scenario")


def _simulates_something(config: Config) -> bool:
    return any(
        device is not None and device.simulated is not None
        for evse in config.evse
        for device in (*evse.module, evse.imd, evse.board)
    ) or any(
        any(module.simulated is not None for module in pool.module)
        # a simulated board on the wire answers from the simulated devices' bus
        or (pool.board is not None and pool.board.bus is not None and pool.board.simulated)
        for pool in config.pool
    )


def _simulated_devices(
    config: Config, engine: LimitsEngine, registry: ProfileRegistry
) -> SimulatedDevices | None:
    """The configuration's simulated devices; None, and the simulators never imported, when it
    simulates nothing (a charger in the field)."""
    if not _simulates_something(config):
        return None
    from csbridge.sources.simulated import SimulatedDevices  # noqa: PLC0415

    return SimulatedDevices.from_config(config, engine.ingest, engine.clock, registry)


def _scenario(config: Config, devices: SimulatedDevices | None, engine: LimitsEngine) -> list[Step]:
    """The demo's script, when the configuration asks for it (on whatever it simulates)."""
    if config.station.scenario != "demo":
        return []
    from csbridge.service.scenario import demo_scenario  # noqa: PLC0415
    from csbridge.sources.simulated import SimulatedDevices  # noqa: PLC0415

    return demo_scenario(config, devices or SimulatedDevices(engine.ingest, engine.clock), engine)


def _pools(config: Config, station: Station) -> list[PoolCoordinator]:
    """Each shared module pool at work. A pool with contactors and no board to drive them
    (check-config refuses it) runs no moves: its EVSEs wait for their modules (not ready), and
    it is logged. A pool whose every bank is wired to its EVSE needs none."""
    evses = {evse.evse_id: evse for evse in config.evse}
    pools = []
    for pool in config.pool:
        matrix = station.matrices[pool.name]
        if matrix is None:
            log.error(
                "event=pool_board_missing pool=%s -- no contactor matrix board: its modules"
                " stay off and its EVSEs not ready",
                pool.name,
            )
            continue
        coordinator = PoolCoordinator(
            pool,
            evses,
            station.engine,
            station.stage,
            station.session,
            matrix=matrix,
            clock=station.engine.clock,
            settings=SwitchingSettings(**pool.switching.model_dump()),
        )
        if isinstance(matrix, CanMatrixDriver):
            matrix.on_feedback = coordinator.step  # a contact moved: the move goes on at once
            coordinator.holding = True  # until the board is first heard (_run_pool)
        pools.append(coordinator)
    return pools


async def _run_pool(pool: PoolCoordinator) -> None:
    """The pool's steps, once its board on CAN was first heard: before, every contact is
    unknown, and stepping would soon take every module out for good (a bus that opens late,
    a board that boots after csbridge). Until then nothing moves and its EVSEs wait."""
    if isinstance(pool.matrix, CanMatrixDriver):
        await pool.matrix.heard()
    pool.holding = False
    await pool.run()


def _meters(config: Config, station: Station) -> MeterSources | None:
    """The configured meters; None, and pymodbus never imported, when there is none."""
    if not any(evse.meter is not None for evse in config.evse):
        return None
    from csbridge.sources.meters import MeterSources  # noqa: PLC0415

    return MeterSources(
        config,
        station.engine.ingest,
        station.engine.counters,
        clock=station.engine.clock,
        measure=station.meter_flow,
    )


def _warn_unmetered(config: Config) -> None:
    """The start-up warning for each EVSE whose meter values are arithmetic, not measured."""
    for evse in config.evse:
        if evse.meter is None:
            log.warning(
                "event=meter_missing evse=%s -- no [evse.meter]: meter_values integrate present"
                " voltage times current (no per-phase values; not for billing)",
                evse.evse_id,
            )
