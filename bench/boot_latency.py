"""Boot request to response through mosquitto at QoS 1: the bridge against a bare echo responder.

Both responders run as processes of their own, driven by the same requester, in interleaved
rounds so machine noise falls on both alike. The bridge serves examples/sim-station.toml, its
simulated devices talking on their virtual buses meanwhile, as a station's would: the answer
is timed with the bridge at work, not idle. Goal: bridge p50 / echo p50 <= 1.5.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import aiomqtt

from bench.common import (
    BRIDGE,
    ECHO,
    bridge_args,
    broker,
    mqtt_client,
    print_latency_table,
    python_process,
    round_trips,
    summary_dict,
    summary_row,
)
from bench.stats import Summary
from csbridge.mqtt.link import QOS
from csbridge.support.resources import example_config

GOAL_P50_RATIO = 1.5


def echo_args(url: str, request_topic: str, response_topic: str) -> list[str]:
    return [
        "-m",
        "bench.echo_responder",
        "--broker",
        url,
        "--request-topic",
        request_topic,
        "--response-topic",
        response_topic,
    ]


async def wait_retained(client: aiomqtt.Client, topic: str, expected: bytes) -> None:
    await client.subscribe(topic, qos=QOS)
    async with asyncio.timeout(15):
        async for message in client.messages:
            if message.topic.value == topic and message.payload == expected:
                await client.unsubscribe(topic)
                return


async def measure(
    url: str, station: Path, rounds: int, per_round: int, warmup: int
) -> dict[str, Summary]:
    bridge, echo = BRIDGE, ECHO
    samples: dict[str, list[float]] = {bridge.name: [], echo.name: []}
    with (
        python_process(*bridge_args(station, url)),
        python_process(*echo_args(url, echo.request_topic, echo.response_topic)),
    ):
        async with mqtt_client(url) as client:
            await wait_retained(client, "csbridge/status", b"online")
            await wait_retained(client, f"{echo.request_topic}/ready", b"1")
            for target in (bridge, echo):
                await client.subscribe(target.response_topic, qos=QOS)
                await round_trips(client, target.request_topic, target.response_topic, warmup)
            for _ in range(rounds):
                for target in (bridge, echo):
                    samples[target.name] += await round_trips(
                        client, target.request_topic, target.response_topic, per_round
                    )
            await client.publish(f"{echo.request_topic}/ready", b"", qos=QOS, retain=True)
    return {name: Summary.of(values) for name, values in samples.items()}


def run(quick: bool) -> dict[str, Any]:
    rounds, per_round, warmup = (4, 125, 50) if quick else (10, 300, 200)
    with tempfile.TemporaryDirectory() as tmp, broker(Path(tmp)) as (url, broker_kind):
        summaries = asyncio.run(
            measure(url, example_config("sim-station.toml"), rounds, per_round, warmup)
        )
    bridge, echo = summaries["csbridge"], summaries["echo"]
    ratio = bridge.p50_ms / echo.p50_ms
    return {
        "benchmark": "boot request -> response through the broker, QoS 1",
        "broker": broker_kind,
        "csbridge": summary_dict(bridge),
        "echo_baseline": summary_dict(echo),
        "ratio_p50": ratio,
        "ratio_p99": bridge.p99_ms / echo.p99_ms,
        "goal_ratio_p50": GOAL_P50_RATIO,
        "goal_met": ratio <= GOAL_P50_RATIO,
        "summary": [
            summary_row(
                "p50 ms (vs echo)",
                bridge.p50_ms,
                echo.p50_ms,
                goal=f"ratio <= {GOAL_P50_RATIO}",
                met=ratio <= GOAL_P50_RATIO,
            ),
            summary_row("p99 ms (vs echo)", bridge.p99_ms, echo.p99_ms),
        ],
    }


def print_table(result: dict[str, Any]) -> None:
    bridge, echo = result["csbridge"], result["echo_baseline"]
    print(f"{result['benchmark']} ({result['broker']}, {bridge['count']} samples each)")
    print_latency_table([("csbridge", bridge), ("echo", echo)])
    verdict = "met" if result["goal_met"] else "MISSED"
    print(
        f"ratio p50 {result['ratio_p50']:.2f} (goal <= {result['goal_ratio_p50']}: {verdict}), "
        f"ratio p99 {result['ratio_p99']:.2f}"
    )
