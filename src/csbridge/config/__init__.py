"""The station's configuration: one TOML file, checked by pydantic, every problem named by its key.

Models per domain (base, devices, evse, mqtt, station), loading, and secrets; everything public
is re-exported here, so `from csbridge.config import Config` is the one import callers need.
"""

from __future__ import annotations

from csbridge.config.base import (
    ConfigError,
    Finite,
    NonNegative,
    Positive,
    Strict,
    describe_validation_error,
)
from csbridge.config.devices import (
    BoardConfig,
    BusConfig,
    CanDevice,
    EverestApiDevice,
    ImdConfig,
    ModuleConfig,
    SimulatedBoardConfig,
    SimulatedImdConfig,
    SimulatedModuleConfig,
)
from csbridge.config.evse import (
    AcBptStaticLimits,
    AcConnectorType,
    AcStaticLimits,
    AuthorizationConfig,
    AuthorizationMode,
    CableConfig,
    CardTokenType,
    ConnectorConfig,
    DcBptStaticLimits,
    DcConnectorType,
    DcStaticLimits,
    DeratingConfig,
    EvseConfig,
    ExternalDefaults,
    InstallationConfig,
    Kind,
    SerialReaderConfig,
)
from csbridge.config.loading import load_config, parse_config
from csbridge.config.maintenance import MaintenanceConfig
from csbridge.config.mqtt import MqttConfig, broker_address
from csbridge.config.redaction import REMOVED, redacted, redacted_config, without_url_password
from csbridge.config.secrets import PASSWORD_ENV, exposed_secret_files, read_password
from csbridge.config.station import (
    Config,
    EverestExportConfig,
    IdentityConfig,
    JosevServicesConfig,
    LoggingConfig,
    MetricsConfig,
    OcppVersion,
    ReportingConfig,
    StationConfig,
    listen_address,
    nameplate_power_w,
)

__all__ = [
    "PASSWORD_ENV",
    "REMOVED",
    "AcBptStaticLimits",
    "AcConnectorType",
    "AcStaticLimits",
    "AuthorizationConfig",
    "AuthorizationMode",
    "BoardConfig",
    "BusConfig",
    "CableConfig",
    "CanDevice",
    "CardTokenType",
    "Config",
    "ConfigError",
    "ConnectorConfig",
    "DcBptStaticLimits",
    "DcConnectorType",
    "DcStaticLimits",
    "DeratingConfig",
    "EverestApiDevice",
    "EverestExportConfig",
    "EvseConfig",
    "ExternalDefaults",
    "Finite",
    "IdentityConfig",
    "ImdConfig",
    "InstallationConfig",
    "JosevServicesConfig",
    "Kind",
    "LoggingConfig",
    "MaintenanceConfig",
    "MetricsConfig",
    "ModuleConfig",
    "MqttConfig",
    "NonNegative",
    "OcppVersion",
    "Positive",
    "ReportingConfig",
    "SerialReaderConfig",
    "SimulatedBoardConfig",
    "SimulatedImdConfig",
    "SimulatedModuleConfig",
    "StationConfig",
    "Strict",
    "broker_address",
    "describe_validation_error",
    "exposed_secret_files",
    "listen_address",
    "load_config",
    "nameplate_power_w",
    "parse_config",
    "read_password",
    "redacted",
    "redacted_config",
    "without_url_password",
]
