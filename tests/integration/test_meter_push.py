"""meter_values pushed during a transaction, through a real mosquitto to the Josev emulator: at
the transaction's start and end with the played LEM DCBM's OCMF record as signed_meter_values
(and its public key), every update interval in between, exported energy in
total_active_energy_exported; and what happens when the meter fails at a start or an end.

The station is the tests' station; the test connects the meter and the pusher to it as the
service will (SessionHandlers.on_transaction, SessionHandlers.pushed)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from csbridge.messages import Message
from csbridge.service.station import Station
from csbridge.session import MeterPush
from csbridge.sources.meters import RestDcMeter, parse_ocmf
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from csbridge.testing.lem_dcbm import Fault, PlayedLemDcbm, played_lem_dcbm

DC = "DE*CSB*E0001"
INTERVAL_S = 0.3
METER_VALUES = "meter_values"


@pytest.fixture
def played() -> Iterator[PlayedLemDcbm]:
    with played_lem_dcbm("LEM2026-0007") as meter:
        meter.measure(voltage_v=400.0, current_a=50.0, import_kwh=100.0, export_kwh=2.5)
        yield meter


@pytest_asyncio.fixture
async def meter(played: PlayedLemDcbm) -> AsyncIterator[RestDcMeter]:
    rest = RestDcMeter(played.url, name="dc1", timeout_s=0.5)
    yield rest
    played.set_fault(Fault.NONE)
    await rest.close()


@contextlib.asynccontextmanager
async def _pushing(station: Station, meter: RestDcMeter) -> AsyncIterator[MeterPush]:
    """The pusher wired into the station, the meter read every 50 ms as a station's poller
    would."""
    push = MeterPush(
        station.session.pushed.put_nowait,
        lambda evse_id: meter.current() if evse_id == DC else None,
        signers={DC: meter},
        intervals={DC: INTERVAL_S},
        on_public_key=station.session.set_meter_public_key,
    )
    station.session.on_transaction.append(push.on_transaction)

    async def poll() -> None:
        while True:
            await meter.read()
            await asyncio.sleep(0.05)

    poller = asyncio.create_task(poll())
    await wait_until(lambda: meter.last_sample is not None, 5, "a first meter reading")
    try:
        yield push
    finally:
        station.session.on_transaction.remove(push.on_transaction)
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        await push.close()


def _signed(message: Message) -> list[dict[str, Any]]:
    values: list[dict[str, Any]] = message.data.get("signed_meter_values", [])
    return values


async def _next_meter_values(josev: JosevClient, since: int, timeout: float = 5) -> Message:
    return await josev.wait_for_update(name=METER_VALUES, since=since, timeout=timeout)


def _verify(signed: dict[str, Any]) -> None:
    """The signature over the payload, checked against the key that travelled with it."""
    _, payload, signature = signed["signed_meter_data"].split("|")
    key = serialization.load_der_public_key(bytes.fromhex(signed["public_key"]))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    sd = parse_ocmf(signed["signed_meter_data"]).signature["SD"]
    key.verify(bytes.fromhex(sd), payload.encode(), ec.ECDSA(hashes.SHA256()))
    assert signature


async def test_a_transaction_is_pushed_signed_at_start_and_end_and_every_interval_between(
    station: Station, josev: JosevClient, played: PlayedLemDcbm, meter: RestDcMeter
) -> None:
    async with _pushing(station, meter) as push:
        mark = josev.mark()
        await josev.update(
            "transaction_status",
            {"transaction_id": "tx-42", "status": "started", "evse_id": DC, "id_token": "04A2"},
        )
        start = await _next_meter_values(josev, mark)
        assert start.type == "update"
        data = start.data
        assert data["evse_id"] == DC
        assert data["total_active_energy_imported"] == 100_000.0
        assert data["total_active_energy_exported"] == 2_500.0
        assert (data["dc_voltage"], data["dc_current"]) == (400.0, 50.0)
        (signed,) = _signed(start)
        assert signed["measurand"] == "Energy.Active.Import.Register"
        assert signed["encoding_method"] == "OCMF"
        assert signed["signing_method"] == "ECDSA-secp256r1-SHA256"
        assert signed["public_key"] == played.public_key_hex
        record = parse_ocmf(signed["signed_meter_data"])
        assert [reading.kind for reading in record.readings] == ["B"]
        assert record.payload["CI"] == DC
        assert record.payload["ID"] == "04A2"
        _verify(signed)
        assert push.public_keys[DC] == played.public_key_hex
        # and the key is in the EVSE's limits report, which `csbridge status` shows
        await wait_until(
            lambda: (
                station.engine.reports.get(DC)["session"].get("meter_public_key")
                == played.public_key_hex
            ),
            5,
            "the key in the limits report",
        )

        # energy flows: the periodic updates follow the meter's registers, unsigned
        played.measure(import_kwh=101.0, export_kwh=3.0)
        periodic = await josev.wait_for_update(
            lambda m: m.data["total_active_energy_imported"] == 101_000.0,
            5,
            name=METER_VALUES,
            since=josev.mark(),
        )
        assert periodic.data["total_active_energy_exported"] == 3_000.0
        assert "signed_meter_values" not in periodic.data
        mark = josev.mark()
        await josev.wait_for_update(name=METER_VALUES, since=mark + 1, timeout=5)
        assert all(m.name != METER_VALUES or not _signed(m) for m in josev.updates[mark:])

        played.measure(import_kwh=107.637)
        await wait_until(
            lambda: (s := meter.current()) is not None and s.energy_import_wh == 107_637.0,
            5,
            "the meter's new register read",
        )
        mark = josev.mark()
        await josev.update(
            "transaction_status", {"transaction_id": "tx-42", "status": "ended", "evse_id": DC}
        )
        end = await josev.wait_for_update(
            lambda m: bool(_signed(m)), 5, name=METER_VALUES, since=mark
        )
        (signed,) = _signed(end)
        record = parse_ocmf(signed["signed_meter_data"])
        assert [(r.kind, r.value_wh) for r in record.readings] == [
            ("B", 100_000.0),
            ("E", 107_637.0),
        ]
        assert end.data["total_active_energy_imported"] == 107_637.0
        _verify(signed)
        assert DC not in push.in_transaction

    josev.assert_no_problems()


async def test_a_meter_that_fails_at_the_start_gives_an_unsigned_update_and_a_count(
    station: Station, josev: JosevClient, played: PlayedLemDcbm, meter: RestDcMeter
) -> None:
    async with _pushing(station, meter) as push:
        played.set_fault(Fault.BAD_OCMF)
        mark = josev.mark()
        await josev.update(
            "transaction_status", {"transaction_id": 7, "status": "started", "evse_id": DC}
        )
        start = await _next_meter_values(josev, mark)
        assert "signed_meter_values" not in start.data
        assert start.data["total_active_energy_imported"] == 100_000.0
        assert push.counters.get("signed_value_missing", "start/meter_gave_none") == 1
        assert meter.counters.get("meter_request_failed", "rest/ocmf/bad_ocmf") == 1
        # the meter recovers: the end is signed; an OCPP 1.6 integer id went as text
        played.set_fault(Fault.NONE)
        mark = josev.mark()
        await josev.update(
            "transaction_status", {"transaction_id": 7, "status": "ended", "evse_id": DC}
        )
        end = await _next_meter_values(josev, mark)
        (signed,) = _signed(end)
        assert parse_ocmf(signed["signed_meter_data"]).readings[-1].kind == "E"
    josev.assert_no_problems()


async def test_a_silent_meter_still_pushes_the_signed_register_at_start_and_end(
    station: Station, josev: JosevClient, played: PlayedLemDcbm, meter: RestDcMeter
) -> None:
    """The live reading is past its deadline, the signed record is there: its register is
    the reading, and nothing the meter did not sign is made up."""
    meter.deadline_s = 0.0
    async with _pushing(station, meter) as push:
        for status, kinds in (("started", ["B"]), ("ended", ["B", "E"])):
            mark = josev.mark()
            await josev.update(
                "transaction_status", {"transaction_id": "tx-9", "status": status, "evse_id": DC}
            )
            update = await _next_meter_values(josev, mark)
            assert update.data["total_active_energy_imported"] == 100_000.0
            assert "total_active_energy_exported" not in update.data  # not in the record
            assert "dc_voltage" not in update.data
            (signed,) = _signed(update)
            assert [r.kind for r in parse_ocmf(signed["signed_meter_data"]).readings] == kinds
        assert push.counters.get("meter_push_skipped", "start/no_reading") == 0
    josev.assert_no_problems()


async def test_the_public_key_is_read_at_start_up_for_the_status(
    station: Station, josev: JosevClient, played: PlayedLemDcbm, meter: RestDcMeter
) -> None:
    async with _pushing(station, meter) as push:
        await push.read_public_keys()
        assert station.session.meter_public_keys == {DC: played.public_key_hex}
        await wait_until(
            lambda: (
                station.engine.reports.get(DC)["session"].get("meter_public_key")
                == played.public_key_hex
            ),
            5,
            "the key in the limits report",
        )
