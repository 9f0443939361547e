"""The station's configuration: one TOML file, validated by pydantic, errors naming the key."""

from __future__ import annotations

import enum
import tomllib
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class ConfigError(Exception):
    """The configuration cannot be used; each line names the file, the key and why."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Kind(enum.StrEnum):
    AC = "ac"
    DC = "dc"


AcConnectorType = Literal["AC_single_phase_core", "AC_three_phase_core"]
DcConnectorType = Literal["DC_core", "DC_extended", "DC_combo_core", "DC_unique"]


class ConnectorConfig(_Strict):
    id: Annotated[int, Field(ge=1)]
    connector_type: AcConnectorType | DcConnectorType


class DcStaticLimits(_Strict):
    """What the DC power stage can do, until live sources report it."""

    max_current_a: NonNegative
    min_current_a: NonNegative = 0.0
    max_voltage_v: NonNegative
    min_voltage_v: NonNegative = 0.0
    max_power_w: NonNegative
    peak_current_ripple_a: NonNegative
    current_reg_tolerance_a: NonNegative | None = None
    energy_to_be_delivered_wh: NonNegative | None = None
    power_ramp_limit_w_per_s: NonNegative | None = None

    @model_validator(mode="after")
    def _minima_below_maxima(self) -> Self:
        _ordered(self.min_current_a, self.max_current_a, "min_current_a", "max_current_a")
        _ordered(self.min_voltage_v, self.max_voltage_v, "min_voltage_v", "max_voltage_v")
        return self


class DcBptStaticLimits(_Strict):
    max_discharge_current_a: NonNegative
    min_discharge_current_a: NonNegative = 0.0
    max_discharge_power_w: NonNegative
    min_discharge_power_w: NonNegative = 0.0

    @model_validator(mode="after")
    def _minima_below_maxima(self) -> Self:
        _ordered(
            self.min_discharge_current_a,
            self.max_discharge_current_a,
            "min_discharge_current_a",
            "max_discharge_current_a",
        )
        _ordered(
            self.min_discharge_power_w,
            self.max_discharge_power_w,
            "min_discharge_power_w",
            "max_discharge_power_w",
        )
        return self


class AcStaticLimits(_Strict):
    max_current_a: NonNegative
    """Per phase in use."""


class AcBptStaticLimits(_Strict):
    max_discharge_power_w: NonNegative
    """Per phase in use."""
    min_discharge_power_w: NonNegative = 0.0

    @model_validator(mode="after")
    def _minima_below_maxima(self) -> Self:
        _ordered(
            self.min_discharge_power_w,
            self.max_discharge_power_w,
            "min_discharge_power_w",
            "max_discharge_power_w",
        )
        return self


def _ordered(low: float, high: float, low_name: str, high_name: str) -> None:
    if low > high:
        msg = f"{low_name} ({low}) is above {high_name} ({high})"
        raise ValueError(msg)


class EvseConfig(_Strict):
    evse_id: Annotated[str, Field(min_length=1, max_length=37, pattern=r"^\S+$")]
    kind: Kind
    bpt: bool = False
    network_interface: Annotated[str, Field(min_length=1)]
    supports_eim: bool = True
    nominal_voltage: Annotated[int, Field(ge=1, le=1000)] | None = None
    """AC only: the grid's phase-to-neutral voltage, V."""
    phases: Literal[1, 3] = 3
    """AC only: how many phases the EVSE switches."""
    control_mode: Literal["scheduled", "dynamic"] | None = None
    bpt_channel: Literal["unified", "separated"] | None = None
    generator_mode: Literal["grid_following", "grid_forming"] | None = None
    grid_island_detection_mode: Literal["active", "passive"] | None = None
    connectors: Annotated[list[ConnectorConfig], Field(min_length=1)]
    dc_limits: DcStaticLimits | None = None
    dc_bpt_limits: DcBptStaticLimits | None = None
    ac_limits: AcStaticLimits | None = None
    ac_bpt_limits: AcBptStaticLimits | None = None

    @model_validator(mode="after")
    def _consistent_with_kind(self) -> Self:
        problems: list[str] = []
        own, other = ("dc", "ac") if self.kind is Kind.DC else ("ac", "dc")
        if getattr(self, f"{own}_limits") is None:
            problems.append(f"a {own} EVSE needs [{own}_limits]")
        for block in (f"{other}_limits", f"{other}_bpt_limits"):
            if getattr(self, block) is not None:
                problems.append(f"[{block}] does not belong to a {own} EVSE")
        bpt_block = getattr(self, f"{own}_bpt_limits")
        if self.bpt and bpt_block is None:
            problems.append(f"bpt = true needs [{own}_bpt_limits]")
        if not self.bpt and bpt_block is not None:
            problems.append(f"[{own}_bpt_limits] given but bpt is false")
        if self.kind is Kind.AC and self.nominal_voltage is None:
            problems.append("an ac EVSE needs nominal_voltage")
        if self.kind is Kind.DC and self.nominal_voltage is not None:
            problems.append("nominal_voltage is for ac EVSEs only")
        prefix = "DC_" if self.kind is Kind.DC else "AC_"
        for index, connector in enumerate(self.connectors):
            if not connector.connector_type.startswith(prefix):
                problems.append(
                    f"connectors[{index}].connector_type {connector.connector_type} "
                    f"does not fit a {own} EVSE"
                )
        ids = [connector.id for connector in self.connectors]
        if len(set(ids)) != len(ids):
            problems.append(f"connector ids must be unique, got {ids}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _default_port(scheme: str) -> int:
    return 8883 if scheme == "mqtts" else 1883


class MqttConfig(_Strict):
    broker: str = "mqtt://127.0.0.1:1883"
    client_id: Annotated[str, Field(min_length=1, max_length=64)] = "csbridge"
    username: str | None = None
    password_file: Path | None = None
    request_topic: Annotated[str, Field(min_length=1)] = "josev/cs"
    response_topic: Annotated[str, Field(min_length=1)] = "cs/josev"
    status_topic: Annotated[str, Field(min_length=1)] = "csbridge/status"
    keepalive_s: Annotated[int, Field(ge=2, le=600)] = 10
    max_payload_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    ca_file: Path | None = None

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        broker_address(value)
        return value

    @field_validator("request_topic", "response_topic", "status_topic")
    @classmethod
    def _plain_topic(cls, value: str) -> str:
        if any(char in value for char in "+#\0"):
            msg = "a topic to publish or answer on cannot hold wildcards or NUL"
            raise ValueError(msg)
        return value


def broker_address(url: str) -> tuple[str, int, bool]:
    """`mqtt://host:port` -> (host, port, tls)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        msg = f"broker URL {url!r} must start with mqtt:// or mqtts://"
        raise ValueError(msg)
    if not parts.hostname:
        msg = f"broker URL {url!r} names no host"
        raise ValueError(msg)
    try:
        port = parts.port or _default_port(parts.scheme)
    except ValueError as error:
        msg = f"broker URL {url!r} has a bad port"
        raise ValueError(msg) from error
    return parts.hostname, port, parts.scheme == "mqtts"


class StationConfig(_Strict):
    sw_version: Annotated[str, Field(min_length=1)]
    hw_version: Annotated[str, Field(min_length=1)]
    simulated: bool = False
    """Play the simulated station's script over the configured limits (demo, commissioning)."""


class LoggingConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"


class Config(_Strict):
    station: StationConfig
    mqtt: MqttConfig = MqttConfig()
    logging: LoggingConfig = LoggingConfig()
    evse: Annotated[list[EvseConfig], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_evse_ids(self) -> Self:
        ids = [evse.evse_id for evse in self.evse]
        duplicates = sorted({evse_id for evse_id in ids if ids.count(evse_id) > 1})
        if duplicates:
            msg = f"evse_id must be unique across EVSEs, repeated: {', '.join(duplicates)}"
            raise ValueError(msg)
        return self

    def with_broker(self, broker: str) -> Config:
        """A copy pointing at another broker (the CLI's --broker)."""
        mqtt = MqttConfig.model_validate({**self.mqtt.model_dump(), "broker": broker})
        return self.model_copy(update={"mqtt": mqtt})


def _location(loc: tuple[int | str, ...]) -> str:
    rendered = ""
    for part in loc:
        if isinstance(part, int):
            rendered += f"[{part}]"
        else:
            rendered += f".{part}" if rendered else str(part)
    return rendered or "(top level)"


def _describe(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(part for part in item["loc"] if not _is_union_tag(part))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (misspelt, or in the wrong table?)"
        value = item.get("input")
        shown = (
            ""
            if isinstance(value, dict | list) or item["type"] == "missing"
            else f" (got {value!r})"
        )
        problems.append(f"{_location(loc)}: {message}{shown}")
    return problems


def _is_union_tag(part: int | str) -> bool:
    # pydantic names the union member it tried (e.g. "function-after[...]"): not a key.
    return isinstance(part, str) and ("[" in part or part.startswith("literal"))


def parse_config(text: str, source: str = "<config>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(source, [f"not valid TOML: {error}"]) from None
    try:
        return Config.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(source, _describe(error)) from None


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(str(path), [f"cannot read: {error}"]) from None
    return parse_config(text, str(path))


def read_password(config: MqttConfig) -> str | None:
    """The broker password, from its file; never logged."""
    if config.password_file is None:
        return None
    return config.password_file.read_text(encoding="utf-8").strip()
