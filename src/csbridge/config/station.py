"""The whole file: station, reporting, logging, metrics, EVerest exports; checks across EVSEs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from csbridge.config.base import ConfigError, NonNegative, Strict, describe_validation_error
from csbridge.config.devices import BusConfig, CanDevice
from csbridge.config.evse import EvseConfig, Kind
from csbridge.config.maintenance import MaintenanceConfig
from csbridge.config.mqtt import MqttConfig
from csbridge.config.pool import PoolConfig, pools_fit_station

# -- [station.maintenance] and [station.identity] (reset, device_model) ------------------------


OcppVersion = Literal["ocpp1.6", "ocpp2.0.1", "ocpp2.1"]


class IdentityConfig(Strict):
    """Who the station is to OCPP: Josev's `device_model` is answered from this (and the EVSEs).
    Without it csbridge sends no device model: it would have nothing true to say."""

    model: Annotated[str, Field(min_length=1)]
    vendor: Annotated[str, Field(min_length=1)]
    serial_number: Annotated[str, Field(min_length=1)]
    firmware_version: Annotated[str, Field(min_length=1)]
    ocpp_version: OcppVersion | None = None
    ocpp_csms_url: Annotated[str, Field(min_length=1)]
    """The CSMS's OCPP websocket address: ws:// or wss:// (Josev's rule)."""
    security_profile: Annotated[int, Field(ge=1, le=3)]
    """OCPP's security profile: 1 basic auth over ws://, 2 basic auth over TLS, 3 TLS with a
    client certificate."""
    identity: Annotated[str, Field(min_length=1)]
    """The station's OCPP identity (the last segment of its CSMS address)."""
    basic_auth_password_file: Path
    """The file holding the OCPP basic-auth password: read once at start, never logged or
    shown (chmod 600, or systemd's LoadCredential=)."""
    sim_iccid: Annotated[str, Field(min_length=1)] | None = None
    sim_imsi: Annotated[str, Field(min_length=1)] | None = None
    nameplate_kw: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = {}
    """By evse_id: the rated power of an EVSE whose limits state none (a DC EVSE whose modules
    decide); an EVSE whose limits give one is told that one."""

    @field_validator("ocpp_csms_url")
    @classmethod
    def _websocket_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError("must be a ws:// or wss:// address with a host (Josev's rule)")
        return url


def nameplate_power_w(evse: EvseConfig, identity: IdentityConfig | None = None) -> float | None:
    """The EVSE's rated power from its nameplate limits (DC: max_power_w, else max_current_a
    times max_voltage_v; AC: max_current_a per phase times nominal_voltage times phases), else
    the identity's nameplate_kw for it; None when neither says."""
    if evse.dc_limits is not None:
        dc = evse.dc_limits
        if dc.max_power_w is not None:
            return dc.max_power_w
        if dc.max_current_a is not None and dc.max_voltage_v is not None:
            return dc.max_current_a * dc.max_voltage_v
    if evse.ac_limits is not None and evse.nominal_voltage is not None:
        return evse.ac_limits.max_current_a * evse.nominal_voltage * evse.phases
    if identity is not None and evse.evse_id in identity.nameplate_kw:
        return identity.nameplate_kw[evse.evse_id] * 1000.0
    return None


# -- [station] --------------------------------------------------------------------------------


class JosevServicesConfig(Strict):
    """[station.josev_services]: which of Josev's services the station asks about, and how
    often. Only iso15118 and slac in error or stopping end energy flow; the others are shown."""

    ask: list[Literal["slac", "iso15118", "ocpp", "gridcode", "smart_charging"]] = [
        "slac",
        "iso15118",
        "ocpp",
    ]
    """Josev Community runs no OCPP service: leave ocpp out there, or it shows as unknown."""
    interval_s: Annotated[float, Field(ge=5, le=3600)] = 60.0
    """The first questions go right after each connect, then this often."""
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    """An answer that has not come within this long leaves the service `unknown`."""


