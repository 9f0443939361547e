"""How the bridge's costs grow with the station: 1, 4, 16 and 64 DC EVSEs of 8 modules each.

Per EVSE count, a generated station (modules simulated at reading level, reporting every change
at once) runs in this process against mosquitto, and four figures are taken:

- boot response: cs_status_and_limits request -> response through mosquitto (QoS 1, sequential
  as Josev's boot); the response carries every EVSE.
- CPU per update, every EVSE changed: an external limit for each EVSE handed to the bridge as
  its MQTT link would (`Bridge.handle` on csbridge/<evse_id>/external_limit: parse, schema,
  engine), alternating 100 kW and 90 kW so every one changes; then the one update carrying all
  of them and each EVSE's limits report go out. process_time() from the first message to the
  last publish handed to the link (a measuring shim), nothing else running in between.
- CPU per update, one EVSE changed: the same for the first EVSE alone: should not depend on how
  many EVSEs there are.
- the engine's tick: `LimitsEngine.evaluate()` (every EVSE, every evaluate_every_s): CPU.

Every step and tick follows 11 ms of idleness, as the station's events do: a cold cache costs a
step several times what the same work costs in a hot loop, and that is the station's cost.

The baseline is the 1-EVSE station of the same run. Verdict: cost per EVSE at 64 EVSEs within
1.5 x the cost per EVSE at 1 (linear or better); for one EVSE changed, the cost itself.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    PublishTap,
    StationSpec,
    broker,
    mqtt_client,
    round_trips,
    running_station,
    summary_row,
)
from bench.stats import Summary, percentile
from csbridge.mqtt.link import QOS
from csbridge.protocol.local_topics import Leaf
from csbridge.service.station import Station

COUNTS = (1, 4, 16, 64)
MODULES = 8
GOAL_GROWTH = 1.5
GAP_S = 0.011
"""Between steps: above the 10 ms of 100 updates/s, so a raised limit is never held back."""
POWERS_W = (100_000.0, 90_000.0)


def _any_topic(_topic: str) -> bool:
    return True


class Driver:
    """Changes external limits through the bridge's own inbound path and times the outcome."""

    def __init__(self, station: Station) -> None:
        self.station = station
        self.tap = PublishTap(station)
        self.step = 0
        bridge = station.bridge
        self.topics = [
            bridge.local.topic(evse_id, Leaf.EXTERNAL_LIMIT) for evse_id in station.engine.evse_ids
        ]

    async def update(self, evses: int) -> tuple[float, float]:
        """(CPU seconds, wall seconds to the update's publish) for one step that changes the
        first `evses` EVSEs; the step ends when the update and every report are handed on."""
        self.step += 1
        payload = orjson.dumps({"max_power": POWERS_W[self.step % 2]})
        done = self.tap.expect(_any_topic, 1 + evses)
        start = len(self.tap.calls)
        cpu = time.process_time()
        wall = time.perf_counter()
        for topic in self.topics[:evses]:
            await self.station.bridge.handle(topic, payload)
        await asyncio.wait_for(done, 10)
        calls = self.tap.since(start, _any_topic)
        update = self.tap.since(start, lambda topic: topic == "cs/josev")[0]
        return calls[-1].cpu - cpu, update.wall - wall

    async def tick(self, repeat: int) -> float:
        """CPU seconds of one engine tick (the median of `repeat`). Ticks are spaced as the
        engine spaces them, idle in between: back to back, a 1-EVSE station would evaluate
        one EVSE over and over in a hot cache while 64 EVSEs cannot all stay in it."""
        samples = []
        for _ in range(repeat):
            await asyncio.sleep(GAP_S)
            cpu = time.process_time()
            self.station.engine.evaluate()
            samples.append(time.process_time() - cpu)
        return percentile(samples, 0.5)


async def _steps(driver: Driver, evses: int, count: int) -> list[float]:
    cpu = []
    for _ in range(count):
        spent, _ = await driver.update(evses)
        cpu.append(spent)
        await asyncio.sleep(GAP_S)
    return cpu


