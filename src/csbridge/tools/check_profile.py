"""`csbridge check-profile FILE`: one profile checked alone, before a station uses it.

Three steps, each problem one line with its key path:
1. the schema (as the registry loads it, and its name must be its file's);
2. a dbc profile's DBC: the file loads, every message and signal the profile names exists,
   the identifiers' kind and lengths agree, scales are finite and not zero;
3. round trips: every message is built from the profile (encoder.py, or the DBC) with values
   inside its rated ranges and every flag pattern, at the lowest and highest address, and must
   decode to those values, that message and that address; every command is built
   (commands.py) and read back: its identifier carries the address, its fixed bytes are kept,
   its numbers read back within one step, and the codec does not take it for a reply.

Exit 0: no problem; 1: the profile loads but a round trip fails (frames would be misread);
2: the profile cannot be used (unreadable, schema, DBC), as check-config exits on a problem.
"""

from __future__ import annotations

import math
import struct
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import can

from csbridge.config import ConfigError
from csbridge.sources.can import (
    FORMAT_CHAR,
    NUMERIC_FIELDS,
    QUANTITY_OF,
    CommandMissingError,
    DbcCodec,
    IdFieldsCodec,
    MessageSpec,
    Outcome,
    Profile,
    command_id,
    direction_frames,
    load_profile,
    mode_frames,
    reply_frame,
    setpoint_frames,
    switch_frames,
)
from csbridge.sources.meters import MeterProfileError, load_can_meter_profile, load_register_map

EXIT_OK = 0
EXIT_ROUND_TRIP = 1
EXIT_UNUSABLE = 2
CONTROLLER = 0xF0
"""The controller address frames are built with ([[bus]] controller_address's default)."""
INTEGER_RAW = {
    "u8": (0, 0xFF),
    "u16": (0, 0xFFFF),
    "u32": (0, 0xFFFF_FFFF),
    "i16": (-0x8000, 0x7FFF),
    "i32": (-0x8000_0000, 0x7FFF_FFFF),
    "f32": (-1e30, 1e30),
}
PROBE_SHARE = 0.37
"""Where in a value's usable range the probe lies: away from both ends and from round numbers,
so a byte order or a scale mistaken shows."""


@dataclass(frozen=True, slots=True)
class Problem:
    key: str
    why: str
    round_trip: bool = False
    """A frame that would be misread, not a profile that cannot be loaded."""

    def line(self) -> str:
        return f"{self.key}: {self.why}" if self.key else self.why


@dataclass(slots=True)
class ProfileReport:
    path: Path
    profile: Profile | None = None
    problems: list[Problem] = field(default_factory=list)
    round_trips: int = 0
    """Frames built and decoded back."""
    meter: str | None = None
    """A meter profile's transport: checked by the meters' own loader, nothing round-tripped."""

    @property
    def exit_code(self) -> int:
        if any(not problem.round_trip for problem in self.problems):
            return EXIT_UNUSABLE
        return EXIT_ROUND_TRIP if self.problems else EXIT_OK

    def summary(self) -> str:
        if self.meter is not None:
            return f"{self.path}: ok, a {self.meter} meter profile (loads as a station loads it)"
        assert self.profile is not None
        header = self.profile.header
        return (
            f"{self.path}: ok, {header.name} ({header.kind.value}, {header.family}): "
            f"{_count(len(self.profile.message), 'message')}, "
            f"{_count(len(self.profile.command), 'command')}, "
            f"{_count(self.round_trips, 'frame')} round-tripped"
        )

    def as_json(self) -> dict[str, Any]:
        header = self.profile.header if self.profile is not None else None
        return {
            "file": str(self.path),
            "ok": not self.problems,
            "exit_code": self.exit_code,
            "name": header.name if header is not None else None,
            "kind": "meter" if self.meter is not None else (header.kind.value if header else None),
            "family": header.family if header is not None else None,
            "messages": len(self.profile.message) if self.profile is not None else 0,
            "commands": len(self.profile.command) if self.profile is not None else 0,
            "round_trips": self.round_trips,
            "problems": [
                {"key": p.key, "problem": p.why, "round_trip": p.round_trip} for p in self.problems
            ],
        }


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def check_profile_file(path: Path) -> ProfileReport:
    report = ProfileReport(path)
    meter = _meter_transport(path)
    if meter is not None:
        _check_meter(report, path, meter)
        return report
    try:
        profile = load_profile(path)
    except ConfigError as error:
        report.problems += [_split(problem) for problem in error.problems]
        return report
    report.profile = profile
    if profile.name != path.stem:
        report.problems.append(
            Problem("profile.name", f"{profile.name!r} must equal the file name {path.stem!r}")
        )
    try:
        if profile.header.family == "dbc":
            _check_dbc(report, profile, path)
        else:
            _check_id_fields(report, profile)
    except Exception as error:  # a profile the checks did not foresee: one line, no traceback
        why = f"cannot be checked: {type(error).__name__}: {error}"
        report.problems.append(Problem("", why))
    return report


