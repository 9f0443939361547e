"""Floods: `csbridge run` (examples/sim-station.toml, a process of its own) on mosquitto, while a
legitimate client sends a cs_status_and_limits request every 100 ms and waits for its answer.

Three phases, one after the other in the same run: quiet (the baseline: the legitimate client
alone), a flood of 5,000 msg/s of csbridge/<evse_id>/external_limit messages (csbridge's own
topic), and a flood of 5,000 msg/s of valid cs_status_and_limits requests on Josev's topic. For
each: the legitimate answers' latency (p50/p99, against quiet), the legitimate requests left
never answered (none answered for 5 s after the last answer), and the bridge's VmRSS growth
over the phase. A Josev flood beyond what csbridge handles waits in the broker's queue while
csbridge holds back its acknowledgements (its own queue for Josev never drops): answers keep
coming after the flood stops, and `drained_after_s` says for how long.

The legitimate client is a paho client on a thread of this process, the flooder one in a
process of its own (QoS 1, as Josev publishes); the test broker's queue (100,000 per client)
is far above what a phase sends, so a request lost is lost to csbridge, not to mosquitto.
Goals (issue 15): local flood p99 <= 50 ms; no legitimate request lost; RSS growth <= 20 MB.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import (
    BRIDGE,
    boot_request,
    bridge_args,
    broker,
    python_process,
    summary_dict,
    summary_row,
)
from bench.memory_startup import memory_kb
from bench.stats import Summary
from csbridge.config import broker_address
from csbridge.mqtt import LOOPBACK, free_port
from csbridge.support.resources import example_config

DC = "DE*CSB*E0001"
FLOOD_PER_S = 5000
BATCH_EVERY_S = 0.01
LEGIT_EVERY_S = 0.1
ANSWER_WITHIN_S = 5.0
GOAL_P99_MS = 50.0
GOAL_RSS_MB = 20.0
LOCAL_TOPIC = f"csbridge/{DC}/external_limit"


def _station(workdir: Path) -> tuple[Path, str]:
    """examples/sim-station.toml with its metrics served (to read what the intake dropped)."""
    port = free_port()
    text = example_config("sim-station.toml").read_text(encoding="utf-8")
    path = workdir / "flood-station.toml"
    path.write_text(f'{text}\n[metrics]\nlisten = "{LOOPBACK}:{port}"\n', encoding="utf-8")
    return path, f"http://{LOOPBACK}:{port}/metrics"


def _dropped(metrics_url: str) -> dict[str, float]:
    """csbridge_inbound_dropped_total by class, as the bridge counts them."""
    with urllib.request.urlopen(metrics_url, timeout=5) as response:  # noqa: S310 - our own URL
        text = response.read().decode()
    dropped = {}
    for line in text.splitlines():
        if line.startswith("csbridge_inbound_dropped_total{"):
            labels, _, value = line.partition("} ")
            dropped[labels.split('class="')[1].rstrip('"')] = float(value)
    return dropped


def _client(url: str) -> paho.Client:
    host, port, _ = broker_address(url)
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(100)
    client.connect(host, port)
    client.loop_start()
    return client


@dataclass
class Legitimate:
    """Asks every LEGIT_EVERY_S and times each answer (matched by id) on paho's thread."""

    url: str
    sent: dict[str, float] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.client = _client(self.url)
        self.client.on_message = self._on_message
        self.client.subscribe(BRIDGE.response_topic, qos=1)

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        arrived = time.perf_counter()
        try:
            request_id = orjson.loads(message.payload).get("id")
        except orjson.JSONDecodeError:
            return
        with self._lock:
            if request_id in self.sent and request_id not in self.answered:
                self.answered[request_id] = arrived - self.sent[request_id]

    def ask(self) -> str:
        request_id = str(uuid.uuid4())
        with self._lock:
            self.sent[request_id] = time.perf_counter()
        self.client.publish(BRIDGE.request_topic, boot_request(request_id), qos=1)
        return request_id

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _flood(url: str, kind: str, ready: Any, stop: Any, published: Any) -> None:
    """The flooder's process: FLOOD_PER_S messages a second, in batches every BATCH_EVERY_S."""
    client = _client(url)
    ready.set()
    per_batch = round(FLOOD_PER_S * BATCH_EVERY_S)
    next_at = time.perf_counter()
    count = 0
    while not stop.is_set():
        for _ in range(per_batch):
            if kind == "josev":
                topic, payload = BRIDGE.request_topic, boot_request(str(uuid.uuid4()))
            else:
                # Two values in turn: each message changes the limit, as a hostile manager would.
                topic = LOCAL_TOPIC
                payload = orjson.dumps({"max_power": 60_000 + 1_000 * (count % 2)})
            client.publish(topic, payload, qos=1)
            count += 1
        published.value = count
        next_at += BATCH_EVERY_S
        time.sleep(max(0.0, next_at - time.perf_counter()))
    client.loop_stop()
    client.disconnect()


