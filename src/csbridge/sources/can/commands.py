"""Command frames for a power module: a DC setpoint and output on/off, from the profile's
`[[command]]` tables (id-fields family; see profile.CommandSpec).

The identifier is a request's (IdFieldsCodec.request_id): the [frame] request table (its "address"
field takes the module's address, its "controller" field ours), then the command's own `id`
values on top. Unlike a poll's, every field value must fit its field: an address that does not
fit is refused, never masked into another module's.

Numbers are refused, never clamped, when they are negative, not finite, above the profile's rated
range, or do not fit the payload type. Each is written toward zero: the raw value, read back with
the command's scale, is never above the setpoint asked for (a setpoint may come out up to one
step of the type lower, 1 mV or 1/1024 A say, never higher; FLOAT_SLACK aside, the rounding of
a scale such as 0.05 that no float holds exactly).
"""

from __future__ import annotations

import math
import struct

import can

from csbridge.sources.can.codec import FORMAT_CHAR, IdFieldsCodec
from csbridge.sources.can.profile import CommandName, CommandSpec, CommandValue, ValueType

INTEGER_RANGE: dict[ValueType, tuple[int, int]] = {
    "u8": (0, 0xFF),
    "u16": (0, 0xFFFF),
    "u32": (0, 0xFFFF_FFFF),
    "i16": (-0x8000, 0x7FFF),
    "i32": (-0x8000_0000, 0x7FFF_FFFF),
}


FLOAT_SLACK = 1e-12
"""A step read back above the setpoint by less than this share is the float rounding of an
exact step (214 x 0.05 A is 10.700000000000001 A, not above 10.7 A): it is sent, not one step
less."""


class CommandMissingError(LookupError):
    """The profile has no command of this name: the module cannot be told this."""


def command_id(codec: IdFieldsCodec, spec: CommandSpec, address: int) -> int:
    """The identifier of a command to the module at `address`: the codec's request identifier,
    every value checked to fit its field (ValueError), never masked."""
    return codec.request_id(spec, address, exact=True)


def _integer_raw(physical: float, value: CommandValue) -> int:
    """The largest whole raw value whose reading (raw * scale) is not above `physical`."""
    raw = physical / value.scale
    if not math.isfinite(raw):
        msg = f"{value.quantity} {physical} does not fit a {value.type}"
        raise ValueError(msg)
    low, high = INTEGER_RANGE[value.type]
    number = math.floor(raw)
    ceiling = physical * (1 + FLOAT_SLACK)
    if low - 1 <= number <= high + 1:  # a float a hair off a whole number: settle it
        while number > 0 and number * value.scale > ceiling:
            number -= 1
        if (number + 1) * value.scale <= ceiling:
            number += 1
    if not low <= number <= high:
        msg = f"{value.quantity} {physical} is {raw:.6g} raw, which does not fit a {value.type}"
        raise ValueError(msg)
    return number


def _float32_below(raw: float) -> float:
    """The largest float32 not above `raw` (raw >= 0)."""
    try:
        (single,) = struct.unpack(">f", struct.pack(">f", raw))
    except OverflowError:
        msg = f"{raw} does not fit an f32"
        raise ValueError(msg) from None
    if not math.isfinite(single):
        msg = f"{raw} does not fit an f32"
        raise ValueError(msg)
    if single > raw:
        (bits,) = struct.unpack(">I", struct.pack(">f", single))
        (single,) = struct.unpack(">f", struct.pack(">I", bits - 1))
    return float(single)


def _float_raw(physical: float, value: CommandValue) -> float:
    raw = _float32_below(physical / value.scale)
    while raw > 0 and raw * value.scale > physical:
        raw = _float32_below(math.nextafter(raw, 0.0))
    return raw


def _write(data: bytearray, physical: float, value: CommandValue) -> None:
    order = ">" if value.order == "big" else "<"
    number: int | float = (
        _float_raw(physical, value) if value.type == "f32" else _integer_raw(physical, value)
    )
    struct.pack_into(order + FORMAT_CHAR[value.type], data, value.at, number)


def _check(codec: IdFieldsCodec, quantity: str, physical: float) -> None:
    if not math.isfinite(physical) or physical < 0:
        msg = f"{quantity} must be a finite number >= 0, not {physical!r}"
        raise ValueError(msg)
    low, high = getattr(codec.profile.rated, quantity)
    if physical > high:
        msg = (
            f"{quantity} {physical} is above {codec.profile.name}'s rated {quantity} range "
            f"[{low}, {high}]"
        )
        raise ValueError(msg)


def _frames(
    codec: IdFieldsCodec, name: CommandName, address: int, quantities: dict[str, float]
) -> list[can.Message]:
    specs = codec.profile.commands(name)
    if not specs:
        msg = f"{codec.profile.name} has no {name} command"
        raise CommandMissingError(msg)
    frames = []
    for spec in specs:
        data = bytearray(spec.payload)
        for value in spec.values:
            _write(data, quantities[value.quantity], value)
        frames.append(
            can.Message(
                arbitration_id=command_id(codec, spec, address),
                is_extended_id=codec.profile.frame.extended,
                data=bytes(data),
            )
        )
    return frames


def setpoint_frames(
    codec: IdFieldsCodec, address: int, voltage_v: float, current_a: float, *, import_: bool = False
) -> list[can.Message]:
    """Every frame that sets the module at `address` to `voltage_v` at most `current_a`, in
    profile order: its set_output commands, or with `import_` its set_import commands (the
    current it may take from the EV, a magnitude). ValueError for a number that cannot be sent;
    CommandMissingError if the profile cannot set a module so."""
    quantities = {"voltage": float(voltage_v), "current": float(current_a)}
    for quantity, physical in quantities.items():
        _check(codec, quantity, physical)
    return _frames(codec, "set_import" if import_ else "set_output", address, quantities)


def switch_frames(codec: IdFieldsCodec, address: int, on: bool) -> list[can.Message]:
    """The frames that switch the module's output on or off. CommandMissingError if the profile
    has no such command (the caller must not believe a module off that was never told)."""
    return _frames(codec, "switch_on" if on else "switch_off", address, {})


def mode_frames(codec: IdFieldsCodec, address: int, high: bool) -> list[can.Message]:
    """The frames that select the module's high or low output voltage mode (a profile with
    `high_mode_above_v`). CommandMissingError if the profile has no such command."""
    return _frames(codec, "select_high_mode" if high else "select_low_mode", address, {})


def direction_frames(codec: IdFieldsCodec, address: int, import_: bool) -> list[can.Message]:
    """The frames that put a bidirectional module in import (energy from the EV) or export
    mode. Sent only with the output off. CommandMissingError if the profile has no such
    command."""
    return _frames(codec, "select_import_mode" if import_ else "select_export_mode", address, {})
