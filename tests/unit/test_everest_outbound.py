"""An outgoing EVerest API message is checked against its schema before it is published."""

from __future__ import annotations

import orjson
import pytest

from csbridge.messages.registry import SchemaRegistry
from csbridge.sources.everest.api import DeviceKey, send_checked


def test_an_outgoing_everest_message_that_breaks_its_schema_is_never_published(
    caplog: pytest.LogCaptureFixture,
) -> None:
    published: list[tuple[str, bytes]] = []

    def publish(topic: str, payload: bytes) -> bool:
        published.append((topic, payload))
        return True

    registry = SchemaRegistry()
    key = DeviceKey("everest_api/1", "power_supply_DC", "psu1")
    bad = {"mode": "Precharge", "charging_phase": "Charging"}  # no such mode in EVerest
    assert not send_checked(registry, publish, key, "e2m/mode", bad)
    assert published == []
    assert any("event=outbound_rejected" in r.getMessage() for r in caplog.records)
    good = {"mode": "Off", "charging_phase": "Other"}
    assert send_checked(registry, publish, key, "e2m/mode", good)
    assert published == [(key.topic("e2m/mode"), orjson.dumps(good))]
