"""Feeds systemd's watchdog from the event loop, and only while the bridge makes progress.

A ping proves more than a live process: it is sent by a task on the event loop (so a blocked
loop stops it) and only while every watched part (the MQTT link, each CAN bus's supervisor)
has gone round recently. A stuck part withholds the ping, and systemd restarts the service
after WatchdogSec, which is the safe side: the modules stop themselves when their commands stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from csbridge.service.sd_notify import SystemdNotifier
from csbridge.support import Counted, Counters, RateLimitedLog

log = logging.getLogger("csbridge.watchdog")

MIN_STALL_S = 10.0
"""A disconnected link may spend a connect timeout (5 s) plus the backoff cap (1.5 s) between
attempts: a part is stalled only past this, however short WatchdogSec is."""


@dataclass(frozen=True, slots=True)
class Watched:
    name: str
    stalled_for: Callable[[float], float]


def stalled(parts: Sequence[Watched], now: float, limit_s: float) -> list[str]:
    return [part.name for part in parts if part.stalled_for(now) > limit_s]


async def feed_watchdog(
    notifier: SystemdNotifier,
    parts: Sequence[Watched],
    counters: Counters,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Ping every half WatchdogSec while nothing is stalled; until cancelled. Does nothing when
    systemd asked for no watchdog."""
    if notifier.watchdog_s is None:
        return
    interval_s = notifier.watchdog_s / 2
    limit_s = max(notifier.watchdog_s, MIN_STALL_S)
    faults = RateLimitedLog(log, clock)
    while True:
        stuck = stalled(parts, clock(), limit_s)
        if stuck:
            counters.add(Counted.WATCHDOG_WITHHELD, ",".join(stuck))
            faults.error(
                "withheld",
                "event=watchdog_withheld stalled=%s for_more_than_s=%.0f -- systemd will restart",
                ",".join(stuck),
                limit_s,
            )
        elif notifier.notify("WATCHDOG=1"):
            counters.add(Counted.WATCHDOG_PINGS)
        await asyncio.sleep(interval_s)
