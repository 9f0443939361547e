"""The bounded intake: where inbound MQTT messages wait to be handled, by topic class.

It is the MQTT client's own incoming queue (`queue_type` hands aiomqtt an asyncio.Queue backed
by it), so every message is taken off the client as the client reads it, and nothing else
queues: paho's callback puts each message into the queue of its class, and the link's message
loop takes the next one from the first class that has one, Josev's first. A flood on
csbridge's own or EVerest's topics therefore fills only its own queue: Josev's requests are
handled ahead of it, and what does not fit is dropped, counted as `inbound_dropped{class}` and
logged once a minute per class; Josev's class does not drop but holds back the MQTT
acknowledgements while it is full, so its next requests wait in the broker's queue (MQTT flow
control: csbridge.mqtt.reading), and state topics (an external limit, an operator command)
keep only their newest message waiting. Within a class the order of arrival is kept (QoS 1
delivers Josev's requests in the order sent, and they are acted on in that order)."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import aiomqtt

from csbridge.support import Counted, Counters, RateLimitedLog

log = logging.getLogger("csbridge.intake")

T = TypeVar("T")


class TopicClass(enum.StrEnum):
    """Where a message came from; the order here is the order of service."""

    JOSEV = "josev"
    """Josev's request topic: what the EV's session waits for."""
    LOCAL = "local"
    """csbridge's own topics (external limits, operator commands, tokens, simulation)."""
    EVEREST = "everest"
    """EVerest's topics, when the station also serves EVerest's API."""


SHARE_OF: dict[TopicClass, float] = {
    TopicClass.JOSEV: 0.5,
    TopicClass.LOCAL: 0.25,
    TopicClass.EVEREST: 0.25,
}
"""Each class's part of the configured total: fixed, so no flood of one class can take the
room another needs. Josev's is the largest: a burst of its requests is its normal traffic."""


TOTAL_BYTES = 32 * 1024 * 1024
"""The payload bytes all queues may hold together, shared out like the count: the count alone
would let 20,000 messages of the largest accepted size (64 KiB) take over a gigabyte."""


JOSEV_PAUSE_AT = 1000
JOSEV_RESUME_AT = 500
"""Beyond its bound by this many, Josev's class pauses the reading from the broker (on_full)
until it is back to RESUME_AT beyond (on_room): the backstop for a broker that does not keep
to its in-flight window while acknowledgements are held back."""
JOSEV_OVERSHOOT = 5000
JOSEV_OVERSHOOT_BYTES = 8 * 1024 * 1024
"""What Josev's class still takes beyond its bound while it holds acknowledgements back. The
broker should send no more than its in-flight window (mosquitto: 20) unacknowledged, but
mosquitto 2.0's window is not tight under a fast stream: 200-1,100 more came in our tests and
the flood bench. Beyond this it drops, counted like any class: a window that does not hold at
all must not grow the queue without bound (15,000 requests of ~100 bytes: about 10 MB)."""


def capacities(total: int) -> dict[TopicClass, int]:
    """Each class's bound out of `total` (at least one message, or byte, each)."""
    return {kind: max(1, int(total * share)) for kind, share in SHARE_OF.items()}


def _never(topic: str) -> bool:
    return False


def _nothing(message: object) -> None:
    pass


def _no_call() -> None:
    pass


