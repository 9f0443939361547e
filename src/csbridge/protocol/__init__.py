"""Josev's side of the bridge: the MQTT bridge that answers requests and pushes updates, and our
own local topics (external limits, operator commands, limits reports).

Imports engine, messages, mqtt, sources (readings), config and support.
"""

from __future__ import annotations

from csbridge.protocol.bridge import READ_ONLY_REQUESTS, Bridge
from csbridge.protocol.discards import Discard
from csbridge.protocol.local_topics import SCHEMA_OF, Leaf, LocalTopics

__all__ = [
    "READ_ONLY_REQUESTS",
    "SCHEMA_OF",
    "Bridge",
    "Discard",
    "Leaf",
    "LocalTopics",
]
