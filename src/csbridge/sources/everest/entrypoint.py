"""EVerest's API entry point, played for the devices csbridge drives: what EVerest's API modules
do through their ApiHelper (EVerest/EVerest lib/everest/everest_api_module_helpers/src/
ApiHelper.cpp; the channels in docs/source/reference/EVerest_API/entrypoint_API.yaml).

- `<base>/ready_beacon` (out, `{}`): the API is up; csbridge sends it after each connect, so a
  device that waits for it starts, and one that was running says its state again.
- `<base>/discover` (in, `{"headers": {"replyTo": topic}}`): one reply per device on `replyTo`,
  `{"apis": [{"type", "module_id", "version", "communication_monitoring":
  {"heartbeat_period_ms", "communication_check_period_s"}}]}`.
- `<base>/query-modules/<type>` (in, the same request): the same reply, from each device of
  that type only; none when csbridge drives none of that type (as in EVerest).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from csbridge.config import EverestApiDevice
from csbridge.messages import InboundRejected, RejectReason, SchemaRegistry
from csbridge.sources.everest.api import Publish, api_version, decode_value, publish_checked

log = logging.getLogger("csbridge.everest")

QUERY = "query-modules/"


def api_parameter(interface: str, api: EverestApiDevice) -> dict[str, Any]:
    """One device's entry in a discovery reply (ApiParameter): what EVerest's API module for it
    would say of itself."""
    check_s = api.communication_check_s
    # Integer seconds in EVerest's API: never announce a longer period than the one we hold
    # the device to, and never 0 (that would turn the check off) for a check that is on.
    check_period_s = max(1, math.floor(check_s)) if api.checks_communication else 0
    return {
        "type": interface,
        "module_id": api.module_id,
        "version": api_version(api.topic_prefix),
        "communication_monitoring": {
            "heartbeat_period_ms": round(api.heartbeat_interval_s * 1000),
            "communication_check_period_s": check_period_s,
        },
    }


@dataclass(slots=True)
class EntryPoint:
    """The entry point under one API base (`everest_api`) and the devices under it."""

    base: str
    apis: list[dict[str, Any]]
    forbidden_replies: tuple[str, ...]
    """Topics (and, ending in "/", topic trees) a reply must never go to: csbridge's own and
    Josev's, and the devices' channels."""

    @property
    def beacon_topic(self) -> str:
        return f"{self.base}/ready_beacon"

    def subscriptions(self) -> list[str]:
        return [f"{self.base}/discover", f"{self.base}/{QUERY}+"]

    def owns(self, topic: str) -> bool:
        return topic == f"{self.base}/discover" or topic.startswith(f"{self.base}/{QUERY}")

    def ready(self, registry: SchemaRegistry, publish: Publish | None) -> bool:
        return publish_checked(registry, publish, self.beacon_topic, "ready_beacon", {})

    def answer(
        self,
        registry: SchemaRegistry,
        publish: Publish | None,
        topic: str,
        payload: bytes,
        max_payload: int,
    ) -> str:
        """One discover or query-modules request answered; the label it is counted under.
        InboundRejected when it is bad or its reply would land on a topic it must not."""
        channel = "discover" if topic == f"{self.base}/discover" else "query-modules"
        request = decode_value(registry, channel, payload, max_payload)
        reply_to: str = request["headers"]["replyTo"]
        if self._forbidden(reply_to):
            raise InboundRejected(
                RejectReason.SCHEMA,
                "$.headers.replyTo",
                f"a reply may not go to {reply_to}",
                f"everest:{channel}",
            )
        wanted = topic[len(f"{self.base}/{QUERY}") :] if channel == "query-modules" else None
        for api in self.apis:
            if wanted is None or api["type"] == wanted:
                publish_checked(registry, publish, reply_to, "reply", {"apis": [api]})
        return f"everest:entrypoint/{channel}"

    def _forbidden(self, reply_to: str) -> bool:
        own = (f"{self.base}/discover", self.beacon_topic)
        if reply_to in own or reply_to.startswith(f"{self.base}/{QUERY}"):
            return True  # the entry point's own channels: a reply there would loop
        return any(
            reply_to.startswith(topic) if topic.endswith("/") else reply_to == topic
            for topic in self.forbidden_replies
        )
