"""A shared pool's allocation where people look: `csbridge status`'s line for a pooled EVSE and
the metrics of its limits report (issue 18 item 5)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from csbridge.config import load_config
from csbridge.engine import LimitsEngine
from csbridge.limits import PoolScope
from csbridge.resources import example_config
from csbridge.service.metrics import EvseCollector
from csbridge.tools.status_view import pool_line
from tests.support import parse, value

EVSE1 = "DE*CSB*E0001"
BLOCK: dict[str, Any] = {
    "name": "cabinet",
    "policy": "equal_share",
    "decision": 2,
    "decided_at": 1_800_000_000.0,
    "settled": False,
    "settled_at": None,
    "share_w": 90000.0,
    "why": "share",
    "told": {"decision": 2, "after": "decision", "s": 0.0042},
    "modules": [
        {"name": "m1", "phase": "serving", "target": EVSE1, "serving": True},
        {"name": "m2", "phase": "serving", "target": EVSE1, "serving": True},
        {"name": "m4", "phase": "stopping", "target": "DE*CSB*E0002", "serving": False},
    ],
}


def test_status_shows_which_module_serves_the_evse_and_which_moves() -> None:
    line = pool_line({"pool": BLOCK})
    assert line == (
        "pool cabinet (equal_share)  share 90000 W (share)  decision 2 moving"
        "  told decision 2 +4 ms after decision"
        "  modules m1 serving, m2 serving, m4 stopping>DE*CSB*E0002"
    )
    assert pool_line({}) is None


def test_metrics_count_the_modules_serving_each_pooled_evse_and_its_share() -> None:
    config = load_config(example_config("shared-pool.toml"))
    engine = LimitsEngine(config, clock=lambda: 10.0)
    scope = PoolScope("cabinet", frozenset({"m1", "m2"}), starting=False, usable=6)
    engine.set_pool_scope(EVSE1, scope, frozenset({"m1", "m2"}), BLOCK)
    registry = CollectorRegistry()
    registry.register(EvseCollector(engine.limits_reports))
    families = parse(generate_latest(registry).decode())
    labels = {"evse_id": EVSE1, "pool": "cabinet"}
    assert value(families, "csbridge_pool_modules_serving", **labels) == 2
    assert value(families, "csbridge_pool_share_w", **labels) == 90000
    told = value(families, "csbridge_pool_told_seconds", **labels, after="decision")
    assert told == 0.0042
