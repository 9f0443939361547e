"""Profile codecs: CAN frames in, decoded values and flags out (and request frames back).

A codec never raises on a frame: every frame ends in exactly one outcome, counted by the caller.
A frame with one implausible value (NaN, or outside the profile's rated range) is refused whole,
so the device's last good values stand until they go stale; so is a device's error reply. Every
decoded frame also carries the profile's constants (what the device does not report).
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import can

from csbridge.sources.can.profile import (
    BOARD_VALUES,
    IMD_VALUES,
    MODULE_VALUES,
    QUANTITY_OF,
    CommandSpec,
    DataMatch,
    FlagSpec,
    MessageSpec,
    Profile,
    RatedRanges,
    ValueSpec,
)

NUMERIC_FIELDS = MODULE_VALUES | IMD_VALUES | BOARD_VALUES
"""Reading fields that hold numbers; every other mapped field is a flag."""
FORMAT_CHAR = {"u8": "B", "u16": "H", "u32": "I", "i16": "h", "i32": "i", "f32": "f"}
SINGLE_DEVICE_ADDRESS = 0
"""Devices whose identifiers carry no address (fixed IDs) answer as address 0."""


class Outcome(enum.StrEnum):
    DECODED = "decoded"
    UNKNOWN_ID = "unknown_id"
    WRONG_DLC = "wrong_dlc"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_ADDRESS = "unknown_address"
    ERROR_FRAME = "error_frame"
    REMOTE_FRAME = "remote_frame"
    REQUEST = "request"
    """A controller's own request (ours, or logged with the replies): not an error."""


@dataclass(frozen=True, slots=True)
class Decoded:
    address: int
    message: str
    values: Mapping[str, float]
    flags: Mapping[str, bool]


class FrameCodec(Protocol):
    profile: Profile

    def decode(self, frame: can.Message) -> tuple[Outcome, Decoded | None]: ...

    def poll_requests(self, address: int) -> list[can.Message]: ...

    def kernel_filters(self) -> list[dict[str, int | bool]]: ...


def _in_range(field: str, value: float, rated: RatedRanges) -> bool:
    if not math.isfinite(value):
        return False
    quantity = QUANTITY_OF.get(field)
    if quantity is None:
        return True
    low, high = getattr(rated, quantity)
    return bool(low <= value <= high)


@dataclass(frozen=True, slots=True)
class _Value:
    field: str
    at: int
    unpack: struct.Struct
    scale: float
    offset: float

    @classmethod
    def of(cls, spec: ValueSpec, profile: Profile) -> _Value:
        order = ">" if spec.order == "big" else "<"
        return cls(
            spec.field,
            spec.at,
            struct.Struct(order + FORMAT_CHAR[spec.type]),
            profile.value_scale(spec),
            spec.offset,
        )


@dataclass(frozen=True, slots=True)
class _Word:
    at: int
    length: int
    order: str

    def read(self, data: bytes | bytearray) -> int:
        return int.from_bytes(data[self.at : self.at + self.length], self.order)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class _Flag:
    field: str
    word: _Word
    mask: int
    invert: bool

    @classmethod
    def of(cls, spec: FlagSpec) -> _Flag:
        return cls(spec.field, _Word(spec.at, spec.length, spec.order), 1 << spec.bit, spec.invert)


@dataclass(frozen=True, slots=True)
class _Match:
    word: _Word
    value: int
    mask: int

    @classmethod
    def of(cls, spec: DataMatch) -> _Match:
        full = (1 << (8 * spec.length)) - 1
        return cls(
            _Word(spec.at, spec.length, "big"),
            spec.value,
            spec.mask if spec.mask is not None else full,
        )

    def matches(self, data: bytes | bytearray) -> bool:
        return (
            self.word.at + self.word.length <= len(data)
            and (self.word.read(data) & self.mask) == self.value
        )


