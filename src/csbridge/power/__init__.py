"""The EVSE's power modules, IMD and board as things to command: setpoints, on/off, contactors,
the CP PWM, the IMD self-test, each through the driver of its transport (CAN, EVerest's API,
simulated devices, or none), chosen once when the station is wired. `switching` orders the moves
of a shared pool's modules between EVSEs (not yet wired).

Imports limits, sources (can, everest, simulated) and config.
"""

from __future__ import annotations

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
    "BidirectionalModuleDriver",
    "BoardDriver",
    "EndSession",
    "EvsePower",
    "ImdDriver",
    "LimitEvse",
    "ModuleDriver",
    "ModuleFault",
    "ModuleSense",
    "NoBoardDriver",
    "NoImdDriver",
    "NoModuleDriver",
    "Phase",
    "PhasedModule",
    "PowerOnReason",
    "PowerStage",
    "ReclampSetpoint",
    "SetContactor",
    "SwitchModule",
    "SwitchingCommand",
    "SwitchingInputs",
    "SwitchingSequencer",
    "SwitchingSettings",
    "wire_power",
]
