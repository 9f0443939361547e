"""`python -m bench [--quick] [--only NAME] [--profile NAME]`: run the benchmarks, print each one's
detail and then one summary table, write bench/results/<name>.json each and latest.json with
every result of the run, the machine and the time.

--profile NAME runs one benchmark (quick) under pyinstrument instead and writes
bench/results/profile-NAME.txt (call tree and self-time list) and .html. Where the bridge runs
as a child process (boot_latency, memory_startup) the child is profiled, not the requester.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import (
    boot_latency,
    can_to_update,
    decode_throughput,
    flood,
    memory_startup,
    pool,
    profiling,
    reclamp_latency,
    scale,
    setpoint_latency,
    validation_speed,
)
from bench.common import RESULTS
from csbridge.testing.brokers import find_mosquitto

Result = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Benchmark:
    run: Callable[[bool], Result]
    print_table: Callable[[Result], None]
    child_process: bool = False
    """The bridge runs as a process of its own: profile that process, not this one."""


BENCHMARKS = {
    # In the order; setpoint_latency for the record (no goal of its own), then issue
    # 14's re-clamp.
    "boot_latency": Benchmark(boot_latency.run, boot_latency.print_table, child_process=True),
    "can_to_update": Benchmark(can_to_update.run, can_to_update.print_table),
    "decode_throughput": Benchmark(decode_throughput.run, decode_throughput.print_table),
    "validation_speed": Benchmark(validation_speed.run, validation_speed.print_table),
    "memory_startup": Benchmark(memory_startup.run, memory_startup.print_table, child_process=True),
    "scale": Benchmark(scale.run, scale.print_table),
    "setpoint_latency": Benchmark(setpoint_latency.run, setpoint_latency.print_table),
    "reclamp_latency": Benchmark(reclamp_latency.run, reclamp_latency.print_table),
    # Issue 15: a legitimate request under floods on csbridge's own and Josev's topics.
    "flood": Benchmark(flood.run, flood.print_table, child_process=True),
    # Issue 18: a shared module pool's allocation decisions and module moves.
    "pool": Benchmark(pool.run, pool.print_table, child_process=True),
}


def machine() -> dict[str, Any]:
    mosquitto = find_mosquitto()
    version = "none"
    if mosquitto is not None:
        # `mosquitto -h` prints its version first (and exits 3: help is not a run).
        shown = subprocess.run([mosquitto, "-h"], capture_output=True, text=True, check=False)
        version = (shown.stdout or shown.stderr).splitlines()[0].strip()
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "load_average_at_start": os.getloadavg(),
        "mosquitto": version,
    }


def _write(name: str, document: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(document, indent=2, default=str) + "\n"
    (RESULTS / f"{name}.json").write_text(text, encoding="utf-8")


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def print_summary(results: dict[str, Result]) -> None:
    rows = [(name, row) for name, result in results.items() for row in result["summary"]]
    columns = ("benchmark", "metric", "csbridge", "baseline", "ratio", "goal", "verdict")
    cells = [
        (
            name,
            row["metric"],
            _number(row["csbridge"]),
            _number(row["baseline"]),
            _number(row["ratio"]),
            row["goal"],
            row["verdict"],
        )
        for name, row in rows
    ]
    widths = [max(len(line[i]) for line in [columns, *cells]) for i in range(len(columns))]
    numeric = {2, 3, 4}

    def line(values: tuple[str, ...]) -> str:
        return "  ".join(
            value.rjust(width) if i in numeric else value.ljust(width)
            for i, (value, width) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    print(line(columns))
    print("  ".join("-" * width for width in widths))
    for values in cells:
        print(line(values))
    missed = [f"{name}: {row['metric']}" for name, row in rows if row["verdict"] == "MISSED"]
    judged = sum(1 for _, row in rows if row["verdict"] != "-")
    print(f"{judged - len(missed)} of {judged} goals met" + (":" if missed else ""))
    for miss in missed:
        print(f"  MISSED {miss}")


def run_all(names: list[str], quick: bool) -> None:
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    host = machine()
    started = time.perf_counter()
    results: dict[str, Result] = {}
    for name in names:
        benchmark = BENCHMARKS[name]
        began = time.perf_counter()
        result = benchmark.run(quick)
        result |= {"quick": quick, "wall_s": time.perf_counter() - began, "machine": host}
        _write(name, result)
        benchmark.print_table(result)
        print()
        results[name] = result
    wall = time.perf_counter() - started
    print_summary(results)
    print(f"wall time {wall:.1f} s ({'quick' if quick else 'full'} run)")
    _write(
        "latest",
        {
            "started_at": started_at,
            "quick": quick,
            "wall_s": wall,
            "machine": host,
            "benchmarks": names,
            "results": results,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="fewer samples: under a minute")
    parser.add_argument("--only", choices=BENCHMARKS, help="run this benchmark alone")
    parser.add_argument(
        "--profile", choices=BENCHMARKS, metavar="NAME", help="one quick run under pyinstrument"
    )
    args = parser.parse_args()
    # Stations run in this process for several benchmarks: their warnings as they are stopped
    # (modules off, commands not sent) would land in the middle of the tables.
    logging.getLogger("csbridge").setLevel(logging.ERROR)
    if args.profile:
        benchmark = BENCHMARKS[args.profile]
        written = profiling.profile(
            args.profile, benchmark.run, benchmark.print_table, benchmark.child_process
        )
        print(f"written: {written} and {written.with_suffix('.html').name}")
        return
    run_all([args.only] if args.only else list(BENCHMARKS), args.quick)


if __name__ == "__main__":
    main()
