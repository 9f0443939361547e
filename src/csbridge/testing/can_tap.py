"""A test's own end of the station's CAN buses: inject frames, sniff what the station and the
simulated devices send.

On python-can's virtual interface every bus opened on a channel hears what the others on that
channel send (not its own frames), so a tap is just one more node on the wire.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import can

from csbridge.config import BusConfig, Config


class CanTap:
    """One node on one of the station's buses."""

    def __init__(self, config: BusConfig) -> None:
        self.name = config.name
        self.channel = config.interface_channel
        self.bus: can.BusABC = can.Bus(channel=self.channel, interface=config.interface)

    def send(self, frame: can.Message) -> None:
        """Put a frame on the wire, as another node would."""
        self.bus.send(frame)

    async def recv(self, timeout: float = 1.0) -> can.Message | None:
        """The next frame from anyone else on the bus, or None after `timeout` seconds. The
        read blocks in a worker thread so the station keeps running meanwhile."""
        frame: can.Message | None = await asyncio.to_thread(self.bus.recv, timeout)
        return frame

    async def collect(
        self,
        duration: float,
        predicate: Callable[[can.Message], bool] = lambda _: True,
        *,
        until: Callable[[list[can.Message]], bool] | None = None,
    ) -> list[can.Message]:
        """Every frame seen for `duration` seconds that satisfies `predicate`. With `until`,
        stops as soon as `until(found)` holds: `duration` is then a timeout, after which the
        test asserts on what did come (and says what was missing)."""
        found: list[can.Message] = []
        deadline = time.monotonic() + duration
        while (left := deadline - time.monotonic()) > 0:
            if until is not None and until(found):
                break
            frame = await self.recv(min(left, 0.2))
            if frame is not None and predicate(frame):
                found.append(frame)
        return found

    def drain(self) -> int:
        """Drop the frames queued so far (a tap opened long ago holds every frame since); how
        many were dropped."""
        dropped = 0
        while self.bus.recv(0) is not None:
            dropped += 1
        return dropped

    def close(self) -> None:
        self.bus.shutdown()


class StationCan:
    """The buses of one station config, tapped on demand and all closed by `close()`."""

    def __init__(self, config: Config) -> None:
        self._buses = {bus.name: bus for bus in config.bus}
        self._taps: dict[str, CanTap] = {}

    @property
    def names(self) -> list[str]:
        """The config's [[bus]] names, in file order."""
        return list(self._buses)

    def tap(self, name: str | None = None) -> CanTap:
        """A tap on the bus named `name` in the config (None: the first [[bus]]); the same
        tap each time for the same bus."""
        if not self._buses:
            raise LookupError("the station config has no [[bus]]")
        chosen = name if name is not None else next(iter(self._buses))
        if chosen not in self._buses:
            raise LookupError(f"no [[bus]] named {chosen!r}; the config has {self.names}")
        if chosen not in self._taps:
            self._taps[chosen] = CanTap(self._buses[chosen])
        return self._taps[chosen]

    def close(self) -> None:
        for tap in self._taps.values():
            tap.close()
        self._taps.clear()
