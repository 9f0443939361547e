"""The baseline: a bare aiomqtt client that publishes every request straight back (TCP_NODELAY,
QoS 1), with no parsing or validation: the floor for a request/response through the broker, and
for memory and start-up the floor of any asyncio + aiomqtt process.

It imports nothing of csbridge (not even its broker-URL parser or socket option) on purpose:
csbridge.config would pull in pydantic and inflate the floor it is measured against.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from urllib.parse import urlsplit

import aiomqtt

QOS = 1
NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def serve(broker: str, request_topic: str, response_topic: str) -> None:
    url = urlsplit(broker)
    host, port = url.hostname or "127.0.0.1", url.port or 1883
    async with aiomqtt.Client(host, port, socket_options=[NODELAY]) as client:
        await client.subscribe(request_topic, qos=QOS)
        await client.publish(f"{request_topic}/ready", b"1", qos=QOS, retain=True)
        async for message in client.messages:
            payload = message.payload
            if isinstance(payload, bytes | bytearray):
                await client.publish(response_topic, payload, qos=QOS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", required=True)
    parser.add_argument("--request-topic", required=True)
    parser.add_argument("--response-topic", required=True)
    args = parser.parse_args()
    # SIGTERM ends it without a goodbye: the benchmark is done with it by then.
    asyncio.run(serve(args.broker, args.request_topic, args.response_topic))


if __name__ == "__main__":
    main()
