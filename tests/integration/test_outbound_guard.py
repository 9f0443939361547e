"""Nothing invalid leaves the bridge: an outgoing message that fails its schema is logged at
error level, counted, and never published."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from typing import Any

import pytest

from csbridge.config import Config
from csbridge.engine.engine import LimitsEngine
from csbridge.engine.latest import LatestByEvse
from csbridge.messages import DcLimits
from csbridge.protocol.bridge import Bridge
from csbridge.tools.emulator import EmulatorError, JosevEmulator
from tests.conftest import stop_bridge


def _broken_engine(config: Config, **dc_overrides: Any) -> LimitsEngine:
    """An engine whose entries carry a bug: the bridge must refuse to send them."""
    engine = LimitsEngine(config)
    broken = []
    for entry in engine.wire_entries.values():
        faulty = entry
        if isinstance(entry.dc, DcLimits):
            faulty = dataclasses.replace(entry, dc=dataclasses.replace(entry.dc, **dc_overrides))
        broken.append((entry.evse_id, faulty))
    engine.wire_entries = LatestByEvse(broken)
    return engine


@pytest.mark.parametrize(
    "overrides",
    [{"max_current": -5.0}, {"max_power": math.nan}, {"max_voltage": math.inf}],
    ids=["negative_maximum", "nan", "infinite"],
)
async def test_invalid_outgoing_message_is_never_published(
    config: Config,
    josev: JosevEmulator,
    caplog: pytest.LogCaptureFixture,
    overrides: dict[str, float],
) -> None:
    caplog.set_level(logging.ERROR, logger="csbridge")
    bridge = Bridge(config, _broken_engine(config, **overrides))
    task = asyncio.create_task(bridge.run())
    await asyncio.wait_for(bridge.link.connected.wait(), 5)
    try:
        with pytest.raises(EmulatorError):
            await josev.request("cs_status_and_limits", timeout=0.5)
        parameters = await josev.request("cs_parameters", timeout=5)
    finally:
        await stop_bridge(task)

    assert parameters.name == "cs_parameters", "a valid answer still goes out"
    assert josev.updates == [], "the full update after connect was invalid too"
    assert josev.problems == [
        f"no response to cs_status_and_limits {_first_request_id(josev)} within 0.5 s"
    ]
    assert bridge.counters.get("outbound_rejected", "cs_status_and_limits") == 2
    assert bridge.counters.get("outbound_published", "cs_status_and_limits/response") == 0
    assert bridge.counters.get("outbound_published", "cs_status_and_limits/update") == 0
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert all("outbound_rejected" in r.getMessage() for r in errors)


def _first_request_id(josev: JosevEmulator) -> str:
    return next(e.id for e in josev.exchanges if e.outgoing)


async def test_a_bug_in_a_handler_does_not_stop_the_bridge(
    bridge: Bridge, josev: JosevEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode() -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(bridge.engine.wire_entries, "values", explode)
    with pytest.raises(EmulatorError):
        await josev.request("cs_status_and_limits", timeout=0.5)
    monkeypatch.undo()
    assert (await josev.request("cs_status_and_limits", timeout=5)).data["evses"]
    assert bridge.counters.get("handler_failed", bridge.config.mqtt.request_topic) == 1


async def test_a_broken_limits_report_is_never_published(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="csbridge")
    bridge = Bridge(config, LimitsEngine(config))
    evse_id = config.evse[0].evse_id
    report = {**bridge.engine.reports.get(evse_id), "limits": math.nan}
    assert not await bridge._publish_report(evse_id, report)  # noqa: SLF001 - no broker needed
    assert bridge.counters.get("outbound_rejected", "limits") == 1
    assert bridge.counters.total("publish_deferred") == 0
    assert any("event=outbound_rejected message=limits" in r.getMessage() for r in caplog.records)
