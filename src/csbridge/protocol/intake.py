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


def capacities(total: int) -> dict[TopicClass, int]:
    """Each class's bound out of `total` (at least one message each)."""
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
    ) -> None:
        self._classify = classify
        self._counters = counters
        self.capacity = capacities(total_size)
        self._queues: dict[TopicClass, deque[T]] = {kind: deque() for kind in TopicClass}
        self._drops = RateLimitedLog(log, clock)
        """One line a minute per class under a flood; the counter counts every drop."""

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def __iter__(self) -> Iterator[T]:
        """Every queued message in the order they would be taken."""
        for queue in self._queues.values():
            yield from queue

    def queued(self, kind: TopicClass) -> int:
        return len(self._queues[kind])

    def offer(self, topic: str, message: T) -> bool:
        """Queue one message that came on `topic`; False when its class's queue is full and it
        is dropped (counted, and logged once an interval per class)."""
        kind = self._classify(topic)
        queue = self._queues[kind]
        if len(queue) >= self.capacity[kind]:
            self._counters.add(Counted.INBOUND_DROPPED, kind)
            self._drops.warning(
                kind,
                "event=inbound_dropped class=%s topic=%s why=%d messages of this class wait "
                "to be handled already (mqtt.intake_queue_size)",
                kind,
                topic,
                len(queue),
            )
            return False
        queue.append(message)
        return True

    def take(self) -> T:
        """The next message to handle: the oldest of the first class that has one. IndexError
        when every queue is empty."""
        for queue in self._queues.values():
            if queue:
                return queue.popleft()
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
            intake.offer(item.topic.value, item)

        def _get(self) -> aiomqtt.Message:
            return intake.take()

        async def get(self) -> aiomqtt.Message:
            if not intake.queued(TopicClass.JOSEV):
                # Before handling anything else, let paho read once more: a Josev request
                # behind the flood in the socket then overtakes the flood here.
                await asyncio.sleep(0)
            return await super().get()

    return IntakeQueue