@dataclass(frozen=True, slots=True)
class _Message:
    name: str
    dlc: int
    matches: tuple[_Match, ...]
    values: tuple[_Value, ...]
    flags: tuple[_Flag, ...]
    error_reply: bool = False


def _decode_payload(
    message: _Message, address: int, data: bytes | bytearray, profile: Profile
) -> tuple[Outcome, Decoded | None]:
    if message.error_reply:
        return Outcome.OUT_OF_RANGE, None
    rated = profile.rated
    values: dict[str, float] = dict(profile.constants)
    for value in message.values:
        number = float(value.unpack.unpack_from(data, value.at)[0]) * value.scale + value.offset
        if not _in_range(value.field, number, rated):
            return Outcome.OUT_OF_RANGE, None
        values[value.field] = number
    flags: dict[str, bool] = {}
    for flag in message.flags:
        state = bool(flag.word.read(data) & flag.mask) != flag.invert
        flags[flag.field] = flags.get(flag.field, False) or state
    return Outcome.DECODED, Decoded(address, message.name, values, flags)


class IdFieldsCodec:
    """The id-fields family: identifier split into named fields (see profile.py)."""

    def __init__(self, profile: Profile, controller: int) -> None:
        self.profile = profile
        self.controller = controller
        frame = profile.frame
        self._fields = {
            name: (low, (1 << width) - 1) for name, (low, width) in frame.fields.items()
        }
        address_field = frame.address_field
        self._address = self._fields[address_field] if address_field else None
        self._groups: dict[int, dict[int, list[_Message]]] = {}
        self._request_keys: set[tuple[int, int]] = set()
        for spec in profile.message:
            mask, value = self._reply_key(spec)
            compiled = _Message(
                spec.name,
                spec.dlc if spec.dlc is not None else frame.dlc,
                tuple(_Match.of(m) for m in spec.match_data),
                tuple(_Value.of(v, profile) for v in spec.values),
                tuple(_Flag.of(f) for f in spec.flags),
                spec.error_reply,
            )
            self._groups.setdefault(mask, {}).setdefault(value, []).append(compiled)
            self._request_keys.add(self._request_key(spec))

    def _request_fields(
        self, spec: MessageSpec | CommandSpec, address: int | None
    ) -> dict[str, int]:
        """A request's identifier fields by name, in [frame] request order, then the spec's own
        `id` values on top; without `address`, the address field is left out (a mask for any)."""
        fields: dict[str, int] = {}
        for name, role in self.profile.frame.request.items():
            if isinstance(role, int):
                fields[name] = role
            elif role == "controller":
                fields[name] = self.controller
            elif address is not None:
                fields[name] = address
        fields.update(spec.id)
        return fields

    def _request_key(self, spec: MessageSpec) -> tuple[int, int]:
        mask = value = 0
        for name, field_value in self._request_fields(spec, None).items():
            field_mask, field_bits = self._field_bits(name, field_value)
            mask |= field_mask
            value |= field_bits
        return mask, value

    def _field_bits(self, name: str, value: int) -> tuple[int, int]:
        low, width_mask = self._fields[name]
        return width_mask << low, (value & width_mask) << low

    def _reply_key(self, spec: MessageSpec) -> tuple[int, int]:
        mask = value = 0
        fixed: dict[str, int] = dict(spec.id)
        for name, role in self.profile.frame.reply.items():
            if role == "controller":
                fixed[name] = self.controller
            elif isinstance(role, int):
                fixed[name] = role
        for name, field_value in fixed.items():
            field_mask, field_bits = self._field_bits(name, field_value)
            mask |= field_mask
            value |= field_bits
        return mask, value

    def address_problem(self, address: int) -> str | None:
        """Why a device at `address` cannot be told apart on this profile's identifiers, or None:
        an address wider than its field would be masked into another device's, and commands to
        it refused."""
        frame = self.profile.frame
        fields = {
            name
            for table in (frame.request, frame.reply)
            for name, role in table.items()
            if role == "address"
        }
        if not fields:
            if address == SINGLE_DEVICE_ADDRESS:
                return None
            return (
                f"{self.profile.name} identifiers carry no address: its one device per bus is "
                f"address {SINGLE_DEVICE_ADDRESS}, not {address}"
            )
        width = min(frame.fields[name][1] for name in fields)
        if address < 1 << width:
            return None
        return f"{self.profile.name} carries addresses 0-{(1 << width) - 1} ({width} bits)"

    def request_id(
        self, spec: MessageSpec | CommandSpec, address: int, *, exact: bool = False
    ) -> int:
        """The identifier of a request to the device at `address`, a poll or a command: the
        [frame] request table (its "address" field takes `address`, its "controller" field ours),
        then the spec's own `id` values on top.

        A poll masks each value into its field. `exact` (a command) refuses with ValueError what
        the identifier cannot carry, an address where identifiers carry none (but the single
        device's) or a value wider than its field: never masked into another device's."""
        frame = self.profile.frame
        if exact and "address" not in frame.request.values() and address != SINGLE_DEVICE_ADDRESS:
            msg = (
                f"{self.profile.name} identifiers carry no address: its one device per bus is "
                f"address {SINGLE_DEVICE_ADDRESS}, not {address}"
            )
            raise ValueError(msg)
        identifier = 0
        for name, value in self._request_fields(spec, address).items():
            width = frame.fields[name][1]
            if exact and not 0 <= value < 1 << width:
                msg = f"{name} = {value} does not fit the {width}-bit identifier field"
                raise ValueError(msg)
            identifier |= self._field_bits(name, value)[1]
        return identifier

    def reply_id(self, spec: MessageSpec, address: int) -> int:
        """What a device at `address` answers with (for simulators and tests)."""
        value = self._reply_key(spec)[1]
        if self._address is not None:
            value |= (address & self._address[1]) << self._address[0]
        return value

    def kernel_filters(self) -> list[dict[str, int | bool]]:
        """SocketCAN filters that let through only the replies this profile can decode."""
        extended = self.profile.frame.extended
        return [
            {"can_id": value, "can_mask": mask, "extended": extended}
            for mask, by_value in self._groups.items()
            for value in by_value
        ]

    def poll_requests(self, address: int) -> list[can.Message]:
        return [
            can.Message(
                arbitration_id=self.request_id(spec, address),
                is_extended_id=self.profile.frame.extended,
                data=bytes.fromhex(spec.request_data),
            )
            for spec in self.profile.message
            if spec.poll
        ]

    def decode(self, frame: can.Message) -> tuple[Outcome, Decoded | None]:
        if frame.is_error_frame:
            return Outcome.ERROR_FRAME, None
        if frame.is_remote_frame:
            return Outcome.REMOTE_FRAME, None
        if frame.is_extended_id != self.profile.frame.extended:
            return Outcome.UNKNOWN_ID, None
        identifier = frame.arbitration_id
        data = frame.data
        wrong_length = False
        for mask, by_value in self._groups.items():
            for message in by_value.get(identifier & mask, ()):
                if len(data) != message.dlc:
                    wrong_length = True
                    continue
                if all(match.matches(data) for match in message.matches):
                    address = SINGLE_DEVICE_ADDRESS
                    if self._address is not None:
                        low, width_mask = self._address
                        address = (identifier >> low) & width_mask
                    return _decode_payload(message, address, data, self.profile)
        if wrong_length:
            return Outcome.WRONG_DLC, None
        if any(identifier & mask == value for mask, value in self._request_keys):
            return Outcome.REQUEST, None
        return Outcome.UNKNOWN_ID, None


