"""The baseline: a bare aiomqtt client that publishes every request straight back (TCP_NODELAY,
QoS 1), with no parsing or validation: the floor for a request/response through the broker."""

from __future__ import annotations

import argparse
import asyncio

import aiomqtt

from csbridge.config import broker_address
from csbridge.mqtt_link import QOS, TCP_NODELAY_OPTION


async def serve(broker: str, request_topic: str, response_topic: str) -> None:
    host, port, _ = broker_address(broker)
    async with aiomqtt.Client(host, port, socket_options=[TCP_NODELAY_OPTION]) as client:
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
    asyncio.run(serve(args.broker, args.request_topic, args.response_topic))


if __name__ == "__main__":
    main()
