"""The limits engine as Josev and an energy manager see it, through a real mosquitto."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiomqtt
import orjson
import pytest

from csbridge.config import Config
from csbridge.messages.envelope import Message
from csbridge.messages.registry import SchemaRegistry
from csbridge.service.station import Station
from csbridge.testing.harness import wait_until
from csbridge.tools.emulator import JosevEmulator

DC = "DE*CSB*E0001"
AC = "DE*CSB*E0002"


def _evse(message: Message, evse_id: str) -> dict[str, Any] | None:
    """The EVSE's entry in a cs_status_and_limits update (None in any other update)."""
    if message.name != "cs_status_and_limits":
        return None
    return next((e for e in message.data["evses"] if e["evse_id"] == evse_id), None)


def _dc_changed(evse_id: str, field: str, before: float) -> Any:
    def predicate(message: Message) -> bool:
        entry = _evse(message, evse_id)
        return entry is not None and entry["dc"][field] != before

    return predicate


async def _latest_report(
    client: aiomqtt.Client, topic: str, predicate: Any, timeout: float = 10
) -> dict[str, Any]:
    await client.subscribe(topic, qos=1)
    async with asyncio.timeout(timeout):
        async for message in client.messages:
            if message.topic.value != topic or not isinstance(message.payload, bytes):
                continue
            report: dict[str, Any] = orjson.loads(message.payload)
            if predicate(report):
                await client.unsubscribe(topic)
                return report
    raise AssertionError("unreachable")


async def test_a_silent_module_takes_its_third_away_in_one_update(
    station: Station, josev: JosevEmulator, config: Config, raw_client: aiomqtt.Client
) -> None:
    await josev.boot(timeout=5)
    assert josev.view.evses[DC]["dc"]["max_current"] == 240.0
    seen = len(josev.updates)
    station.devices.modules[(DC, "m2")].silent = True

    update = await josev.wait_update(_dc_changed(DC, "max_current", 240.0), timeout=10, since=seen)

    entry = _evse(update, DC)
    assert entry is not None
    assert entry["dc"]["max_current"] == 160.0, "two thirds of 240 A, in one step"
    assert entry["dc"]["max_power"] == 80000
    assert entry["status_code"] == "evse_ready"
    for earlier in josev.updates[seen:]:
        if earlier is update:
            break
        assert (_evse(earlier, DC) or {"dc": {"max_current": 240.0}})["dc"]["max_current"] == 240.0
    topic = f"{config.mqtt.local_prefix}/{DC}/limits"
    report = await _latest_report(
        raw_client, topic, lambda r: r["limits"]["dc"]["max_current"] == 160.0
    )
    assert report["binding"]["max_current"] == "module_dropout"
    assert report["sources"]["modules"]["m2"]["state"] == "stale"
    assert report["sources"]["modules"]["m1"]["state"] == "healthy"
    assert SchemaRegistry().violation("EvseLimitsReport", report) is None


async def test_external_limit_over_mqtt_binds_and_expires_back(
    station: Station, josev: JosevEmulator, config: Config, raw_client: aiomqtt.Client
) -> None:
    await josev.boot(timeout=5)
    seen = len(josev.updates)
    topic = f"{config.mqtt.local_prefix}/{DC}/external_limit"
    await raw_client.publish(topic, orjson.dumps({"max_power": 50000, "valid_for": 2}), qos=1)

    capped = await josev.wait_update(_dc_changed(DC, "max_power", 120000), timeout=5, since=seen)
    assert (_evse(capped, DC) or {})["dc"]["max_power"] == 50000
    assert station.engine.reported_binding(DC)["max_power"] == "external"
    report_topic = f"{config.mqtt.local_prefix}/{DC}/limits"
    report = await _latest_report(
        raw_client, report_topic, lambda r: r["sources"]["external"]["active"]
    )
    assert report["binding"]["max_power"] == "external"
    assert report["sources"]["external"]["max_power"] == 50000

    seen = len(josev.updates)
    restored = await josev.wait_update(_dc_changed(DC, "max_power", 50000), timeout=8, since=seen)
    assert (_evse(restored, DC) or {})["dc"]["max_power"] == 120000
    assert station.engine.reported_binding(DC)["max_power"] == "hardware"


@pytest.mark.parametrize(
    ("evse_id", "payload", "reason"),
    [
        (DC, b'{"max_power": "50000"}', "schema"),
        (DC, b'{"max_power": -1}', "schema"),
        (DC, b'{"max_power": 1000, "watts": 5}', "schema"),
        (DC, b"not json", "not_json"),
        (DC, b"[]", "not_object"),
        ("DE*CSB*E9999", b'{"max_power": 1000}', "unknown_evse"),
    ],
)
async def test_a_bad_external_limit_changes_nothing_and_is_counted(
    station: Station,
    josev: JosevEmulator,
    config: Config,
    raw_client: aiomqtt.Client,
    caplog: pytest.LogCaptureFixture,
    evse_id: str,
    payload: bytes,
    reason: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge")
    await josev.boot(timeout=5)
    before = station.engine.entries.values()
    await raw_client.publish(f"{config.mqtt.local_prefix}/{evse_id}/external_limit", payload, qos=1)
    await wait_until(
        lambda: station.bridge.counters.total("inbound_rejected") > 0, 5, "the rejection"
    )
    assert station.bridge.counters.get("inbound_rejected", reason) == 1
    assert station.engine.entries.values() == before
    lines = [r.getMessage() for r in caplog.records if "inbound_rejected" in r.getMessage()]
    assert len(lines) == 1
    assert "message=external_limit" in lines[0]
    assert f"reason={reason}" in lines[0]


async def test_the_operator_disables_and_enables_an_evse(
    station: Station, josev: JosevEmulator, config: Config, raw_client: aiomqtt.Client
) -> None:
    await josev.boot(timeout=5)
    topic = f"{config.mqtt.local_prefix}/{AC}/operator"
    seen = len(josev.updates)
    await raw_client.publish(
        topic, orjson.dumps({"enabled": False, "reason": "maintenance"}), qos=1
    )
    shut = await josev.wait_update(lambda m: _evse(m, AC) is not None, timeout=5, since=seen)
    entry = _evse(shut, AC)
    assert entry is not None
    assert entry["status_code"] == "evse_shutdown"
    assert entry["ac"]["max_current"] == {"l1": 0.0, "l2": 0.0, "l3": 0.0}
    assert station.engine.reported_binding(AC)["max_current"] == "operator"

    seen = len(josev.updates)
    await raw_client.publish(topic, orjson.dumps({"enabled": True}), qos=1)
    back = await josev.wait_update(lambda m: _evse(m, AC) is not None, timeout=5, since=seen)
    assert (_evse(back, AC) or {})["status_code"] == "evse_ready"
    assert (_evse(back, AC) or {})["ac"]["max_current"]["l1"] == 25.0


async def test_a_silent_imd_stops_the_evse_and_its_isolation_is_never_kept_valid(
    station: Station, josev: JosevEmulator
) -> None:
    await josev.boot(timeout=5)
    seen = len(josev.updates)
    station.devices.imds[DC].silent = True
    update = await josev.wait_update(
        lambda m: (_evse(m, DC) or {}).get("status_code") == "evse_malfunction",
        timeout=10,
        since=seen,
    )
    entry = _evse(update, DC)
    assert entry is not None
    assert entry["dc"]["isolation_status"] == "invalid"
    assert entry["dc"]["max_current"] == 0