class DbcCodec:
    """The dbc family: signals of a DBC (cantools). A device on fixed identifiers answers as
    address 0; a profile whose [frame] names an address field (`fields = { module = [0, 8] }`,
    `reply = { module = "address" }`) reads the address from those identifier bits, as the
    id-fields family does, and each DBC message then stands for that message of every device
    (its own identifier's address bits are ignored)."""

    def __init__(self, profile: Profile, dbc_path: Path) -> None:
        import cantools  # noqa: PLC0415 - only profiles of this family need it

        self.profile = profile
        loaded: Any = cantools.database.load_file(str(dbc_path))
        self.database = loaded
        address_field = profile.frame.address_field
        self._address: tuple[int, int] | None = None
        """(lowest bit, mask) of the address in the identifier."""
        self._address_bits = 0
        if address_field is not None:
            low, width = profile.frame.fields[address_field]
            self._address = (low, (1 << width) - 1)
            self._address_bits = ((1 << width) - 1) << low
        self._messages: dict[tuple[int, bool], tuple[Any, MessageSpec]] = {}
        for spec in profile.message:
            message = self.database.get_message_by_name(spec.name)
            key = (message.frame_id & ~self._address_bits, message.is_extended_frame)
            self._messages[key] = (message, spec)

    def kernel_filters(self) -> list[dict[str, int | bool]]:
        full = 0x1FFFFFFF
        return [
            {
                "can_id": frame_id,
                "can_mask": (full if extended else 0x7FF) & ~self._address_bits,
                "extended": extended,
            }
            for frame_id, extended in self._messages
        ]

    def poll_requests(self, address: int) -> list[can.Message]:
        return []

    def address_problem(self, address: int) -> str | None:
        """Why a device at `address` cannot be told apart on this profile's identifiers, or
        None (as IdFieldsCodec.address_problem)."""
        if self._address is None:
            if address == SINGLE_DEVICE_ADDRESS:
                return None
            return (
                f"{self.profile.name} identifiers carry no address: its one device per bus is "
                f"address {SINGLE_DEVICE_ADDRESS}, not {address}"
            )
        mask = self._address[1]
        if address <= mask:
            return None
        return f"{self.profile.name} carries addresses 0-{mask} ({mask.bit_length()} bits)"

    def decode(self, frame: can.Message) -> tuple[Outcome, Decoded | None]:
        if frame.is_error_frame:
            return Outcome.ERROR_FRAME, None
        if frame.is_remote_frame:
            return Outcome.REMOTE_FRAME, None
        identifier = frame.arbitration_id
        found = self._messages.get((identifier & ~self._address_bits, frame.is_extended_id))
        if found is None:
            return Outcome.UNKNOWN_ID, None
        message, spec = found
        if len(frame.data) != message.length:
            return Outcome.WRONG_DLC, None
        signals = message.decode(bytes(frame.data), decode_choices=False, scaling=True)
        values: dict[str, float] = dict(self.profile.constants)
        flags: dict[str, bool] = {}
        for mapping in spec.signals:
            raw = float(signals[mapping.signal]) * mapping.scale
            if mapping.field in NUMERIC_FIELDS:
                if not _in_range(mapping.field, raw, self.profile.rated):
                    return Outcome.OUT_OF_RANGE, None
                values[mapping.field] = raw
            else:
                flags[mapping.field] = flags.get(mapping.field, False) or raw != 0
        address = SINGLE_DEVICE_ADDRESS
        if self._address is not None:
            address = (identifier >> self._address[0]) & self._address[1]
        return Outcome.DECODED, Decoded(address, spec.name, values, flags)

    def encode(
        self, name: str, signals: Mapping[str, float], address: int = SINGLE_DEVICE_ADDRESS
    ) -> can.Message:
        """A frame of message `name` from the device at `address` (for simulators and
        tests)."""
        message = self.database.get_message_by_name(name)
        identifier = message.frame_id
        if self._address is not None:
            low, mask = self._address
            identifier = (identifier & ~self._address_bits) | ((address & mask) << low)
        return can.Message(
            arbitration_id=identifier,
            is_extended_id=message.is_extended_frame,
            data=message.encode(dict(signals)),
        )