async def _one_count(url: str, evses: int, boots: int, steps: int) -> dict[str, Any]:
    spec = StationSpec(
        evses=evses,
        modules=MODULES,
        wire=False,
        fast_reporting=True,
        broker=url,
        client_id=f"csbridge-bench-{evses}",
        # Readings once at start and never stale: the steps are the only changes, and the
        # tick (timed on its own) stays out of the per-update figures.
        poll_period_s=60.0,
        deadline_s=600.0,
        evaluate_every_s=5.0,
    )
    async with running_station(spec.config()) as station:
        async with mqtt_client(url) as client:
            await client.subscribe("cs/josev", qos=QOS)
            await round_trips(client, "josev/cs", "cs/josev", max(5, boots // 10))
            boot = Summary.of(await round_trips(client, "josev/cs", "cs/josev", boots))
        # Nobody in this process listens now: the CPU below is the bridge's alone.
        driver = Driver(station)
        await _steps(driver, evses, 3)
        every = await _steps(driver, evses, steps)
        one = await _steps(driver, 1, steps)
        tick = await driver.tick(max(5, steps // 2))
    return {
        "evses": evses,
        "boot_p50_ms": boot.p50_ms,
        "boot_p99_ms": boot.p99_ms,
        "cpu_all_ms": percentile(every, 0.5) * 1e3,
        "cpu_all_p99_ms": percentile(every, 0.99) * 1e3,
        "cpu_one_ms": percentile(one, 0.5) * 1e3,
        "cpu_one_p99_ms": percentile(one, 0.99) * 1e3,
        "tick_ms": tick * 1e3,
    }


async def _measure(url: str, boots: int, steps: int) -> list[dict[str, Any]]:
    return [await _one_count(url, evses, boots, steps) for evses in COUNTS]


def _growth(rows: list[dict[str, Any]], key: str, per_evse: bool) -> float:
    """Cost at the largest station over cost at the smallest, per EVSE when `per_evse`."""
    first, last = rows[0], rows[-1]
    ratio: float = last[key] / first[key]
    return ratio / (last["evses"] / first["evses"]) if per_evse else ratio


METRICS: tuple[tuple[str, str, bool], ...] = (
    ("boot response p50 ms", "boot_p50_ms", True),
    ("CPU ms per update, every EVSE changed", "cpu_all_ms", True),
    ("CPU ms per update, one EVSE changed", "cpu_one_ms", False),
    ("CPU ms per engine tick", "tick_ms", True),
)


def run(quick: bool) -> dict[str, Any]:
    boots, steps = (40, 20) if quick else (300, 100)
    with tempfile.TemporaryDirectory() as tmp, broker(Path(tmp)) as (url, broker_kind):
        rows = asyncio.run(_measure(url, boots, steps))
    largest, smallest = rows[-1]["evses"], rows[0]["evses"]
    growth = {key: _growth(rows, key, per_evse) for _, key, per_evse in METRICS}
    return {
        "benchmark": f"scale: {', '.join(map(str, COUNTS))} DC EVSEs of {MODULES} modules",
        "broker": broker_kind,
        "boots": boots,
        "steps": steps,
        "rows": rows,
        "growth": growth,
        "goal_growth": GOAL_GROWTH,
        "summary": [
            summary_row(
                f"{label} @{largest} vs @{smallest}" + (" (per EVSE)" if per_evse else ""),
                rows[-1][key] / (largest if per_evse else 1),
                rows[0][key] / (smallest if per_evse else 1),
                goal=f"ratio <= {GOAL_GROWTH:g}",
                met=growth[key] <= GOAL_GROWTH,
                ratio=growth[key],
            )
            for label, key, per_evse in METRICS
        ],
    }


def print_table(result: dict[str, Any]) -> None:
    print(
        f"{result['benchmark']} ({result['broker']}, {result['boots']} boot requests and "
        f"{result['steps']} steps of each kind per station)"
    )
    print(
        f"{'EVSEs':>6}{'boot p50':>10}{'boot p99':>10}{'per EVSE':>10}{'cpu all':>10}"
        f"{'per EVSE':>10}{'cpu one':>10}{'tick':>10}{'per EVSE':>10}"
    )
    print(f"{'':6}{'ms':>10}{'ms':>10}{'ms':>10}{'ms':>10}{'ms':>10}{'ms':>10}{'ms':>10}{'ms':>10}")
    for row in result["rows"]:
        n = row["evses"]
        values = (
            row["boot_p50_ms"],
            row["boot_p99_ms"],
            row["boot_p50_ms"] / n,
            row["cpu_all_ms"],
            row["cpu_all_ms"] / n,
            row["cpu_one_ms"],
            row["tick_ms"],
            row["tick_ms"] / n,
        )
        print(f"{n:6d}" + "".join(f"{value:10.3f}" for value in values))
    growth = ", ".join(f"{key} {value:.2f}" for key, value in result["growth"].items())
    print(f"growth at the largest vs the smallest station (per EVSE where it applies): {growth}")
