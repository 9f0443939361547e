"""The EVerest API's topic layout and the schema of each channel.

A device lives under `<prefix>/<interface>/<module_id>/`; `m2e/...` channels go from the module
to EVerest, `e2m/...` from EVerest to the module. Payloads are JSON values, not always objects
(m2e/mode is a bare string, m2e/communication_check a bare boolean), each with a schema in
schemas/ checked like every other message.
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
    "e2m/receive_start": "EverestStartMeasuring",
    "e2m/receive_stop": "EverestStartMeasuring",
    "e2m/receive_start_self_test": "EverestSelfTestVoltage",
}

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


def encode_value(registry: SchemaRegistry, channel: str, value: Any) -> bytes:
    """Serialise one outgoing payload; SchemaViolation (a bug) if it breaks its schema."""
    return checked_payload(registry, SCHEMA_OF_CHANNEL[channel], value)


def send_checked(
    registry: SchemaRegistry, publish: Publish | None, key: DeviceKey, channel: str, value: Any
) -> bool:
    """Publish one e2m/m2e message if it passes its schema; one that does not is a bug: never
    published, logged loudly."""
    if publish is None:
        return False
    try:
        payload = encode_value(registry, channel, value)
    except SchemaViolation as violation:
        log.error(
            "event=outbound_rejected channel=%s why=%s -- not published; a bug", channel, violation
        )
        return False
    return publish(key.topic(channel), payload)
