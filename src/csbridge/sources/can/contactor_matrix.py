"""The contactor matrix board of a shared module pool on the wire: its layout
(hal/switching/contactor-matrix.toml) and the codec of its two frames (hal/contactor-matrix.dbc).
A contactor is (module index, bus index).

The codec serves both sides, so that the station's driver (power/matrix_can.py) and the board's
simulator (sources/simulated/contactor_matrix.py) read the same facts; a charger with a real
board loads no simulator.
"""

from __future__ import annotations

import logging
import math
import tomllib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import can
import cantools

from csbridge.config import ConfigError, PoolBoardConfig
from csbridge.support import RateLimitedLog, resource_dir

log = RateLimitedLog(logging.getLogger(__name__))

Contact = tuple[int, int]
"""(module index, bus index), both from 0."""

_LAYOUT_KEYS = {
    "name": str,
    "dbc": str,
    "bitrate": int,
    "modules": int,
    "buses": int,
    "command": str,
    "feedback": str,
    "command_signal": str,
    "feedback_signal": str,
    "feedback_cycle_s": float,
    "feedback_time_limit_s": float,
}


@dataclass(frozen=True, slots=True)
class ContactorMatrixLayout:
    """The matrix as its file describes it."""

    path: Path
    name: str
    dbc: Path
    bitrate: int
    modules: int
    buses: int
    command: str
    feedback: str
    command_signal: str
    """Signal name pattern, with {module} and {bus}."""
    feedback_signal: str
    feedback_cycle_s: float
    feedback_time_limit_s: float

    def contacts(self) -> list[Contact]:
        return [(module, bus) for module in range(self.modules) for bus in range(self.buses)]


def default_layout_path() -> Path:
    return resource_dir("hal") / "switching" / "contactor-matrix.toml"


def board_layout_path(board: PoolBoardConfig | None, base: Path | None = None) -> Path:
    """A pool board's layout file: its `layout` (relative to `base`), else csbridge's own."""
    if board is None or board.layout is None:
        return default_layout_path()
    path = Path(board.layout)
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


COMMAND_REPEAT_S = 1.0
"""How often the command is repeated when the DBC gives it no cycle time: a board that restarts
gets its contacts' commands back within this."""


def load_matrix_layout(path: Path | None = None) -> ContactorMatrixLayout:
    """Read a matrix layout; every key is required and typed, nothing else is allowed."""
    path = path or default_layout_path()
    with path.open("rb") as file:
        table = tomllib.load(file).get("matrix")
    if not isinstance(table, dict):
        raise ConfigError(str(path), ["[matrix]: the table is missing"])
    problems = [f"matrix.{key}: not a key of a matrix" for key in set(table) - set(_LAYOUT_KEYS)]
    values: dict[str, object] = {}
    for key, kind in _LAYOUT_KEYS.items():
        value = table.get(key)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            problems.append(f"matrix.{key}: a {kind.__name__} is required, not {value!r}")
        values[key] = value
    if not problems:
        problems += _range_problems(values)
    if problems:
        raise ConfigError(str(path), problems)
    dbc = (path.parent / str(values.pop("dbc"))).resolve()
    return ContactorMatrixLayout(path=path, dbc=dbc, **values)  # type: ignore[arg-type]


def _range_problems(values: dict[str, object]) -> list[str]:
    problems = []
    for key in ("modules", "buses", "bitrate"):
        if not (isinstance(value := values[key], int) and value > 0):
            problems.append(f"matrix.{key}: must be above 0, not {value!r}")
    for key in ("feedback_cycle_s", "feedback_time_limit_s"):
        value = values[key]
        if not (isinstance(value, float) and math.isfinite(value) and value > 0):
            problems.append(f"matrix.{key}: must be a positive number of seconds, not {value!r}")
    return problems


class ContactorMatrixCodec:
    """MATRIX_Command and MATRIX_Feedback to and from sets of closed contacts."""

    def __init__(self, layout: ContactorMatrixLayout) -> None:
        self.layout = layout
        database = cantools.database.load_file(str(layout.dbc))
        assert isinstance(database, cantools.database.can.Database)
        self._command = database.get_message_by_name(layout.command)
        self._feedback = database.get_message_by_name(layout.feedback)
        missing = [
            name
            for message, pattern in (
                (self._command, layout.command_signal),
                (self._feedback, layout.feedback_signal),
            )
            for name in self._names(pattern)
            if name not in {signal.name for signal in message.signals}
        ]
        if missing:
            raise ConfigError(str(layout.path), [f"signals not in {layout.dbc.name}: {missing}"])

    @property
    def command_id(self) -> int:
        return int(self._command.frame_id)

    @property
    def feedback_id(self) -> int:
        return int(self._feedback.frame_id)

    @property
    def command_cycle_s(self) -> float:
        """How often the station repeats its command: the DBC's cycle time of the command
        message (GenMsgCycleTime), else COMMAND_REPEAT_S."""
        cycle_ms = self._command.cycle_time
        return cycle_ms / 1000 if cycle_ms else COMMAND_REPEAT_S

    def command_frame(self, closed: Collection[Contact]) -> can.Message:
        return self._encode(self._command, self.layout.command_signal, closed)

    def feedback_frame(self, closed: Collection[Contact]) -> can.Message:
        return self._encode(self._feedback, self.layout.feedback_signal, closed)

    def decode_command(self, frame: can.Message) -> frozenset[Contact] | None:
        """The contacts a command closes; None: not a well-formed command frame."""
        return self._decode(self._command, self.layout.command_signal, frame)

    def decode_feedback(self, frame: can.Message) -> frozenset[Contact] | None:
        """The contacts whose feedback reads closed; None: not a well-formed feedback frame."""
        return self._decode(self._feedback, self.layout.feedback_signal, frame)

    def _names(self, pattern: str) -> list[str]:
        return [pattern.format(module=m, bus=b) for m, b in self.layout.contacts()]

    def _encode(
        self, message: cantools.database.can.Message, pattern: str, closed: Collection[Contact]
    ) -> can.Message:
        outside = set(closed) - set(self.layout.contacts())
        if outside:
            raise ValueError(f"contacts outside the {self.layout.name} matrix: {sorted(outside)}")
        names = self._names(pattern)
        known = set(names)  # once per frame, not once per signal (64 x 64 formats)
        data = message.encode(
            {
                name: int(contact in closed)
                for name, contact in zip(names, self.layout.contacts(), strict=True)
            }
            | {signal.name: 0 for signal in message.signals if signal.name not in known},
            strict=True,
        )
        return can.Message(arbitration_id=message.frame_id, data=data, is_extended_id=False)

    def _decode(
        self, message: cantools.database.can.Message, pattern: str, frame: can.Message
    ) -> frozenset[Contact] | None:
        if frame.arbitration_id != message.frame_id or frame.is_extended_id:
            return None
        if frame.is_remote_frame or frame.is_error_frame or frame.dlc != message.length:
            log.warning(
                ("matrix_frame", message.name),
                "event=contactor_matrix_frame_rejected message=%s id=0x%03X dlc=%d "
                "reason=not_a_data_frame_of_its_length",
                message.name,
                frame.arbitration_id,
                frame.dlc,
            )
            return None
        decoded = message.decode(bytes(frame.data), decode_choices=False, scaling=False)
        assert isinstance(decoded, dict)  # a plain message (no container): signal -> value
        return frozenset(
            (m, b) for m, b in self.layout.contacts() if decoded[pattern.format(module=m, bus=b)]
        )