class Intake(Generic[T]):
    """Per-class bounded FIFO queues of messages (any type: the topic is given beside each),
    taken in TopicClass order.

    Every message is passed to `acknowledge` once (its MQTT acknowledgement): at once, except
    Josev's requests that come while its class is full: they are queued, and their
    acknowledgements held back until the class has drained to half (or they are taken), so the
    broker sends little more than its in-flight window meanwhile. Josev's class thus never drops
    (up to JOSEV_OVERSHOOT beyond its bound, for a broker that ignores the window). The other
    classes drop what does not fit. Once a class is half full, a message on a topic
    `supersedes` names (state, not events: the newest external limit is the one that holds)
    waits as that topic's newest, and each later one replaces it in its place: a flood of
    state cannot drop the newest state. Below half, every message is handled in turn."""

    def __init__(
        self,
        total_size: int,
        classify: Callable[[str], TopicClass],
        counters: Counters,
        clock: Callable[[], float] = time.monotonic,
        *,
        total_bytes: int = TOTAL_BYTES,
        supersedes: Callable[[str], bool] = _never,
    ) -> None:
        self._classify = classify
        self._supersedes = supersedes
        self._counters = counters
        self.capacity = capacities(total_size)
        self.byte_capacity = capacities(total_bytes)
        self._queues: dict[TopicClass, deque[tuple[str | None, T | None, int]]] = {
            kind: deque() for kind in TopicClass
        }
        """Each entry: (topic, None, 0) for a state topic (its message waits in `_latest`), or
        (None, message, size)."""
        self._latest: dict[str, tuple[T, int]] = {}
        self._bytes = dict.fromkeys(TopicClass, 0)
        self._drops = RateLimitedLog(log, clock)
        """One line a minute per class under a flood; the counter counts every drop."""
        self._holding = RateLimitedLog(log, clock)
        self.on_full: Callable[[], None] = _no_call
        self.on_room: Callable[[], None] = _no_call
        self.reading_paused = False
        """on_full was called, on_room not yet."""
        self._acknowledge: Callable[[T], None] = _nothing
        self._held: deque[T] = deque()
        """Josev's requests queued while its class was full, their acknowledgement not yet sent
        (oldest first)."""
        self.holds = 0
        """Times Josev's class filled and began to hold acknowledgements back."""

    def acknowledge_with(self, acknowledge: Callable[[T], None]) -> None:
        """Acknowledge from now on with `acknowledge` (a new connection's); what was held for an
        earlier connection is owed nothing (its clean session is gone), and stays queued."""
        self._acknowledge = acknowledge
        self._held.clear()

    @property
    def holding(self) -> int:
        """Acknowledgements held back now."""
        return len(self._held)

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def __iter__(self) -> Iterator[T]:
        """Every queued message in the order they would be taken."""
        for queue in self._queues.values():
            for topic, message, _ in queue:
                yield self._latest[topic][0] if topic is not None else message  # type: ignore[misc]

    def queued(self, kind: TopicClass) -> int:
        return len(self._queues[kind])

    def queued_bytes(self, kind: TopicClass) -> int:
        return self._bytes[kind]

    def offer(self, topic: str, message: T, size: int = 0) -> bool:
        """Queue one message that came on `topic` with `size` payload bytes; False when it is
        dropped: its class's queue is full (by count or bytes; counted, and logged once an
        interval per class)."""
        kind = self._classify(topic)
        queue = self._queues[kind]
        as_state = False
        if kind is not TopicClass.JOSEV and self._supersedes(topic):
            waiting = self._latest.get(topic)
            if waiting is not None:
                self._latest[topic] = (message, size)
                self._bytes[kind] += size - waiting[1]
                self._counters.add(Counted.INBOUND_SUPERSEDED, kind)
                self._acknowledge(message)
                return True
            # Backing up: from now on the newest message on this topic is the one that counts.
            as_state = len(queue) >= self.capacity[kind] // 2
        held = self._bytes[kind]
        capacity, byte_capacity = self.capacity[kind], self.byte_capacity[kind]
        if kind is TopicClass.JOSEV:
            capacity += JOSEV_OVERSHOOT
            byte_capacity += JOSEV_OVERSHOOT_BYTES
        if len(queue) >= capacity or held + size > byte_capacity:
            self._drop(kind, topic, len(queue), held)
            self._acknowledge(message)
            return False
        if as_state:
            self._latest[topic] = (message, size)
            queue.append((topic, None, 0))
        else:
            queue.append((None, message, size))
        self._bytes[kind] = held + size
        if kind is TopicClass.JOSEV and self._josev_full():
            self._hold(message)
            if not self.reading_paused and len(queue) >= self.capacity[kind] + JOSEV_PAUSE_AT:
                self.reading_paused = True
                self._counters.add(Counted.INBOUND_PAUSED)
                self.on_full()
        else:
            self._acknowledge(message)
        return True

    def _hold(self, message: T) -> None:
        if not self._held:
            self.holds += 1
            self._counters.add(Counted.INBOUND_HELD)
            self._holding.warning(
                "josev",
                "event=inbound_held class=josev queued=%d bytes=%d why=Josev's requests come "
                "faster than they are handled: the broker keeps the next ones until there is room",
                self.queued(TopicClass.JOSEV),
                self.queued_bytes(TopicClass.JOSEV),
            )
        self._held.append(message)

    def _drop(self, kind: TopicClass, topic: str, queued: int, held: int) -> None:
        self._counters.add(Counted.INBOUND_DROPPED, kind)
        self._drops.warning(
            kind,
            "event=inbound_dropped class=%s topic=%s why=%d messages (%d bytes) of this "
            "class wait to be handled already (mqtt.intake_queue_size)",
            kind,
            topic,
            queued,
            held,
        )

    def _josev_full(self) -> bool:
        kind = TopicClass.JOSEV
        return (
            len(self._queues[kind]) >= self.capacity[kind]
            or self._bytes[kind] >= self.byte_capacity[kind]
        )

    def _josev_half_empty(self) -> bool:
        kind = TopicClass.JOSEV
        return (
            len(self._queues[kind]) <= self.capacity[kind] // 2
            and self._bytes[kind] <= self.byte_capacity[kind] // 2
        )

    def take(self) -> T:
        """The next message to handle: the oldest of the first class that has one. IndexError
        when every queue is empty."""
        for kind, queue in self._queues.items():
            if queue:
                topic, message, size = queue.popleft()
                if topic is not None:
                    message, size = self._latest.pop(topic)
                self._bytes[kind] -= size
                if self._held and kind is TopicClass.JOSEV:
                    self._release(message)
                if (
                    self.reading_paused
                    and kind is TopicClass.JOSEV
                    and len(queue) <= self.capacity[kind] + JOSEV_RESUME_AT
                ):
                    self.reading_paused = False
                    self.on_room()
                return message  # type: ignore[return-value]
        raise IndexError("the intake is empty")

    def _release(self, taken: object) -> None:
        """After a take from Josev's class: the taken message's held acknowledgement (it is
        handled, whatever the room), and every held one once the class is down to half."""
        if self._held[0] is taken:
            self._acknowledge(self._held.popleft())
        if self._josev_half_empty():
            # All at once, and only once the class has drained to half: mosquitto 2.0 does not
            # keep to its in-flight window while acknowledgements keep coming (measured: a
            # subscriber acknowledging 2,000/s of a 5,000/s stream was sent all 30,000, with
            # 22,601 unacknowledged at once), but it does while none come.
            while self._held:
                self._acknowledge(self._held.popleft())


MessageIntake = Intake[aiomqtt.Message]


def queue_type(intake: MessageIntake) -> type[asyncio.Queue[aiomqtt.Message]]:
    """An asyncio.Queue class for aiomqtt.Client(queue_type=...) whose every instance keeps its
    messages in `intake` (so what a lost connection left queued is handled after the next)."""

    class IntakeQueue(asyncio.Queue[aiomqtt.Message]):
        # asyncio.Queue's own hooks (as PriorityQueue uses them): the storage is the intake, its
        # length what empty() and qsize() see, and asyncio's own bound stays off (maxsize 0).
        def _init(self, maxsize: int) -> None:
            self._queue = intake

        def _put(self, item: aiomqtt.Message) -> None:
            payload = item.payload
            size = len(payload) if isinstance(payload, bytes | bytearray | str) else 0
            intake.offer(item.topic.value, item, size)

        def _get(self) -> aiomqtt.Message:
            return intake.take()

        async def get(self) -> aiomqtt.Message:
            if not intake.queued(TopicClass.JOSEV):
                # Before handling anything else, let paho read once more: a Josev request
                # behind the flood in the socket then overtakes the flood here.
                await asyncio.sleep(0)
            return await super().get()

    return IntakeQueue
