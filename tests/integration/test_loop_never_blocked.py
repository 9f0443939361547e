"""Nothing csbridge does holds the event loop: an in-process station of examples/sim-station.toml
(its modules and IMD on virtual CAN buses, a password file read at every connect) goes through
start, a broker restart, a CAN bus closed under it and a stop with asyncio's debug mode timing
every callback, and none of its own takes 20 ms or more.

How a slow callback is told to be csbridge's: asyncio's warning names the handle it ran. For a
task step that is the task and its coroutine, with the file the coroutine is defined in; for a
plain callback, the function and its file. A file under the csbridge package makes it csbridge's
(a task of ours that spent its time inside aiomqtt or python-can counts as ours too); one under
tests/ is this test's own; anything else (asyncio, aiomqtt, paho, python-can) is theirs, listed
in the failure message should csbridge's fail, never counted against it.

What counts is the callback's own time: its wall time less what the machine took from it, the
time the loop's thread waited for a CPU (the kernel's run-queue wait, /proc/thread-self/schedstat)
and the process's garbage collections meanwhile. On a few shared cores a callback of 1 ms can
otherwise take 40 (seen here: aiomqtt's own callbacks and a 142 ms task step that only creates
tasks). A join, a sleep or a file read is time the thread itself spent blocked: it counts.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import csbridge
import tests
from csbridge.config import Config
from csbridge.service.station import Station
from csbridge.support.resources import example_config
from csbridge.testing.brokers import MosquittoBroker
from csbridge.testing.harness import (
    isolated_config,
    stop_station,
    unique_prefix,
    wait_for_station,
    wait_until,
)
from tests.conftest import WIRE_DC

SLOW_S = 0.02
PROBE_S = 0.03
"""A deliberate hold of the loop by the test itself: proves the detection is live."""
PACKAGE_DIR = str(Path(csbridge.__file__).resolve().parent)
TESTS_DIR = str(Path(tests.__file__).resolve().parent)
FIRST_SOURCE = re.compile(r"(/[^\s:<>()]+\.py):\d+")
UPDATE = ("outbound_published", "cs_status_and_limits/update")
CAN_BUS = "sim-can0"
READY_S = 10.0


@dataclass(frozen=True, slots=True)
class SlowCallback:
    handle: str
    seconds: float
    phase: str
    waited_for_cpu_s: float
    collecting_s: float

    @property
    def own_s(self) -> float:
        return self.seconds - self.waited_for_cpu_s - self.collecting_s

    @property
    def owner(self) -> str:
        """csbridge, test, or the third party's package (aiomqtt, can, asyncio, ...)."""
        found = FIRST_SOURCE.search(self.handle)
        if found is None:
            return "unknown"
        path = found.group(1)
        if path.startswith(PACKAGE_DIR):
            return "csbridge"
        if path.startswith(TESTS_DIR):
            return "test"
        parts = Path(path).parts
        if "site-packages" in parts:
            return parts[parts.index("site-packages") + 1]
        return Path(path).parent.name  # the standard library's package: asyncio, ...


class TakenFromTheLoop:
    """Around every callback (asyncio's Handle._run, which debug mode times): how long the
    loop's thread waited for a CPU, and how long garbage collections ran."""

    def __init__(self) -> None:
        self._schedstat: int | None = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        self._collecting_since = 0.0
        self._collected_s = 0.0
        self.last_waited_s = 0.0
        self.last_collecting_s = 0.0

    def _waited_s(self) -> float:
        # "<ns on a CPU> <ns waiting on a run queue> <slices>"
        if self._schedstat is None:  # closed during the callback that uninstalled us
            return 0.0
        return int(os.pread(self._schedstat, 128, 0).split()[1]) / 1e9

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        del info
        if phase == "start":
            self._collecting_since = time.perf_counter()
        else:
            self._collected_s += time.perf_counter() - self._collecting_since

    def wrap(self, run: Callable[[asyncio.Handle], None]) -> Callable[[asyncio.Handle], None]:
        def timed_run(handle: asyncio.Handle) -> None:
            waited, collected = self._waited_s(), self._collected_s
            try:
                run(handle)
            finally:
                self.last_waited_s = self._waited_s() - waited
                self.last_collecting_s = self._collected_s - collected

        return timed_run

    @contextmanager
    def installed(self) -> Iterator[None]:
        run = asyncio.Handle._run  # noqa: SLF001 - every callback the loop runs goes through it
        asyncio.Handle._run = self.wrap(run)  # type: ignore[method-assign,assignment]  # noqa: SLF001
        gc.callbacks.append(self._on_collection)
        try:
            yield
        finally:
            gc.callbacks.remove(self._on_collection)
            asyncio.Handle._run = run  # type: ignore[method-assign]  # noqa: SLF001
            if self._schedstat is not None:
                os.close(self._schedstat)
                self._schedstat = None


