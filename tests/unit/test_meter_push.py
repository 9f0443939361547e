"""MeterPush without a broker: what each push holds, and what it leaves out when a part of it
would break Josev's rules or was not given (section 9: signed_meter_data and public_key <= 2500,
signing_method <= 50). The signing meter here is a small one written in the test that hands out
OCMF records written from the format's facts; the REST meter itself is tested against the played
meter in tests/integration."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from csbridge.messages import Message, TransactionStatusUpdate
from csbridge.session import MeterPush
from csbridge.sources.meters import OcmfRecord, TransactionStart, parse_ocmf
from csbridge.testing.harness import wait_until

DC = "DE*CSB*E0001"
KEY = "3059301306072A8648CE3D020106082A8648CE3D030107034200" + "04" * 65


def _record(kind: str, kwh: float, *, sa: str = "ECDSA-secp256r1-SHA256", pad: int = 0) -> str:
    reading = (
        f'{{"TM":"2026-12-01T22:50:00,000+0000 S","TX":"{kind}","RV":{kwh},'
        '"RI":"01-00:01.08.00.FF","RU":"kWh","RT":"DC","EF":"","ST":"G"}'
    )
    payload = (
        f'{{"FV":"1.0","PG":"T1","MS":"M1","IS":true,"IT":"NONE","ID":"{"x" * pad}",'
        f'"RD":[{reading}]}}'
    )
    return f'OCMF|{payload}|{{"SA":"{sa}","SD":"30440220AB"}}'


@dataclass
class Sample:
    energy_import_wh: float
    energy_export_wh: float
    dc_voltage: float | None = 400.0
    dc_current: float | None = -20.0


@dataclass
class Signer:
    begin: str | None = field(default_factory=lambda: _record("B", 10.0))
    end: str | None = field(default_factory=lambda: _record("E", 12.5))
    key: str | None = KEY
    calls: list[str] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    async def start_transaction(self, transaction: TransactionStart) -> OcmfRecord | None:
        self.calls.append(f"start {transaction.transaction_id} {transaction.client_id}")
        await self.gate.wait()
        return parse_ocmf(self.begin) if self.begin is not None else None

    async def stop_transaction(self, transaction_id: str) -> OcmfRecord | None:
        self.calls.append(f"stop {transaction_id}")
        return parse_ocmf(self.end) if self.end is not None else None

    async def public_key(self) -> str | None:
        return self.key


def _transaction(status: str, transaction_id: str | int = "tx-1", **more: Any) -> Any:
    return TransactionStatusUpdate(transaction_id=transaction_id, status=status, evse_id=DC, **more)  # type: ignore[arg-type] # status is one of Josev's three


def _pusher(
    sent: list[dict[str, Any]], signer: Signer | None, sample: Sample | None, interval: float = 60
) -> MeterPush:
    return MeterPush(
        lambda message: sent.append(message.data),
        lambda evse_id: sample,
        signers={DC: signer} if signer is not None else None,
        intervals={DC: interval},
    )


async def _run(push: MeterPush, sent: list[dict[str, Any]], status: str, count: int) -> None:
    push.on_transaction(DC, _transaction(status))
    await wait_until(lambda: len(sent) >= count, 5, f"{count} pushes")


async def test_start_and_end_carry_the_meters_records_and_the_registers() -> None:
    sent: list[dict[str, Any]] = []
    signer = Signer()
    push = _pusher(sent, signer, Sample(10_000.0, 400.0))
    push.on_transaction(DC, _transaction("started", id_token="04A2B9C1"))  # noqa: S106 - a card id
    await wait_until(lambda: len(sent) >= 1, 5, "the start pushed")
    await _run(push, sent, "ended", 2)
    start, end = sent
    assert start["signed_meter_values"] == [
        {
            "measurand": "Energy.Active.Import.Register",
            "signed_meter_data": _record("B", 10.0),
            "signing_method": "ECDSA-secp256r1-SHA256",
            "encoding_method": "OCMF",
            "public_key": KEY,
        }
    ]
    assert end["signed_meter_values"][0]["signed_meter_data"] == _record("E", 12.5)
    assert (start["total_active_energy_imported"], start["total_active_energy_exported"]) == (
        10_000.0,
        400.0,
    )
    assert (start["dc_voltage"], start["dc_current"]) == (400.0, -20.0)
    assert signer.calls == ["start tx-1 04A2B9C1", "stop tx-1"]
    assert push.public_keys == {DC: KEY}
    await push.close()


async def test_without_a_signing_meter_the_updates_are_plain() -> None:
    sent: list[dict[str, Any]] = []
    push = _pusher(sent, None, Sample(5.0, 0.0, dc_voltage=None, dc_current=None))
    await _run(push, sent, "started", 1)
    assert "signed_meter_values" not in sent[0]
    assert "dc_voltage" not in sent[0]
    assert "dc_current" not in sent[0]
    assert sent[0]["total_active_energy_exported"] == 0.0
    await push.close()


async def test_the_updates_follow_the_interval_until_the_end() -> None:
    sent: list[dict[str, Any]] = []
    push = _pusher(sent, None, Sample(5.0, 1.0), interval=0.01)
    await _run(push, sent, "started", 4)  # the start and three on the beat
    assert DC in push.in_transaction
    await _run(push, sent, "ended", len(sent) + 1)
    assert DC not in push.in_transaction
    assert push._running == {}  # noqa: SLF001 - no periodic task left behind
    await push.close()


@pytest.mark.parametrize(
    ("signer", "why"),
    [
        (Signer(begin=None), "meter_gave_none"),
        (Signer(key=None), "no_public_key"),
        (Signer(begin=_record("B", 10.0, pad=2500)), "record_too_long"),
        (Signer(key="A" * 2501), "key_too_long"),
    ],
)
async def test_a_signed_value_that_cannot_go_is_left_out_and_counted(
    signer: Signer, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[dict[str, Any]] = []
    push = _pusher(sent, signer, Sample(10_000.0, 0.0))
    await _run(push, sent, "started", 1)
    assert "signed_meter_values" not in sent[0]
    assert sent[0]["total_active_energy_imported"] == 10_000.0  # the reading still goes
    assert push.counters.get("signed_value_missing", f"start/{why}") == 1
    assert f"event=signed_value_missing evse={DC} moment=start why={why}" in caplog.text
    await push.close()


async def test_the_limits_are_reached_not_passed() -> None:
    """A record of exactly 2500 characters and a key of 2500 go; a 51-character signing
    method is left empty rather than sent too long."""
    base = len(_record("B", 10.0, sa="S" * 51))
    record = _record("B", 10.0, sa="S" * 51, pad=2500 - base)
    assert len(record) == 2500
    sent: list[dict[str, Any]] = []
    push = _pusher(sent, Signer(begin=record, key="K" * 2500), Sample(1.0, 0.0))
    await _run(push, sent, "started", 1)
    (signed,) = sent[0]["signed_meter_values"]
    assert len(signed["signed_meter_data"]) == 2500
    assert len(signed["public_key"]) == 2500
    assert signed["signing_method"] == ""
    await push.close()


async def test_an_end_waits_for_the_start_it_follows() -> None:
    """Josev's end arrives while the meter still works on the start: the start's update goes
    first, then the end's; the meter is told to stop only after it started."""
    sent: list[dict[str, Any]] = []
    signer = Signer()
    signer.gate.clear()
    push = _pusher(sent, signer, Sample(1.0, 0.0))
    push.on_transaction(DC, _transaction("started", transaction_id=17))
    push.on_transaction(DC, _transaction("ended", transaction_id=17))
    await wait_until(lambda: signer.calls == ["start 17 "], 5, "the start asked")
    assert sent == []
    signer.gate.set()
    await wait_until(lambda: len(sent) == 2, 5, "both pushed")
    assert signer.calls == ["start 17 ", "stop 17"]
    kinds = [
        parse_ocmf(d["signed_meter_values"][0]["signed_meter_data"]).readings[0].kind for d in sent
    ]
    assert kinds == ["B", "E"]
    await push.close()