# --- the generic charger board's command (hal/generic-charger-board.dbc) ----------------------

BOARD_COMMAND = "BOARD_Command"


class PowerReason(enum.IntEnum):
    """Why the board may (or must not) close its contactors: EVerest's PowerOnOff reason, coded
    as BOARD_Command's CMD_POWER_REASON."""

    DC_CABLE_CHECK = 0
    DC_PRE_CHARGE = 1
    FULL_POWER_CHARGING = 2
    POWER_OFF = 3

    @classmethod
    def from_everest(cls, name: str) -> PowerReason:
        """`DCCableCheck`, `DCPreCharge`, `FullPowerCharging` or `PowerOff`."""
        try:
            return _EVEREST_REASONS[name]
        except KeyError:
            raise ValueError(
                f"no power reason {name!r} (have {', '.join(_EVEREST_REASONS)})"
            ) from None


_EVEREST_REASONS = {
    "DCCableCheck": PowerReason.DC_CABLE_CHECK,
    "DCPreCharge": PowerReason.DC_PRE_CHARGE,
    "FullPowerCharging": PowerReason.FULL_POWER_CHARGING,
    "PowerOff": PowerReason.POWER_OFF,
}


@dataclass(frozen=True, slots=True)
class BoardCommand:
    """What BOARD_Command carries: power on/off with its reason, the CP PWM and the connector
    lock (True: locked, False: unlocked)."""

    allow_power_on: bool
    reason: PowerReason
    pwm_on: bool = False
    duty_percent: float = 0.0
    lock: bool = False

    @property
    def closes_contactor(self) -> bool:
        """The board closes its contactor only when allowed and not told to power off."""
        return self.allow_power_on and self.reason is not PowerReason.POWER_OFF


