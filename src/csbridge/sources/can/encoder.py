"""Frames a device of a profile would send: the inverse of the id-fields decoder, for
simulators that speak the real wire protocols (tests check the decoder against frames built
by hand from the protocol facts, never against this alone)."""

from __future__ import annotations

import struct
from collections.abc import Mapping

import can

from csbridge.sources.can.codec import FORMAT_CHAR, IdFieldsCodec
from csbridge.sources.can.profile import MessageSpec, Profile


def _put_word(data: bytearray, at: int, length: int, order: str, value: int) -> None:
    data[at : at + length] = value.to_bytes(length, order)  # type: ignore[arg-type]


def _get_word(data: bytearray, at: int, length: int, order: str) -> int:
    return int.from_bytes(data[at : at + length], order)  # type: ignore[arg-type]


def reply_payload(
    profile: Profile,
    spec: MessageSpec,
    dlc: int,
    values: Mapping[str, float],
    flags: Mapping[str, bool],
) -> bytes:
    data = bytearray(dlc)
    for match in spec.match_data:
        _put_word(data, match.at, match.length, "big", match.value)
    for value_spec in spec.values:
        if value_spec.field not in values:
            continue
        order = ">" if value_spec.order == "big" else "<"
        raw = (values[value_spec.field] - value_spec.offset) / profile.value_scale(value_spec)
        number: float | int = raw if value_spec.type == "f32" else round(raw)
        struct.pack_into(order + FORMAT_CHAR[value_spec.type], data, value_spec.at, number)
    for flag in spec.flags:
        state = flags.get(flag.field, False) != flag.invert
        if state:
            word = _get_word(data, flag.at, flag.length, flag.order) | (1 << flag.bit)
            _put_word(data, flag.at, flag.length, flag.order, word)
    return bytes(data)


def reply_frame(
    codec: IdFieldsCodec,
    spec: MessageSpec,
    address: int,
    values: Mapping[str, float],
    flags: Mapping[str, bool] | None = None,
) -> can.Message:
    dlc = spec.dlc if spec.dlc is not None else codec.profile.frame.dlc
    return can.Message(
        arbitration_id=codec.reply_id(spec, address),
        is_extended_id=codec.profile.frame.extended,
        data=reply_payload(codec.profile, spec, dlc, values, flags or {}),
    )
