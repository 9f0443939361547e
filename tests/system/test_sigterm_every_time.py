"""`csbridge run` stops cleanly on every SIGTERM: 50 starts of the example station against a real
mosquitto, each stopped once it is ready, each exit 0 within 2 s with no traceback and no
`Bad file descriptor` (issue 19 saw one in 6 SIGTERMs: aiomqtt's deferred add_writer on a
socket closed in the same loop pass, tests/integration/test_mqtt_socket_watch.py).

A second test stops it during its start-up instead (the station being built, the broker being
connected and subscribed to): there the stop once hung for good, the SUBACK and the
cancellation arriving together (asyncio.wait_for on Python 3.11 then drops the cancellation).

The runs go a few at a time, each with a client id and state folder of its own, so that they
share the broker without taking over each other's session.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from csbridge.support.resources import example_config
from csbridge.testing.brokers import MosquittoBroker

RUNS = 50
EARLY_RUNS = 20
AT_ONCE = 3
READY = b"event=ready"
STARTED = b"event=start "
"""Logged once the station is built, just before it connects: the early stops follow it by up
to EARLY_JITTER_S."""
EARLY_JITTER_S = 0.15
STOP_BOUND_S = 2.0
READY_WITHIN_S = 60.0
"""Generous: on two loaded cores the imports alone take seconds."""
KILL_AFTER_S = 10.0

pytestmark = pytest.mark.soak


@dataclass(frozen=True)
class Stop:
    run: int
    reached: bool
    """It logged the line it was to be stopped after."""
    code: int | None
    stopped_in_s: float
    output: str

    def problems(self) -> list[str]:
        found = [] if self.reached else ["never logged the line to stop it after"]
        if self.code != 0:
            found.append(f"exit code {self.code}")
        if self.stopped_in_s >= STOP_BOUND_S:
            found.append(f"stopped in {self.stopped_in_s:.2f} s")
        for sign in ("Traceback", "Bad file descriptor", "Exception in callback"):
            if sign in self.output:
                found.append(sign)
        if "event=stopped why=signal" not in self.output:
            found.append("no event=stopped")
        return found


def _config_for(run: int, folder: Path) -> Path:
    """The example station with a client id and state folder of this run's own."""
    text = example_config("sim-station.toml").read_text(encoding="utf-8")
    text = text.replace('client_id = "csbridge-sim"', f'client_id = "csbridge-sigterm-{run}"')
    state = folder / f"state-{run}"
    state.mkdir()
    text = text.replace("[station]\n", f'[station]\nstate_dir = "{state}"\n', 1)
    path = folder / f"station-{run}.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def _start_and_stop(
    run: int, config: Path, broker: str, after: bytes = READY, jitter_s: float = 0.0
) -> Stop:
    """Start `csbridge run`, SIGTERM it once it has logged `after` (and up to `jitter_s`
    more), and see how it ends."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csbridge",
        "run",
        "--config",
        str(config),
        "--broker",
        broker,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    seen: list[bytes] = []
    try:
        async with asyncio.timeout(READY_WITHIN_S):
            while not seen or after not in seen[-1]:
                line = await process.stdout.readline()
                if not line:
                    break
                seen.append(line)
        reached = bool(seen) and after in seen[-1]
        await asyncio.sleep(random.uniform(0, jitter_s))  # a moment of the start-up
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            rest, _ = await asyncio.wait_for(process.communicate(), KILL_AFTER_S)
        except TimeoutError:  # a stop that hangs: killed, and reported with the others
            rest = b"(still running after the SIGTERM: killed)"
        stopped_in = time.monotonic() - sent
    finally:
        code = process.returncode
        if code is None:
            process.kill()
            await process.wait()
    output = b"".join([*seen, rest]).decode(errors="replace")
    return Stop(run, reached, code, stopped_in, output)


async def test_run_stops_cleanly_on_every_one_of_fifty_sigterms(
    own_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    slots = asyncio.Semaphore(AT_ONCE)

    async def one(run: int) -> Stop:
        async with slots:
            return await _start_and_stop(run, _config_for(run, tmp_path), own_mosquitto.url)

    _assert_clean(await asyncio.gather(*(one(run) for run in range(RUNS))))


async def test_run_stops_cleanly_on_a_sigterm_during_its_start_up(
    own_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    slots = asyncio.Semaphore(AT_ONCE)

    async def one(run: int) -> Stop:
        async with slots:
            config = _config_for(run, tmp_path)
            return await _start_and_stop(
                run, config, own_mosquitto.url, after=STARTED, jitter_s=EARLY_JITTER_S
            )

    _assert_clean(await asyncio.gather(*(one(run) for run in range(EARLY_RUNS))))


def _assert_clean(stops: list[Stop]) -> None:
    bad = [stop for stop in stops if stop.problems()]
    report = "\n".join(
        f"run {stop.run}: {', '.join(stop.problems())}\n{stop.output[-2000:]}" for stop in bad
    )
    assert not bad, f"{len(bad)} of {len(stops)} stops were not clean:\n{report}"
    assert max(stop.stopped_in_s for stop in stops) < STOP_BOUND_S
