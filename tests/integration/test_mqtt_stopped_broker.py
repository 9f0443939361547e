"""A broker that stops answering (SIGSTOP) and resumes (SIGCONT): the link notices within two
keepalives, reconnects, and its stop leaves no "Future exception was never retrieved".

The error came from connects that timed out while the broker was stopped: their sockets stayed
open, the resumed broker accepted them, each took over the next session (same client id) and,
closed in turn, failed an aiomqtt future nobody awaited. The connect timeout is shortened here
so that such attempts pile up within a few seconds, as they do with the production timeouts
over a longer stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import csbridge.mqtt.link as link_module
from csbridge.config import MqttConfig
from csbridge.mqtt import LOOPBACK, free_port
from csbridge.mqtt.link import MqttLink, Subscription
from csbridge.testing.brokers import TEST_CONFIG, find_mosquitto, wait_for_port
from csbridge.testing.harness import wait_until

KEEPALIVE_S = 2
SHORT_CONNECT_TIMEOUT_S = 0.5
STOPPED_AFTER_NOTICE_S = 3.0
"""Long enough for several timed-out connects (each 0.5 s) while the broker is stopped."""


class PausableBroker:
    """mosquitto on the tests' config as a child of this test, which can SIGSTOP it."""

    def __init__(self, workdir: Path) -> None:
        binary = find_mosquitto()
        if binary is None:
            pytest.skip("needs a mosquitto binary to stop and continue")
        self.port = free_port()
        self.url = f"mqtt://{LOOPBACK}:{self.port}"
        config = workdir / "mosquitto.conf"
        config.write_text(
            TEST_CONFIG.read_text(encoding="utf-8") + f"\nlistener {self.port} {LOOPBACK}\n",
            encoding="utf-8",
        )
        self._log = (workdir / "mosquitto.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "-c", str(config)], stdout=self._log, stderr=self._log
        )
        wait_for_port(self.port, alive=lambda: self.process.poll() is None)

    def signal(self, number: signal.Signals) -> None:
        os.kill(self.process.pid, number)

    def close(self) -> None:
        self.signal(signal.SIGCONT)
        self.process.terminate()
        self.process.wait(timeout=5)
        self._log.close()


@pytest.fixture
def pausable(tmp_path: Path) -> Iterator[PausableBroker]:
    broker = PausableBroker(tmp_path)
    yield broker
    broker.close()


async def _nothing() -> None:
    return None


async def _ignore(topic: str, payload: bytes, retained: bool) -> None:
    return None


async def test_a_stopped_broker_is_noticed_and_leaves_no_unretrieved_future(
    pausable: PausableBroker,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(link_module, "CALL_TIMEOUT_S", SHORT_CONNECT_TIMEOUT_S)
    caplog.set_level(logging.WARNING, logger="asyncio")
    unhandled: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: unhandled.append(context))
    config = MqttConfig(
        broker=pausable.url, client_id=f"paused-{uuid.uuid4().hex[:8]}", keepalive_s=KEEPALIVE_S
    )
    link = MqttLink(config, [Subscription("paused/#")], on_message=_ignore, on_connected=_nothing)
    task = asyncio.create_task(link.run())
    try:
        await wait_until(link.connected.is_set, 5, "connected")
        pausable.signal(signal.SIGSTOP)
        noticed = await wait_until(
            lambda: not link.connected.is_set(), 2 * KEEPALIVE_S + 2, "the loss noticed"
        )
        # paho pings after one quiet keepalive and gives up after the next.
        assert noticed <= 2 * KEEPALIVE_S + 1.5
        failed = link.failed_connects
        await wait_until(
            lambda: link.failed_connects >= failed + 3,
            STOPPED_AFTER_NOTICE_S + 2,
            "connects timing out against the stopped broker",
        )
        pausable.signal(signal.SIGCONT)
        resumed = time.monotonic()
        await wait_until(lambda: link.connects == 2, 5, "reconnected after SIGCONT")
        # Nothing left over may take the new session over once the broker has caught up.
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: link.losses > 1, 1.0, "a ghost taking the session over")
        assert link.losses == 1, f"lost again {time.monotonic() - resumed:.1f} s after SIGCONT"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # An unretrieved exception is reported, to the loop's handler, as its future is
        # collected.
        gc.collect()
        loop.set_exception_handler(previous)
    assert unhandled == []
    never_retrieved = [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert never_retrieved == []
