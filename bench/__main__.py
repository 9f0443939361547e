"""`python -m bench [--quick] [--only NAME]`: run the benchmarks, print a table each, write
bench/results/*.json."""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from bench import boot_latency, decode_throughput, setpoint_latency

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS = ("boot_latency", "decode_throughput", "setpoint_latency")


def _machine() -> str:
    return f"{platform.machine()} {platform.processor() or ''} {platform.python_version()}".strip()


def _write(name: str, result: dict[str, object]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def _boot_latency(quick: bool) -> None:
    result = boot_latency.run(quick)
    result["machine"] = _machine()
    _write("boot_latency", result)
    bridge, echo = result["csbridge"], result["echo_baseline"]
    assert isinstance(bridge, dict)
    assert isinstance(echo, dict)
    print(f"{result['benchmark']} ({result['broker']}, {bridge['count']} samples each)")
    print(f"{'':12}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'max ms':>10}")
    for name, row in (("csbridge", bridge), ("echo", echo)):
        print(
            f"{name:12}{row['p50_ms']:10.3f}{row['p99_ms']:10.3f}{row['mean_ms']:10.3f}{row['max_ms']:10.3f}"
        )
    verdict = "met" if result["goal_met"] else "MISSED"
    print(
        f"ratio p50 {result['ratio_p50']:.2f} (goal <= {result['goal_ratio_p50']}: {verdict}), "
        f"ratio p99 {result['ratio_p99']:.2f}"
    )


def _decode_throughput(quick: bool) -> None:
    result = decode_throughput.run(quick)
    result["machine"] = _machine()
    _write("decode_throughput", result)
    decode_throughput.print_table(result)


def _setpoint_latency(quick: bool) -> None:
    result = setpoint_latency.run(quick)
    result["machine"] = _machine()
    _write("setpoint_latency", result)
    setpoint_latency.print_table(result)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="fewer samples, under a minute")
    parser.add_argument("--only", choices=BENCHMARKS, help="run this benchmark alone")
    args = parser.parse_args()
    selected = [args.only] if args.only else list(BENCHMARKS)
    if "boot_latency" in selected:
        _boot_latency(args.quick)
    if "decode_throughput" in selected:
        if len(selected) > 1:
            print()
        _decode_throughput(args.quick)
    if "setpoint_latency" in selected:
        if len(selected) > 1:
            print()
        _setpoint_latency(args.quick)


if __name__ == "__main__":
    main()
