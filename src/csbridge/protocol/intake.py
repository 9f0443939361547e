"""The bounded intake: where inbound MQTT messages wait to be handled, by topic class.

It is the MQTT client's own incoming queue (`queue_type` hands aiomqtt an asyncio.Queue backed
by it), so every message is taken off the client as the client reads it, and nothing else
queues: paho's callback puts each message into the queue of its class, and the link's message
loop takes the next one from the first class that has one, Josev's first. A flood on
csbridge's own or EVerest's topics therefore fills only its own queue: Josev's requests are
handled ahead of it, and what does not fit is dropped, counted as `inbound_dropped{class}` and
logged once a minute per class. Within a class the order of arrival is kept (QoS 1 delivers
Josev's requests in the order sent, and they are acted on in that order)."""

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


def capacities(total: int) -> dict[TopicClass, int]:
    """Each class's bound out of `total` (at least one message, or byte, each)."""
    return {kind: max(1, int(total * share)) for kind, share in SHARE_OF.items()}


class Intake(Generic[T]):
    """Per-class bounded FIFO queues of messages (any type: the topic is given beside each),
    taken in TopicClass order."""

    def __init__(
        self,
        total_size: int,
        classify: Callable[[str], TopicClass],
        counters: Counters,
        clock: Callable[[], float] = time.monotonic,
        total_bytes: int = TOTAL_BYTES,
    ) -> None:
        self._classify = classify
        self._counters = counters
        self.capacity = capacities(total_size)
        self.byte_capacity = capacities(total_bytes)
        self._queues: dict[TopicClass, deque[tuple[T, int]]] = {
            kind: deque() for kind in TopicClass
        }
        self._bytes = dict.fromkeys(TopicClass, 0)
        self._drops = RateLimitedLog(log, clock)
        """One line a minute per class under a flood; the counter counts every drop."""

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def __iter__(self) -> Iterator[T]:
        """Every queued message in the order they would be taken."""
        for queue in self._queues.values():
            yield from (message for message, _ in queue)

    def queued(self, kind: TopicClass) -> int:
        return len(self._queues[kind])

    def queued_bytes(self, kind: TopicClass) -> int:
        return self._bytes[kind]

    def offer(self, topic: str, message: T, size: int = 0) -> bool:
        """Queue one message that came on `topic` with `size` payload bytes; False when its
        class's queue is full (by count or bytes) and it is dropped (counted, and logged once
        an interval per class)."""
        kind = self._classify(topic)
        queue = self._queues[kind]
        held = self._bytes[kind]
        if len(queue) >= self.capacity[kind] or held + size > self.byte_capacity[kind]:
            self._counters.add(Counted.INBOUND_DROPPED, kind)
            self._drops.warning(
                kind,
                "event=inbound_dropped class=%s topic=%s why=%d messages (%d bytes) of this "
                "class wait to be handled already (mqtt.intake_queue_size)",
                kind,
                topic,
                len(queue),
                held,
            )
            return False
        queue.append((message, size))
        self._bytes[kind] = held + size
        return True

    def take(self) -> T:
        """The next message to handle: the oldest of the first class that has one. IndexError
        when every queue is empty."""
        for kind, queue in self._queues.items():
            if queue:
                message, size = queue.popleft()
                self._bytes[kind] -= size
                return message
        raise IndexError("the intake is empty")


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