class Flooder:
    """A hostile client of its own (a process: its work does not hold up the legitimate
    client's thread here, as a real one would not)."""

    def __init__(self, url: str, kind: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._ready = context.Event()
        self._stop = context.Event()
        self._published = context.Value("q", 0)
        self._process = context.Process(
            target=_flood, args=(url, kind, self._ready, self._stop, self._published), daemon=True
        )

    @property
    def published(self) -> int:
        return int(self._published.value)

    def start(self) -> float:
        """When the flood begins (the process has started and connected)."""
        self._process.start()
        self._ready.wait(30)
        return time.perf_counter()

    def stop(self) -> None:
        self._stop.set()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()


async def _wait_first_answer(legitimate: Legitimate) -> None:
    async with asyncio.timeout(20):
        while True:
            request_id = legitimate.ask()
            await asyncio.sleep(0.1)
            if request_id in legitimate.answered:
                return


async def _phase(
    legitimate: Legitimate, url: str, pid: int, *, kind: str | None, seconds: float, metrics: str
) -> dict[str, Any]:
    rss_before = memory_kb(pid)["VmRSS"]
    dropped_before = await asyncio.to_thread(_dropped, metrics)
    flooder = Flooder(url, kind) if kind else None
    started = flooder.start() if flooder else time.perf_counter()
    asked = []
    while time.perf_counter() - started < seconds:
        asked.append(legitimate.ask())
        await asyncio.sleep(LEGIT_EVERY_S)
    flood_s = time.perf_counter() - started
    rss_peak = memory_kb(pid)["VmRSS"]
    if flooder:
        flooder.stop()
    # Lost means never answered: wait while answers still come (a flood queued at the broker
    # while csbridge paused its reading is drained after the flood), until ANSWER_WITHIN_S pass
    # without one.
    answered_count = len(legitimate.answered)
    quiet_since = time.perf_counter()
    while any(i not in legitimate.answered for i in asked):
        await asyncio.sleep(0.05)
        if len(legitimate.answered) != answered_count:
            answered_count, quiet_since = len(legitimate.answered), time.perf_counter()
        elif time.perf_counter() - quiet_since > ANSWER_WITHIN_S:
            break
    drained_s = time.perf_counter() - started - flood_s
    samples = [legitimate.answered[i] for i in asked if i in legitimate.answered]
    dropped_after = await asyncio.to_thread(_dropped, metrics)
    return {
        "flood": kind or "none",
        "flood_rate_per_s": (flooder.published / flood_s) if flooder else 0.0,
        "legitimate_sent": len(asked),
        "legitimate_lost": len(asked) - len(samples),
        "drained_after_s": drained_s,
        "latency": summary_dict(Summary.of(samples)) if samples else None,
        "intake_dropped": {
            kind: count - dropped_before.get(kind, 0.0) for kind, count in dropped_after.items()
        },
        "rss_before_mb": rss_before / 1024,
        "rss_end_mb": rss_peak / 1024,
        "rss_growth_mb": (rss_peak - rss_before) / 1024,
    }


async def _measure(url: str, seconds: float, workdir: Path) -> dict[str, dict[str, Any]]:
    phases = {}
    station, metrics = _station(workdir)
    with python_process(*bridge_args(station, url)) as process:
        legitimate = Legitimate(url)
        try:
            await _wait_first_answer(legitimate)
            await _phase(
                legitimate, url, process.pid, kind=None, seconds=2.0, metrics=metrics
            )  # warm up
            for kind in (None, "local", "josev"):
                phases[kind or "quiet"] = await _phase(
                    legitimate, url, process.pid, kind=kind, seconds=seconds, metrics=metrics
                )
                await asyncio.sleep(2.0)  # what the flood left queued is handled
        finally:
            legitimate.close()
    return phases


def run(quick: bool) -> dict[str, Any]:
    seconds = 5.0 if quick else 15.0
    with tempfile.TemporaryDirectory() as tmp, broker(Path(tmp)) as (url, broker_kind):
        phases = asyncio.run(_measure(url, seconds, Path(tmp)))
    quiet = phases["quiet"]["latency"]
    summary = []
    for kind in ("local", "josev"):
        phase = phases[kind]
        latency = phase["latency"] or {"p50_ms": float("nan"), "p99_ms": float("nan")}
        p99_goal = kind == "local"
        summary += [
            summary_row(
                f"{kind} flood: legit p50 ms (vs quiet)", latency["p50_ms"], quiet["p50_ms"]
            ),
            summary_row(
                f"{kind} flood: legit p99 ms (vs quiet)",
                latency["p99_ms"],
                quiet["p99_ms"],
                goal=f"<= {GOAL_P99_MS:g} ms" if p99_goal else "-",
                met=latency["p99_ms"] <= GOAL_P99_MS if p99_goal else None,
            ),
            summary_row(
                f"{kind} flood: legit lost",
                phase["legitimate_lost"],
                None,
                goal="0",
                met=phase["legitimate_lost"] == 0,
                ratio=None,
            ),
            summary_row(
                f"{kind} flood: RSS growth MB",
                phase["rss_growth_mb"],
                None,
                goal=f"<= {GOAL_RSS_MB:g} MB",
                met=phase["rss_growth_mb"] <= GOAL_RSS_MB,
                ratio=None,
            ),
        ]
    return {
        "benchmark": "legitimate request every 100 ms under 5,000 msg/s floods",
        "broker": broker_kind,
        "phase_s": seconds,
        "phases": phases,
        "summary": summary,
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"{result['benchmark']} ({result['broker']}, {result['phase_s']:g} s a phase)")
    print(
        f"{'flood':8}{'rate/s':>9}{'sent':>6}{'lost':>6}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'RSS MB':>8}{'growth':>8}  dropped by csbridge's intake"
    )
    for phase in result["phases"].values():
        latency = phase["latency"] or {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
        print(
            f"{phase['flood']:8}{phase['flood_rate_per_s']:9.0f}{phase['legitimate_sent']:6d}"
            f"{phase['legitimate_lost']:6d}{latency['p50_ms']:9.2f}{latency['p99_ms']:9.2f}"
            f"{latency['max_ms']:9.2f}{phase['rss_end_mb']:8.1f}{phase['rss_growth_mb']:8.1f}"
            f"  {phase['intake_dropped']}"
        )
