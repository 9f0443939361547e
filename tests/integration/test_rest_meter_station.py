"""A station whose DC EVSE has `[evse.meter] kind = "rest"` (the played LEM DCBM on loopback),
through a real mosquitto: the meter is read like any source (meter_values answered from its
registers), and each transaction Josev reports is pushed as meter_values updates, signed by the
meter at its start and end, without any wiring by the test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from csbridge.config import Config, MeterConfig, RestMeterConfig
from csbridge.messages import Message
from csbridge.service.station import Station
from csbridge.sources.meters import parse_ocmf
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from csbridge.testing.lem_dcbm import PlayedLemDcbm, played_lem_dcbm
from csbridge.testing.plugin import ConfigFactory, marked_config
from tests.conftest import READING_STATION

DC = "DE*CSB*E0001"


@pytest.fixture
def played() -> Iterator[PlayedLemDcbm]:
    with played_lem_dcbm() as meter:
        meter.measure(voltage_v=400.0, current_a=50.0, import_kwh=100.0, export_kwh=2.5)
        yield meter


@pytest.fixture
def config(
    request: pytest.FixtureRequest,
    csbridge_config_factory: ConfigFactory,
    prefix: str,
    played: PlayedLemDcbm,
) -> Config:
    base = marked_config(request, csbridge_config_factory, prefix, default=READING_STATION)
    meter = MeterConfig(
        kind="rest", rest=RestMeterConfig(url=played.url), poll_period_s=0.2, deadline_s=2.0
    )
    evses = [e.model_copy(update={"meter": meter}) if e.evse_id == DC else e for e in base.evse]
    return base.model_copy(update={"evse": evses})


def _signed(message: Message) -> list[dict[str, Any]]:
    signed: list[dict[str, Any]] = message.data.get("signed_meter_values", [])
    return signed


async def test_a_rest_meter_is_read_and_signs_the_transactions_josev_reports(
    station: Station, josev: JosevClient, played: PlayedLemDcbm
) -> None:
    await josev.boot(timeout=5)

    async def answered_from_the_meter() -> bool:
        answer = await josev.request(
            "meter_values", {"evse_id": DC, "timestamp": "2026-12-01T10:00:00Z"}, timeout=5
        )
        return bool(answer.data["total_active_energy_imported"] == 100_000.0)

    await wait_until(answered_from_the_meter, 5, "meter_values from the meter's register")
    assert station.engine.entries.get(DC)["dc"]["present_voltage"] == 400.0

    mark = josev.mark()
    await josev.update(
        "transaction_status",
        {"transaction_id": "tx-7", "status": "started", "evse_id": DC, "id_token": "04A2"},
    )
    start = await josev.wait_for_update(
        lambda m: bool(_signed(m)), 5, name="meter_values", since=mark
    )
    assert start.data["total_active_energy_exported"] == 2_500.0
    (signed,) = _signed(start)
    assert signed["public_key"] == played.public_key_hex
    assert [r.kind for r in parse_ocmf(signed["signed_meter_data"]).readings] == ["B"]
    await wait_until(
        lambda: (
            station.engine.reports.get(DC)["session"].get("meter_public_key")
            == played.public_key_hex
        ),
        5,
        "the meter's key in the limits report",
    )

    played.measure(import_kwh=101.5)
    mark = josev.mark()
    await josev.update(
        "transaction_status", {"transaction_id": "tx-7", "status": "ended", "evse_id": DC}
    )
    end = await josev.wait_for_update(
        lambda m: bool(_signed(m)), 5, name="meter_values", since=mark
    )
    (signed,) = _signed(end)
    assert [r.kind for r in parse_ocmf(signed["signed_meter_data"]).readings][-1] == "E"
    josev.assert_no_problems()
