"""Devices behind EVerest's MQTT API (power_supply_DC, isolation_monitor) as csbridge sources.

Imports sources (readings), messages, config and support.
"""

from __future__ import annotations

from csbridge.sources.everest.api import PSU, DeviceKey, Publish, decode_value, send_checked
from csbridge.sources.everest.sources import EverestSources

__all__ = [
    "PSU",
    "DeviceKey",
    "EverestSources",
    "Publish",
    "decode_value",
    "send_checked",
]
