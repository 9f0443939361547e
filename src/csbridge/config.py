"""The station's configuration: one TOML file, validated by pydantic, errors naming the key."""

from __future__ import annotations

import enum
import itertools
import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
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
    """The DC power stage's nameplate: a ceiling for everything live sources report.

    The maxima may be left out only when modules are configured: the stack then decides.
    """

    max_current_a: NonNegative | None = None
    min_current_a: NonNegative = 0.0
    max_voltage_v: NonNegative | None = None
    min_voltage_v: NonNegative = 0.0
    max_power_w: NonNegative | None = None
    peak_current_ripple_a: NonNegative
    current_reg_tolerance_a: NonNegative | None = None
    energy_to_be_delivered_wh: NonNegative | None = None
    power_ramp_limit_w_per_s: NonNegative | None = None

    @model_validator(mode="after")
    def _minima_below_maxima(self) -> Self:
        _ordered(self, "current_a", "voltage_v")
        return self

    def missing_maxima(self) -> list[str]:
        return [
            name
            for name in ("max_current_a", "max_voltage_v", "max_power_w")
            if getattr(self, name) is None
        ]


class DcBptStaticLimits(_Strict):
    max_discharge_current_a: NonNegative
    min_discharge_current_a: NonNegative = 0.0
    max_discharge_power_w: NonNegative
    min_discharge_power_w: NonNegative = 0.0

    @model_validator(mode="after")
    def _minima_below_maxima(self) -> Self:
        _ordered(self, "discharge_current_a", "discharge_power_w")
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
        _ordered(self, "discharge_power_w")
        return self


class CableConfig(_Strict):
    """The connector and cable rating."""

    max_current_a: Positive
    max_voltage_v: Positive | None = None


class InstallationConfig(_Strict):
    """The grid connection this EVSE draws from."""

    max_power_w: Positive | None = None
    max_current_a: Positive | None = None
    """Per phase, at the grid."""
    grid_voltage_v: Positive = 230.0
    """Phase-to-neutral, to turn a DC EVSE's grid current into power."""
    grid_phases: Literal[1, 3] = 3
    efficiency: Annotated[float, Field(gt=0, le=1)] = 0.95
    """DC only: grid power times this is what reaches the EV."""


class DeratingConfig(_Strict):
    """A piecewise-linear curve from a temperature to a current (A) or power (W) limit.

    `module` curves limit each module's own output; `evse` and `plug` curves limit the EVSE.
    """

    input: Literal["module", "evse", "plug"]
    quantity: Literal["current", "power"]
    points: Annotated[list[tuple[Finite, NonNegative]], Field(min_length=2)]

    @model_validator(mode="after")
    def _rising(self) -> Self:
        temperatures = [t for t, _ in self.points]
        if any(b <= a for a, b in itertools.pairwise(temperatures)):
            raise ValueError(f"points: temperatures must rise strictly, got {temperatures}")
        return self


class SimulatedModuleConfig(_Strict):
    """What a simulated module reports as its capability."""

    max_voltage_v: Positive
    min_voltage_v: NonNegative = 0.0
    max_current_a: Positive
    min_current_a: NonNegative = 0.0
    max_power_w: Positive
    max_import_current_a: NonNegative | None = None
    max_import_power_w: NonNegative | None = None
    temperature_c: float = 35.0


class BusConfig(_Strict):
    """A CAN bus the station's devices talk on."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    interface: Literal["socketcan", "virtual"] = "socketcan"
    channel: str | None = None
    """The interface's channel; default the bus name (can0)."""
    bitrate: Annotated[int, Field(gt=0)] | None = None
    """Checked against each profile's bitrate; the link itself is set up by the OS."""
    controller_address: Annotated[int, Field(ge=0, le=255)] = 0xF0
    asc_channel: Annotated[int, Field(ge=1)] | None = None
    """Vector ASC logs number channels from 1: the one that is this bus (default: its position)."""

    @property
    def interface_channel(self) -> str:
        return self.channel or self.name


class CanDevice(_Strict):
    """Where a device talks: a profile in hal/ on a configured bus."""

    profile: Annotated[str, Field(min_length=1)]
    bus: Annotated[str, Field(min_length=1)]


class EverestApiDevice(_Strict):
    """A device driven by a program written against EVerest's MQTT API (power_supply_DC or
    isolation_monitor), under everest_api/1/<interface>/<module_id>/."""

    module_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    communication_check_s: Annotated[float, Field(gt=0, le=600)] = 5.0
    """Without a `true` on m2e/communication_check for this long the device counts as silent
    (EVerest's cfg_communication_check_to_s). A device that turns its check off is judged by
    its other messages, on the same deadline."""
    heartbeat_interval_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    """e2m/heartbeat period (EVerest's cfg_heartbeat_interval_ms); 0 sends none."""
    topic_prefix: Annotated[str, Field(min_length=1)] = "everest_api/1"


