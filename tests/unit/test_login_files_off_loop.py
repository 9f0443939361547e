"""The password and TLS files are read at every connect (renewed ones apply without a restart),
but off the event loop: a file that is slow to read (here a FIFO whose writer comes late, as a
stalled network or flash filesystem would be) holds up the connect, never the loop."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import trustme

from csbridge.config import MqttConfig
from csbridge.mqtt.link import MqttLink
from csbridge.testing.harness import wait_until

PASSWORD = "s3cret-from-a-slow-file"  # noqa: S105 - a test's own throwaway
LOOP_TURNS = 20
"""Passes of the loop that must run while the file waits for its writer."""
WRITER_SAFETY_S = 5.0
"""Should the file be read on the loop after all, its writer still comes (and the test fails
instead of hanging)."""


def _write_when_read(fifo: Path, text: str) -> bool:
    """Hand `text` to a reader that has the FIFO open; False when nobody has it open yet."""
    try:
        descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ENXIO:  # no reader yet
            return False
        raise
    try:
        os.write(descriptor, text.encode())
    finally:
        os.close(descriptor)
    return True


@contextlib.contextmanager
def _late_writer(fifo: Path, text: str) -> Iterator[None]:
    done = threading.Event()

    def rescue() -> None:
        while not done.wait(0.05):
            if _write_when_read(fifo, text):
                return

    timer = threading.Timer(WRITER_SAFETY_S, rescue)
    timer.start()
    try:
        yield
    finally:
        done.set()
        timer.cancel()


async def _loop_turns_while_pending(creating: asyncio.Task[object]) -> int:
    turns = 0
    for _ in range(LOOP_TURNS):
        await asyncio.sleep(0)
        if creating.done():
            break
        turns += 1
    return turns


async def _written(fifo: Path, text: str) -> None:
    await wait_until(lambda: _write_when_read(fifo, text), 5, "the file's reader")


async def test_a_slow_password_file_does_not_hold_the_loop(tmp_path: Path) -> None:
    fifo = tmp_path / "mqtt-password"
    os.mkfifo(fifo, 0o600)
    config = MqttConfig(broker="mqtt://127.0.0.1:1883", username="csbridge", password_file=fifo)
    link = MqttLink(config, (), on_message=_ignore, on_connected=_nothing)
    with _late_writer(fifo, PASSWORD + "\n"):
        creating = asyncio.create_task(link._new_client())  # noqa: SLF001 - the connect's first step
        assert await _loop_turns_while_pending(creating) == LOOP_TURNS
        await _written(fifo, PASSWORD + "\n")
        client = await creating
    assert client._client._password == PASSWORD.encode()  # noqa: SLF001 - what paho will send


async def test_a_slow_ca_file_does_not_hold_the_loop(tmp_path: Path) -> None:
    ca = trustme.CA()
    fifo = tmp_path / "ca.pem"
    os.mkfifo(fifo, 0o600)
    config = MqttConfig(broker="mqtts://127.0.0.1:8883", ca_file=fifo)
    link = MqttLink(config, (), on_message=_ignore, on_connected=_nothing)
    pem = ca.cert_pem.bytes().decode()
    with _late_writer(fifo, pem):
        creating = asyncio.create_task(link._new_client())  # noqa: SLF001
        assert await _loop_turns_while_pending(creating) == LOOP_TURNS
        await _written(fifo, pem)
        client = await creating
    context = client._client._ssl_context  # noqa: SLF001 - the context paho will use
    assert context is not None
    # The CA from the file and nothing else (a CA file replaces the system's store).
    subjects = [str(cert["subject"]) for cert in context.get_ca_certs()]
    assert len(subjects) == 1
    assert "trustme" in subjects[0]


async def test_an_unreadable_password_file_is_a_failed_connect_not_a_crash(
    tmp_path: Path,
) -> None:
    config = MqttConfig(
        broker="mqtt://127.0.0.1:1883", username="csbridge", password_file=tmp_path / "missing"
    )
    link = MqttLink(config, (), on_message=_ignore, on_connected=_nothing)
    assert await link._session() is False  # noqa: SLF001 - one connect attempt
    assert link.failed_connects == 1
    assert link.connects == 0


async def _ignore(topic: str, payload: bytes, retained: bool) -> None:
    del topic, payload, retained


async def _nothing() -> None:
    return None