@dataclass
class SlowCallbacks(logging.Handler):
    """asyncio's "Executing <handle> took N seconds" warnings, by phase of the test, with what
    the machine took from each."""

    taken: TakenFromTheLoop
    phase: str = "start"
    seen: list[SlowCallback] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(logging.WARNING)

    def __hash__(self) -> int:
        return id(self)

    def emit(self, record: logging.LogRecord) -> None:
        if not record.getMessage().startswith("Executing "):
            return
        match record.args:  # asyncio's two: the handle, formatted, and the seconds it took
            case (str() as handle, float() as seconds):
                self.seen.append(
                    SlowCallback(
                        handle,
                        seconds,
                        self.phase,
                        self.taken.last_waited_s,
                        self.taken.last_collecting_s,
                    )
                )

    def by(self, owner: str) -> list[SlowCallback]:
        """`owner`'s callbacks that took SLOW_S or more of their own."""
        return [slow for slow in self.seen if slow.owner == owner and slow.own_s >= SLOW_S]


@contextmanager
def slow_callbacks(loop: asyncio.AbstractEventLoop) -> Iterator[SlowCallbacks]:
    """The loop in debug mode, reporting every callback of SLOW_S or more."""
    taken = TakenFromTheLoop()
    watcher = SlowCallbacks(taken)
    asyncio_log = logging.getLogger("asyncio")
    level, duration = asyncio_log.level, loop.slow_callback_duration
    asyncio_log.addHandler(watcher)
    asyncio_log.setLevel(logging.WARNING)
    loop.slow_callback_duration = SLOW_S
    loop.set_debug(True)
    try:
        with taken.installed():
            yield watcher
    finally:
        loop.set_debug(False)
        loop.slow_callback_duration = duration
        asyncio_log.setLevel(level)
        asyncio_log.removeHandler(watcher)


def _hold_the_loop(seconds: float) -> None:
    """Busy, not asleep: the callback the detection must catch."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


def _config_with_password(broker: MosquittoBroker, password_file: Path) -> Config:
    """sim-station.toml on this test's broker and topics, logging in with a password file
    (the test broker lets anyone in: what counts is that the file is read at every connect)."""
    config = isolated_config(
        example_config("sim-station.toml"), broker.url, unique_prefix(), settle_s=0.2
    )
    raw = config.model_dump(mode="json", exclude_none=True)
    raw["mqtt"].update(username="csbridge", password_file=str(password_file))
    return Config.model_validate(raw)


def _stack_full(station: Station) -> bool:
    return bool(station.engine.entries.get(WIRE_DC)["dc"]["max_current"] == 240.0)


def _reader_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name.startswith("can-rx-")}


async def test_start_reconnect_can_failure_and_stop_never_hold_the_loop(
    own_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    password_file = tmp_path / "mqtt-password"
    password_file.write_text("not-checked-by-this-broker\n", encoding="utf-8")
    password_file.chmod(0o600)
    config = _config_with_password(own_mosquitto, password_file)
    threads_before = _reader_threads()
    # Built before the clock starts: in `csbridge run` too it is built before anything serves.
    station = Station(config)
    counters = station.engine.counters
    loop = asyncio.get_running_loop()
    with slow_callbacks(loop) as watched:
        loop.call_soon(_hold_the_loop, PROBE_S)
        task = asyncio.create_task(station.run(), name="station")
        try:
            await wait_for_station(
                station, task, lambda s: s.bridge.link.connected.is_set(), READY_S, "connect"
            )
            await wait_for_station(station, task, _stack_full, READY_S, "the full stack")
            await wait_until(lambda: counters.get(*UPDATE) >= 1, READY_S, "the first update")

            watched.phase = "reconnect"
            updates = counters.get(*UPDATE)
            await asyncio.to_thread(own_mosquitto.kill)
            await asyncio.to_thread(own_mosquitto.start)
            await wait_for_station(
                station, task, lambda s: s.bridge.link.connects >= 2, READY_S, "the reconnect"
            )
            await wait_until(lambda: counters.get(*UPDATE) > updates, READY_S, "a new update")

            watched.phase = "can failure"
            link = station.buses.links[CAN_BUS]
            bus = link.bus
            assert bus is not None
            bus.shutdown()  # the virtual bus closed under the station, as a pulled adapter
            await wait_until(lambda: counters.get("can_bus_reopened", CAN_BUS) == 1, READY_S)
            assert counters.get("can_bus_failed", CAN_BUS) == 1
            await wait_for_station(station, task, _stack_full, READY_S, "the stack back")
        finally:
            watched.phase = "stop"
            await stop_station(task)
    leftover = _reader_threads() - threads_before
    await wait_until(lambda: not any(t.is_alive() for t in leftover), 2, "reader threads gone")

    probe = [slow for slow in watched.seen if slow.owner == "test" and slow.seconds >= PROBE_S]
    assert probe, f"the detection did not see the test's own {PROBE_S} s hold: {watched.seen}"
    theirs = [slow for slow in watched.seen if slow.owner not in ("csbridge", "test")]
    print(*watched.seen, sep="\n")  # with -s: every slow callback, whose, and why
    assert watched.by("csbridge") == [], f"csbridge held the loop; the others': {theirs}"
