"""CAN devices: declarative profiles (hal/), the frame codecs, per-device state, the router from
frames to readings, supervised buses, CAN logs (candump text and python-can's formats), and the
command frames.

Imports sources (readings), config and support.
"""

from __future__ import annotations

from csbridge.sources.can.bus import CanBuses, error_classes
from csbridge.sources.can.bus_checks import bus_warnings
from csbridge.sources.can.codec import (
    FORMAT_CHAR,
    NUMERIC_FIELDS,
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
from csbridge.sources.can.contactor_matrix import (
    ContactorMatrixCodec,
    ContactorMatrixLayout,
    board_layout_path,
    load_matrix_layout,
)
from csbridge.sources.can.deadlines import MessagePeriod, message_periods, profile_warnings
from csbridge.sources.can.encoder import reply_frame
from csbridge.sources.can.logs import (
    BadLine,
    LogError,
    LogFeed,
    LogStats,
    check_sources,
    merged_frames,
    parse_bus_map,
)
from csbridge.sources.can.profile import (
    QUANTITY_OF,
    CommandSpec,
    MessageSpec,
    Profile,
    ProfileRegistry,
    load_profile,
)
from csbridge.sources.can.router import DeviceRouter, Listener
from csbridge.sources.can.search_path import HAL_PATH_VARIABLE, with_search_path

__all__ = [
    "FORMAT_CHAR",
    "HAL_PATH_VARIABLE",
    "NUMERIC_FIELDS",
    "QUANTITY_OF",
    "BadLine",
    "BoardCommand",
    "CanBuses",
    "CommandMissingError",
    "CommandSpec",
    "ContactorMatrixCodec",
    "ContactorMatrixLayout",
    "DbcCodec",
    "DeviceRouter",
    "FrameCodec",
    "IdFieldsCodec",
    "Listener",
    "LogError",
    "LogFeed",
    "LogStats",
    "MessagePeriod",
    "MessageSpec",
    "Outcome",
    "PowerReason",
    "Profile",
    "ProfileRegistry",
    "board_command",
    "board_layout_path",
    "bus_warnings",
    "check_sources",
    "command_id",
    "direction_frames",
    "error_classes",
    "load_matrix_layout",
    "load_profile",
    "merged_frames",
    "message_periods",
    "mode_frames",
    "parse_bus_map",
    "profile_warnings",
    "read_board_command",
    "reply_frame",
    "setpoint_frames",
    "switch_frames",
    "with_search_path",
]
