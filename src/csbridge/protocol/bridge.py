"""The station side of Josev's API: answers boot requests and pushes every change as an update;
beside it, csbridge's own topics (external limits and operator commands in, limits reports out).

What comes in on Josev's request topic is acted on once, and only when it is asked now: a
retained message (the broker's replay at a subscribe) is never acted on, a message handled
within the last minute is answered again the way it was and not acted on twice, and a response
goes to the station's own request that waits for it (`Bridge.ask`), never to a handler."""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from csbridge.config import Config
from csbridge.engine import Entry, LimitsEngine, cs_parameters_data
from csbridge.messages import (
    CsParametersRequest,
    CsParametersResponse,
    CsStatusAndLimitsRequest,
    CsStatusAndLimitsResponse,
    CsStatusAndLimitsUpdate,
    Direction,
    EnvelopeCodec,
    EvseStatusAndLimits,
    HandlerTable,
    InboundRejected,
    Message,
    MessageType,
    Payload,
    RejectReason,
    SchemaRegistry,
    SchemaViolation,
    TokenPresented,
    checked_payload,
    decode_local,
    handles,
    parse_json,
)
from csbridge.mqtt import MqttLink, Subscription
from csbridge.protocol.asks import PendingAsks
from csbridge.protocol.discards import Discard
from csbridge.protocol.display import DisplayRepublisher
from csbridge.protocol.intake import MessageIntake, TopicClass, queue_type
from csbridge.protocol.local_topics import SCHEMA_OF, Leaf, LocalTopics
from csbridge.protocol.recent import RecentMessages
from csbridge.sources import ExternalLimit, OperatorCommand
from csbridge.support import Counted, Counters, RateLimitedLog, Timed

log = logging.getLogger("csbridge.bridge")

_LEAVES = frozenset(leaf.value for leaf in Leaf)
READ_ONLY_REQUESTS: frozenset[type[Payload]] = frozenset(
    {CsParametersRequest, CsStatusAndLimitsRequest}
)
"""Requests whose answer only reads the present state: one received again is answered afresh.
A replayed status answer could carry limits older than updates sent since, and Josev, still
waiting for it, would take the older limits as the latest."""


class TopicSource(Protocol):
    """Topics of another API the bridge also serves (EVerest's): counted and checked like ours."""

    def subscriptions(self) -> list[str]: ...

    def owns(self, topic: str) -> bool: ...

    def handle(self, topic: str, payload: bytes) -> str:
        """Take one message; the label it is counted under. Raise InboundRejected when it is bad."""
        ...

    async def on_connected(self) -> None: ...


class SessionSide(Protocol):
    """What the session takes from csbridge's own topics and adds to its reports."""

    def present_token(self, evse_id: str, token: TokenPresented) -> str | None:
        """A token on csbridge/<evse_id>/token; why it cannot be taken, or None."""
        ...

    def operator_changed(self, evse_id: str, enabled: bool, reason: str) -> None: ...

    def report_block(self, evse_id: str) -> dict[str, Any] | None:
        """The `session` block of the EVSE's limits report."""
        ...

    def announce_all(self) -> None:
        """Everything Josev hears of by update only (after each connect)."""
        ...


