"""A Josev emulator: speaks the SECC side of the API and checks everything the station sends.

Used by `csbridge emulate`, the demo and the tests. It keeps Josev's view of the station (the
latest entry per EVSE from responses and updates) so a test can compare it with the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Self

import aiomqtt
import orjson

from csbridge.messages import (
    Direction,
    EnvelopeCodec,
    InboundRejected,
    Message,
    MessageType,
    SchemaRegistry,
    new_message_id,
)
from csbridge.mqtt import QOS, BrokerLogin

DEFAULT_MAX_PAYLOAD = 1024 * 1024


class EmulatorError(Exception):
    """The station did not do what Josev needs (no answer, or an invalid one)."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One message seen or sent by the emulator, for logs and live views."""

    at: float
    outgoing: bool
    name: str
    type: str
    id: str
    data: dict[str, Any]
    latency_s: float | None = None
    problem: str | None = None


@dataclass(slots=True)
class _Pending:
    sent_at: float
    future: asyncio.Future[Message]


@dataclass(slots=True)
class StationView:
    """What Josev believes about the station, built only from what it received."""

    parameters: dict[str, Any] | None = None
    evses: dict[str, dict[str, Any]] = field(default_factory=dict)

    def absorb(self, message: Message) -> None:
        if message.name == "cs_parameters" and message.type is MessageType.RESPONSE:
            self.parameters = message.data
        elif message.name == "cs_status_and_limits":
            for entry in message.data["evses"]:
                self.evses[entry["evse_id"]] = entry


