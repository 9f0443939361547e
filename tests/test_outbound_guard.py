"""Nothing invalid leaves the bridge: an outgoing message that fails its schema is logged at
error level, counted, and never published."""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import pytest

from csbridge.bridge import Bridge
from csbridge.config import Config
from csbridge.emulator import EmulatorError, JosevEmulator
from csbridge.model import EvseSnapshot
from csbridge.static_source import static_snapshot
from csbridge.station_state import StationState
from csbridge.validation import Direction, SchemaRegistry, SchemaViolation
from csbridge.wire import Codec, Message, MessageType
from tests.conftest import start_bridge, stop_bridge
from tests.support import load_fixture


def _broken_state(config: Config, **dc_overrides: Any) -> StationState:
    snapshots: list[EvseSnapshot] = []
    for evse in config.evse:
        snapshot = static_snapshot(evse)
        if snapshot.dc is not None:
            snapshot = dataclasses.replace(
                snapshot, dc=dataclasses.replace(snapshot.dc, **dc_overrides)
            )
        snapshots.append(snapshot)
    return StationState(snapshots)


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
    bridge, task = await start_bridge(config, _broken_state(config, **overrides))
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


def test_codec_checks_the_serialised_bytes_not_the_python_object() -> None:
    """orjson turns NaN into null; only checking the bytes catches that."""
    codec = Codec(SchemaRegistry(), Direction.FROM_JOSEV, 65536)
    document = load_fixture("cs_status_and_limits_response_dc")
    document["data"]["evses"][0]["dc"]["max_current"] = math.nan
    message = Message("cs_status_and_limits", MessageType.RESPONSE, document["data"])
    with pytest.raises(SchemaViolation) as caught:
        codec.encode(message)
    assert caught.value.path == "$.data.evses[0].dc.max_current"


def test_codec_refuses_to_send_what_this_side_never_sends() -> None:
    codec = Codec(SchemaRegistry(), Direction.FROM_JOSEV, 65536)
    with pytest.raises(SchemaViolation):
        codec.encode(Message("cs_status_and_limits", MessageType.REQUEST, {}))


async def test_a_bug_in_a_handler_does_not_stop_the_bridge(
    bridge: Bridge, josev: JosevEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(_snapshots: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("csbridge.bridge.status_and_limits_data", explode)
    with pytest.raises(EmulatorError):
        await josev.request("cs_status_and_limits", timeout=0.5)
    monkeypatch.undo()
    assert (await josev.request("cs_status_and_limits", timeout=5)).data["evses"]
    assert bridge.counters.get("handler_failed", "cs_status_and_limits") == 1
