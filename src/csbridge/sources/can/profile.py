"""Device profiles: declarative TOML files in hal/ that map a device's CAN frames to readings.

A vendor adds a module of a known protocol family by adding a profile; Python is needed only for
a new family. Two families exist:

- `id-fields`: the 29- or 11-bit identifier is split into named fields (command, source,
  destination, ...); requests are built from field values, replies matched by them (and by
  payload bytes where a protocol multiplexes registers in the data), and values and status bits
  read from declared byte positions.
- `dbc`: signals described by a DBC file beside the profile (cantools), on the DBC's fixed
  identifiers; [frame] may name identifier bits that carry the device's address (`fields` and
  `reply = { <field> = "address" }`), read as the id-fields family reads them.

Three kinds of device have profiles: DC power modules, insulation monitors (IMD) and the
charger's control board (CP state, contactor feedback, e-stop, temperatures, AC capability);
each kind reads its own set of fields (MODULE_*, IMD_*, BOARD_* below).

What a device does not report (a module's rated voltage range, say) a profile states once in
`[constants]`: every frame the codec decodes carries those values too.

A power module's profile may also say how it is commanded, in `[[command]]` tables (id-fields
family only; see CommandSpec and devices/commands.py): a setpoint (`set_output`) and output on/off
(`switch_on`, `switch_off`) become frames from identifier field values, fixed payload bytes and
the numbers to fill in. Several commands of one name are all sent, in profile order (a protocol
that sets voltage and current in separate frames).
"""

from __future__ import annotations

import enum
import logging
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from csbridge.config import ConfigError, describe_validation_error
from csbridge.support import resource_dir

log = logging.getLogger("csbridge.profiles")

ValueType = Literal["u8", "u16", "u32", "i16", "i32", "f32"]
TYPE_SIZE = {"u8": 1, "u16": 2, "u32": 4, "i16": 2, "i32": 4, "f32": 4}


class DeviceKind(enum.StrEnum):
    POWER_MODULE = "power_module"
    IMD = "imd"
    BOARD = "board"


