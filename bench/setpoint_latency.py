"""Setpoint request in (MQTT, QoS 1, through mosquitto) to CAN frames out: the time from Josev
publishing power_electronics_setpoint until every module's set-output frame is on the bus,
next to the floor measured in the same run: a bare aiomqtt responder that answers the same
request with one CAN frame, no parsing, no clamping.

Both run in this process (python-can's virtual bus is per process), driven by the same requester
in interleaved rounds. The station is examples/sim-station.toml: three Infypower modules on the
virtual bus, their 0x1C set-output frames watched by a sniffer on the same channel.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import can
import orjson

from bench.common import (
    broker,
    mqtt_client,
    print_latency_table,
    running_station,
    summary_dict,
    summary_row,
)
from bench.stats import Summary
from csbridge.config import Config, load_config
from csbridge.mqtt.link import QOS
from csbridge.support.resources import example_config

DC = "DE*CSB*E0001"
SET_OUTPUT = 0x1C
ECHO_FRAME_ID = 0x7E0


def _config(url: str, channel_prefix: str) -> Config:
    raw = load_config(example_config("sim-station.toml")).model_dump(mode="json", exclude_none=True)
    raw["mqtt"]["broker"] = url
    raw["reporting"]["settle_s"] = 0.0
    for bus in raw["bus"]:
        bus["channel"] = f"{channel_prefix}-{bus['name']}"
    return Config.model_validate(raw)


def _resolve(done: asyncio.Future[float], arrived: float) -> None:
    if not done.done():
        done.set_result(arrived)


class Sniffer:
    """Counts frames of interest from another thread; wakes the waiter on the event loop."""

    def __init__(self, channel: str, loop: asyncio.AbstractEventLoop) -> None:
        self.bus = can.Bus(channel=channel, interface="virtual")
        self._loop = loop
        self._wanted = 0
        self._seen = 0
        self._done: asyncio.Future[float] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def expect(self, count: int) -> asyncio.Future[float]:
        self._wanted, self._seen = count, 0
        self._done = self._loop.create_future()
        return self._done

    def _run(self) -> None:
        while not self._stop.is_set():
            frame = self.bus.recv(0.05)
            if frame is None:
                continue
            is_set_output = (
                frame.is_extended_id and (frame.arbitration_id >> 16) & 0x3F == SET_OUTPUT
            )
            if is_set_output or frame.arbitration_id == ECHO_FRAME_ID:
                self._seen += 1
                if self._seen == self._wanted and self._done is not None:
                    self._loop.call_soon_threadsafe(_resolve, self._done, time.perf_counter())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.bus.shutdown()


async def _echo(url: str, topic: str, channel: str) -> None:
    """The floor: a message in, one CAN frame out."""
    bus = can.Bus(channel=channel, interface="virtual")
    try:
        async with mqtt_client(url) as client:
            await client.subscribe(topic, qos=QOS)
            async for _ in client.messages:
                bus.send(
                    can.Message(arbitration_id=ECHO_FRAME_ID, is_extended_id=False, data=b"\x00")
                )
    finally:
        bus.shutdown()


def _request() -> bytes:
    return orjson.dumps(
        {
            "id": str(uuid.uuid4()),
            "name": "power_electronics_setpoint",
            "type": "request",
            "data": {
                "evse_id": DC,
                "dc": {"voltage": 400.0, "charge_current": 150.0},
                "ev_limits": {"maximum_voltage": 500.0},
            },
        }
    )


async def _round(
    client: aiomqtt.Client, sniffer: Sniffer, topic: str, frames: int, count: int
) -> list[float]:
    samples = []
    for _ in range(count):
        done = sniffer.expect(frames)
        started = time.perf_counter()
        await client.publish(topic, _request(), qos=QOS)
        arrived = await asyncio.wait_for(done, 5)
        samples.append(arrived - started)
    return samples


async def _measure(url: str, rounds: int, per_round: int) -> dict[str, Summary]:
    config = _config(url, f"bench-{uuid.uuid4().hex[:6]}")
    echo_topic = "bench/echo/setpoint"
    samples: dict[str, list[float]] = {"csbridge": [], "echo": []}
    async with running_station(config) as station:
        echo_task = asyncio.create_task(_echo(url, echo_topic, config.bus[0].interface_channel))
        sniffer = Sniffer(config.bus[0].interface_channel, asyncio.get_running_loop())
        try:
            async with asyncio.timeout(15):
                while station.engine.entries.get(DC)["status_code"] != "evse_ready":
                    await asyncio.sleep(0.05)
            async with mqtt_client(url) as client:
                await _round(client, sniffer, config.mqtt.request_topic, 3, 20)  # warm up
                await _round(client, sniffer, echo_topic, 1, 20)
                for _ in range(rounds):
                    samples["csbridge"] += await _round(
                        client, sniffer, config.mqtt.request_topic, 3, per_round
                    )
                    samples["echo"] += await _round(client, sniffer, echo_topic, 1, per_round)
        finally:
            sniffer.close()
            echo_task.cancel()
            await asyncio.gather(echo_task, return_exceptions=True)
    return {name: Summary.of(values) for name, values in samples.items()}


def run(quick: bool) -> dict[str, Any]:
    rounds, per_round = (4, 50) if quick else (10, 150)
    with tempfile.TemporaryDirectory() as tmp, broker(Path(tmp)) as (url, broker_kind):
        summaries = asyncio.run(_measure(url, rounds, per_round))
    bridge, echo = summaries["csbridge"], summaries["echo"]
    return {
        "benchmark": "setpoint request in (MQTT QoS 1) to every module's CAN frame out",
        "broker": broker_kind,
        "csbridge": summary_dict(bridge),
        "echo_baseline": summary_dict(echo),
        "ratio_p50": bridge.p50_ms / echo.p50_ms,
        "ratio_p99": bridge.p99_ms / echo.p99_ms,
        # Not one of issue 8's goals: shown for the record, judged by nobody.
        "summary": [
            summary_row("p50 ms (vs 1-frame echo)", bridge.p50_ms, echo.p50_ms),
            summary_row("p99 ms (vs 1-frame echo)", bridge.p99_ms, echo.p99_ms),
        ],
    }


def print_table(result: dict[str, Any]) -> None:
    bridge, echo = result["csbridge"], result["echo_baseline"]
    print(f"{result['benchmark']} ({result['broker']}, {bridge['count']} samples each)")
    print_latency_table([("csbridge", bridge), ("echo", echo)])
    print(f"ratio p50 {result['ratio_p50']:.2f}, ratio p99 {result['ratio_p99']:.2f}")
