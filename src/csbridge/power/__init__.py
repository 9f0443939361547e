"""The EVSE's power modules, IMD and board as things to command: setpoints, on/off, contactors,
the CP PWM, the IMD self-test, over CAN, EVerest's API or into simulated devices.

Imports limits, sources (can, everest, simulated) and config.
"""

from __future__ import annotations

from csbridge.power.stage import PowerStage

__all__ = [
    "PowerStage",
]
