"""A throwaway MQTT broker inside this process (amqtt), for the zero-setup demo and as the test
fallback where no mosquitto binary exists. Bound to loopback on a free port, never 0.0.0.0."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def embedded_broker(port: int | None = None) -> AsyncIterator[str]:
    """Run an amqtt broker for the duration of the block; yields its mqtt:// URL."""
    from amqtt.broker import Broker  # noqa: PLC0415 - only the demo and the fallback need it

    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
    port = port or free_port()
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
    )
    await broker.start()
    try:
        yield f"mqtt://{LOOPBACK}:{port}"
    finally:
        await broker.shutdown()
