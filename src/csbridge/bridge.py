"""The station side of Josev's API: answers boot requests and pushes every change as an update."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from csbridge.config import Config
from csbridge.counters import Counters
from csbridge.model import EvseSnapshot
from csbridge.mqtt_link import MqttLink, Subscription
from csbridge.payloads import cs_parameters_data, status_and_limits_data
from csbridge.station_state import StationState
from csbridge.validation import Direction, SchemaRegistry, SchemaViolation
from csbridge.wire import Codec, Message, MessageType, Rejected

log = logging.getLogger("csbridge.bridge")

CS_PARAMETERS = "cs_parameters"
CS_STATUS_AND_LIMITS = "cs_status_and_limits"

Handler = Callable[[Message], Awaitable[None]]


class Bridge:
    """Owns the MQTT link, the codec and the answers; the station state is fed from outside."""

    def __init__(
        self,
        config: Config,
        state: StationState,
        registry: SchemaRegistry | None = None,
        counters: Counters | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.counters = counters or Counters()
        self.codec = Codec(
            registry or SchemaRegistry(), Direction.FROM_JOSEV, config.mqtt.max_payload_bytes
        )
        self._parameters = cs_parameters_data(config)
        self._handlers: dict[tuple[str, MessageType], Handler] = {
            (CS_PARAMETERS, MessageType.REQUEST): self._answer_cs_parameters,
            (CS_STATUS_AND_LIMITS, MessageType.REQUEST): self._answer_cs_status_and_limits,
        }
        self.link = MqttLink(
            config.mqtt,
            [Subscription(config.mqtt.request_topic)],
            on_message=self.handle,
            on_connected=self.publish_full_update,
        )

    async def run(self) -> None:
        """Serve until cancelled (the link then says offline before it disconnects)."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.link.run(), name="mqtt-link")
            tasks.create_task(self._push_changes(), name="update-pusher")

    async def handle(self, topic: str, payload: bytes) -> None:
        """One inbound MQTT message; never raises, whatever arrives."""
        self.counters.add("inbound_received")
        try:
            message = self.codec.decode(payload)
        except Rejected as rejected:
            self.counters.add("inbound_rejected", rejected.reason.value)
            log.warning(
                "event=inbound_rejected topic=%s reason=%s message=%s where=%s why=%s",
                topic,
                rejected.reason,
                rejected.message,
                rejected.where,
                rejected.why,
            )
            return
        handler = self._handlers.get((message.name, message.type))
        if handler is None:
            self.counters.add("inbound_unhandled", message.name)
            log.debug("event=inbound_unhandled message=%s type=%s", message.name, message.type)
            return
        self.counters.add("inbound_accepted", message.name)
        try:
            await handler(message)
        except Exception:
            # A bug must not take the bridge down: the requester times out, we count and log it.
            self.counters.add("handler_failed", message.name)
            log.exception("event=handler_failed message=%s id=%s", message.name, message.id)

    async def _answer_cs_parameters(self, request: Message) -> None:
        await self.send(Message(CS_PARAMETERS, MessageType.RESPONSE, self._parameters, request.id))

    async def _answer_cs_status_and_limits(self, request: Message) -> None:
        data = self._status_data(self.state.snapshots(), MessageType.RESPONSE)
        if data is not None:
            await self.send(Message(CS_STATUS_AND_LIMITS, MessageType.RESPONSE, data, request.id))

    async def publish_full_update(self) -> None:
        """Every EVSE, after each (re)connect: Josev may have booted while we were away."""
        self.state.clear_changed()
        await self._send_update(self.state.snapshots())

    async def _push_changes(self) -> None:
        while True:
            changed = await self.state.wait_changed()
            await self._send_update(changed)

    async def _send_update(self, snapshots: list[EvseSnapshot]) -> bool:
        data = self._status_data(snapshots, MessageType.UPDATE)
        if data is None:
            return False
        return await self.send(Message(CS_STATUS_AND_LIMITS, MessageType.UPDATE, data))

    def _status_data(
        self, snapshots: list[EvseSnapshot], message_type: MessageType
    ) -> dict[str, object] | None:
        try:
            return status_and_limits_data(snapshots)
        except ValueError as error:  # a non-finite value from a source: never reported
            self._outbound_rejected(CS_STATUS_AND_LIMITS, message_type, str(error))
            return None

    async def send(self, message: Message) -> bool:
        """Validate and publish on the response topic; an invalid message is never published."""
        try:
            payload = self.codec.encode(message)
        except SchemaViolation as violation:
            self._outbound_rejected(message.name, message.type, str(violation))
            return False
        if not self.link.connected.is_set():
            # Not lost: the full state is republished on reconnect.
            self.counters.add("publish_deferred", message.name)
            return False
        if not await self.link.publish(self.config.mqtt.response_topic, payload):
            self.counters.add("publish_failed", message.name)
            return False
        self.counters.add("outbound_published", f"{message.name}/{message.type}")
        return True

    def _outbound_rejected(self, name: str, message_type: MessageType, why: str) -> None:
        self.counters.add("outbound_rejected", name)
        log.error(
            "event=outbound_rejected message=%s type=%s why=%s -- not published; this is a bug",
            name,
            message_type,
            why,
        )