class JosevEmulator:
    """Requests on the request topic, responses and updates checked on the response topic."""

    def __init__(
        self,
        client: aiomqtt.Client,
        registry: SchemaRegistry,
        request_topic: str = "josev/cs",
        response_topic: str = "cs/josev",
        on_exchange: Callable[[Exchange], None] | None = None,
    ) -> None:
        self._client = client
        self.codec = EnvelopeCodec(registry, Direction.TO_JOSEV, DEFAULT_MAX_PAYLOAD)
        self.request_topic = request_topic
        self.response_topic = response_topic
        self._on_exchange = on_exchange
        self._pending: dict[str, _Pending] = {}
        self.view = StationView()
        self.updates: list[Message] = []
        self.station_requests: list[Message] = []
        """Requests the station sent Josev (an authorization), in order."""
        self.authorization_answer: str | None = "accepted"
        """How Josev answers the station's authorization requests (None: not at all)."""
        self.service_answers: dict[str, str | None] = dict.fromkeys(
            ("slac", "iso15118", "ocpp", "gridcode", "smart_charging"), "ready"
        )
        """The status Josev answers the station's service_status request with, per service
        (None, or a service left out: no answer, as a Josev without that service)."""
        self.responses: list[Message] = []
        self.problems: list[str] = []
        self.exchanges: list[Exchange] = []
        self._arrivals = asyncio.Condition()
        self._other_topics: dict[str, asyncio.Future[bytes]] = {}

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        broker: str,
        registry: SchemaRegistry | None = None,
        *,
        request_topic: str = "josev/cs",
        response_topic: str = "cs/josev",
        client_id: str | None = None,
        on_exchange: Callable[[Exchange], None] | None = None,
        login: BrokerLogin | None = None,
    ) -> AsyncIterator[Self]:
        options = (login or BrokerLogin()).client_options(broker)
        client = aiomqtt.Client(**options, identifier=client_id, keepalive=10)
        async with client:
            emulator = cls(
                client, registry or SchemaRegistry(), request_topic, response_topic, on_exchange
            )
            await client.subscribe(response_topic, qos=QOS)
            reader = asyncio.create_task(emulator._read(), name="josev-emulator-reader")
            try:
                yield emulator
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    def _record(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)
        if self._on_exchange is not None:
            self._on_exchange(exchange)

    async def _read(self) -> None:
        try:
            async for mqtt_message in self._client.messages:
                topic = mqtt_message.topic.value
                if topic != self.response_topic:
                    waiting = self._other_topics.pop(topic, None)
                    if waiting is not None and not waiting.done():
                        payload = mqtt_message.payload
                        waiting.set_result(
                            bytes(payload) if isinstance(payload, bytes | bytearray) else b""
                        )
                    continue
                payload = mqtt_message.payload
                raw = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
                await self._receive(raw, time.perf_counter())
        except aiomqtt.MqttError as error:
            self.problems.append(f"connection to the broker lost: {error}")

    async def _receive(self, raw: bytes, now: float) -> None:
        try:
            message = self.codec.decode(raw)
        except InboundRejected as rejected:
            problem = f"station sent an invalid message: {rejected}"
            self.problems.append(problem)
            self._record(Exchange(now, False, rejected.message, "?", "?", {}, problem=problem))
            return
        latency = None
        if message.type is MessageType.RESPONSE:
            pending = self._pending.pop(message.id, None)
            if pending is None:
                problem = f"response {message.name} with an id nobody asked for: {message.id}"
                self.problems.append(problem)
                self._record(
                    Exchange(
                        now,
                        False,
                        message.name,
                        message.type,
                        message.id,
                        message.data,
                        problem=problem,
                    )
                )
                return
            latency = now - pending.sent_at
            self.responses.append(message)
            if not pending.future.done():
                pending.future.set_result(message)
        elif message.type is MessageType.REQUEST:
            self.station_requests.append(message)
            await self._answer_station(message)
        else:
            self.updates.append(message)
        self.view.absorb(message)
        self._record(
            Exchange(now, False, message.name, message.type, message.id, message.data, latency)
        )
        async with self._arrivals:
            self._arrivals.notify_all()

    async def _answer_station(self, request: Message) -> None:
        """What Josev answers the station's own requests: an authorization as
        `authorization_answer` says (None: no answer, as Josev without OCPP behind it), a
        service status as `service_answers` says."""
        data: dict[str, Any]
        if request.name == "service_status":
            service = request.data.get("service", "iso15118")
            status = self.service_answers.get(service)
            if status is None:
                return
            data = {
                "service": service,
                "software_version": "emulated",
                "api_version": "3.10.0",
                "status": status,
            }
        elif request.name == "authorization" and self.authorization_answer is not None:
            data = {"status": self.authorization_answer}
            if "evse_id" in request.data:
                data["evse_id"] = request.data["evse_id"]
        else:
            return
        payload = self._encode(request.id, request.name, MessageType.RESPONSE, data)
        sent = Exchange(
            time.perf_counter(), True, request.name, MessageType.RESPONSE, request.id, data
        )
        self._record(sent)
        await self._client.publish(self.request_topic, payload, qos=QOS)

    async def request(
        self, name: str, data: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> Message:
        """Send a request and wait for its response (matched by id); EmulatorError if none."""
        request_id = new_message_id()
        data = data or {}
        payload = self._encode(request_id, name, MessageType.REQUEST, data)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        sent_at = time.perf_counter()
        self._pending[request_id] = _Pending(sent_at, future)
        self._record(Exchange(sent_at, True, name, MessageType.REQUEST, request_id, data))
        await self._client.publish(self.request_topic, payload, qos=QOS)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self._pending.pop(request_id, None)
            problem = f"no response to {name} {request_id} within {timeout} s"
            self.problems.append(problem)
            raise EmulatorError(problem) from None

    async def first_message(self, topic: str, timeout: float = 5.0) -> bytes:
        """The next (or retained) message on one of the station's other topics."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._other_topics[topic] = future
        await self._client.subscribe(topic, qos=QOS)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise EmulatorError(f"nothing on {topic} within {timeout} s") from None
        finally:
            self._other_topics.pop(topic, None)
            await self._client.unsubscribe(topic)

    async def publish(self, topic: str, document: dict[str, Any]) -> None:
        """A message on another topic (the station's own), as a test engineer would send it."""
        await self._client.publish(topic, orjson.dumps(document), qos=QOS)

    async def update(self, name: str, data: dict[str, Any]) -> None:
        """An update from Josev to the station (no answer expected), validated like the rest."""
        update_id = new_message_id()
        payload = self._encode(update_id, name, MessageType.UPDATE, data)
        self._record(Exchange(time.perf_counter(), True, name, MessageType.UPDATE, update_id, data))
        await self._client.publish(self.request_topic, payload, qos=QOS)

    def _encode(
        self, message_id: str, name: str, message_type: MessageType, data: dict[str, Any]
    ) -> bytes:
        """As Josev writes it: the data as given (a field only a newer Josev knows included),
        checked like everything else sent; SchemaViolation if it is not a valid message."""
        document = {"id": message_id, "name": name, "type": message_type.value, "data": data}
        return self.codec.encode_document(document)

    async def boot(self, timeout: float = 10.0) -> tuple[Message, Message]:
        """What Josev does at every start: ask for cs_parameters and cs_status_and_limits."""
        parameters, status = await asyncio.gather(
            self.request("cs_parameters", timeout=timeout),
            self.request("cs_status_and_limits", timeout=timeout),
        )
        check_consistent(parameters, status)
        return parameters, status

    async def wait_update(
        self, predicate: Callable[[Message], bool], timeout: float = 10.0, *, since: int = 0
    ) -> Message:
        """The first update (from index `since` on) that satisfies `predicate`."""

        async def _find() -> Message:
            async with self._arrivals:
                while True:
                    for message in self.updates[since:]:
                        if predicate(message):
                            return message
                    await self._arrivals.wait()

        try:
            return await asyncio.wait_for(_find(), timeout)
        except TimeoutError:
            raise EmulatorError(f"no matching update within {timeout} s") from None


def check_consistent(parameters: Message, status: Message) -> None:
    """Josev's own cross-message rules: one evse_id set, number_of_evses = len(parameters)."""
    data = parameters.data
    if data["number_of_evses"] != len(data["parameters"]):
        msg = f"number_of_evses {data['number_of_evses']} != {len(data['parameters'])} parameters"
        raise EmulatorError(msg)
    declared = [entry["evse_id"] for entry in data["parameters"]]
    reported = [entry["evse_id"] for entry in status.data["evses"]]
    if len(set(declared)) != len(declared):
        raise EmulatorError(f"cs_parameters repeats an evse_id: {declared}")
    if sorted(declared) != sorted(reported):
        raise EmulatorError(
            f"evse_ids differ: cs_parameters {declared}, cs_status_and_limits {reported}"
        )