class Bridge:
    """Owns the MQTT link, the codec and the answers; the engine supplies what is reported.
    Josev's messages go to one handler table: the boot answers below and the session's."""

    def __init__(
        self,
        config: Config,
        engine: LimitsEngine,
        *,
        registry: SchemaRegistry | None = None,
        counters: Counters | None = None,
        session: HandlerTable | None = None,
        pushed: asyncio.Queue[Message] | None = None,
        on_mqtt_lost: Callable[[], None] | None = None,
        on_simulate: Callable[[str, dict[str, Any]], str | None] | None = None,
        topic_sources: Sequence[TopicSource] = (),
        session_side: SessionSide | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.counters = counters or engine.counters
        self.registry = registry or SchemaRegistry()
        self.codec = EnvelopeCodec(
            self.registry, Direction.FROM_JOSEV, config.mqtt.max_payload_bytes
        )
        self.local = LocalTopics(config.mqtt.local_prefix)
        self._parameters = CsParametersResponse.from_json(cs_parameters_data(config))
        self.display = DisplayRepublisher(
            self.local,
            engine.evse_ids,
            self.registry,
            self.counters,
            engine.clock,
            publish=lambda topic, payload: self._publish(topic, payload, Leaf.DISPLAY, retain=True),
        )
        """What Josev tells the driver, retained on csbridge/<evse_id>/display."""
        self._handlers = (
            HandlerTable.of(self) | self.display.handlers() | (session or HandlerTable())
        )
        self._topic_sources = tuple(topic_sources)
        self.intake = MessageIntake(
            config.mqtt.intake_queue_size,
            self._topic_class,
            self.counters,
            engine.clock,
            supersedes=self.local.is_state,
        )
        """The MQTT client's incoming queue: bounded per topic class, Josev's topic first."""
        self.link = MqttLink(
            config.mqtt,
            [Subscription(config.mqtt.request_topic)]
            + [Subscription(topic) for topic in self.local.subscriptions()]
            + [Subscription(t) for source in self._topic_sources for t in source.subscriptions()],
            on_message=self.handle,
            on_connected=self._connected,
            on_lost=on_mqtt_lost,
            counters=self.counters,
            queue_type=queue_type(self.intake),
            acknowledge_with=self.intake.acknowledge_with,
        )
        self.intake.on_full = self.link.pause_reading
        self.intake.on_room = self.link.resume_reading
        self._pushed = pushed
        self._on_simulate = on_simulate
        self._session_side = session_side
        self._answering: set[asyncio.Task[None]] = set()
        self._in_hand = 0
        self._faults = RateLimitedLog(log, engine.clock)
        """A flood of one kind of bad message gives one line a minute; the counters count all."""
        self.state_published = asyncio.Event()
        """Set once the whole state has gone out (systemd's READY=1 waits for it)."""
        self._recent = RecentMessages(engine.clock)
        self._asks = PendingAsks()
        self._known_names = frozenset(name for name, _ in self.registry.kinds)

    async def run(self) -> None:
        """Serve until cancelled (the link then says offline before it disconnects)."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.link.run(), name="mqtt-link")
            tasks.create_task(self._push_updates(), name="update-pusher")
            tasks.create_task(self._push_reports(), name="report-pusher")
            if self._pushed is not None:
                tasks.create_task(self._push_session_updates(self._pushed), name="session-pusher")

    # -- inbound ---------------------------------------------------------------------------

    @property
    def settled(self) -> bool:
        """No message queued or in hand and no answer still waiting on the hardware."""
        return self._in_hand == 0 and not self._answering and len(self.intake) == 0

    def _topic_class(self, topic: str) -> TopicClass:
        """Called for every message as it is read (a plain loop: the hot path under a flood)."""
        if topic == self.config.mqtt.request_topic:
            return TopicClass.JOSEV
        for source in self._topic_sources:
            if source.owns(topic):
                return TopicClass.EVEREST
        return TopicClass.LOCAL

    async def handle(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """One inbound MQTT message (`retained`: MQTT's retain flag as the broker delivered
        it), handled now; never raises, whatever arrives. The link's messages come through
        `intake`, in the order it gives."""
        started = time.perf_counter()
        self.counters.add(Counted.INBOUND_RECEIVED)
        self._in_hand += 1
        try:
            outcome = await self._take(topic, payload, retained)
        finally:
            self._in_hand -= 1
        self.counters.observe(Timed.INBOUND_HANDLING, outcome, time.perf_counter() - started)

    async def _take(self, topic: str, payload: bytes, retained: bool) -> str:
        outcome = "accepted"
        try:
            if topic == self.config.mqtt.request_topic:
                if retained:
                    outcome = "rejected"
                    self._discard(
                        Discard.RETAINED,
                        self._name_in(payload),
                        "retain flag",
                        "stored by the broker and replayed at our subscribe, not asked now",
                    )
                else:
                    outcome = await self._handle_josev(self.codec.decode(payload))
            else:
                self._handle_local(topic, payload)
        except InboundRejected as rejected:
            outcome = "rejected"
            self.counters.add(Counted.INBOUND_REJECTED, rejected.reason.value)
            self._faults.warning(
                (rejected.reason, self._log_class(topic), self._log_kind(rejected.message)),
                "event=inbound_rejected topic=%s reason=%s message=%s where=%s why=%s",
                topic,
                rejected.reason,
                rejected.message,
                rejected.where,
                rejected.why,
            )
        except Exception:
            # A bug must not take the bridge down: the requester times out, we count and log it.
            outcome = "failed"
            self.counters.add(Counted.HANDLER_FAILED, topic)
            kind = self._failed_kind(topic, payload)
            self._faults.exception(
                (Counted.HANDLER_FAILED, kind),
                "event=handler_failed topic=%s message=%s",
                topic,
                kind,
            )
        return outcome

    def _log_kind(self, message: str) -> str:
        """A rejected message's kind for the rate limit: a registry name or one of our leaves as
        the sender wrote it, else ?; never a free value such as the topic or an unknown name."""
        return message if message in self._known_names or message in _LEAVES else "?"

    def _log_class(self, topic: str) -> str:
        """Whose topic, from a closed set: josev, local (ours), a topic source's class, or ?."""
        if topic == self.config.mqtt.request_topic:
            return "josev"
        owners = [type(s).__name__ for s in self._topic_sources if s.owns(topic)]
        if owners:
            return owners[0]
        return "local" if topic.startswith(f"{self.local.prefix}/") else "?"

    def _failed_kind(self, topic: str, payload: bytes) -> str:
        """What failed, from a closed set: the message's name, our topic's leaf, or whose
        topic it came on."""
        if topic == self.config.mqtt.request_topic:
            return self._name_in(payload)
        parsed = self.local.parse(topic)
        return parsed[1].value if parsed is not None else self._log_class(topic)

    async def _handle_josev(self, message: Message) -> str:
        """The outcome: accepted, unhandled (no handler takes the message: counted, not an
        error) or rejected (a repeat, or a response nothing waits for)."""
        if message.type is MessageType.RESPONSE:
            return self._take_response(message)
        handled = None
        if type(message.payload) not in READ_ONLY_REQUESTS:
            earlier = self._recent.earlier(message)
            if earlier is not None:
                return await self._repeat(message, earlier.answer, earlier.at)
            handled = self._recent.remember(message)
        handler = self._handlers.get(type(message.payload))
        if handler is None:
            self.counters.add(Counted.INBOUND_UNHANDLED, message.name)
            log.debug("event=inbound_unhandled message=%s type=%s", message.name, message.type)
            return "unhandled"
        reply = handler(message.payload)
        if inspect.isawaitable(reply):
            # Waits on the hardware: answered when it resolves, other messages go on meanwhile.
            task = asyncio.get_running_loop().create_task(
                self._answer_later(message, reply, handled)
            )
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)
        else:
            await self._answer(message, reply, handled)
        # Counted once handled: a handler that fails is counted as handler_failed alone.
        self.counters.add(Counted.INBOUND_ACCEPTED, message.name)
        return "accepted"

    async def _answer(self, message: Message, answer: Payload | None, handled: Any) -> None:
        if answer is None or message.type is not MessageType.REQUEST:
            return
        if message.name != answer.NAME or answer.TYPE is not MessageType.RESPONSE:
            msg = f"{message.name} answered with {answer.NAME}/{answer.TYPE}"
            raise TypeError(msg)  # a bug: counted and logged as handler_failed
        response = Message(answer, message.id)
        if handled is not None:
            handled.answer = response
        await self.send(response)

    async def _answer_later(
        self, message: Message, reply: Awaitable[Payload | None], handled: Any
    ) -> None:
        try:
            await self._answer(message, await reply, handled)
        except Exception:
            self.counters.add(Counted.HANDLER_FAILED, self.config.mqtt.request_topic)
            self._faults.exception(
                (Counted.HANDLER_FAILED, message.name),
                "event=handler_failed topic=%s message=%s",
                self.config.mqtt.request_topic,
                message.name,
            )

    async def _repeat(self, message: Message, answer: Message | None, at: float) -> str:
        """A message handled `at` received again: its answer once more, and nothing done."""
        age_s = self.engine.clock() - at
        if answer is not None:
            await self.send(answer)
            why = f"handled {age_s:.1f} s ago; its answer is sent again"
        else:
            why = f"handled {age_s:.1f} s ago, without an answer; dropped"
        self._discard(Discard.DUPLICATE, message.name, "$.id", why)
        return "rejected"

    def _take_response(self, message: Message) -> str:
        problem = self._asks.resolve(message)
        if problem is not None:
            self._discard(Discard.UNMATCHED_RESPONSE, message.name, "$.id", problem)
            return "rejected"
        self.counters.add(Counted.INBOUND_ACCEPTED, message.name)
        return "accepted"

    def _discard(self, reason: Discard, name: str, where: str, why: str) -> None:
        """A well-formed message not acted on. `name` is one of the registry's message names
        (or ?), so one line a minute per reason and name keeps to a bounded set of kinds."""
        self.counters.add(Counted.INBOUND_REJECTED, reason)
        self._faults.warning(
            (reason, name),
            "event=inbound_rejected topic=%s reason=%s message=%s where=%s why=%s",
            self.config.mqtt.request_topic,
            reason,
            name,
            where,
            why,
        )

    def _name_in(self, payload: bytes) -> str:
        """The name of a message that is not decoded, for the log: a known name, else ?."""
        try:
            document = parse_json(payload, self.config.mqtt.max_payload_bytes)
        except InboundRejected:
            return "?"
        name = document.get("name") if isinstance(document, dict) else None
        return name if isinstance(name, str) and name in self._known_names else "?"

    async def ask(self, payload: Payload, timeout_s: float) -> Payload | None:
        """Send a request of the station's to Josev (on the response topic, with an id of its
        own) and wait for Josev's response, which comes on the request topic with that id:
        its payload, or None when the request could not be sent or no response came within
        `timeout_s` (counted and logged)."""
        if payload.TYPE is not MessageType.REQUEST:
            raise ValueError(f"{payload.NAME}/{payload.TYPE} is not a request")
        request = Message(payload)
        answer = self._asks.open(request)
        try:
            if not await self.send(request):
                self._unanswered(request, "not sent (MQTT is down, or it broke its schema)")
                return None
            try:
                async with asyncio.timeout(timeout_s):
                    return await answer
            except TimeoutError:
                self._unanswered(request, f"no response within {timeout_s:g} s")
                return None
        finally:
            self._asks.close(request.id)

    def _unanswered(self, request: Message, why: str) -> None:
        self.counters.add(Counted.REQUEST_UNANSWERED, request.name)
        self._faults.warning(
            ("unanswered", request.name),
            "event=request_unanswered message=%s id=%s why=%s",
            request.name,
            request.id,
            why,
        )

    def _handle_local(self, topic: str, payload: bytes) -> None:
        for source in self._topic_sources:
            if source.owns(topic):
                self.counters.add(Counted.INBOUND_ACCEPTED, source.handle(topic, payload))
                return
        parsed = self.local.parse(topic)
        if parsed is None:
            raise InboundRejected(RejectReason.UNKNOWN_MESSAGE, "topic", f"no handler for {topic}")
        evse_id, leaf = parsed
        if evse_id not in self.engine.evse_ids:
            raise InboundRejected(
                RejectReason.UNKNOWN_EVSE, "topic", f"no EVSE {evse_id!r} is configured", leaf
            )
        document = decode_local(
            self.registry, SCHEMA_OF[leaf], payload, self.config.mqtt.max_payload_bytes, leaf
        )
        now = self.engine.clock()
        if leaf is Leaf.SIMULATE:
            if self._on_simulate is None:
                raise InboundRejected(RejectReason.SCHEMA, "topic", "not a simulated station", leaf)
            problem = self._on_simulate(evse_id, document)
            if problem is not None:
                raise InboundRejected(RejectReason.SCHEMA, "$.action", problem, leaf)
            self.counters.add(Counted.INBOUND_ACCEPTED, leaf)
            return
        if leaf is Leaf.TOKEN:
            problem = (
                self._session_side.present_token(evse_id, TokenPresented.from_json(document))
                if self._session_side is not None
                else "no session to authorize"
            )
            if problem is not None:
                raise InboundRejected(RejectReason.SCHEMA, "$.id_token", problem, leaf)
            self.counters.add(Counted.INBOUND_ACCEPTED, leaf)
            return
        if leaf is Leaf.EXTERNAL_LIMIT:
            reading: ExternalLimit | OperatorCommand = _external_limit(document, now)
        else:
            enabled, reason = document["enabled"], document.get("reason", "")
            reading = OperatorCommand(at=now, enabled=enabled, reason=reason)
        self.engine.ingest(evse_id, reading)
        if leaf is Leaf.OPERATOR and self._session_side is not None:
            self._session_side.operator_changed(evse_id, enabled, reason)
        self.counters.add(Counted.INBOUND_ACCEPTED, leaf)

    @handles(CsParametersRequest)
    def _answer_cs_parameters(self, request: CsParametersRequest) -> CsParametersResponse:
        return self._parameters

    @handles(CsStatusAndLimitsRequest)
    def _answer_cs_status_and_limits(
        self, request: CsStatusAndLimitsRequest
    ) -> CsStatusAndLimitsResponse:
        return CsStatusAndLimitsResponse(evses=self.engine.wire_entries.values())

    # -- outbound --------------------------------------------------------------------------

    async def _connected(self) -> None:
        await self.publish_full_state()
        await self.display.republish()
        if self._session_side is not None:
            self._session_side.announce_all()
        for source in self._topic_sources:
            await source.on_connected()

    def publish_now(self, topic: str, payload: bytes, label: str) -> bool:
        """For a command that cannot wait (the caller has validated the payload)."""
        if not self.link.publish_nowait(topic, payload):
            connected = self.link.connected.is_set()
            self.counters.add(
                Counted.PUBLISH_FAILED if connected else Counted.PUBLISH_DEFERRED, label
            )
            return False
        self.counters.add(Counted.OUTBOUND_PUBLISHED, label)
        return True

    async def publish_full_state(self) -> None:
        """After each (re)connect (Josev may have booted while we were away), and as the last
        word before a deliberate stop."""
        self.engine.flush_reports()
        self.engine.updates.told_all()
        self.engine.reports.clear_changed()
        sent = await self._send_update(self.engine.wire_entries.values())
        for evse_id in self.engine.evse_ids:
            await self._publish_report(evse_id, self.engine.reports.get(evse_id))
        if sent:
            self.state_published.set()

    async def _push_updates(self) -> None:
        """Every change of an entry, paced by the engine (each EVSE at most once per 50 ms, a
        train of changes as one update at its latest value): a flood of inputs cannot make an
        update storm, and nothing held waits longer than the gap."""
        while True:
            due = await self.engine.updates.wait_due()
            await self._send_update([entry for _, entry in due])

    async def _push_session_updates(self, pushed: asyncio.Queue[Message]) -> None:
        """cp_status, cs_contactor_status and hardware_fault updates, in the order they arose."""
        while True:
            await self.send(await pushed.get())

    async def _push_reports(self) -> None:
        while True:
            for evse_id, report in await self.engine.reports.wait_changed():
                await self._publish_report(evse_id, report)

    async def _send_update(self, entries: list[EvseStatusAndLimits]) -> bool:
        return await self.send(Message(CsStatusAndLimitsUpdate(evses=entries)))

    async def send(self, message: Message) -> bool:
        """Validate and publish on the response topic; an invalid message is never published."""
        started = time.perf_counter()
        label = f"{message.name}/{message.type}"
        try:
            payload = self.codec.encode(message)
        except SchemaViolation as violation:
            self._outbound_rejected(message.name, str(violation), label)
            return False
        sent = await self._publish(self.config.mqtt.response_topic, payload, label)
        self.counters.observe(Timed.OUTBOUND_HANDLING, label, time.perf_counter() - started)
        return sent

    async def _publish_report(self, evse_id: str, report: Entry) -> bool:
        started = time.perf_counter()
        try:
            payload = checked_payload(self.registry, SCHEMA_OF[Leaf.LIMITS], report)
        except SchemaViolation as violation:
            self._outbound_rejected(Leaf.LIMITS, str(violation))
            return False
        topic = self.local.topic(evse_id, Leaf.LIMITS)
        sent = await self._publish(topic, payload, Leaf.LIMITS, retain=True)
        self.counters.observe(Timed.OUTBOUND_HANDLING, Leaf.LIMITS, time.perf_counter() - started)
        return sent

    async def _publish(
        self, topic: str, payload: bytes, label: str, *, retain: bool = False
    ) -> bool:
        if not self.link.connected.is_set():
            # Not lost: the full state is republished on reconnect.
            self.counters.add(Counted.PUBLISH_DEFERRED, label)
            return False
        if not await self.link.publish(topic, payload, retain=retain):
            self.counters.add(Counted.PUBLISH_FAILED, label)
            return False
        self.counters.add(Counted.OUTBOUND_PUBLISHED, label)
        return True

    def _outbound_rejected(self, name: str, why: str, label: str | None = None) -> None:
        self.counters.add(Counted.OUTBOUND_REJECTED, name)
        # Loud, but one line a minute per message kind: a bug hit by every update must not
        # flood the log (the counter counts each one).
        self._faults.error(
            (Counted.OUTBOUND_REJECTED, label or name),
            "event=outbound_rejected message=%s why=%s -- not published; this is a bug",
            name,
            why,
        )


def _external_limit(document: dict[str, Any], now: float) -> ExternalLimit:
    max_power = document.get("max_power")
    max_current = document.get("max_current")
    max_discharge_power = document.get("max_discharge_power")
    if max_power is None and max_current is None and max_discharge_power is None:
        return ExternalLimit(at=now, until=now)  # withdrawn: back to the configured default
    valid_for = document.get("valid_for")
    until = now + valid_for if valid_for is not None else math.inf
    return ExternalLimit(
        at=now,
        until=until,
        max_power=max_power,
        max_current=max_current,
        max_discharge_power=max_discharge_power,
    )
