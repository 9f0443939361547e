"""A whole station in one process: the limits engine, its device sources and the bridge."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from csbridge.config import Config
from csbridge.engine import LimitsEngine
from csbridge.messages import SchemaRegistry
from csbridge.power import wire_power
from csbridge.protocol import Bridge
from csbridge.service.everest_export import EverestExport
from csbridge.service.scenario import Step, demo_scenario, play
from csbridge.service.watchdog import Watched
from csbridge.session import SessionHandlers
from csbridge.sources.can import CanBuses, DeviceRouter, ProfileRegistry
from csbridge.sources.everest import EverestSources
from csbridge.sources.simulated import SimulatedDevices


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
        self.buses = CanBuses(
            config, self.router, self.engine.ingest, self.engine.counters, self.engine.clock
        )
        self.replay_logs = tuple(replay_logs)
        self.devices = SimulatedDevices.from_config(
            config, self.engine.ingest, self.engine.clock, registry
        )
        schemas = SchemaRegistry()
        self.everest = EverestSources(config, self.engine.ingest, self.engine.clock, schemas)
        self.stage = wire_power(config, self.router, self.buses, self.devices, self.everest)
        self.session = SessionHandlers(config, self.engine, self.stage, self.engine.clock)
        self.export = EverestExport(config, self.engine, self.session, schemas)
        self.buses.before_close = lambda: self.session.switch_everything_off("the bridge stops")
        self.bridge = Bridge(
            config,
            self.engine,
            session=self.session.handlers(),
            pushed=self.session.pushed,
            on_mqtt_lost=lambda: self.session.switch_everything_off("MQTT lost"),
            on_simulate=self.devices.apply if self.devices.count() else None,
            registry=schemas,
            topic_sources=[source for source in (self.everest, self.export) if source.count()],
        )
        self.everest.publish = lambda topic, payload: self.bridge.publish_now(
            topic, payload, "everest"
        )
        self.export.publish = lambda topic, payload: self.bridge.publish_now(
            topic, payload, "everest-export"
        )
        self.steps = (
            demo_scenario(config, self.devices, self.engine)
            if config.station.scenario == "demo"
            else []
        )
        self.on_step = on_step

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

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.session.keep_alive(), name="setpoint-keepalive")
            tasks.create_task(self.devices.run(), name="simulated-devices")
            tasks.create_task(self.everest.run(), name="everest-api")
            tasks.create_task(self.export.run(), name="everest-export")
            if self.replay_logs:
                tasks.create_task(self.buses.replay(self.replay_logs), name="can-replay")
            else:
                tasks.create_task(self.buses.run(), name="can-buses")
            tasks.create_task(self.engine.run(), name="limits-engine")
            tasks.create_task(self.bridge.run(), name="bridge")
            if self.steps:
                tasks.create_task(play(self.steps, self.on_step), name="scenario")