MODULE_VALUES = frozenset(
    {
        "output_voltage",
        "output_current",
        "temperature_c",
        "export.max_voltage",
        "export.min_voltage",
        "export.max_current",
        "export.min_current",
        "export.max_power",
        "import.max_voltage",
        "import.min_voltage",
        "import.max_current",
        "import.max_power",
    }
)
CAPABILITY_PREFIXES = ("export.", "import.")
"""Fields a profile may state as [constants]: rated limits, never measurements."""
MODULE_FLAGS = frozenset({"offline", "fault", "derating", "over_temperature", "input_lost"})
IMD_VALUES = frozenset({"resistance_ohm", "voltage"})
IMD_FLAGS = frozenset({"self_test_running", "value_outdated", "device_fault"})
BOARD_VALUES = frozenset(
    {
        "evse_temperature_c",
        "plug_temperature_c",
        "max_current_a",
        "max_discharge_current_a",
        "phases",
        "cp_state",
        "cable_max_current_a",
        "lock_state",
    }
)
"""`cp_state` is the control pilot state as a number: 0..5 for A..F (anything else: unknown).
`lock_state` is the connector lock's feedback as a number: 0 unlocked, 1 locked, 2 moving,
3 fault (anything else: unknown). `phases` 0 means the board states no AC capability (a DC
EVSE's board)."""
BOARD_FLAGS = frozenset({"contactor_closed", "emergency_stop", "rcd_error", "fault", "pwm_on"})
FIELDS_OF_KIND = {
    DeviceKind.POWER_MODULE: (MODULE_VALUES, MODULE_FLAGS),
    DeviceKind.IMD: (IMD_VALUES, IMD_FLAGS),
    DeviceKind.BOARD: (BOARD_VALUES, BOARD_FLAGS),
}
"""Per device kind: (value fields, flag fields) a profile of that kind may map."""
QUANTITY_OF = {
    "cable_max_current_a": "current",
    "output_voltage": "voltage",
    "export.max_voltage": "voltage",
    "export.min_voltage": "voltage",
    "import.max_voltage": "voltage",
    "import.min_voltage": "voltage",
    "voltage": "voltage",
    "output_current": "current",
    "export.max_current": "current",
    "export.min_current": "current",
    "import.max_current": "current",
    "export.max_power": "power",
    "import.max_power": "power",
    "temperature_c": "temperature",
    "resistance_ohm": "resistance",
    "evse_temperature_c": "temperature",
    "plug_temperature_c": "temperature",
    "max_current_a": "current",
    "max_discharge_current_a": "current",
    "phases": "phases",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValueSpec(_Strict):
    """A number at a byte position: raw * scale + offset."""

    field: str
    at: Annotated[int, Field(ge=0, le=7)]
    type: ValueType
    order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0
    setting: str | None = None
    """The name of a [settings] entry the value is also multiplied by (a factor the device
    leaves to its controller's configuration, such as Winline's current limit point)."""

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if self.at + TYPE_SIZE[self.type] > 8:
            raise ValueError(f"a {self.type} at byte {self.at} runs past byte 7")
        return self


class FlagSpec(_Strict):
    """A status bit; several bits may set one flag (any of them set -> flag set)."""

    field: str
    at: Annotated[int, Field(ge=0, le=7)]
    bit: Annotated[int, Field(ge=0, le=31)]
    length: Literal[1, 2, 4] = 1
    """The bit counts within a word of this many bytes at `at` (bit 0 = least significant)."""
    order: Literal["big", "little"] = "big"
    invert: bool = False

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if self.at + self.length > 8 or self.bit >= self.length * 8:
            raise ValueError(
                f"bit {self.bit} of a {self.length}-byte word at byte {self.at} does not fit"
            )
        return self


class DataMatch(_Strict):
    """Payload bytes that tell replies on one identifier apart (registers, parameters)."""

    at: Annotated[int, Field(ge=0, le=7)]
    value: Annotated[int, Field(ge=0)]
    length: Literal[1, 2, 4] = 1
    mask: int | None = None


class SignalSpec(_Strict):
    """dbc family: a DBC signal to a reading field."""

    signal: str
    field: str
    scale: float = 1.0


class MessageSpec(_Strict):
    name: str
    id: dict[str, int] = {}
    """id-fields: identifier field values shared by request and reply."""
    poll: bool = False
    """id-fields: send the request every poll period (devices that only answer when asked)."""
    request_data: Annotated[str, Field(pattern=r"^([0-9A-Fa-f]{2}( |$)){0,8}$")] = ""
    match_data: list[DataMatch] = []
    dlc: Annotated[int, Field(ge=0, le=8)] | None = None
    """Expected reply length; default the frame section's."""
    error_reply: bool = False
    """id-fields: the device's answer that it could not serve a request (an error code in the
    payload): counted as out of range, nothing decoded. Carries no values, flags or signals."""
    period_s: Annotated[float, Field(gt=0, le=60)] | None = None
    """The device sends this message unasked every period_s (a broadcast). check-config warns
    of a deadline shorter than it; a simulated device sends it at this period. A polled message
    arrives every poll_period_s instead; a dbc message without it takes the DBC's
    GenMsgCycleTime."""
    values: list[ValueSpec] = []
    flags: list[FlagSpec] = []
    signals: list[SignalSpec] = []

    @model_validator(mode="after")
    def _error_reply_is_bare(self) -> Self:
        if self.error_reply and (
            self.values or self.flags or self.signals or self.poll or self.period_s is not None
        ):
            raise ValueError(
                "an error_reply carries no values, flags or signals and is not polled (nor has "
                "a period_s)"
            )
        return self

    @model_validator(mode="after")
    def _polled_or_broadcast(self) -> Self:
        if self.poll and self.period_s is not None:
            raise ValueError(
                "period_s is for a message the device sends unasked; a polled one arrives "
                "every poll_period_s"
            )
        return self


CommandName = Literal[
    "set_output",
    "switch_on",
    "switch_off",
    "select_high_mode",
    "select_low_mode",
    "set_import",
    "select_import_mode",
    "select_export_mode",
]
MODE_COMMANDS = ("select_high_mode", "select_low_mode")
"""A module with two output voltage ranges (UUGreen's Hi/Lo mode): the command that selects
each; the profile's `high_mode_above_v` says when (see power/voltage_mode.py)."""
DIRECTION_COMMANDS: tuple[CommandName, ...] = (
    "set_import",
    "select_import_mode",
    "select_export_mode",
)
"""A bidirectional module: its import setpoint (taking energy from the EV) and the commands that
put it in import or export mode. All three together, with switch_off (a mode is only changed
with the output off)."""
SETPOINT_COMMANDS = ("set_output", "set_import")


class CommandValue(_Strict):
    """A setpoint number written into a command's payload: raw = physical / scale, the same
    scale a reply of the same unit is read with (0.001 for mV, 0.0009765625 for 1/1024 V)."""

    quantity: Literal["voltage", "current"]
    at: Annotated[int, Field(ge=0, le=7)]
    type: ValueType
    order: Literal["big", "little"] = "big"
    scale: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if self.at + TYPE_SIZE[self.type] > 8:
            raise ValueError(f"a {self.type} at byte {self.at} runs past byte 7")
        return self


class CommandSpec(_Strict):
    """One frame the controller sends to command a module (id-fields family).

    The identifier is built like a request's ([frame] request, then `id` on top); the payload
    is `data` (its length is the frame's), with each of `values` written over its bytes."""

    name: CommandName
    id: dict[str, int] = {}
    data: Annotated[str, Field(pattern=r"^([0-9A-Fa-f]{2}( |$)){1,8}$")]
    values: list[CommandValue] = []

    @property
    def payload(self) -> bytes:
        return bytes.fromhex(self.data)

    @model_validator(mode="after")
    def _layout(self) -> Self:
        length = len(self.payload)
        taken: set[int] = set()
        for index, value in enumerate(self.values):
            end = value.at + TYPE_SIZE[value.type]
            if end > length:
                raise ValueError(
                    f"values[{index}]: a {value.type} at byte {value.at} runs past the "
                    f"{length} bytes of data"
                )
            span = set(range(value.at, end))
            if span & taken:
                raise ValueError(f"values[{index}] overlaps an earlier value")
            taken |= span
        if self.name in SETPOINT_COMMANDS and not self.values:
            raise ValueError(f"a {self.name} command carries the setpoint: give it values")
        if self.name not in SETPOINT_COMMANDS and self.values:
            raise ValueError(f"a {self.name} command carries no values, only data")
        return self


class FrameSpec(_Strict):
    extended: bool = True
    dlc: Annotated[int, Field(ge=0, le=8)] = 8
    fields: dict[
        str, tuple[Annotated[int, Field(ge=0, le=28)], Annotated[int, Field(ge=1, le=29)]]
    ] = {}
    """name -> (lowest bit, width)."""
    request: dict[str, int | Literal["address", "controller"]] = {}
    reply: dict[str, int | Literal["address", "controller"]] = {}

    @model_validator(mode="after")
    def _layout(self) -> Self:
        top = 29 if self.extended else 11
        for name, (low, width) in self.fields.items():
            if low + width > top:
                raise ValueError(f"fields.{name} ends at bit {low + width - 1}, past bit {top - 1}")
        for table in ("request", "reply"):
            for name in getattr(self, table):
                if name not in self.fields:
                    raise ValueError(f"{table}.{name} names no field in fields")
        if list(self.reply.values()).count("address") > 1:
            raise ValueError("reply: only one field can carry the device address")
        return self

    @property
    def address_field(self) -> str | None:
        return next((name for name, role in self.reply.items() if role == "address"), None)


class RatedRanges(_Strict):
    """Plausible ranges: a decoded value outside is refused as out of range."""

    voltage: tuple[float, float] = (-50.0, 1500.0)
    current: tuple[float, float] = (-1000.0, 1000.0)
    power: tuple[float, float] = (0.0, 500_000.0)
    temperature: tuple[float, float] = (-60.0, 200.0)
    resistance: tuple[float, float] = (0.0, 1e9)
    phases: tuple[float, float] = (0.0, 3.0)


class ProfileHeader(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    kind: DeviceKind
    family: Literal["id-fields", "dbc"]
    description: str = ""
    bitrate: Annotated[int, Field(gt=0)]
    poll_period_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    watchdog_s: Annotated[float, Field(gt=0, le=600)] | None = None
    """The device switches itself off after this long without a controller frame."""
    min_regulated_current_a: Annotated[float, Field(gt=0, le=1000)] | None = None
    """power_module only: the smallest output current the module regulates well (the stack
    gives a small setpoint to fewer modules rather than shares below this). The profile's
    comments name where the figure comes from, or say it is an assumption and why."""
    dbc: str | None = None
    """dbc family: the DBC file, relative to the profile."""
    high_mode_above_v: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """power_module with select_high_mode / select_low_mode commands: a setpoint above this
    voltage needs the module in its high mode, one at or below it in its low mode."""
    mode_switch_settle_s: Annotated[float, Field(ge=0, le=60)] = 2.0
    """How long the module is given after its output is switched off before its mode is
    changed, and again after the change before it is switched on."""


class Profile(_Strict):
    header: Annotated[ProfileHeader, Field(alias="profile")]
    """The file's [profile] table: name, family, bitrate, watchdog."""
    frame: FrameSpec = FrameSpec()
    rated: RatedRanges = RatedRanges()
    constants: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = {}
    """Capability field -> rated value the device does not report (its voltage range, power):
    added to every frame the codec decodes. A field is a constant or read from frames, not both;
    measurements (voltage, current, temperature) are never constants."""
    message: Annotated[list[MessageSpec], Field(min_length=1)]
    command: list[CommandSpec] = []
    """id-fields power modules: how the controller commands the module (optional)."""
    settings: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = {}
    """Named factors a value is multiplied by (ValueSpec.setting): what the device leaves to
    its controller's configuration. A vendor changes one in a copy of the profile."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[str] = []
        values, flags = FIELDS_OF_KIND[self.header.kind]
        for index, message in enumerate(self.message):
            where = f"message[{index}] ({message.name})"
            for spec in message.values:
                if spec.field not in values:
                    problems.append(
                        f"{where}: value field {spec.field!r} is not one of {sorted(values)}"
                    )
            for flag in message.flags:
                if flag.field not in flags:
                    problems.append(
                        f"{where}: flag field {flag.field!r} is not one of {sorted(flags)}"
                    )
            for signal in message.signals:
                if signal.field not in values | flags:
                    problems.append(
                        f"{where}: signal field {signal.field!r} is not a reading field"
                    )
            for name in message.id:
                if name not in self.frame.fields:
                    problems.append(f"{where}: id.{name} names no field in [frame] fields")
            if message.error_reply and self.header.family != "id-fields":
                problems.append(f"{where}: error_reply is for the id-fields family")
        problems += self._constant_problems(values)
        problems += self._setting_problems()
        problems += self._dbc_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _min_current_is_a_modules(self) -> Self:
        if (
            self.header.min_regulated_current_a is not None
            and self.header.kind is not DeviceKind.POWER_MODULE
        ):
            msg = "profile.min_regulated_current_a: only a power_module regulates an output current"
            raise ValueError(msg)
        return self

    def _dbc_problems(self) -> list[str]:
        if self.header.family != "dbc":
            return []
        problems = []
        if self.header.dbc is None:
            problems.append("profile.dbc: the dbc family needs its DBC file")
        if self.frame.request or any(role != "address" for role in self.frame.reply.values()):
            problems.append(
                "frame: the dbc family takes its identifiers from the DBC; only reply = "
                '{ <field> = "address" } applies (the device address in the identifier)'
            )
        return problems

    def _setting_problems(self) -> list[str]:
        return [
            f"message[{index}] ({message.name}): setting {spec.setting!r} is not in [settings]"
            for index, message in enumerate(self.message)
            for spec in message.values
            if spec.setting is not None and spec.setting not in self.settings
        ]

    def _constant_problems(self, fields: frozenset[str]) -> list[str]:
        problems: list[str] = []
        decoded = {spec.field for message in self.message for spec in message.values} | {
            signal.field for message in self.message for signal in message.signals
        }
        capability = sorted(field for field in fields if field.startswith(CAPABILITY_PREFIXES))
        for field, value in self.constants.items():
            where = f"constants.{field}"
            if field not in capability:
                problems.append(f"{where}: a constant is a capability field, one of {capability}")
                continue
            if field in decoded:
                problems.append(f"{where}: the field is also read from frames; keep one")
            quantity = QUANTITY_OF.get(field)
            if quantity is not None:
                low, high = getattr(self.rated, quantity)
                if not low <= value <= high:
                    problems.append(
                        f"{where}: {value} is outside the rated {quantity} range [{low}, {high}]"
                    )
        return problems

    @model_validator(mode="after")
    def _commands(self) -> Self:
        if not self.command:
            return self
        problems: list[str] = []
        if self.header.family != "id-fields" or self.header.kind is not DeviceKind.POWER_MODULE:
            problems.append("command: only id-fields power module profiles carry commands")
        for index, command in enumerate(self.command):
            where = f"command[{index}] ({command.name})"
            for name, value in command.id.items():
                if name not in self.frame.fields:
                    problems.append(f"{where}: id.{name} names no field in [frame] fields")
                elif not 0 <= value < 1 << self.frame.fields[name][1]:
                    problems.append(f"{where}: id.{name} = {value} does not fit its field")
        names = {command.name for command in self.command}
        if ("switch_on" in names) != ("switch_off" in names):
            problems.append("command: switch_on and switch_off come as a pair")
        problems += self._mode_problems(names)
        problems += self._direction_problems(names)
        for setpoint in SETPOINT_COMMANDS:
            quantities = {
                value.quantity
                for command in self.command
                if command.name == setpoint
                for value in command.values
            }
            if setpoint in names and quantities != {"voltage", "current"}:
                problems.append(
                    f"command: the {setpoint} commands must set both voltage and current"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _mode_problems(self, names: set[CommandName]) -> list[str]:
        modes = [name for name in MODE_COMMANDS if name in names]
        threshold = self.header.high_mode_above_v
        if not modes and threshold is None:
            return []
        if len(modes) != len(MODE_COMMANDS) or threshold is None:
            return [
                "command: select_high_mode, select_low_mode and profile.high_mode_above_v "
                "come together"
            ]
        if "switch_off" not in names:
            return ["command: a mode change needs the output off first: give switch_off"]
        return []

    def _direction_problems(self, names: set[CommandName]) -> list[str]:
        given = [name for name in DIRECTION_COMMANDS if name in names]
        if not given:
            return []
        if len(given) != len(DIRECTION_COMMANDS):
            return ["command: set_import, select_import_mode and select_export_mode come together"]
        if "switch_off" not in names or "set_output" not in names:
            return ["command: a bidirectional module needs set_output and switch_off too"]
        return []

    @property
    def bidirectional(self) -> bool:
        """The module can be commanded to take energy from the EV (import mode)."""
        return all(self.commands(name) for name in DIRECTION_COMMANDS)

    @model_validator(mode="after")
    def _mode_needs_commands(self) -> Self:
        if self.header.high_mode_above_v is not None and not self.command:
            raise ValueError("profile.high_mode_above_v needs the mode commands")
        return self

    def value_scale(self, spec: ValueSpec) -> float:
        """What a raw value is multiplied by: its scale, times its setting if it names one."""
        return spec.scale * (self.settings[spec.setting] if spec.setting is not None else 1.0)

    def commands(self, name: CommandName) -> list[CommandSpec]:
        """The commands of one name, in profile order (all of them are sent)."""
        return [command for command in self.command if command.name == name]

    @property
    def name(self) -> str:
        return self.header.name


def load_profile(path: Path) -> Profile:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(str(path), [f"cannot read the profile: {error}"]) from None
    try:
        return Profile.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(str(path), describe_validation_error(error)) from None


class ProfileRegistry:
    """Every profile by name: the folders of the search path in order (`[station] profile_dirs`,
    then `--hal-dir`, then `$CSBRIDGE_HAL_PATH`; see search_path.py), then the shipped hal/.

    A name found in two folders of the search path is a ConfigError naming both files; one that
    is also shipped replaces the shipped profile and is listed in `shadowed` (check-config warns
    of it; the registry logs it when the profile is first used)."""

    def __init__(self, directory: Path | None = None, extra: Sequence[Path] = ()) -> None:
        self.directory = directory or resource_dir("hal")
        own: list[Path] = []
        for folder in extra:
            if folder.resolve() not in {seen.resolve() for seen in own}:
                own.append(folder)
        self.directories = [*own, self.directory]
        """The search order: the search path's folders, then the shipped one."""
        self._profiles: dict[str, Profile] = {}
        self._paths: dict[str, Path] = {}
        self.shadowed: dict[str, tuple[Path, Path]] = {}
        """Name -> (the search path's profile, the shipped one it replaces)."""
        problems: list[str] = []
        for folder in own:
            for path in sorted(folder.glob("*.toml")):
                first = self._paths.setdefault(path.stem, path)
                if first != path:
                    problems.append(
                        f"profile {path.stem!r} is found twice: {first} and {path} (rename one, "
                        "or leave one folder out of the search path)"
                    )
        if problems:
            raise ConfigError("profile search path", problems)
        for path in sorted(self.directory.glob("*.toml")):
            own_path = self._paths.setdefault(path.stem, path)
            if own_path != path:
                self.shadowed[path.stem] = (own_path, path)

    def names(self) -> list[str]:
        return sorted(self._paths)

    def path(self, name: str) -> Path | None:
        """The file the name is read from (None: no such profile)."""
        return self._paths.get(name)

    def get(self, name: str) -> Profile:
        if name not in self._profiles:
            path = self._paths.get(name)
            if path is None:
                folders = ", ".join(str(folder) for folder in self.directories)
                raise KeyError(f"no profile {name!r} in {folders} (have {', '.join(self.names())})")
            profile = load_profile(path)
            if name in self.shadowed:
                # Once per registry, when the profile is first used (check-config warns of
                # it on its own line, so this stays below its warning level).
                log.info(
                    "event=profile_replaces_shipped name=%s file=%s shipped=%s",
                    name,
                    path,
                    self.shadowed[name][1],
                )
            if profile.name != name:
                raise ConfigError(
                    str(path), [f"profile.name {profile.name!r} must equal the file name {name!r}"]
                )
            self._profiles[name] = profile
        return self._profiles[name]

    def dbc_path(self, profile: Profile) -> Path:
        """The DBC file, beside the profile that names it."""
        assert profile.header.dbc is not None
        return self._paths[profile.name].parent / profile.header.dbc
