"""The broker link (reconnects, login, TLS, the online/offline status) and the embedded demo
broker.

Imports config and support.
"""

from __future__ import annotations

from csbridge.mqtt.embedded_broker import LOOPBACK, embedded_broker, free_port
from csbridge.mqtt.link import CALL_TIMEOUT_S, QOS, MqttLink, Subscription
from csbridge.mqtt.login import BrokerLogin

__all__ = [
    "CALL_TIMEOUT_S",
    "LOOPBACK",
    "QOS",
    "BrokerLogin",
    "MqttLink",
    "Subscription",
    "embedded_broker",
    "free_port",
]
