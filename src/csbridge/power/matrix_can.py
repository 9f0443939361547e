"""A shared pool's contactor matrix board on a CAN bus (`board = { bus = "can0" }`): commands
go out as MATRIX_Command on the station's link of that bus, as module commands do
(power/can.py), every time one changes and again every command cycle (the DBC's cycle time of
the command, so a board that restarted gets its contacts' commands back); MATRIX_Feedback is
routed here by the device router (sources/can/router.py) and read with the time it came.

A board unheard for its deadline is silent: its feedback is unknown (None), so the switching
sequencer closes nothing and, after its contactor time limit, takes each module out as for any
feedback that disagrees with its command (modules off, contactors told open, hardware_fault).
Before the board is first heard its feedback is unknown too; the station starts the pool's
steps only once it is (`heard`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

import can

from csbridge.config import ConfigError, PoolConfig
from csbridge.power.can import CanLink
from csbridge.power.pool import closed_by_bank
from csbridge.sources.can import ContactorMatrixCodec, ContactorMatrixLayout, Listener
from csbridge.support import Clock, Counted, Counters, RateLimitedLog

log = logging.getLogger("csbridge.pool")

Contact = tuple[int, int]
"""(module index, bus index) of the board, both from 0."""

SILENT_AFTER_CYCLES = 3
"""A board is silent once this many of its feedback cycles passed without a feedback frame."""


class CanMatrixDriver:
    """One pool's board on its bus. `on_frame` takes its feedback frames (the router's
    listener); `run` repeats the command; `feedback` is what the sequencer reads."""

    def __init__(
        self,
        pool: PoolConfig,
        layout: ContactorMatrixLayout,
        contacts: tuple[Mapping[tuple[str, str], Contact], Mapping[Contact, tuple[str, str]]],
        counters: Counters,
        clock: Clock = time.monotonic,
    ) -> None:
        """`contacts`: each (module, EVSE)'s contact of the board, and the reverse
        (power.matrix_contacts, checked)."""
        board = pool.board
        if board is None or board.bus is None:
            raise ConfigError(f"pool {pool.name}.board", ["a board on CAN needs its `bus`"])
        self.pool_name = pool.name
        self.bus_name = board.bus
        self.codec = ContactorMatrixCodec(layout)
        self.deadline_s = board.deadline_s or SILENT_AFTER_CYCLES * layout.feedback_cycle_s
        self._contacts, self._by_feedback = contacts
        self._counters = counters
        self._clock = clock
        self._faults = RateLimitedLog(log, clock)
        self.link: CanLink | None = None
        """The bus's link (sources.can's BusLink), set once the buses are built."""
        self.on_feedback: Callable[[], None] | None = None
        """Called when the feedback's contacts changed (the pool steps on it)."""
        self._closed: set[Contact] = set()
        self._heard: dict[str, frozenset[str]] | None = None
        self._heard_contacts: frozenset[Contact] | None = None
        self.heard_at: float | None = None
        """When the last well-formed feedback frame was read (the station's clock)."""
        self._silent = False
        self._asked_since: float | None = None
        """When the sequencer first asked: a board never heard is silent a deadline later."""
        self.first_heard = asyncio.Event()
        """Set by the board's first well-formed feedback."""

    def listener(self) -> tuple[int, Listener]:
        """The feedback's identifier and the router's listener for it."""
        return self.codec.feedback_id, Listener(f"matrix-{self.pool_name}", self.on_frame)

    # --- MatrixDriver ---------------------------------------------------------------------------

    def command(self, bank: str, evse_id: str, closed: bool) -> None:
        contact = self._contacts.get((bank, evse_id))
        if contact is None:
            return  # no contactor there: nothing to switch (the topology has none)
        (self._closed.add if closed else self._closed.discard)(contact)
        self.send_command()

    def feedback(self) -> Mapping[str, frozenset[str]] | None:
        """Per module, the EVSEs whose contactor reads closed; None before the board is heard
        and while it is silent (every contact unknown)."""
        now = self._clock()
        if self._asked_since is None:
            self._asked_since = now
        last = self.heard_at if self.heard_at is not None else self._asked_since
        if now - last > self.deadline_s:
            self._fell_silent(now - last)
            return None
        return self._heard

    # --- the wire -------------------------------------------------------------------------------

    def send_command(self) -> bool:
        """Every contact's command, in one frame; False when it did not go out (the link
        counts and logs why)."""
        if self.link is None:
            return False
        return self.link.send(self.codec.command_frame(self._closed))

    def on_frame(self, frame: can.Message, at: float) -> bool:
        """A frame of the feedback's identifier: its contacts, as of `at`. A malformed one is
        counted and logged (by the codec) and changes nothing: False."""
        closed = self.codec.decode_feedback(frame)
        if closed is None:
            self._counters.add(Counted.MATRIX_FRAMES_REJECTED, self.pool_name)
            return False
        if self._silent:
            self._silent = False
            log.info("event=matrix_board_heard pool=%s bus=%s", self.pool_name, self.bus_name)
        self.heard_at = at
        self.first_heard.set()
        if closed == self._heard_contacts:
            return True
        self._heard_contacts = closed
        self._heard = closed_by_bank(closed, self._by_feedback)
        if self.on_feedback is not None:
            self.on_feedback()
        return True

    def _fell_silent(self, for_s: float) -> None:
        if self._silent:
            return
        self._silent = True
        self._counters.add(Counted.MATRIX_BOARD_SILENT, self.pool_name)
        self._faults.error(
            ("silent", self.pool_name),
            "event=matrix_board_silent pool=%s bus=%s heard=%s silent_s=%.2f deadline_s=%.2f --"
            " every contact unknown: nothing closes, its modules fault after the contactor"
            " time limit",
            self.pool_name,
            self.bus_name,
            "never" if self.heard_at is None else "before",
            for_s,
            self.deadline_s,
        )

    async def heard(self) -> None:
        """Until the board's first feedback; a board unheard past its deadline is logged and
        counted silent (once) meanwhile."""
        self.feedback()  # a board never heard is silent a deadline from now
        while not self.first_heard.is_set():
            try:
                await asyncio.wait_for(self.first_heard.wait(), self.deadline_s)
            except TimeoutError:
                self.feedback()  # logs and counts the silence, once

    async def run(self) -> None:
        """Repeat the command every cycle (the board's own watchdog), until cancelled."""
        period = self.codec.command_cycle_s
        while True:
            self.send_command()
            await asyncio.sleep(period)
