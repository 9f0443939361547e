"""Issue 15's floods, as the flood benchmark runs them (`csbridge run` on examples/sim-station.toml,
a real mosquitto, a hostile client in a process of its own at 5,000 msg/s, a legitimate one
asking every 100 ms), held to the figures that do not depend on the machine's speed: no
legitimate request is lost, csbridge drops none of Josev's requests, a local flood of limits
supersedes itself instead of dropping, and the bridge's memory grows by at most 20 MB. The
latency goal (p99 <= 50 ms under the local flood) is the benchmark's: `python -m bench --only
flood`."""

from __future__ import annotations

from typing import Any

import pytest
from bench import flood

pytestmark = pytest.mark.soak


@pytest.fixture(scope="module")
def phases() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = flood.run(quick=True)["phases"]
    return result


@pytest.mark.parametrize("kind", ["local", "josev"])
def test_a_flood_loses_no_legitimate_request(phases: dict[str, dict[str, Any]], kind: str) -> None:
    phase = phases[kind]
    assert phase["flood_rate_per_s"] >= 0.8 * flood.FLOOD_PER_S  # the flood really came
    assert phase["legitimate_sent"] >= 40
    assert phase["legitimate_lost"] == 0


@pytest.mark.parametrize("kind", ["local", "josev"])
def test_a_flood_grows_the_bridge_by_at_most_20_mb(
    phases: dict[str, dict[str, Any]], kind: str
) -> None:
    assert phases[kind]["rss_growth_mb"] <= flood.GOAL_RSS_MB


def test_csbridge_drops_none_of_josevs_requests(phases: dict[str, dict[str, Any]]) -> None:
    for phase in phases.values():
        assert phase["intake_dropped"].get("josev", 0.0) == 0.0


def test_a_flood_of_limits_on_one_evse_drops_nothing(phases: dict[str, dict[str, Any]]) -> None:
    """Each message changes the limit on one topic: the newest supersedes the waiting one."""
    assert phases["local"]["intake_dropped"].get("local", 0.0) == 0.0
