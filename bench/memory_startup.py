"""Memory and start-up of `csbridge run` on a station of 4 DC EVSEs with 8 modules each, against
a bare asyncio + aiomqtt echo responder (bench/echo_responder.py) in the same run.

The station is generated: each EVSE's 8 Infypower REG modules on a python-can virtual bus of its
own, played by the station's own simulators on the wire, so the real codecs, pollers and bus
readers are loaded and running, as on a board.

- exec -> first answer: from just before the process is spawned until a requester that has been
  sending cs_status_and_limits requests every 10 ms (QoS 1, fresh ids) gets the first response
  to any of them through mosquitto: interpreter start, imports, configuration, schemas,
  connecting and subscribing.
- RSS: VmRSS of the process (/proc/<pid>/status) once it has served for SETTLE_S after its
  first answer; VmHWM, its peak, next to it.

Repetitions alternate which of the two starts first; both are judged by their medians.
Goals: RSS <= 45 MB, exec -> first answer <= 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import orjson

from bench.boot_latency import echo_args
from bench.common import (
    BRIDGE,
    ECHO,
    StationSpec,
    Target,
    boot_request,
    bridge_args,
    broker,
    mqtt_client,
    payload_bytes,
    python_process,
    summary_row,
)
from csbridge.mqtt.link import QOS

GOAL_RSS_MB = 45.0
GOAL_START_S = 1.0
SETTLE_S = 3.0
REQUEST_EVERY_S = 0.01
EVSES, MODULES = 4, 8


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a live process, in kB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


async def _first_answer(client: aiomqtt.Client, target: Target, spawned_at: float) -> float:
    """Keep asking until one request is answered; seconds since the spawn."""
    sent: set[str] = set()
    answered = asyncio.Event()

    async def ask() -> None:
        # Ends on the flag, not by cancellation: on Python 3.11 aiomqtt's publish (wait_for on
        # the PUBACK) can swallow a cancellation, and the asking would never stop.
        while not answered.is_set():
            request_id = str(uuid.uuid4())
            sent.add(request_id)
            await client.publish(target.request_topic, boot_request(request_id), qos=QOS)
            await asyncio.sleep(REQUEST_EVERY_S)

    asking = asyncio.create_task(ask())
    try:
        async with asyncio.timeout(30):
            async for message in client.messages:
                if message.topic.value != target.response_topic:
                    continue
                if orjson.loads(payload_bytes(message)).get("id") in sent:
                    return time.perf_counter() - spawned_at
    finally:
        answered.set()
        await asking
    raise AssertionError("unreachable: the timeout raises")


async def _repetition(
    url: str, station: Path, client: aiomqtt.Client, bridge_first: bool
) -> dict[str, dict[str, float]]:
    order = (BRIDGE, ECHO) if bridge_first else (ECHO, BRIDGE)
    args = {
        BRIDGE.name: bridge_args(station, url),
        ECHO.name: echo_args(url, ECHO.request_topic, ECHO.response_topic),
    }
    results: dict[str, dict[str, float]] = {}
    with contextlib.ExitStack() as processes:
        pids: dict[str, tuple[int, float]] = {}
        for target in order:
            spawned_at = time.perf_counter()
            process = processes.enter_context(python_process(*args[target.name]))
            start_s = await _first_answer(client, target, spawned_at)
            pids[target.name] = (process.pid, time.perf_counter())
            results[target.name] = {"exec_to_answer_s": start_s}
        for name, (pid, answered_at) in pids.items():
            await asyncio.sleep(max(0.0, answered_at + SETTLE_S - time.perf_counter()))
            memory = memory_kb(pid)
            results[name] |= {"rss_mb": memory["VmRSS"] / 1024, "hwm_mb": memory["VmHWM"] / 1024}
    return results


async def _measure(url: str, station: Path, repetitions: int) -> dict[str, list[dict[str, float]]]:
    runs: dict[str, list[dict[str, float]]] = {BRIDGE.name: [], ECHO.name: []}
    async with mqtt_client(url) as client:
        for target in (BRIDGE, ECHO):
            await client.subscribe(target.response_topic, qos=QOS)
        for repetition in range(repetitions):
            for name, result in (
                await _repetition(url, station, client, repetition % 2 == 0)
            ).items():
                runs[name].append(result)
    return runs


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]} | {
        f"max_{key}": max(run[key] for run in runs) for key in runs[0]
    }


def run(quick: bool) -> dict[str, Any]:
    repetitions = 1 if quick else 5
    with tempfile.TemporaryDirectory() as tmp, broker(Path(tmp)) as (url, broker_kind):
        spec = StationSpec(evses=EVSES, modules=MODULES, broker=url)
        runs = asyncio.run(_measure(url, spec.write(Path(tmp) / "station.toml"), repetitions))
    bridge, echo = _medians(runs[BRIDGE.name]), _medians(runs[ECHO.name])
    return {
        "benchmark": "memory and start-up: csbridge run vs a bare asyncio + aiomqtt echo",
        "broker": broker_kind,
        "station": f"{EVSES} DC EVSEs x {MODULES} infypower-reg modules, simulated on the wire",
        "repetitions": repetitions,
        "settle_s": SETTLE_S,
        "csbridge": bridge,
        "echo_baseline": echo,
        "runs": runs,
        "goal_rss_mb": GOAL_RSS_MB,
        "goal_start_s": GOAL_START_S,
        "summary": [
            summary_row(
                "RSS MB after 3 s, 4x8 station (vs echo)",
                bridge["rss_mb"],
                echo["rss_mb"],
                goal=f"<= {GOAL_RSS_MB:g} MB",
                met=bridge["rss_mb"] <= GOAL_RSS_MB,
            ),
            summary_row(
                "exec -> first boot answer s (vs echo)",
                bridge["exec_to_answer_s"],
                echo["exec_to_answer_s"],
                goal=f"<= {GOAL_START_S:g} s",
                met=bridge["exec_to_answer_s"] <= GOAL_START_S,
            ),
        ],
    }


def print_table(result: dict[str, Any]) -> None:
    print(
        f"{result['benchmark']} ({result['broker']}, {result['station']}, "
        f"median of {result['repetitions']})"
    )
    print(f"{'':12}{'exec->answer s':>16}{'max s':>8}{'RSS MB':>9}{'peak MB':>9}")
    for name, row in (("csbridge", result["csbridge"]), ("echo", result["echo_baseline"])):
        print(
            f"{name:12}{row['exec_to_answer_s']:16.3f}{row['max_exec_to_answer_s']:8.3f}"
            f"{row['rss_mb']:9.1f}{row['hwm_mb']:9.1f}"
        )
