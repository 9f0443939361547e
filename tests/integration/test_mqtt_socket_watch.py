"""The MQTT socket's reader and writer as the event loop watches them, on a real broker.

aiomqtt registered a writer through call_soon_threadsafe but removed it at once, so a write
asked for just before paho closed the socket in the same loop pass was registered after the
close: `OSError: [Errno 9] Bad file descriptor` from add_writer, logged with a traceback by the
loop (seen in 1 of 6 SIGTERMs of `csbridge run`). Every test but the writer's removal fails on
aiomqtt's own callbacks; that one guards against a writer left behind.

The tests act as paho does (its socket close, its callbacks from its connect thread) and look
at the loop's selector: private names of paho, aiomqtt and asyncio, on purpose.
"""

# ruff: noqa: SLF001

from __future__ import annotations

import asyncio
import selectors
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from csbridge.config import broker_address
from csbridge.mqtt.reading import BatchReadingClient
from csbridge.testing.brokers import Broker
from csbridge.testing.harness import wait_until

PASSES = 20
"""Loop passes for anything scheduled to run: far more than the one or two it takes."""


@pytest_asyncio.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What the running loop's exception handler is given while the test runs."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield errors
    loop.set_exception_handler(previous)


@pytest_asyncio.fixture
async def client(broker: Broker) -> AsyncIterator[BatchReadingClient]:
    host, port, _ = broker_address(broker.url)
    connected = BatchReadingClient(host, port, identifier=f"watch-{uuid.uuid4().hex[:12]}")
    await connected.__aenter__()
    yield connected
    if connected._client.socket() is not None:
        await connected.__aexit__(None, None, None)


async def _passes() -> None:
    for _ in range(PASSES):
        await asyncio.sleep(0)


def _watched(fileno: int) -> int:
    """The events the running loop watches `fileno` for (0: not watched)."""
    selector: selectors.BaseSelector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
    key = selector.get_map().get(fileno)
    return 0 if key is None else key.events


def _paho_socket(client: BatchReadingClient) -> Any:
    sock = client._client.socket()
    assert sock is not None
    return sock


async def test_a_write_asked_for_just_before_the_connection_closes_is_not_registered(
    client: BatchReadingClient, loop_errors: list[dict[str, Any]]
) -> None:
    paho = client._client
    fileno = _paho_socket(client).fileno()
    # One pass: a publish asks for the writer, then the connection ends (paho closes the
    # socket as it does on a read that finds the connection reset).
    paho.publish("csbridge-test/watch", b"1", qos=1)
    paho._sock_close()
    await _passes()
    assert loop_errors == []
    assert _watched(fileno) == 0


async def test_a_registration_from_another_thread_after_the_close_is_dropped(
    client: BatchReadingClient, loop_errors: list[dict[str, Any]]
) -> None:
    """paho's connect runs in an executor thread and registers from there: a socket closed
    before the loop gets to it (a connect cancelled as the service stops) is left alone."""
    paho = client._client
    sock = _paho_socket(client)
    fileno = sock.fileno()
    paho._sock_close()

    def as_paho_from_its_thread() -> None:
        client._on_socket_open(paho, None, sock)
        client._on_socket_register_write(paho, None, sock)

    thread = threading.Thread(target=as_paho_from_its_thread)
    thread.start()
    await asyncio.to_thread(thread.join)
    await _passes()
    assert loop_errors == []
    assert _watched(fileno) == 0


async def test_the_writer_is_removed_once_everything_is_written(
    client: BatchReadingClient, loop_errors: list[dict[str, Any]]
) -> None:
    """No writer is left behind for paho to believe removed: the loop would call it on every
    pass, the socket being writable, for as long as nothing else is published."""
    fileno = _paho_socket(client).fileno()
    infos = [client._client.publish("csbridge-test/watch", b"x" * 100, qos=1) for _ in range(50)]
    await wait_until(lambda: all(info.is_published() for info in infos), 5.0, "every PUBACK")
    await _passes()
    assert _watched(fileno) == selectors.EVENT_READ
    assert loop_errors == []


async def test_an_abandoned_connect_leaves_no_socket_open(
    broker: Broker, loop_errors: list[dict[str, Any]]
) -> None:
    """A client abandoned before its connect completes: the socket paho opens afterwards (its
    connect still running in the executor thread) is reset at once, never read."""
    host, port, _ = broker_address(broker.url)
    client = BatchReadingClient(host, port, identifier=f"ghost-{uuid.uuid4().hex[:12]}", timeout=1)
    client.abandon()
    connecting = asyncio.create_task(client.__aenter__())
    await asyncio.wait({connecting}, timeout=5.0)
    assert connecting.done()
    assert connecting.exception() is not None  # never connected
    await _passes()
    assert client._client.socket() is None
    assert loop_errors == []


async def test_a_socket_closed_from_another_thread_is_no_longer_watched(
    client: BatchReadingClient, loop_errors: list[dict[str, Any]]
) -> None:
    """paho closing its socket outside the loop's thread (its connect thread; a client
    collected there): the watch is removed on the loop's thread, by the number the socket had."""
    fileno = _paho_socket(client).fileno()
    assert _watched(fileno) & selectors.EVENT_READ
    await asyncio.to_thread(client._client._sock_close)
    await _passes()
    assert _watched(fileno) == 0
    assert loop_errors == []
