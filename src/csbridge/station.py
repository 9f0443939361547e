"""A whole station in one process: the limits engine, its device sources and the bridge."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from csbridge.bridge import Bridge
from csbridge.config import Config
from csbridge.engine import LimitsEngine
from csbridge.scenario import Step, demo_scenario, play
from csbridge.simulated_devices import SimulatedDevices


class Station:
    def __init__(self, config: Config, on_step: Callable[[Step], None] | None = None) -> None:
        self.config = config
        self.engine = LimitsEngine(config)
        self.devices = SimulatedDevices.from_config(config, self.engine.ingest, self.engine.clock)
        self.bridge = Bridge(config, self.engine)
        self.steps = (
            demo_scenario(config, self.devices, self.engine)
            if config.station.scenario == "demo"
            else []
        )
        self.on_step = on_step

    async def run(self) -> None:
        """Until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.devices.run(), name="simulated-devices")
            tasks.create_task(self.engine.run(), name="limits-engine")
            tasks.create_task(self.bridge.run(), name="bridge")
            if self.steps:
                tasks.create_task(play(self.steps, self.on_step), name="scenario")
