"""The EVerest API's topic layout and the schema of each channel.

A device lives under `<prefix>/<interface>/<module_id>/` (prefix `everest_api/1`: the API base
and its version); `m2e/...` channels go from the module to EVerest, `e2m/...` from EVerest to
the module. The entry point lives under the API base alone: `everest_api/ready_beacon`,
`everest_api/discover`, `everest_api/query-modules/<type>`. Payloads are JSON values, not always
objects (m2e/mode is a bare string, m2e/communication_check a bare boolean), each with a schema
in schemas/ checked like every other message.

Facts from EVerest/EVerest (2026 head): docs/source/reference/EVerest_API/power_supply_DC_API.yaml,
isolation_monitor_API.yaml and entrypoint_API.yaml; lib/everest/everest_api_types/src/
everest_api_types/utilities/Topics.cpp (the topic layout). The isolation monitor's commands lost
their `receive_` prefix in EVerest 2026.02 (everest-core commit f367eecda).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from csbridge.messages import (
    SchemaRegistry,
    SchemaViolation,
    checked_payload,
    parse_json,
    rejected_by,
)

log = logging.getLogger("csbridge.everest")

Publish = Callable[[str, bytes], bool]
PSU = "power_supply_DC"
IMD = "isolation_monitor"

SCHEMA_OF_CHANNEL = {
    "m2e/voltage_current": "EverestVoltageCurrent",
    "m2e/mode": "EverestPsuMode",
    "m2e/capabilities": "EverestPsuCapabilities",
    "m2e/raise_error": "EverestError",
    "m2e/clear_error": "EverestError",
    "m2e/communication_check": "EverestFlag",
    "m2e/isolation_measurement": "EverestIsolationMeasurement",
    "m2e/self_test_result": "EverestFlag",
    "e2m/mode": "EverestPsuModeRequest",
    "e2m/export_voltage_current": "EverestVoltageCurrent",
    "e2m/import_voltage_current": "EverestVoltageCurrent",
    "e2m/heartbeat": "EverestHeartbeat",
    "ready_beacon": "EverestReadyBeacon",
    "discover": "EverestRequestReply",
    "query-modules": "EverestRequestReply",
    "reply": "EverestApiDiscoverResponse",
    "e2m/start": "EverestStartMeasuring",
    "e2m/stop": "EverestStartMeasuring",
    "e2m/start_self_test": "EverestSelfTestVoltage",
    "e2m/receive_start": "EverestStartMeasuring",
    "e2m/receive_stop": "EverestStartMeasuring",
    "e2m/receive_start_self_test": "EverestSelfTestVoltage",
}


@dataclass(frozen=True, slots=True)
class ImdCommands:
    """The isolation monitor's e2m command channels in one API revision."""

    start: str
    stop: str
    start_self_test: str


IMD_COMMANDS = {
    "2026.02": ImdCommands("e2m/start", "e2m/stop", "e2m/start_self_test"),
    "2025.10": ImdCommands("e2m/receive_start", "e2m/receive_stop", "e2m/receive_start_self_test"),
}
"""By the `api_revision` of a device (config.EverestApiRevision)."""

ERROR_SCHEMA_OF = {"power_supply_DC": "EverestPsuError", "isolation_monitor": "EverestImdError"}
"""Each API's closed list of error types (its ErrorEnum)."""

CHANNELS_OF = {
    PSU: frozenset(
        {
            "m2e/voltage_current",
            "m2e/mode",
            "m2e/capabilities",
            "m2e/raise_error",
            "m2e/clear_error",
            "m2e/communication_check",
            "e2m/mode",
            "e2m/export_voltage_current",
            "e2m/import_voltage_current",
            "e2m/heartbeat",
        }
    ),
    IMD: frozenset(
        {
            "m2e/isolation_measurement",
            "m2e/self_test_result",
            "m2e/raise_error",
            "m2e/clear_error",
            "m2e/communication_check",
            "e2m/start",
            "e2m/stop",
            "e2m/start_self_test",
            "e2m/receive_start",
            "e2m/receive_stop",
            "e2m/receive_start_self_test",
            "e2m/heartbeat",
        }
    ),
}

HEARTBEAT_WRAP = 2**64
NOT_FATAL = frozenset({"VendorWarning"})
"""EVerest's EvseManager ignores only this error of a power supply or IMD."""


def entrypoint_base(topic_prefix: str) -> str:
    """`everest_api/1` -> `everest_api`: the entry point sits above the API version."""
    prefix = topic_prefix.rstrip("/")
    base, _, version = prefix.rpartition("/")
    return base if base and version.isdigit() else prefix


def api_version(topic_prefix: str) -> int:
    """`everest_api/1` -> 1 (the version in the devices' topics)."""
    version = topic_prefix.rstrip("/").rpartition("/")[2]
    return int(version) if version.isdigit() else 1


def unknown_error_type(registry: SchemaRegistry, interface: str, error: Any) -> bool:
    """True when an error's type is not one EVerest defines for this API (it is still taken,
    as an error)."""
    return registry.violation(ERROR_SCHEMA_OF[interface], error) is not None


@dataclass(frozen=True, slots=True)
class DeviceKey:
    prefix: str
    interface: str
    module_id: str

    def topic(self, channel: str) -> str:
        return f"{self.prefix}/{self.interface}/{self.module_id}/{channel}"

    def channel_of(self, topic: str) -> str | None:
        """`.../m2e/mode` -> `m2e/mode` when the topic is one of this device's channels."""
        base = f"{self.prefix}/{self.interface}/{self.module_id}/"
        if not topic.startswith(base):
            return None
        channel = topic[len(base) :]
        return channel if channel in CHANNELS_OF[self.interface] else None


def decode_value(
    registry: SchemaRegistry, channel: str, payload: bytes, max_payload_bytes: int
) -> Any:
    """One channel's payload, parsed and checked against its schema; InboundRejected names why."""
    value = parse_json(payload, max_payload_bytes, channel)
    violation = registry.violation(SCHEMA_OF_CHANNEL[channel], value)
    if violation is not None:
        raise rejected_by(violation, channel)
    return value


def encode_value(
    registry: SchemaRegistry, channel: str, value: Any, schema: str | None = None
) -> bytes:
    """Serialise one outgoing payload; SchemaViolation (a bug) if it breaks its schema."""
    return checked_payload(registry, schema or SCHEMA_OF_CHANNEL[channel], value)


def send_checked(
    registry: SchemaRegistry,
    publish: Publish | None,
    key: DeviceKey,
    channel: str,
    value: Any,
    *,
    schema: str | None = None,
) -> bool:
    """Publish one e2m/m2e message if it passes its schema (`schema`: a stricter one than the
    channel's); one that does not is a bug: never published, logged loudly."""
    return publish_checked(registry, publish, key.topic(channel), channel, value, schema=schema)


def publish_checked(
    registry: SchemaRegistry,
    publish: Publish | None,
    topic: str,
    channel: str,
    value: Any,
    *,
    schema: str | None = None,
) -> bool:
    """send_checked on any topic (the entry point's, a reply's)."""
    if publish is None:
        return False
    try:
        payload = encode_value(registry, channel, value, schema)
    except SchemaViolation as violation:
        log.error(
            "event=outbound_rejected channel=%s why=%s -- not published; a bug", channel, violation
        )
        return False
    return publish(topic, payload)
