"""Devices behind EVerest's MQTT API (power_supply_DC, isolation_monitor) as csbridge sources.

Imports sources (readings), messages, config and support.
"""

from __future__ import annotations

from csbridge.sources.everest.api import (
    HEARTBEAT_WRAP,
    PSU,
    DeviceKey,
    Publish,
    decode_value,
    entrypoint_base,
    publish_checked,
    send_checked,
)
from csbridge.sources.everest.sources import EverestSources, cable_check_voltage

__all__ = [
    "HEARTBEAT_WRAP",
    "PSU",
    "DeviceKey",
    "EverestSources",
    "Publish",
    "cable_check_voltage",
    "decode_value",
    "entrypoint_base",
    "publish_checked",
    "send_checked",
]