def _meter_transport(path: Path) -> str | None:
    """A meter profile's transport (`can` or `modbus`); None for any other file."""
    try:
        header = tomllib.loads(path.read_text(encoding="utf-8")).get("profile", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # load_profile names the problem
    if not isinstance(header, dict) or header.get("kind") != "meter":
        return None
    return str(header.get("transport", ""))


def _check_meter(report: ProfileReport, path: Path, transport: str) -> None:
    """A meter profile (hal/meters/) is checked by the loader its station uses; it has no
    frames of the device families to round-trip."""
    report.meter = transport
    try:
        if transport == "can":
            load_can_meter_profile(path)
        else:
            load_register_map(path)
    except MeterProfileError as error:
        report.problems.append(Problem("", str(error).removeprefix(f"{path}: ")))


def _split(problem: str) -> Problem:
    key, colon, why = problem.partition(": ")
    return Problem(key, why) if colon and " " not in key else Problem("", problem)


# --- probe values ----------------------------------------------------------------------------


def _rated(profile: Profile, field_name: str) -> tuple[float, float] | None:
    quantity = QUANTITY_OF.get(field_name)
    return getattr(profile.rated, quantity) if quantity is not None else None


def _on_grid(
    low: float, high: float, scale: float, offset: float, raw_range: tuple[float, float]
) -> float | None:
    """A value inside [low, high] that raw * scale + offset gives for a whole raw inside
    raw_range; None when there is none."""
    raw_a, raw_b = ((low - offset) / scale, (high - offset) / scale)
    raw_low = max(math.ceil(min(raw_a, raw_b)), raw_range[0])
    raw_high = min(math.floor(max(raw_a, raw_b)), raw_range[1])
    if raw_low > raw_high:
        return None
    raw = raw_low + math.floor(PROBE_SHARE * (raw_high - raw_low))
    return raw * scale + offset


def _probe(
    profile: Profile,
    field_name: str,
    scale: float,
    offset: float,
    raw_range: tuple[float, float],
) -> tuple[float | None, str]:
    """A value of `field_name` the frame can carry and the profile accepts, or None and why."""
    if not (math.isfinite(scale) and scale != 0 and math.isfinite(offset)):
        return None, f"scale {scale} and offset {offset} must be finite, the scale not 0"
    ends = sorted((raw_range[0] * scale + offset, raw_range[1] * scale + offset))
    rated = _rated(profile, field_name)
    low, high = (max(ends[0], rated[0]), min(ends[1], rated[1])) if rated else ends
    if rated is None:  # a code (cp_state, lock_state, phases): a small one
        high = min(high, low + 5 * abs(scale))
    value = _on_grid(low, high, scale, offset, raw_range) if low <= high else None
    if value is None:
        return None, (
            f"carries {ends[0]:g}..{ends[1]:g}, which misses the rated range "
            f"[{rated[0] if rated else low:g}, {rated[1] if rated else high:g}]"
        )
    return value, ""


FLAG_PATTERNS: tuple[Callable[[int], bool], ...] = (
    lambda index: False,
    lambda index: index % 2 == 0,
    lambda index: index % 2 == 1,
    lambda index: True,
)
"""Which flags are set in each round trip, by the flag's position among the message's."""


def _flag_patterns(names: Iterable[str]) -> list[dict[str, bool]]:
    ordered = list(dict.fromkeys(names))
    return [{name: pattern(i) for i, name in enumerate(ordered)} for pattern in FLAG_PATTERNS]


def _close(decoded: float, expected: float, scale: float) -> bool:
    return math.isclose(decoded, expected, rel_tol=1e-6, abs_tol=abs(scale) * 1e-6)


# --- id-fields -------------------------------------------------------------------------------


def _addresses(profile: Profile) -> list[int]:
    """The lowest and the highest address the identifiers carry (0 alone without one)."""
    frame = profile.frame
    name = frame.address_field
    if name is None:
        return [0]
    widths = [frame.fields[name][1]]
    widths += [frame.fields[n][1] for n, role in frame.request.items() if role == "address"]
    return [0, (1 << min(widths)) - 1]


def _check_id_fields(report: ProfileReport, profile: Profile) -> None:
    codec = IdFieldsCodec(profile, CONTROLLER)
    for index, spec in enumerate(profile.message):
        if not spec.error_reply:
            _round_trip_message(report, codec, index, spec)
    _check_commands(report, codec)


def _message_probes(
    report: ProfileReport, profile: Profile, key: str, spec: MessageSpec
) -> dict[str, float] | None:
    values: dict[str, float] = {}
    for j, value in enumerate(spec.values):
        number, why = _probe(
            profile,
            value.field,
            profile.value_scale(value),
            value.offset,
            INTEGER_RAW[value.type],
        )
        if number is None:
            report.problems.append(Problem(f"{key}.values[{j}] ({value.field})", why))
            return None
        if value.type == "f32":
            number = struct.unpack(">f", struct.pack(">f", number))[0]
        values[value.field] = number
    return values


def _round_trip_message(
    report: ProfileReport, codec: IdFieldsCodec, index: int, spec: MessageSpec
) -> None:
    profile = codec.profile
    key = f"message[{index}] ({spec.name})"
    values = _message_probes(report, profile, key, spec)
    if values is None:
        return
    scales = {value.field: profile.value_scale(value) for value in spec.values}
    for address in _addresses(codec.profile):
        for flags in _flag_patterns(flag.field for flag in spec.flags):
            frame = reply_frame(codec, spec, address, values, flags)
            report.round_trips += 1
            built = Built(spec.name, address, values, scales, flags)
            if not _decodes_as_built(report, codec, frame, key, built):
                return


def _differences(message: str, expected: str, address: int, expected_address: int) -> list[str]:
    wrong = []
    if message != expected:
        wrong.append(f"decodes as message {message!r} (an earlier message takes its frames)")
    if address != expected_address:
        wrong.append(f"decodes at address {address}")
    return wrong


def _hex(frame: can.Message) -> str:
    return f"{frame.arbitration_id:X}#{bytes(frame.data).hex().upper()}"


def _command_probe(codec: IdFieldsCodec, quantity: str) -> float:
    """A setpoint every command of the profile can carry: PROBE_SHARE of the smallest top of
    the rated range and the payload types."""
    top = float(getattr(codec.profile.rated, quantity)[1])
    for command in codec.profile.command:
        for value in command.values:
            if value.quantity == quantity and value.type != "f32":
                top = min(top, INTEGER_RAW[value.type][1] * value.scale)
    return PROBE_SHARE * top


def _check_commands(report: ProfileReport, codec: IdFieldsCodec) -> None:
    profile = codec.profile
    quantities = {"voltage": _command_probe(codec, "voltage")}
    quantities["current"] = _command_probe(codec, "current")
    builders: dict[str, Callable[[int], list[can.Message]]] = {
        "set_output": lambda a: setpoint_frames(
            codec, a, quantities["voltage"], quantities["current"]
        ),
        "set_import": lambda a: setpoint_frames(
            codec, a, quantities["voltage"], quantities["current"], import_=True
        ),
        "switch_on": lambda a: switch_frames(codec, a, True),
        "switch_off": lambda a: switch_frames(codec, a, False),
        "select_high_mode": lambda a: mode_frames(codec, a, True),
        "select_low_mode": lambda a: mode_frames(codec, a, False),
        "select_import_mode": lambda a: direction_frames(codec, a, True),
        "select_export_mode": lambda a: direction_frames(codec, a, False),
    }
    indices = {id(command): i for i, command in enumerate(profile.command)}
    for name in dict.fromkeys(command.name for command in profile.command):
        specs = profile.commands(name)
        for address in _addresses(codec.profile):
            try:
                frames = builders[name](address)
            except (ValueError, CommandMissingError) as error:
                key = f"command[{indices[id(specs[0])]}] ({name}) at address {address}"
                report.problems.append(Problem(key, str(error), round_trip=True))
                break
            for spec, frame in zip(specs, frames, strict=True):
                report.round_trips += 1
                key = f"command[{indices[id(spec)]}] ({name}) at address {address}"
                wrong = _command_differences(codec, spec, frame, address, quantities)
                if wrong:
                    report.problems.append(Problem(key, "; ".join(wrong), round_trip=True))


def _command_differences(
    codec: IdFieldsCodec,
    spec: Any,
    frame: can.Message,
    address: int,
    quantities: dict[str, float],
) -> list[str]:
    wrong: list[str] = []
    frame_spec = codec.profile.frame
    if frame.arbitration_id != command_id(codec, spec, address):
        wrong.append(f"identifier {frame.arbitration_id:X} is not the command's")
    for name, role in frame_spec.request.items():
        if role == "address":
            low, width = frame_spec.fields[name]
            carried = (frame.arbitration_id >> low) & ((1 << width) - 1)
            if carried != address:
                wrong.append(f"identifier field {name} carries {carried}, not the address")
    data = bytes(frame.data)
    fixed = spec.payload
    filled = {
        at
        for value in spec.values
        for at in range(value.at, value.at + struct.calcsize(">" + FORMAT_CHAR[value.type]))
    }
    if len(data) != len(fixed) or any(
        data[at] != fixed[at] for at in range(len(fixed)) if at not in filled
    ):
        wrong.append(f"payload {data.hex(' ')} does not keep the fixed bytes {spec.data}")
    for value in spec.values:
        order = ">" if value.order == "big" else "<"
        raw = struct.unpack_from(order + FORMAT_CHAR[value.type], data, value.at)[0]
        read = float(raw) * value.scale
        asked = quantities[value.quantity]
        if not asked - value.scale - 1e-9 <= read <= asked * (1 + 1e-12):
            wrong.append(f"{value.quantity} reads back {read:g}, not {asked:g}")
    outcome, decoded = codec.decode(frame)
    if outcome is Outcome.DECODED and decoded is not None:
        wrong.append(
            f"its frame {_hex(frame)} decodes as the reply {decoded.message!r}: the station "
            "would read its own command as the device's values"
        )
    return wrong


# --- dbc -------------------------------------------------------------------------------------


def _check_dbc(report: ProfileReport, profile: Profile, path: Path) -> None:
    assert profile.header.dbc is not None
    dbc_path = path.parent / profile.header.dbc
    if not dbc_path.is_file():
        report.problems.append(Problem("profile.dbc", f"no such file: {dbc_path}"))
        return
    try:
        import cantools  # noqa: PLC0415 - only profiles of this family need it

        database: Any = cantools.database.load_file(str(dbc_path))
    except Exception as error:  # cantools raises many kinds on a bad file
        report.problems.append(Problem("profile.dbc", f"cannot load {dbc_path}: {error}"))
        return
    usable = True
    for index, spec in enumerate(profile.message):
        usable = _dbc_message_problems(report, profile, database, index, spec) and usable
    if not usable:
        return
    codec = DbcCodec(profile, dbc_path)
    for index, spec in enumerate(profile.message):
        _round_trip_dbc(report, codec, index, spec)


def _dbc_message_problems(
    report: ProfileReport, profile: Profile, database: Any, index: int, spec: MessageSpec
) -> bool:
    key = f"message[{index}] ({spec.name})"
    try:
        message = database.get_message_by_name(spec.name)
    except KeyError:
        report.problems.append(Problem(f"{key}.name", "no message of that name in the DBC"))
        return False
    before = len(report.problems)
    frame = profile.frame
    if "extended" in frame.model_fields_set and frame.extended != message.is_extended_frame:
        report.problems.append(
            Problem(
                "frame.extended",
                f"{frame.extended} but the DBC's {spec.name} has "
                f"{'29' if message.is_extended_frame else '11'}-bit identifiers",
            )
        )
    if spec.dlc is not None and spec.dlc != message.length:
        report.problems.append(
            Problem(f"{key}.dlc", f"{spec.dlc} but the DBC's message is {message.length} bytes")
        )
    names = {signal.name: signal for signal in message.signals}
    for j, mapping in enumerate(spec.signals):
        where = f"{key}.signals[{j}]"
        signal = names.get(mapping.signal)
        if signal is None:
            report.problems.append(
                Problem(f"{where}.signal", f"{mapping.signal!r} is not a signal of {spec.name}")
            )
        elif not (math.isfinite(mapping.scale) and mapping.scale != 0):
            report.problems.append(Problem(f"{where}.scale", "must be finite and not 0"))
        elif not (math.isfinite(signal.scale) and signal.scale != 0):
            report.problems.append(
                Problem(f"{where}.signal", f"the DBC's scale {signal.scale} must not be 0")
            )
    return len(report.problems) == before


def _signal_raw_range(signal: Any) -> tuple[float, float]:
    if signal.is_float:
        return INTEGER_RAW["f32"]
    if signal.is_signed:
        return (-(1 << (signal.length - 1)), (1 << (signal.length - 1)) - 1)
    return (0, (1 << signal.length) - 1)


def _round_trip_dbc(report: ProfileReport, codec: DbcCodec, index: int, spec: MessageSpec) -> None:
    profile = codec.profile
    key = f"message[{index}] ({spec.name})"
    message = codec.database.get_message_by_name(spec.name)
    signals = {signal.name: signal for signal in message.signals}
    base: dict[str, float] = {}
    for signal in message.signals:
        lowest = signal.minimum if signal.minimum is not None else 0
        base[signal.name] = 0 if lowest <= 0 else lowest
    expected_values: dict[str, float] = {}
    scales: dict[str, float] = {}
    flag_signals: dict[str, list[str]] = {}
    for j, mapping in enumerate(spec.signals):
        signal = signals[mapping.signal]
        if mapping.field not in NUMERIC_FIELDS:
            flag_signals.setdefault(mapping.field, []).append(mapping.signal)
            continue
        scale = signal.scale * mapping.scale
        low, high = _signal_raw_range(signal)
        if signal.minimum is not None:
            low = max(low, math.ceil((signal.minimum - signal.offset) / signal.scale))
        if signal.maximum is not None:
            high = min(high, math.floor((signal.maximum - signal.offset) / signal.scale))
        number, why = _probe(
            profile, mapping.field, scale, signal.offset * mapping.scale, (low, high)
        )
        if number is None:
            report.problems.append(Problem(f"{key}.signals[{j}] ({mapping.field})", why))
            return
        base[mapping.signal] = number / mapping.scale
        expected_values[mapping.field] = number
        scales[mapping.field] = scale
    for address in _addresses(profile):
        for flags in _flag_patterns(flag_signals):
            raw = dict(base)
            for name, state in flags.items():
                for signal_name in flag_signals[name]:
                    raw[signal_name] = int(state)
            if not _dbc_round_trip(
                report,
                codec,
                key,
                raw=raw,
                address=address,
                expected_values=expected_values,
                scales=scales,
                flags=flags,
            ):
                return


def _dbc_round_trip(
    report: ProfileReport,
    codec: DbcCodec,
    key: str,
    *,
    raw: dict[str, float],
    address: int,
    expected_values: dict[str, float],
    scales: dict[str, float],
    flags: dict[str, bool],
) -> bool:
    """One frame built from `raw` signals at `address` and decoded back; whether it was."""
    name = key[key.index("(") + 1 : key.rindex(")")]
    try:
        frame = codec.encode(name, raw, address)
    except Exception as error:  # cantools refuses in many ways
        report.problems.append(Problem(key, f"cannot be encoded: {error}", round_trip=True))
        return False
    report.round_trips += 1
    built = Built(name, address, expected_values, scales, flags)
    return _decodes_as_built(report, codec, frame, key, built)


@dataclass(frozen=True, slots=True)
class Built:
    """What a probe frame was built from: its message, address, values (with the scale each
    is read back within) and flags."""

    message: str
    address: int
    values: dict[str, float]
    scales: dict[str, float]
    flags: dict[str, bool]


def _decodes_as_built(
    report: ProfileReport,
    codec: IdFieldsCodec | DbcCodec,
    frame: can.Message,
    key: str,
    built: Built,
) -> bool:
    """Whether the frame decodes back to what it was built from; each difference a problem."""
    outcome, decoded = codec.decode(frame)
    where = f"{key} at address {built.address}, frame {_hex(frame)}"
    if outcome is not Outcome.DECODED or decoded is None:
        why = f"decodes as {outcome.value}, not as the message"
        report.problems.append(Problem(where, why, round_trip=True))
        return False
    wrong = _differences(decoded.message, built.message, decoded.address, built.address)
    wrong += [
        f"{field} {decoded.values.get(field)!r} instead of {number!r}"
        for field, number in built.values.items()
        if not _close(decoded.values.get(field, math.nan), number, built.scales[field])
    ]
    wrong += [
        f"{field} {decoded.flags.get(field)} instead of {state}"
        for field, state in built.flags.items()
        if decoded.flags.get(field) is not state
    ]
    if wrong:
        report.problems.append(Problem(where, "; ".join(wrong), round_trip=True))
        return False
    return True
