"""`csbridge run`: the station until stopped."""

from __future__ import annotations

import logging

from csbridge.config import Config
from csbridge.scenario import Step
from csbridge.station import Station

log = logging.getLogger("csbridge.run")


def _log_step(step: Step) -> None:
    log.info("event=scenario_step what=%r", step.description)


async def run_station(config: Config) -> None:
    """Serve Josev from the configured sources; returns only when cancelled."""
    station = Station(config, on_step=_log_step)
    log.info(
        "event=start broker=%s evses=%s simulated_devices=%d scenario=%s",
        config.mqtt.broker,
        ",".join(station.engine.evse_ids),
        len(station.devices.all()),
        config.station.scenario or "none",
    )
    await station.run()
