"""Brokers for tests and benchmarks: Debian's mosquitto as a child process, or, where it is not
installed, amqtt in a thread of its own (so it outlives each test's event loop)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from csbridge.mqtt import LOOPBACK, embedded_broker, free_port

TEST_CONFIG = Path(__file__).with_name("mosquitto-test.conf")
READY_TIMEOUT_S = 10.0


class Broker(Protocol):
    url: str
    kind: str

    def stop(self) -> None: ...


def find_mosquitto() -> str | None:
    """Debian installs it in /usr/sbin, which is not on an ordinary user's PATH."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


class MosquittoExitedError(RuntimeError):
    """mosquitto ended while it was expected to start listening (a config it refuses)."""


def wait_for_port(
    port: int, timeout_s: float = READY_TIMEOUT_S, alive: Callable[[], bool] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if alive is not None and not alive():
            raise MosquittoExitedError(f"the broker for {LOOPBACK}:{port} exited")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {LOOPBACK}:{port}") from None
            time.sleep(0.02)


class MosquittoBroker:
    """A mosquitto child process on a fixed free port; can be killed and started again."""

    kind = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        binary: str | None = None,
        port: int | None = None,
        *,
        config_text: str | None = None,
        extra_ports: tuple[int, ...] = (),
    ) -> None:
        """`config_text`: a whole mosquitto.conf of the caller's (it must listen on `port` and
        on every one of `extra_ports`); default the test config on `port`."""
        found = binary or find_mosquitto()
        if found is None:
            raise FileNotFoundError("mosquitto is not installed")
        self.binary = found
        self.port = port or free_port()
        self.ports = (self.port, *extra_ports)
        self.url = f"mqtt://{LOOPBACK}:{self.port}"
        self.config_path = workdir / f"mosquitto-{self.port}.conf"
        self.log_path = workdir / f"mosquitto-{self.port}.log"
        if config_text is None:
            extra = f"\nlistener {self.port} {LOOPBACK}\n"
            config_text = TEST_CONFIG.read_text(encoding="utf-8") + extra
        self.config_path.write_text(config_text, encoding="utf-8")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait for every listener; MosquittoExitedError if it refuses its config."""
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)], stdout=log, stderr=log
            )
        process = self._process
        try:
            for port in self.ports:
                wait_for_port(port, alive=lambda: process.poll() is None)
        except MosquittoExitedError:
            self._process = None
            raise
        except TimeoutError:
            self.stop()
            raise

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        """kill -9: no goodbye to the clients, as in a crash."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()
        self._process = None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None


class ThreadedEmbeddedBroker:
    """amqtt on its own event loop in a daemon thread."""

    kind = "amqtt"

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"mqtt://{LOOPBACK}:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedded-broker", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(READY_TIMEOUT_S):
            raise TimeoutError("embedded broker did not start")
        wait_for_port(self.port)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with embedded_broker(self.port):
            self._ready.set()
            await self._stop.wait()

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=5)


def mosquitto_required() -> bool:
    return os.environ.get("CSBRIDGE_REQUIRE_MOSQUITTO", "") not in ("", "0")
