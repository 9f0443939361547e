"""The EVSE's power modules, IMD and board as things to command: setpoints, on/off, contactors,
the CP PWM, the IMD self-test, each through the driver of its transport (CAN, EVerest's API,
simulated devices, or none), chosen once when the station is wired. `switching` orders the moves
of a shared pool's modules between EVSEs; `pool` and `matrix` give a pooled EVSE the modules
connected to it now and reach the contactor matrix board.

Imports limits, sources (can, everest, simulated) and config.
"""

from __future__ import annotations

from csbridge.power.banked_switching import BankedSequencer
from csbridge.power.drivers import (
    AcDischargeBoardDriver,
    BidirectionalModuleDriver,
    BoardDriver,
    ImdDriver,
    ModuleDriver,
    NoBoardDriver,
    NoImdDriver,
    NoModuleDriver,
    PhasedModule,
    PowerOnReason,
)
from csbridge.power.matrix import (
    SimulatedMatrixDriver,
    WiredOnly,
    matrix_contacts,
    matrix_driver,
    pool_layout,
    pool_problems,
)
from csbridge.power.matrix_can import CanMatrixDriver
from csbridge.power.pool import MatrixDriver, PoolModules
from csbridge.power.stage import EvsePower, PowerStage
from csbridge.power.switching import (
    EndSession,
    LimitEvse,
    ModuleFault,
    ModuleSense,
    Phase,
    ReclampSetpoint,
    SetContactor,
    SwitchingCommand,
    SwitchingInputs,
    SwitchingSequencer,
    SwitchingSettings,
    SwitchModule,
)
from csbridge.power.wiring import wire_power

__all__ = [
    "AcDischargeBoardDriver",
    "BankedSequencer",
    "BidirectionalModuleDriver",
    "BoardDriver",
    "CanMatrixDriver",
    "EndSession",
    "EvsePower",
    "ImdDriver",
    "LimitEvse",
    "MatrixDriver",
    "ModuleDriver",
    "ModuleFault",
    "ModuleSense",
    "NoBoardDriver",
    "NoImdDriver",
    "NoModuleDriver",
    "Phase",
    "PhasedModule",
    "PoolModules",
    "PowerOnReason",
    "PowerStage",
    "ReclampSetpoint",
    "SetContactor",
    "SimulatedMatrixDriver",
    "SwitchModule",
    "SwitchingCommand",
    "SwitchingInputs",
    "SwitchingSequencer",
    "SwitchingSettings",
    "WiredOnly",
    "matrix_contacts",
    "matrix_driver",
    "pool_layout",
    "pool_problems",
    "wire_power",
]
