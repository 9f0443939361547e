"""`csbridge run`: the station until stopped."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from csbridge.config import Config
from csbridge.scenario import Step
from csbridge.station import Station

log = logging.getLogger("csbridge.run")


def _log_step(step: Step) -> None:
    log.info("event=scenario_step what=%r", step.description)


async def run_station(config: Config, replay_logs: Sequence[Path] = ()) -> None:
    """Serve Josev from the configured sources; returns only when cancelled."""
    station = Station(config, on_step=_log_step, replay_logs=replay_logs)
    log.info(
        "event=start broker=%s evses=%s simulated_devices=%d scenario=%s",
        config.mqtt.broker,
        ",".join(station.engine.evse_ids),
        station.devices.count(),
        config.station.scenario or "none",
    )
    await station.run()
