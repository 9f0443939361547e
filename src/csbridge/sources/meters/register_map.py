"""A Modbus meter's register map (hal/meters/<name>.toml): which registers hold which value and
how they decode. Pure: registers in, numbers out; the client reads, this reads the numbers."""

from __future__ import annotations

import math
import struct
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from csbridge.support import CsbridgeError, resource_dir

RegisterType = Literal["float32", "int32", "uint32", "int16", "uint16"]
Order = Literal["big", "little"]

_FORMAT: dict[RegisterType, str] = {
    "float32": "f",
    "int32": "i",
    "uint32": "I",
    "int16": "h",
    "uint16": "H",
}
FUNCTIONS = (3, 4)
"""Read holding registers (3) and read input registers (4): a meter's values are read-only."""
MAX_REGISTERS_PER_READ = 125
"""Modbus's own bound on one read (the PDU holds 250 data bytes)."""

METER_FIELDS = frozenset(
    {
        "voltage_l1_v",
        "voltage_l2_v",
        "voltage_l3_v",
        "current_l1_a",
        "current_l2_a",
        "current_l3_a",
        "power_w",
        "power_factor",
        "frequency_hz",
        "energy_import_wh",
        "energy_export_wh",
        "dc_voltage_v",
        "dc_current_a",
    }
)


class MeterProfileError(CsbridgeError):
    """A meter profile (register map, CAN results) that cannot be used; the message names the
    file and the entry."""

    def __init__(self, message: str) -> None:
        super().__init__("meter_profile", message)


@dataclass(frozen=True, slots=True)
class RegisterValue:
    """One value: `count` registers from `address` (0-based, as on the wire)."""

    field: str
    address: int
    function: int
    type: RegisterType
    byte_order: Order
    word_order: Order
    scale: float

    @property
    def count(self) -> int:
        return struct.calcsize(_FORMAT[self.type]) // 2

    def decode(self, registers: Sequence[int]) -> float | None:
        """The value, scaled; None for a float that is not a number (a meter's way of saying
        it has none) or a wrong number of registers."""
        if len(registers) != self.count or any(not 0 <= r <= 0xFFFF for r in registers):
            return None
        words = list(registers) if self.word_order == "big" else list(reversed(registers))
        pack = ">H" if self.byte_order == "big" else "<H"
        raw = b"".join(struct.pack(pack, word) for word in words)
        (value,) = struct.unpack(">" + _FORMAT[self.type], raw)
        number = float(value) * self.scale
        return number if math.isfinite(number) else None

    def encode(self, number: float) -> list[int]:
        """The registers that hold `number` (the simulated meters' side of `decode`)."""
        raw_value = number / self.scale
        kind = _FORMAT[self.type]
        packed = struct.pack(">" + kind, raw_value if kind == "f" else round(raw_value))
        pack = ">H" if self.byte_order == "big" else "<H"
        words = [struct.unpack(pack, packed[i : i + 2])[0] for i in range(0, len(packed), 2)]
        return words if self.word_order == "big" else list(reversed(words))


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """Consecutive registers read in one request, and the values they hold."""

    function: int
    address: int
    count: int
    values: tuple[RegisterValue, ...]

    def decode(self, registers: Sequence[int]) -> dict[str, float | None]:
        decoded: dict[str, float | None] = {}
        for value in self.values:
            start = value.address - self.address
            decoded[value.field] = value.decode(registers[start : start + value.count])
        return decoded


@dataclass(frozen=True, slots=True)
class RegisterMap:
    name: str
    description: str
    values: tuple[RegisterValue, ...]

    def blocks(self, max_registers: int = MAX_REGISTERS_PER_READ) -> tuple[ReadBlock, ...]:
        """The fewest reads that cover every value: values of one function code, in address
        order, share a read while it stays within `max_registers`."""
        blocks: list[ReadBlock] = []
        for function in sorted({v.function for v in self.values}):
            current: list[RegisterValue] = []
            for value in sorted(
                (v for v in self.values if v.function == function), key=lambda v: v.address
            ):
                if current and value.address + value.count - current[0].address > max_registers:
                    blocks.append(_block(function, current))
                    current = []
                current.append(value)
            if current:
                blocks.append(_block(function, current))
        return tuple(blocks)


def _block(function: int, values: list[RegisterValue]) -> ReadBlock:
    start = values[0].address
    end = max(v.address + v.count for v in values)
    return ReadBlock(function, start, end - start, tuple(values))


def meter_profile_path(name: str, extra_dirs: Sequence[Path] = ()) -> Path:
    """hal/meters/<name>.toml, or <dir>/<name>.toml in a configured profile folder."""
    for folder in (*extra_dirs, resource_dir("hal") / "meters"):
        candidate = folder / f"{name}.toml"
        if candidate.is_file():
            return candidate
    msg = f"no meter profile {name!r} in hal/meters/ or the profile folders"
    raise MeterProfileError(msg)


def load_register_map(path: Path) -> RegisterMap:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise MeterProfileError(f"{path}: {error}") from error
    return parse_register_map(document, str(path))


def parse_register_map(document: Mapping[str, Any], source: str) -> RegisterMap:
    profile = document.get("profile", {})
    if profile.get("kind") != "meter" or profile.get("transport") != "modbus":
        raise MeterProfileError(f'{source}: [profile] needs kind = "meter", transport = "modbus"')
    defaults = document.get("defaults", {})
    entries = document.get("value", [])
    if not isinstance(entries, list) or not entries:
        raise MeterProfileError(f"{source}: no [[value]] entries")
    values = [_value(entry, defaults, f"{source}: value[{i}]") for i, entry in enumerate(entries)]
    fields = [value.field for value in values]
    if len(set(fields)) != len(fields):
        raise MeterProfileError(f"{source}: a field is mapped twice ({fields})")
    return RegisterMap(
        str(profile.get("name", Path(source).stem)),
        str(profile.get("description", "")),
        tuple(values),
    )


def _value(entry: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> RegisterValue:
    merged = {**defaults, **entry}
    field = merged.get("field")
    if field not in METER_FIELDS:
        raise MeterProfileError(f"{where}: field {field!r} is none of {sorted(METER_FIELDS)}")
    address = merged.get("address")
    if not isinstance(address, int) or not 0 <= address <= 0xFFFF:
        raise MeterProfileError(f"{where}: address must be 0..65535, got {address!r}")
    function = merged.get("function", 4)
    if function not in FUNCTIONS:
        raise MeterProfileError(f"{where}: function must be one of {FUNCTIONS}, got {function!r}")
    kind = merged.get("type", "float32")
    if kind not in _FORMAT:
        raise MeterProfileError(f"{where}: type must be one of {sorted(_FORMAT)}, got {kind!r}")
    orders = (merged.get("byte_order", "big"), merged.get("word_order", "big"))
    if any(order not in ("big", "little") for order in orders):
        raise MeterProfileError(f"{where}: byte_order and word_order are big or little")
    scale = merged.get("scale", 1.0)
    if not isinstance(scale, int | float) or not math.isfinite(scale) or scale == 0:
        raise MeterProfileError(f"{where}: scale must be a finite non-zero number")
    return RegisterValue(
        field=field,
        address=address,
        function=function,
        type=cast(RegisterType, kind),
        byte_order=cast(Order, orders[0]),
        word_order=cast(Order, orders[1]),
        scale=float(scale),
    )