def board_command(
    codec: DbcCodec,
    *,
    allow_power_on: bool,
    reason: PowerReason,
    pwm_on: bool = False,
    duty_percent: float = 0.0,
    lock: bool = False,
) -> can.Message:
    """The BOARD_Command frame for the board of `codec` (a profile on the generic board's DBC).

    Raises ValueError for a duty cycle outside 0..100 % or power allowed with reason PowerOff;
    KeyError when the codec's DBC has no BOARD_Command."""
    if not (math.isfinite(duty_percent) and 0.0 <= duty_percent <= 100.0):
        raise ValueError(f"PWM duty cycle {duty_percent} % is outside 0..100 %")
    if allow_power_on and reason is PowerReason.POWER_OFF:
        raise ValueError("allow_power_on with reason PowerOff contradicts itself")
    message = codec.database.get_message_by_name(BOARD_COMMAND)
    raw = {
        "CMD_ALLOW_POWER_ON": int(allow_power_on),
        "CMD_POWER_REASON": int(reason),
        "CMD_PWM_ON": int(pwm_on),
        "CMD_PWM_DUTY": round(duty_percent * 10),
        "CMD_LOCK": int(lock),
    }
    return can.Message(
        arbitration_id=message.frame_id,
        is_extended_id=message.is_extended_frame,
        data=message.encode(raw, scaling=False),
    )


def read_board_command(codec: DbcCodec, frame: can.Message) -> BoardCommand | None:
    """A BOARD_Command frame read back (the simulated board's side); None for any other frame,
    or one of the wrong length."""
    message = codec.database.get_message_by_name(BOARD_COMMAND)
    if (
        frame.is_error_frame
        or frame.is_remote_frame
        or frame.arbitration_id != message.frame_id
        or frame.is_extended_id != message.is_extended_frame
        or len(frame.data) != message.length
    ):
        return None
    raw = message.decode(bytes(frame.data), decode_choices=False, scaling=False)
    return BoardCommand(
        allow_power_on=bool(raw["CMD_ALLOW_POWER_ON"]),
        reason=PowerReason(int(raw["CMD_POWER_REASON"])),
        pwm_on=bool(raw["CMD_PWM_ON"]),
        duty_percent=min(100.0, int(raw["CMD_PWM_DUTY"]) / 10),
        lock=bool(raw["CMD_LOCK"]),
    )
