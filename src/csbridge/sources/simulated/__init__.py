"""Simulated modules, IMDs and boards, reading-level or on a virtual CAN bus through the profiles:
for the demo, the tests and the benches.

Imports sources.can, sources (readings), config and support.
"""

from __future__ import annotations

from csbridge.sources.simulated.can_devices import SimulatedCanBoard, SimulatedCanImd
from csbridge.sources.simulated.devices import (
    SimulatedBoard,
    SimulatedDevices,
    SimulatedImd,
    SimulatedModule,
)
from csbridge.sources.simulated.wire_families import InfypowerBegModule

__all__ = [
    "InfypowerBegModule",
    "SimulatedBoard",
    "SimulatedCanBoard",
    "SimulatedCanImd",
    "SimulatedDevices",
    "SimulatedImd",
    "SimulatedModule",
]