async def test_no_reading_and_no_record_skips_the_push_and_counts_it() -> None:
    sent: list[dict[str, Any]] = []
    push = _pusher(sent, Signer(begin=None), None, interval=0.01)
    push.on_transaction(DC, _transaction("started"))
    await wait_until(
        lambda: push.counters.get("meter_push_skipped", "periodic/no_reading") >= 2,
        5,
        "periodic pushes skipped",
    )
    assert push.counters.get("meter_push_skipped", "start/no_reading") == 1
    assert sent == []
    await push.close()


async def test_an_overlong_id_is_cut_to_what_the_meter_takes() -> None:
    sent: list[dict[str, Any]] = []
    signer = Signer()
    push = _pusher(sent, signer, Sample(1.0, 0.0))
    push.on_transaction(DC, _transaction("started", transaction_id="t" * 40, id_token="é" * 30))
    await wait_until(lambda: len(sent) == 1, 5, "the start pushed")
    assert signer.calls == [f"start {'t' * 37} {'é' * 18}"]
    await push.close()


def test_messages_go_out_as_updates() -> None:
    sent: list[Message] = []
    push = MeterPush(sent.append, lambda evse_id: Sample(1.0, 0.0))

    async def once() -> None:
        push.on_transaction(DC, _transaction("started"))
        await wait_until(lambda: len(sent) == 1, 5, "the start pushed")
        await push.close()

    asyncio.run(once())
    assert (sent[0].name, sent[0].type) == ("meter_values", "update")


