"""One station as a running service: wiring the engine, sources, power and bridge together, the
runner, sd_notify and the watchdog, Prometheus metrics, the demo scenario and the EVerest export.

Imports every package below tools.
"""

from __future__ import annotations

from csbridge.service.runner import run_station
from csbridge.service.station import Station
from csbridge.service.steps import Step

__all__ = [
    "Station",
    "Step",
    "run_station",
]