class ModuleConfig(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    address: Annotated[int, Field(ge=0, le=255)] = 0
    """The module's address on its bus (needed with `can`)."""
    can: CanDevice | None = None
    """The module's protocol and bus; or `everest` for a power supply behind EVerest's API; or
    `simulated` alone for a module without hardware."""
    everest: EverestApiDevice | None = None
    bidirectional: bool = False
    poll_period_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    deadline_s: Annotated[float, Field(gt=0, le=600)] | None = None
    """Silence longer than this takes the module out of the stack; default 3 poll periods."""
    simulated: SimulatedModuleConfig | None = None

    @model_validator(mode="after")
    def _one_way_to_reach_it(self) -> Self:
        if self.can is not None and self.everest is not None:
            raise ValueError("a module is reached over `can` or `everest`, not both")
        if self.everest is not None and self.simulated is not None:
            raise ValueError("an `everest` module is simulated by the EVerest API program itself")
        if self.can is not None and "address" not in self.model_fields_set:
            raise ValueError("a `can` module needs its `address` on the bus")
        return self

    @property
    def freshness_deadline_s(self) -> float:
        if self.deadline_s is not None:
            return self.deadline_s
        if self.everest is not None:
            return self.everest.communication_check_s
        return 3 * self.poll_period_s


class SimulatedImdConfig(_Strict):
    resistance_ohm: NonNegative = 5_000_000.0
    period_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    self_test_s: Annotated[float, Field(ge=0, le=60)] = 3.0


class ImdConfig(_Strict):
    can: CanDevice | None = None
    everest: EverestApiDevice | None = None
    """An IMD behind EVerest's isolation_monitor API; its communication check must also keep
    within `deadline_s`."""
    rule: Literal["iec61851-23:2023", "iec61851-23:2014"] = "iec61851-23:2023"
    deadline_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    rated_voltage_v: Positive | None = None
    """The 2014 rule's reference voltage; default the EVSE's rated maximum voltage."""
    simulated: SimulatedImdConfig | None = None

    @model_validator(mode="after")
    def _one_way_to_reach_it(self) -> Self:
        if self.can is not None and self.everest is not None:
            raise ValueError("an IMD is reached over `can` or `everest`, not both")
        if self.everest is not None and self.simulated is not None:
            raise ValueError("an `everest` IMD is simulated by the EVerest API program itself")
        return self


class SimulatedBoardConfig(_Strict):
    evse_temperature_c: float = 30.0
    plug_temperature_c: float = 30.0
    period_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    max_current_a: Positive | None = None
    """AC: the board's hardware capability per phase."""
    max_discharge_current_a: NonNegative | None = None
    phases: Literal[1, 3] | None = None


class BoardConfig(_Strict):
    can: CanDevice | None = None
    """The board's protocol and bus (a profile of kind board); with `simulated` as well, a
    simulated board speaks that protocol on the bus."""
    deadline_s: Annotated[float, Field(gt=0, le=60)] = 3.0
    simulated: SimulatedBoardConfig | None = None


class ExternalDefaults(_Strict):
    """The limit that holds when no external limit is valid (none by default)."""

    max_power_w: Positive | None = None
    max_current_a: Positive | None = None


def _ordered(model: BaseModel, *quantities: str) -> None:
    """min_<quantity> never above max_<quantity> (a missing maximum bounds nothing)."""
    for quantity in quantities:
        low = getattr(model, f"min_{quantity}")
        high = getattr(model, f"max_{quantity}")
        if high is not None and low > high:
            msg = f"min_{quantity} ({low}) is above max_{quantity} ({high})"
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
    cable: CableConfig | None = None
    installation: InstallationConfig | None = None
    derating: list[DeratingConfig] = []
    module: list[ModuleConfig] = []
    """DC: the power modules stacked in parallel ([[evse.module]])."""
    imd: ImdConfig | None = None
    board: BoardConfig | None = None
    external: ExternalDefaults = ExternalDefaults()

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
        problems += self._live_source_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _live_source_problems(self) -> list[str]:
        problems: list[str] = []
        if self.kind is Kind.AC:
            if self.module:
                problems.append("[[evse.module]] power modules belong to a dc EVSE")
            if self.imd is not None:
                problems.append("[evse.imd] belongs to a dc EVSE")
        names = [module.name for module in self.module]
        if len(set(names)) != len(names):
            problems.append(f"module names must be unique, got {names}")
        if (
            self.imd is not None
            and self.imd.rule == "iec61851-23:2014"
            and self.imd.rated_voltage_v is None
            and (self.dc_limits is None or self.dc_limits.max_voltage_v is None)
        ):
            problems.append(
                "the 2014 isolation rule needs [evse.imd] rated_voltage_v "
                "or [dc_limits] max_voltage_v"
            )
        if not self.module and any(curve.input == "module" for curve in self.derating):
            problems.append("a derating curve on module temperature needs [[evse.module]]")
        if self.board is None and any(curve.input != "module" for curve in self.derating):
            problems.append("a derating curve on evse or plug temperature needs [evse.board]")
        if self.dc_limits is not None and not self.module and self.dc_limits.missing_maxima():
            missing = ", ".join(self.dc_limits.missing_maxima())
            problems.append(f"[dc_limits] needs {missing} when no modules are configured")
        return problems


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
    local_prefix: Annotated[str, Field(min_length=1)] = "csbridge"
    """Our own per-EVSE topics: <prefix>/<evse_id>/limits, .../external_limit, .../operator."""
    keepalive_s: Annotated[int, Field(ge=2, le=600)] = 10
    max_payload_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    ca_file: Path | None = None
    """The CA that signed the broker's certificate (mqtts:// only; default: the system's)."""
    cert_file: Path | None = None
    """Our client certificate (PEM) for a broker that asks for one; needs key_file."""
    key_file: Path | None = None

    @model_validator(mode="after")
    def _tls_files_belong_to_tls(self) -> Self:
        _, _, tls = broker_address(self.broker)
        given = [name for name in ("ca_file", "cert_file", "key_file") if getattr(self, name)]
        if given and not tls:
            msg = f"{', '.join(given)} given but the broker URL is not mqtts://"
            raise ValueError(msg)
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file given without a username")
        return self

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        broker_address(value)
        return value

    @field_validator("request_topic", "response_topic", "status_topic", "local_prefix")
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
    scenario: Literal["demo"] | None = None
    """Play a scripted scenario on the simulated devices (a module drops out, a plug heats up)."""
    profile_dirs: list[Path] = []
    """Folders of device profiles of your own, searched after the shipped hal/ (a profile of
    the same name replaces the shipped one)."""

    @field_validator("profile_dirs")
    @classmethod
    def _existing_folders(cls, folders: list[Path]) -> list[Path]:
        # A mistyped folder would quietly leave the shipped profile of the same name in use.
        missing = [str(folder) for folder in folders if not folder.is_dir()]
        if missing:
            raise ValueError(f"no such folder: {', '.join(missing)}")
        return folders


class ReportingConfig(_Strict):
    """How computed limits become updates: decreases at once, increases only once settled."""

    settle_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    hysteresis_fraction: Annotated[float, Field(ge=0, le=0.5)] = 0.02
    hysteresis_current_a: NonNegative = 1.0
    hysteresis_power_w: NonNegative = 500.0
    hysteresis_voltage_v: NonNegative = 1.0
    max_updates_per_s: Annotated[float, Field(gt=0, le=100)] = 5.0
    present_voltage_deadband_v: NonNegative = 2.0
    present_current_deadband_a: NonNegative = 1.0
    evaluate_every_s: Annotated[float, Field(gt=0, le=5)] = 0.1
    limits_report_every_s: Annotated[float, Field(gt=0, le=60)] = 1.0


class LoggingConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    repeat_interval_s: Annotated[float, Field(ge=1, le=3600)] = 60.0
    """A fault of one kind is logged at most once per this interval, with the count held back."""


class MetricsConfig(_Strict):
    listen: str | None = None
    """`host:port` for Prometheus to scrape (e.g. 127.0.0.1:9108); off when not set."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            listen_address(value)
        return value


def listen_address(value: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` -> (host, port)."""
    host, sep, port_text = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        msg = f"listen address {value!r} must be host:port, e.g. 127.0.0.1:9108"
        raise ValueError(msg)
    return host, int(port_text)


class EverestExportConfig(_Strict):
    """Offer one DC EVSE's module stack to EVerest as a power_supply_DC API module."""

    evse_id: Annotated[str, Field(min_length=1)]
    module_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    topic_prefix: Annotated[str, Field(min_length=1)] = "everest_api/1"
    communication_check_every_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    """m2e/communication_check true this often (EVerest's check times out after 5 s)."""
    voltage_current_every_s: Annotated[float, Field(gt=0, le=1)] = 0.25
    """m2e/voltage_current: EVerest asks for at least 1 Hz, about 4 Hz recommended."""
    heartbeat_timeout_s: Annotated[float, Field(gt=0, le=600)] = 5.0
    """EVerest's e2m/heartbeat missing this long (once seen): the stack is switched off."""


class Config(_Strict):
    station: StationConfig
    mqtt: MqttConfig = MqttConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    reporting: ReportingConfig = ReportingConfig()
    bus: list[BusConfig] = []
    evse: Annotated[list[EvseConfig], Field(min_length=1)]
    everest_export: list[EverestExportConfig] = []

    @model_validator(mode="after")
    def _exports_name_dc_stacks(self) -> Self:
        by_id = {evse.evse_id: evse for evse in self.evse}
        problems = []
        for index, export in enumerate(self.everest_export):
            evse = by_id.get(export.evse_id)
            if evse is None:
                problems.append(f"everest_export[{index}].evse_id: no EVSE {export.evse_id!r}")
            elif evse.kind is not Kind.DC or not evse.module:
                problems.append(
                    f"everest_export[{index}]: {export.evse_id} has no DC module stack to offer"
                )
        ids = [(e.topic_prefix, e.module_id) for e in self.everest_export]
        if len(set(ids)) != len(ids):
            problems.append("everest_export: each module_id once")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _unique_evse_ids(self) -> Self:
        ids = [evse.evse_id for evse in self.evse]
        duplicates = sorted({evse_id for evse_id in ids if ids.count(evse_id) > 1})
        if duplicates:
            msg = f"evse_id must be unique across EVSEs, repeated: {', '.join(duplicates)}"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _devices_on_known_buses(self) -> Self:
        buses = [bus.name for bus in self.bus]
        if len(set(buses)) != len(buses):
            raise ValueError(f"bus names must be unique, got {buses}")
        problems = []
        taken: dict[tuple[str, str, int], str] = {}
        for index, evse in enumerate(self.evse):
            devices: list[tuple[str, CanDevice | None, int]] = [
                (f"evse[{index}].module[{m_index}]", m.can, m.address)
                for m_index, m in enumerate(evse.module)
            ]
            if evse.imd is not None:
                devices.append((f"evse[{index}].imd", evse.imd.can, 0))
            if evse.board is not None:
                devices.append((f"evse[{index}].board", evse.board.can, 0))
            for where, device, address in devices:
                if device is None:
                    continue
                if device.bus not in buses:
                    problems.append(f"{where}.can.bus: no [[bus]] named {device.bus!r}")
                key = (device.bus, device.profile, address)
                if key in taken:
                    problems.append(f"{where}: same bus, profile and address as {taken[key]}")
                taken[key] = where
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def with_broker(self, broker: str) -> Config:
        """A copy pointing at another broker (the CLI's --broker); ConfigError if it is bad."""
        try:
            mqtt = MqttConfig.model_validate({**self.mqtt.model_dump(), "broker": broker})
        except ValidationError as error:
            problems = [p.removeprefix("broker: ") for p in describe_validation_error(error)]
            raise ConfigError("--broker", problems) from None
        return self.model_copy(update={"mqtt": mqtt})

    @model_validator(mode="after")
    def _everest_modules_once(self) -> Self:
        seen: dict[tuple[str, str, str], str] = {}
        problems = []
        for index, evse in enumerate(self.evse):
            apis = [
                (f"evse[{index}].module[{m}].everest", "power_supply_DC", module.everest)
                for m, module in enumerate(evse.module)
            ]
            if evse.imd is not None:
                apis.append((f"evse[{index}].imd.everest", "isolation_monitor", evse.imd.everest))
            for where, interface, api in apis:
                if api is None:
                    continue
                key = (api.topic_prefix, interface, api.module_id)
                if key in seen:
                    # Two sources on one EVerest module would both command it.
                    problems.append(f"{where}: module_id {api.module_id!r} is also {seen[key]}")
                seen[key] = where
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _location(loc: tuple[int | str, ...]) -> str:
    rendered = ""
    for part in loc:
        if isinstance(part, int):
            rendered += f"[{part}]"
        else:
            rendered += f".{part}" if rendered else str(part)
    return rendered or "(top level)"


def describe_validation_error(error: ValidationError) -> list[str]:
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
        raise ConfigError(source, describe_validation_error(error)) from None


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(str(path), [f"cannot read: {error}"]) from None
    return parse_config(text, str(path))


PASSWORD_ENV = "CSBRIDGE_MQTT_PASSWORD"  # noqa: S105 - the variable's name, not a secret


def read_password(config: MqttConfig, environ: Mapping[str, str] = os.environ) -> str | None:
    """The broker password: from `password_file`, else from $CSBRIDGE_MQTT_PASSWORD (systemd's
    EnvironmentFile= or LoadCredential= feed either). Never logged, never in an error message."""
    if config.password_file is not None:
        try:
            return config.password_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            why = f"cannot read {config.password_file}: {error.__class__.__name__}"
            raise ConfigError("mqtt.password_file", [why]) from None
    if config.username is not None:
        return environ.get(PASSWORD_ENV)
    return None


def exposed_secret_files(config: MqttConfig) -> list[Path]:
    """Secret files that users other than the owner may read: worth a warning at start-up."""
    exposed = []
    for path in (config.password_file, config.key_file):
        if path is None:
            continue
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            exposed.append(path)
    return exposed