async def test_each_key_read_is_told_once_and_an_overlong_one_never() -> None:
    told: list[tuple[str, str]] = []
    sent: list[dict[str, Any]] = []
    push = MeterPush(
        lambda message: sent.append(message.data),
        lambda evse_id: Sample(1.0, 0.0),
        signers={DC: Signer()},
        on_public_key=lambda evse_id, key: told.append((evse_id, key)),
    )
    await push.read_public_keys()
    await _run(push, sent, "started", 1)
    assert told == [(DC, KEY)]
    long_key = MeterPush(
        lambda message: None,
        lambda evse_id: None,
        signers={DC: Signer(key="A" * 2501)},
        on_public_key=lambda evse_id, key: told.append((evse_id, key)),
    )
    await long_key.read_public_keys()
    assert told == [(DC, KEY)]
    assert long_key.public_keys == {}
    await push.close()


async def test_josev_saying_started_again_starts_nothing_new() -> None:
    sent: list[dict[str, Any]] = []
    signer = Signer()
    push = _pusher(sent, signer, Sample(1.0, 0.0))
    await _run(push, sent, "started", 1)
    push.on_transaction(DC, _transaction("started"))
    push.on_transaction(DC, _transaction("ended"))
    await wait_until(lambda: len(sent) == 2, 5, "the end pushed")
    assert signer.calls == ["start tx-1 ", "stop tx-1"]
    await push.close()


async def test_a_reading_that_raises_loses_its_push_not_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent: list[dict[str, Any]] = []
    calls: list[int] = []

    def reading(evse_id: str) -> Sample:
        calls.append(1)
        if len(calls) in (1, 2):
            raise ValueError("a bug in a meter module")
        return Sample(1.0, 0.0)

    push = MeterPush(lambda message: sent.append(message.data), reading, intervals={DC: 0.01})
    push.on_transaction(DC, _transaction("started"))  # its start push is lost with the bug
    await wait_until(lambda: len(sent) >= 2, 5, "pushes after the fault")
    assert push.counters.get("meter_push_skipped", "any/failed") == 1  # the start
    assert push.counters.get("meter_push_skipped", "periodic/failed") == 1  # the first beat
    assert "event=meter_values_push_failed" in caplog.text
    await push.close()


async def test_closing_mid_start_leaves_no_task_behind() -> None:
    sent: list[dict[str, Any]] = []
    signer = Signer()
    signer.gate.clear()  # the meter never answers the start
    push = _pusher(sent, signer, Sample(1.0, 0.0), interval=0.01)
    push.on_transaction(DC, _transaction("started"))
    await wait_until(lambda: signer.calls == ["start tx-1 "], 5, "the start asked")
    await push.close()
    beats = [r.periodic for r in push._running.values()]  # noqa: SLF001 - what close left
    assert beats  # the cancelled start left its beat
    assert all(beat is not None and beat.done() for beat in beats)
    assert sent == []
