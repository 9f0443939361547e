"""CAN devices: declarative profiles (hal/), the frame codecs, per-device state, the router from
frames to readings, supervised buses, candump/ASC logs, and the command frames.

Imports sources (readings), config and support.
"""

from __future__ import annotations

from csbridge.sources.can.bus import CanBuses
from csbridge.sources.can.bus_checks import bus_warnings
from csbridge.sources.can.codec import (
    FORMAT_CHAR,
    BoardCommand,
    DbcCodec,
    FrameCodec,
    IdFieldsCodec,
    Outcome,
    PowerReason,
    board_command,
    read_board_command,
)
from csbridge.sources.can.commands import (
    CommandMissingError,
    command_id,
    direction_frames,
    mode_frames,
    setpoint_frames,
    switch_frames,
)
from csbridge.sources.can.encoder import reply_frame
from csbridge.sources.can.logs import LogError, merged_frames
from csbridge.sources.can.profile import (
    CommandSpec,
    MessageSpec,
    Profile,
    ProfileRegistry,
    load_profile,
)
from csbridge.sources.can.router import DeviceRouter

__all__ = [
    "FORMAT_CHAR",
    "BoardCommand",
    "CanBuses",
    "CommandMissingError",
    "CommandSpec",
    "DbcCodec",
    "DeviceRouter",
    "FrameCodec",
    "IdFieldsCodec",
    "LogError",
    "MessageSpec",
    "Outcome",
    "PowerReason",
    "Profile",
    "ProfileRegistry",
    "board_command",
    "bus_warnings",
    "command_id",
    "direction_frames",
    "load_profile",
    "merged_frames",
    "mode_frames",
    "read_board_command",
    "reply_frame",
    "setpoint_frames",
    "switch_frames",
]
