"""The IVT-S shunt's result frames (hal/meters/isabellenhuette-ivt-s.toml and its DBC) and the
samples they make. Pure: frames in, samples out; the bus is can_meter.py's."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cantools
from cantools.errors import Error as CantoolsError

from csbridge.sources import MeterSample
from csbridge.sources.meters.register_map import MeterProfileError
from csbridge.sources.meters.sample import sample_from_values

CAN_FIELDS = frozenset({"dc_current_a", "dc_voltage_v", "power_w", "energy_counter_wh"})
MAX_COUNTER_STEP_WH = 100.0
"""A larger step of the energy counter between two frames is no energy that flowed (400 kW
for a second is 111 Wh, and results come every 100 ms or so): the shunt was reset or
reconfigured. The counter is taken as a new baseline, and nothing is booked."""


@dataclass(frozen=True, slots=True)
class ResultSpec:
    frame_id: int
    message: str
    signal: str
    field: str
    index: int


@dataclass(frozen=True, slots=True)
class CanMeterProfile:
    name: str
    bitrate: int
    extended: bool
    error_flags: tuple[str, ...]
    results: tuple[ResultSpec, ...]
    database: Any
    """The cantools database of the profile's DBC."""

    @property
    def frame_ids(self) -> frozenset[int]:
        return frozenset(result.frame_id for result in self.results)


def load_can_meter_profile(path: Path) -> CanMeterProfile:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
        profile = document["profile"]
        database: Any = cantools.database.load_file(str(path.parent / profile["dbc"]))
    except (OSError, KeyError, CantoolsError, tomllib.TOMLDecodeError) as error:
        raise MeterProfileError(f"{path}: {error!r}") from error
    return parse_can_meter_profile(document, database, str(path))


def parse_can_meter_profile(
    document: Mapping[str, Any], database: Any, source: str
) -> CanMeterProfile:
    profile = document.get("profile", {})
    if profile.get("kind") != "meter" or profile.get("transport") != "can":
        raise MeterProfileError(f'{source}: [profile] needs kind = "meter", transport = "can"')
    frame = document.get("frame", {})
    results = []
    for i, entry in enumerate(document.get("result", [])):
        where = f"{source}: result[{i}]"
        try:
            message = database.get_message_by_name(entry["message"])
        except KeyError as error:
            raise MeterProfileError(
                f"{where}: no message {entry.get('message')!r} in the DBC"
            ) from error
        if entry.get("field") not in CAN_FIELDS:
            raise MeterProfileError(
                f"{where}: field {entry.get('field')!r} is none of {sorted(CAN_FIELDS)}"
            )
        if entry.get("signal") not in {s.name for s in message.signals}:
            raise MeterProfileError(
                f"{where}: {message.name} has no signal {entry.get('signal')!r}"
            )
        index = entry.get("index")
        if not isinstance(index, int):
            raise MeterProfileError(f"{where}: index (byte 0 of the frame) must be an integer")
        results.append(
            ResultSpec(message.frame_id, message.name, entry["signal"], entry["field"], index)
        )
    if not results:
        raise MeterProfileError(f"{source}: no [[result]] entries")
    return CanMeterProfile(
        name=str(profile.get("name", Path(source).stem)),
        bitrate=int(profile.get("bitrate", 500000)),
        extended=bool(frame.get("extended", False)),
        error_flags=tuple(frame.get("error_flags", ())),
        results=tuple(results),
        database=database,
    )


@dataclass(frozen=True, slots=True)
class Refused:
    """A frame that carries no usable value, and why (a word from a closed set)."""

    reason: str


@dataclass(slots=True)
class CanMeterState:
    """The latest value of each result, when it came, and the energy counter's bookkeeping."""

    profile: CanMeterProfile
    values: dict[str, float] = field(default_factory=dict)
    seen_at: dict[str, float] = field(default_factory=dict)
    counter_wh: float | None = None
    imported_wh: float = 0.0
    exported_wh: float = 0.0

    def take(self, frame_id: int, data: bytes, at: float) -> MeterSample | Refused | None:
        """One frame: a sample when it completes a cycle (the first result of the profile),
        None when it is stored for the next sample, Refused when it carries nothing usable."""
        spec = next((r for r in self.profile.results if r.frame_id == frame_id), None)
        if spec is None:
            return None  # another result of the shunt's (temperature, charge): not used
        message = self.profile.database.get_message_by_frame_id(frame_id)
        if len(data) < message.length:
            return Refused("short")
        try:
            decoded = message.decode(bytes(data[: message.length]), decode_choices=False)
        except (CantoolsError, ValueError):
            return Refused("undecodable")
        prefix = spec.signal
        if decoded.get(f"{prefix}_INDEX") != spec.index:
            return Refused("wrong_index")
        if any(decoded.get(f"{prefix}_{flag}") for flag in self.profile.error_flags):
            return Refused("error_flag")
        value = float(decoded[spec.signal])
        if spec.field == "energy_counter_wh":
            self._count(value)
        self.values[spec.field] = value
        self.seen_at[spec.field] = at
        if spec is not self.profile.results[0]:
            return None
        return self.sample()

    def _count(self, counter: float) -> None:
        previous, self.counter_wh = self.counter_wh, counter
        if previous is None:
            # The counter is the net energy since the shunt was last reset: split it once.
            self.imported_wh += max(counter, 0.0)
            self.exported_wh += max(-counter, 0.0)
            return
        step = counter - previous
        if abs(step) > MAX_COUNTER_STEP_WH:
            return
        if step > 0:
            self.imported_wh += step
        else:
            self.exported_wh -= step

    def sample(self) -> MeterSample | None:
        """Every mapped result's latest value; `at` is the oldest of them, so one result that
        stops coming makes the whole sample age towards its deadline."""
        fields = {r.field for r in self.profile.results}
        if not fields <= self.seen_at.keys():
            return None
        values: dict[str, float | None] = {
            name: value for name, value in self.values.items() if name != "energy_counter_wh"
        }
        if "energy_counter_wh" in fields:
            values["energy_import_wh"] = self.imported_wh
            values["energy_export_wh"] = self.exported_wh
        return sample_from_values(min(self.seen_at[f] for f in fields), values)
