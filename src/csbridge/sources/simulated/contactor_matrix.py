"""A simulated contactor matrix board (issue 18) that obeys MATRIX_Command after a delay,
reports MATRIX_Feedback, and can be told to let a contactor stick; its layout and codec are the
station's own (sources/can/contactor_matrix.py). On a bus (python-can's virtual bus in the tests
and demos) the board answers through can_devices.SimulatedCanBus, as the simulated modules do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import can

from csbridge.sources.can import (
    ContactorMatrixCodec,
)
from csbridge.support import RateLimitedLog

log = RateLimitedLog(logging.getLogger(__name__))

Contact = tuple[int, int]
"""(module index, bus index), as the codec's."""


@dataclass(slots=True)
class SimulatedContactorMatrix:
    """The board: each contactor follows its command after `delay_s` (unless stuck), the
    feedback tells where the contacts are, sent on change and every feedback cycle."""

    codec: ContactorMatrixCodec
    delay_s: float = 0.02
    clock: Callable[[], float] = time.monotonic
    closed: set[Contact] = field(default_factory=set)
    """Where the contacts are now (what the feedback says)."""
    commanded: frozenset[Contact] = frozenset()
    stuck: set[Contact] = field(default_factory=set)
    """Contacts that ignore their commands (welded, or a coil that does not pull in)."""
    rejected_frames: int = 0
    silent: bool = False
    """Sends nothing (a board powered down or cut off the bus); it still obeys what it hears."""
    commands_received: int = 0
    _due: dict[Contact, tuple[float, bool]] = field(default_factory=dict)
    _last_sent: float | None = None

    def receive(self, frame: can.Message) -> None:
        """A frame from the bus: a command is obeyed after the delay; others are ignored."""
        if frame.arbitration_id != self.codec.command_id:
            return
        closed = self.codec.decode_command(frame)
        if closed is None:
            self.rejected_frames += 1
            return
        self.commands_received += 1
        now = self.clock()
        for contact in set(closed) ^ set(self.commanded):
            self._due[contact] = (now + self.delay_s, contact in closed)
        self.commanded = closed

    def advance(self) -> bool:
        """Move the contacts whose delay has passed; True when the feedback changed."""
        now, changed = self.clock(), False
        for contact, (due, close) in list(self._due.items()):
            if due > now or contact in self.stuck:
                continue  # a stuck contact moves once it is freed, if still commanded to
            del self._due[contact]
            if (contact in self.closed) == close:
                continue
            (self.closed.add if close else self.closed.discard)(contact)
            changed = True
        return changed

    def feedback_frame(self) -> can.Message:
        return self.codec.feedback_frame(self.closed)

    def pump(self, bus: can.BusABC) -> None:
        """Read what the bus holds, move the contacts that are due, and send the feedback when
        it changed or its cycle is up. Never blocks."""
        while (frame := bus.recv(timeout=0)) is not None:
            self.receive(frame)
        self.tell(bus)

    def tell(self, bus: can.BusABC) -> None:
        """Move the contacts that are due; send the feedback when it changed or its cycle is
        up (unless silent)."""
        changed = self.advance()
        now = self.clock()
        cycle = self.codec.layout.feedback_cycle_s
        cycle_up = self._last_sent is None or now >= self._last_sent + cycle
        if (changed or cycle_up) and not self.silent:
            try:
                bus.send(self.feedback_frame())
            except can.CanError:
                name = self.codec.layout.name
                log.warning(("sim_send", name), "event=sim_matrix_send_failed layout=%s", name)
            self._last_sent = now

    def next_due(self) -> float:
        """When the board has something to say next: a contact due to move, or its cycle."""
        cycle_at = (self._last_sent or self.clock()) + self.codec.layout.feedback_cycle_s
        pending = [due for contact, (due, _) in self._due.items() if contact not in self.stuck]
        return min([cycle_at, *pending])
