"""The REST DC meter (RestDcMeter) against a LEM DCBM 400/600 played on loopback over real HTTP:
readings scaled from the meter's kWh and kW, a signed transaction from start to OCMF record, the
public key, and the safe side when the meter fails (HTTP errors, bodies that are not the
meter's, no answer in time): a counter, one log line, the last good reading until its
deadline."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import trustme
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from csbridge.sources.meters import OcmfRecord, RestDcMeter, TransactionStart
from csbridge.support import Counters
from csbridge.testing.harness import wait_until
from csbridge.testing.lem_dcbm import Fault, PlayedLemDcbm, played_lem_dcbm

TIMEOUT_S = 0.3
DEADLINE_S = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def played() -> Iterator[PlayedLemDcbm]:
    with played_lem_dcbm("LEM2026-0042") as meter:
        yield meter


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest_asyncio.fixture
async def meter(played: PlayedLemDcbm, clock: Clock) -> AsyncIterator[RestDcMeter]:
    rest = RestDcMeter(
        played.url,
        name="dc1",
        timeout_s=TIMEOUT_S,
        deadline_s=DEADLINE_S,
        counters=Counters(),
        clock=clock,
    )
    yield rest
    played.set_fault(Fault.NONE)
    await rest.close()


def _failures(meter: RestDcMeter, label: str) -> int:
    return meter.counters.get("meter_request_failed", label)


def _verify(record: OcmfRecord, public_key_hex: str) -> None:
    """The signature, checked by an ECDSA implementation of its own against the meter's key,
    covers the payload exactly as the record carries it."""
    _, payload, _ = record.text.split("|")
    key = serialization.load_der_public_key(bytes.fromhex(public_key_hex))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(bytes.fromhex(record.signature["SD"]), payload.encode(), ec.ECDSA(hashes.SHA256()))


async def test_a_reading_is_the_meters_registers_in_wh_and_power_in_w(
    played: PlayedLemDcbm, meter: RestDcMeter, clock: Clock
) -> None:
    played.measure(voltage_v=400.0, current_a=-25.0, import_kwh=12.345, export_kwh=1.5)
    sample = await meter.read()
    assert sample is not None
    assert sample.energy_import_wh == pytest.approx(12_345.0)
    assert sample.energy_export_wh == pytest.approx(1_500.0)
    assert (sample.dc_voltage, sample.dc_current) == (400.0, -25.0)
    assert sample.power == pytest.approx(-10_000.0)  # 400 V x -25 A, given by the meter in kW
    assert sample.time == clock.now
    assert sample.meter_time
    assert played.requested("/v1/livemeasure") == 1


async def test_the_public_key_is_read_from_the_meters_status_once(
    played: PlayedLemDcbm, meter: RestDcMeter
) -> None:
    assert meter.known_public_key is None
    assert await meter.public_key() == played.public_key_hex
    assert await meter.public_key() == played.public_key_hex
    assert meter.known_public_key == played.public_key_hex
    assert played.requested("/v1/status") == 1


async def test_a_transaction_from_start_to_stop_gives_signed_records_of_both_ends(
    played: PlayedLemDcbm, meter: RestDcMeter
) -> None:
    played.measure(import_kwh=100.0)
    begin = await meter.start_transaction(
        TransactionStart(transaction_id="tx-1", evse_id="DE*CSB*E0001", client_id="04A2B9C1")
    )
    assert begin is not None
    assert played.requested("/v1/settings") == 1  # the time was set before the start
    assert [reading.kind for reading in begin.readings] == ["B"]
    assert begin.readings[0].value_wh == pytest.approx(100_000.0)
    assert begin.payload["CI"] == "DE*CSB*E0001"
    _verify(begin, played.public_key_hex)

    played.measure(import_kwh=107.637)
    end = await meter.stop_transaction("tx-1")
    assert end is not None
    assert [reading.kind for reading in end.readings] == ["B", "E"]
    assert end.readings[1].value_wh == pytest.approx(107_637.0)
    assert end.meter_serial == "LEM2026-0042"
    assert end.signing_algorithm == "ECDSA-secp256r1-SHA256"
    _verify(end, played.public_key_hex)
    tampered = end.text.replace("107.637", "117.637")
    with pytest.raises(InvalidSignature):
        _verify(OcmfRecord(tampered, end.payload, end.signature), played.public_key_hex)


async def test_a_second_start_while_one_runs_is_refused_by_the_meter_and_gives_no_record(
    played: PlayedLemDcbm, meter: RestDcMeter, caplog: pytest.LogCaptureFixture
) -> None:
    assert await meter.start_transaction(TransactionStart(transaction_id="tx-1")) is not None
    with caplog.at_level(logging.WARNING, "csbridge.sources.meters"):
        assert await meter.start_transaction(TransactionStart(transaction_id="tx-2")) is None
    assert _failures(meter, "rest/start/http_status") == 1
    assert "event=meter_request_failed meter=dc1 request=start why=http_status" in caplog.text


async def test_a_refused_time_is_counted_and_the_meter_decides_the_start(
    played: PlayedLemDcbm, meter: RestDcMeter
) -> None:
    played.state.refuse_time = True
    assert await meter.start_transaction(TransactionStart(transaction_id="tx-1")) is None
    assert _failures(meter, "rest/settings/bad_body") == 1
    assert _failures(meter, "rest/start/http_status") == 1  # never synchronised: refused
    played.state.time_synced = True  # as by NTP
    assert await meter.start_transaction(TransactionStart(transaction_id="tx-1")) is not None
    assert _failures(meter, "rest/settings/bad_body") == 2


@pytest.mark.parametrize(
    ("start", "why"),
    [
        (TransactionStart(transaction_id=""), "transaction_id is empty"),
        (TransactionStart(transaction_id="x" * 38), "transaction_id is longer than 37 bytes"),
        (TransactionStart(transaction_id="t", evse_id="é" * 19), "evse_id is longer"),
        (TransactionStart(transaction_id="t", user_data="u" * 129), "user_data is longer"),
        (TransactionStart(transaction_id="t", tariff_id=5), "tariff_id 5 is not 0..4"),
        (TransactionStart(transaction_id="t", cable_id=8), "cable_id 8 is not 0..7"),
    ],
)
async def test_a_start_the_meter_would_refuse_is_not_sent(
    played: PlayedLemDcbm,
    meter: RestDcMeter,
    caplog: pytest.LogCaptureFixture,
    start: TransactionStart,
    why: str,
) -> None:
    with caplog.at_level(logging.WARNING, "csbridge.sources.meters"):
        assert await meter.start_transaction(start) is None
    assert played.requested("/v1/legal") == 0
    assert _failures(meter, "rest/start/bad_request") == 1
    assert why in caplog.text


async def test_stopping_an_unknown_transaction_gives_no_record(
    played: PlayedLemDcbm, meter: RestDcMeter
) -> None:
    assert await meter.stop_transaction("never-started") is None
    assert _failures(meter, "rest/stop/http_status") == 1
    assert played.requested("/v1/ocmf") == 0


async def test_a_bad_ocmf_record_is_refused(played: PlayedLemDcbm, meter: RestDcMeter) -> None:
    assert await meter.start_transaction(TransactionStart(transaction_id="tx-1")) is not None
    played.set_fault(Fault.BAD_OCMF)
    assert await meter.stop_transaction("tx-1") is None
    assert _failures(meter, "rest/ocmf/bad_ocmf") == 1


@pytest.mark.parametrize(
    ("fault", "why"),
    [(Fault.HTTP_500, "http_status"), (Fault.NOT_JSON, "bad_body"), (Fault.HANG, "timeout")],
)
async def test_a_failing_meter_keeps_the_last_good_reading_until_its_deadline(
    played: PlayedLemDcbm,
    meter: RestDcMeter,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
    why: str,
) -> None:
    played.measure(voltage_v=500.0, current_a=10.0, import_kwh=2.0)
    good = await meter.read()
    assert good is not None
    played.set_fault(fault)
    clock.now += DEADLINE_S - 1.0
    with caplog.at_level(logging.WARNING, "csbridge.sources.meters"):
        assert await meter.read() == good  # the last good one, still within its deadline
        clock.now += 2.0
        assert await meter.read() is None  # past it: the meter is silent
    assert meter.current() is None
    assert _failures(meter, f"rest/livemeasure/{why}") == 2
    # one line for the kind, however often it fails within the minute
    assert caplog.text.count(f"request=livemeasure why={why}") == 1
    played.set_fault(Fault.NONE)
    assert await meter.read() is not None


async def test_a_meter_that_is_not_there_is_unreachable_and_has_no_key(clock: Clock) -> None:
    with played_lem_dcbm() as gone:
        url = gone.url
    meter = RestDcMeter(url, timeout_s=TIMEOUT_S, clock=clock)
    try:
        assert await meter.read() is None
        assert await meter.public_key() is None
        assert meter.counters.get("meter_request_failed", "rest/livemeasure/unreachable") == 1
        assert meter.counters.get("meter_request_failed", "rest/status/unreachable") == 1
    finally:
        await meter.close()


@pytest.mark.parametrize(
    "body",
    [
        {
            "voltage": "400",
            "current": 1,
            "power": 1,
            "energyImportTotal": 1,
            "energyExportTotal": 0,
        },
        {"voltage": 400, "current": 1, "power": 1, "energyImportTotal": -1, "energyExportTotal": 0},
        {"voltage": 400, "current": 1, "power": 1, "energyExportTotal": 0},
        {
            "voltage": 400,
            "current": True,
            "power": 1,
            "energyImportTotal": 1,
            "energyExportTotal": 0,
        },
    ],
)
async def test_a_livemeasure_that_is_not_the_meters_is_refused(
    played: PlayedLemDcbm, meter: RestDcMeter, body: dict[str, object]
) -> None:
    played.livemeasure = lambda: body  # type: ignore[method-assign] # one answer changed
    assert await meter.read() is None
    assert _failures(meter, "rest/livemeasure/bad_body") == 1
    assert json.dumps(body)  # the test's body is JSON the server can send


async def test_over_https_the_meters_certificate_is_checked(tmp_path: Path, clock: Clock) -> None:
    """The meter also serves HTTPS: with its certificate as the CA the readings come; with the
    system's CAs (the default) the meter is unreachable, never read unchecked."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    ca_file = tmp_path / "meter-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with played_lem_dcbm(tls=server) as played:
        played.measure(import_kwh=3.0)
        assert played.url.startswith("https://")
        trusting = RestDcMeter(played.url, timeout_s=2.0, clock=clock, verify=str(ca_file))
        default = RestDcMeter(played.url, timeout_s=2.0, clock=clock)
        try:
            sample = await trusting.read()
            assert sample is not None
            assert sample.energy_import_wh == pytest.approx(3_000.0)
            assert await default.read() is None
            assert default.counters.get("meter_request_failed", "rest/livemeasure/unreachable") == 1
        finally:
            await trusting.close()
            await default.close()


async def test_poll_keeps_the_current_sample_fresh(played: PlayedLemDcbm, clock: Clock) -> None:
    meter = RestDcMeter(played.url, timeout_s=TIMEOUT_S, clock=clock)
    poller = asyncio.create_task(meter.poll(every_s=0.01))
    try:
        played.measure(import_kwh=1.0)
        await wait_until(
            lambda: (s := meter.current()) is not None and s.energy_import_wh == 1000.0
        )
        played.measure(import_kwh=2.0)
        await wait_until(
            lambda: (s := meter.current()) is not None and s.energy_import_wh == 2000.0
        )
        assert played.requested("/v1/livemeasure") >= 2
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        await meter.close()
