"""`csbridge run`: the bridge and its station source, until stopped."""

from __future__ import annotations

import asyncio
import logging

from csbridge.bridge import Bridge
from csbridge.config import Config
from csbridge.simulation import SimulatedStation
from csbridge.static_source import static_snapshot
from csbridge.station_state import StationState

log = logging.getLogger("csbridge.run")


async def run_station(config: Config) -> None:
    """Serve Josev from the configured source; returns only when cancelled."""
    async with asyncio.TaskGroup() as tasks:
        if config.station.simulated:
            station = SimulatedStation(config)
            state = station.state
            tasks.create_task(station.run(), name="simulated-station")
        else:
            state = StationState(static_snapshot(evse) for evse in config.evse)
        bridge = Bridge(config, state)
        log.info(
            "event=start broker=%s evses=%s source=%s",
            config.mqtt.broker,
            ",".join(state.evse_ids),
            "simulated" if config.station.simulated else "static",
        )
        tasks.create_task(bridge.run(), name="bridge")
