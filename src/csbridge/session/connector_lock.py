"""The connector lock: Josev's cs_connector (lock, unlock, status) answered from the board's
feedback, and every lock or unlock the session commands watched until the board confirms it.

A lock not confirmed within LOCK_CONFIRM_S is an `error` and a hardware_fault; the connector is
never unlocked while the contactors are closed, energy may flow, or the output is above 60 V."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from csbridge.messages import LockStatus
from csbridge.sources import BoardReading, LockState

log = logging.getLogger("csbridge.session")

LOCK_CONFIRM_S = 1.0
"""How long the board's lock feedback may take to confirm a command (the actuator's travel)."""
POLL_S = 0.02

STATUS_OF: dict[LockState, LockStatus] = {
    LockState.LOCKED: "locked",
    LockState.UNLOCKED: "unlocked",
    LockState.FAULT: "error",
    LockState.MOVING: "unknown",
}


def lock_status(board: BoardReading | None) -> LockStatus:
    """The lock as Josev's cs_connector names it (unknown: no feedback, or moving)."""
    if board is None or board.lock is None:
        return "unknown"
    return STATUS_OF[board.lock]


async def confirmed(
    read: Callable[[], BoardReading | None], wanted: LockState, timeout_s: float = LOCK_CONFIRM_S
) -> LockStatus:
    """The lock's status once the board reports `wanted`, or `error` when it does not within
    `timeout_s` (a fault it reports ends the wait at once); `unknown` for a board without lock
    feedback."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        board = read()
        if board is not None and board.lock is None:
            return "unknown"
        if board is not None and board.lock is wanted:
            return STATUS_OF[wanted]
        if board is not None and board.lock is LockState.FAULT:
            return "error"
        if loop.time() >= deadline:
            return "error"
        await asyncio.sleep(POLL_S)
