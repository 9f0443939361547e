"""Josev's requests and updates handled within the last minute, so that one received again is
answered the same way and not acted on twice.

A message is the same one when its name, id and data are all the same: QoS 1 redelivers it
byte for byte, and Josev's retries carry the request's id. An id that comes back with another
name, or with other data, is taken as a new message (and remembered in place of the old one):

- Josev draws a uuid4 for every message, so the same id on another kind is not a retry of it;
- Josev checks a response against the schema of the request it answers (it reads the name from
  its own request, matching by id alone), so replaying one kind's answer to another kind would
  be refused, and dropping the message would leave Josev waiting for its timeout;
- replaying an `accepted` to a setpoint whose numbers changed would tell Josev a setpoint was
  applied that never was.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from csbridge.messages import Message, Payload
from csbridge.support import Clock

WINDOW_S = 60.0
"""How long a handled message is remembered (by the engine's clock)."""
CAPACITY = 1024
"""At most this many are remembered; the oldest goes first. A minute of Josev's traffic is a
few hundred messages in a busy session; a flood only shortens what is remembered."""


@dataclass(slots=True)
class Handled:
    """One message that was handled: what it carried, when, and the answer sent (None while
    there is none: an update, a request its handler did not answer, or one whose handler
    failed, which is not run again either)."""

    payload: Payload
    at: float
    answer: Message | None = None


class RecentMessages:
    """The messages handled within `window_s`, at most `capacity` of them, by (name, id)."""

    def __init__(
        self, clock: Clock, *, window_s: float = WINDOW_S, capacity: int = CAPACITY
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._clock = clock
        self.window_s = window_s
        self.capacity = capacity
        self._handled: OrderedDict[tuple[str, str], Handled] = OrderedDict()

    def __len__(self) -> int:
        return len(self._handled)

    def earlier(self, message: Message) -> Handled | None:
        """The same message handled within the window, else None."""
        self._forget_expired(self._clock())
        handled = self._handled.get((message.name, message.id))
        if handled is None or handled.payload != message.payload:
            return None
        return handled

    def remember(self, message: Message) -> Handled:
        """Call before the handler runs, so that not even a handler that raised runs twice;
        set `answer` on what it returns once there is one."""
        now = self._clock()
        self._forget_expired(now)
        key = (message.name, message.id)
        self._handled.pop(key, None)  # a reused id: the newer message takes its place
        handled = self._handled[key] = Handled(message.payload, now)
        while len(self._handled) > self.capacity:
            self._handled.popitem(last=False)
        return handled

    def _forget_expired(self, now: float) -> None:
        # Kept in the order handled, so the expired ones are at the front.
        while self._handled:
            handled = next(iter(self._handled.values()))
            if now - handled.at < self.window_s:
                return
            self._handled.popitem(last=False)