class StationConfig(Strict):
    sw_version: Annotated[str, Field(min_length=1)]
    hw_version: Annotated[str, Field(min_length=1)]
    scenario: Literal["demo"] | None = None
    """Play a scripted scenario on the simulated devices (a module drops out, a plug heats up)."""
    profile_dirs: list[Path] = []
    """Folders of device profiles of your own, relative to the configuration file, searched in
    order before `--hal-dir`, `$CSBRIDGE_HAL_PATH` and the shipped hal/: a name in two of them
    is an error, one that is also shipped replaces the shipped profile (with a warning)."""
    state_dir: Path = Path("/var/lib/csbridge")
    """Where the station keeps what must survive a restart (each EVSE's availability), in one
    small JSON file written atomically. A folder that cannot be written is logged and the
    state kept in memory; tests and examples point it at a folder of their own."""
    region: Literal["eu", "na"] = "eu"
    """Where the station stands: the OCPP connector types of the device model (eu: CCS2 and
    Type 2; na: CCS1 and Type 1)."""
    maintenance: MaintenanceConfig = MaintenanceConfig()
    identity: IdentityConfig | None = None
    josev_services: JosevServicesConfig = JosevServicesConfig()

    @field_validator("profile_dirs")
    @classmethod
    def _existing_folders(cls, folders: list[Path], info: ValidationInfo) -> list[Path]:
        # Relative to the configuration file (parse_config's `config_dir`), not to wherever
        # csbridge happens to start.
        base = (info.context or {}).get("config_dir")
        if isinstance(base, Path):
            folders = [folder if folder.is_absolute() else base / folder for folder in folders]
        # A mistyped folder would quietly leave the shipped profile of the same name in use.
        missing = [str(folder) for folder in folders if not folder.is_dir()]
        if missing:
            raise ValueError(f"no such folder: {', '.join(missing)}")
        return folders

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, folder: Path) -> Path:
        if not folder.is_absolute():
            raise ValueError(
                "must be an absolute path (a relative one follows the directory "
                "csbridge happens to start in)"
            )
        return folder


class ReportingConfig(Strict):
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


class LoggingConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    repeat_interval_s: Annotated[float, Field(ge=1, le=3600)] = 60.0
    """A fault of one kind is logged at most once per this interval, with the count held back."""
    max_limited_kinds: Annotated[int, Field(ge=16, le=65536)] = 256
    """Kinds of fault each rate limit remembers (least recently used first out); while all are
    within their interval, further kinds share one line. Bounds the limiter's memory."""


class MetricsConfig(Strict):
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


class EverestExportConfig(Strict):
    """Offer one DC EVSE's module stack to EVerest as a power_supply_DC API module."""

    evse_id: Annotated[str, Field(min_length=1)]
    module_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    topic_prefix: Annotated[str, Field(min_length=1)] = "everest_api/1"
    communication_check_every_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    """m2e/communication_check true this often (EVerest's check times out after 5 s)."""
    voltage_current_every_s: Annotated[float, Field(gt=0, le=1)] = 0.25
    """m2e/voltage_current: EVerest asks for at least 1 Hz, about 4 Hz recommended."""
    heartbeat_interval_s: Annotated[float, Field(ge=0, le=600)] = 1.0
    """EVerest's e2m/heartbeat period (its cfg_heartbeat_interval_ms, 1000 ms by default),
    until EVerest announces its own `heartbeat_period_ms` in its discovery reply; 0: EVerest
    beats not at all, so none is watched."""
    heartbeat_timeout_s: Annotated[float, Field(gt=0, le=600)] | None = None
    """EVerest's e2m/heartbeat missing this long (once seen): the stack is switched off.
    Default: three heartbeat intervals."""


class Config(Strict):
    station: StationConfig
    mqtt: MqttConfig = MqttConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    reporting: ReportingConfig = ReportingConfig()
    bus: list[BusConfig] = []
    evse: Annotated[list[EvseConfig], Field(min_length=1)]
    everest_export: list[EverestExportConfig] = []
    pool: Annotated[list[PoolConfig], AfterValidator(pools_fit_station)] = []

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
            if evse.meter is not None:
                devices.append((f"evse[{index}].meter", evse.meter.can, 0))
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
    def _identity_names_every_power(self) -> Self:
        identity = self.station.identity
        if identity is None:
            return self
        ids = {evse.evse_id for evse in self.evse}
        problems = [
            f"station.identity.nameplate_kw: no EVSE {evse_id!r}"
            for evse_id in identity.nameplate_kw
            if evse_id not in ids
        ]
        problems += [
            f"station.identity: {evse.evse_id} states no rated power for the device model: set "
            f'its dc_limits max_power_w, or nameplate_kw = {{ "{evse.evse_id}" = ... }}'
            for evse in self.evse
            if nameplate_power_w(evse, identity) is None
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

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
