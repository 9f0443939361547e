"""csbridge's own per-EVSE topics next to Josev's: <prefix>/<evse_id>/<leaf>."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Leaf(enum.StrEnum):
    LIMITS = "limits"
    """Out, retained: the EVSE's reported entry, binding sources and source health."""
    EXTERNAL_LIMIT = "external_limit"
    """In: a site energy manager's limit."""
    OPERATOR = "operator"
    """In: enable or disable the EVSE."""
    SIMULATE = "simulate"
    """In: plug in, unplug, silence a module, on a simulated station."""
    TOKEN = "token"  # noqa: S105 -- a topic name, not a secret
    """In: an RFID card or other token presented at the EVSE."""
    DISPLAY = "display"
    """Out, retained: what Josev tells the driver at the EVSE, for an HMI (protocol/display.py)."""


INBOUND = (Leaf.EXTERNAL_LIMIT, Leaf.OPERATOR, Leaf.SIMULATE, Leaf.TOKEN)
STATE = (Leaf.EXTERNAL_LIMIT, Leaf.OPERATOR)
"""Inbound topics that say how things are, not what happened: only the newest message counts
(a token presented or a simulated plug-in is an event: each one counts)."""
SCHEMA_OF = {
    Leaf.LIMITS: "EvseLimitsReport",
    Leaf.EXTERNAL_LIMIT: "ExternalLimit",
    Leaf.OPERATOR: "OperatorCommand",
    Leaf.SIMULATE: "SimulationCommand",
    Leaf.TOKEN: "TokenPresented",
    Leaf.DISPLAY: "EvseDisplay",
}


@dataclass(frozen=True, slots=True)
class LocalTopics:
    prefix: str

    def topic(self, evse_id: str, leaf: Leaf) -> str:
        return f"{self.prefix}/{evse_id}/{leaf.value}"

    def subscriptions(self) -> list[str]:
        return [f"{self.prefix}/+/{leaf.value}" for leaf in INBOUND]

    def is_state(self, topic: str) -> bool:
        parsed = self.parse(topic)
        return parsed is not None and parsed[1] in STATE

    def parse(self, topic: str) -> tuple[str, Leaf] | None:
        """(evse_id, leaf) for one of our inbound topics, else None."""
        if not topic.startswith(f"{self.prefix}/"):
            return None
        rest = topic[len(self.prefix) + 1 :]
        evse_id, separator, leaf = rest.rpartition("/")
        if not separator or not evse_id or "/" in evse_id:
            return None
        try:
            parsed = Leaf(leaf)
        except ValueError:
            return None
        return (evse_id, parsed) if parsed in INBOUND else None
