"""`python -m bench [--quick]`: run the benchmarks, print a table, write bench/results/*.json."""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from bench import boot_latency

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="fewer samples, under a minute")
    args = parser.parse_args()
    result = boot_latency.run(args.quick)
    result["machine"] = (
        f"{platform.machine()} {platform.processor() or ''} {platform.python_version()}".strip()
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "boot_latency.json").write_text(
        json.dumps(result, indent=2) + "\n", encoding="utf-8"
    )
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


if __name__ == "__main__":
    main()
