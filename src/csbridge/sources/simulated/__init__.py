"""Simulated modules, IMDs and boards, reading-level or on a virtual CAN bus through the profiles:
for the demo, the tests and the benches. Also the contactor matrix of a shared module pool: its
layout, its frames' codec and a simulated matrix board.

Imports sources.can, sources (readings), config and support.
"""

from __future__ import annotations

from csbridge.sources.can import (
    ContactorMatrixCodec,
    ContactorMatrixLayout,
    board_layout_path,
    load_matrix_layout,
)
from csbridge.sources.simulated.can_devices import (
    SimulatedCanBoard,
    SimulatedCanImd,
    wire_simulation_problems,
)
from csbridge.sources.simulated.contactor_matrix import SimulatedContactorMatrix
from csbridge.sources.simulated.devices import (
    SimulatedBoard,
    SimulatedDevices,
    SimulatedImd,
    SimulatedModule,
)
from csbridge.sources.simulated.wire_families import InfypowerBegModule

__all__ = [
    "ContactorMatrixCodec",
    "ContactorMatrixLayout",
    "InfypowerBegModule",
    "SimulatedBoard",
    "SimulatedCanBoard",
    "SimulatedCanImd",
    "SimulatedContactorMatrix",
    "SimulatedDevices",
    "SimulatedImd",
    "SimulatedModule",
    "board_layout_path",
    "load_matrix_layout",
    "wire_simulation_problems",
]
