"""meter_values pushed during a transaction: at its start, every `update_interval_s` (60 s
unless configured) while it runs, and at its end, with the meter's registers (exported energy
in total_active_energy_exported). Where the EVSE has a signing meter (the Eichrecht DC meter),
the start and end updates carry its OCMF record of the transaction as signed_meter_values,
with its public key, as Josev's rules describe them (josev-mqtt-api.md section 9).

It depends on no particular meter: `reading` gives an EVSE's current sample (any object with
the registers in Wh and the DC voltage and current), `signers` an EVSE's signing meter. A
transaction is known from Josev's transaction_status (SessionHandlers.on_transaction). What
cannot be sent whole is sent as far as it is valid: without a live reading at a start or end
the registers come from the signed record; a signed value the meter did not give, or one over
Josev's limits, is left out, counted and logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

from csbridge.messages import (
    ABSENT,
    Absent,
    Message,
    MeterValuesUpdate,
    PerPhase,
    SignedMeterValue,
    TransactionStatusUpdate,
    josev_date_time,
    value_or,
)
from csbridge.sources.meters import OcmfRecord, TransactionStart
from csbridge.support import Counted, Counters, RateLimitedLog

log = logging.getLogger("csbridge.session.meter_push")

DEFAULT_INTERVAL_S: Final = 60.0
MAX_SIGNED_DATA: Final = 2500
MAX_METHOD: Final = 50
MAX_PUBLIC_KEY: Final = 2500
ENCODING: Final = "OCMF"
MEASURAND: Final = "Energy.Active.Import.Register"
"""What a DC meter's OCMF record signs: the active energy import register (its RI)."""
MAX_ID_BYTES: Final = 37
"""What the meter takes of an identifier (a longer token is cut, never refused)."""
NO_PHASES: Final = PerPhase(l1=0.0, l2=0.0, l3=0.0)
"""A DC reading has no phases; the message requires the per-phase objects. For the same reason
a DC update says power factor 1 (only real power flows) and frequency 0 Hz: both required,
neither measured. An AC meter's sample would fill them (the integrator's MeterSample)."""

Moment = Literal["start", "end"]


class MeterReading(Protocol):
    """What a push needs of a sample: the meter's registers (Wh) and the DC values."""

    @property
    def energy_import_wh(self) -> float: ...

    @property
    def energy_export_wh(self) -> float: ...

    @property
    def dc_voltage(self) -> float | None: ...

    @property
    def dc_current(self) -> float | None: ...


class SigningMeter(Protocol):
    """A meter that signs transactions (RestDcMeter is one)."""

    async def start_transaction(self, transaction: TransactionStart) -> OcmfRecord | None: ...

    async def stop_transaction(self, transaction_id: str) -> OcmfRecord | None: ...

    async def public_key(self) -> str | None: ...


@dataclass(slots=True)
class _Running:
    transaction_id: str
    periodic: asyncio.Task[None] | None = None


class MeterPush:
    """Pushes each EVSE's meter_values while a transaction runs on it. `push` hands a message
    to the bridge (SessionHandlers.pushed.put_nowait); `intervals` maps an EVSE to its
    update_interval_s (others: DEFAULT_INTERVAL_S)."""

    def __init__(
        self,
        push: Callable[[Message], object],
        reading: Callable[[str], MeterReading | None],
        *,
        signers: Mapping[str, SigningMeter] | None = None,
        intervals: Mapping[str, float] | None = None,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_public_key: Callable[[str, str], None] | None = None,
        on_signed: Callable[[str, SignedMeterValue | None], None] | None = None,
    ) -> None:
        self._push = push
        self._reading = reading
        self._signers = dict(signers or {})
        self._intervals = dict(intervals or {})
        self.counters = counters if counters is not None else Counters()
        self._running: dict[str, _Running] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._warnings = RateLimitedLog(log, clock)
        self.public_keys: dict[str, str] = {}
        """Each signing meter's public key once read: for status displays."""
        self._on_public_key = on_public_key
        """Told each key as it is read (SessionHandlers.set_meter_public_key)."""
        self._on_signed = on_signed
        """Told the signed value of each transaction's start, and None at its end
        (SessionHandlers.set_transaction_signed: the meter_values answer carries it)."""

    def on_transaction(self, evse_id: str, message: TransactionStatusUpdate) -> None:
        """SessionHandlers.on_transaction: a transaction started or ended on `evse_id`."""
        transaction_id = str(message.transaction_id)
        if message.status == "started":
            start = TransactionStart(
                transaction_id=_cut(transaction_id),
                evse_id=_cut(evse_id),
                client_id=_cut(str(value_or(message.id_token, ""))),
            )
            self._spawn(self._start(evse_id, start))
        elif message.status == "ended":
            self._spawn(self._end(evse_id, transaction_id))

    async def close(self) -> None:
        """Stop every periodic push (a station shutting down)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # after the starts: a start cancelled midway still leaves its beat behind
        beats = [each.periodic for each in self._running.values() if each.periodic is not None]
        for beat in beats:
            beat.cancel()
        await asyncio.gather(*beats, return_exceptions=True)

    @property
    def in_transaction(self) -> frozenset[str]:
        """The EVSEs whose transaction is being pushed."""
        return frozenset(self._running)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        """A fault in one push (a bug: a meter or a reading that raises) is logged, and the
        next transaction and the station go on."""
        try:
            await work
        except Exception:
            self.counters.add(Counted.METER_PUSH_SKIPPED, "any/failed")
            self._warnings.exception(("failed",), "event=meter_values_push_failed")

    def _lock(self, evse_id: str) -> asyncio.Lock:
        """One lock per EVSE: an end waits for its start's meter requests to finish."""
        return self._locks.setdefault(evse_id, asyncio.Lock())

    async def _start(self, evse_id: str, start: TransactionStart) -> None:
        async with self._lock(evse_id):
            previous = self._running.get(evse_id)
            if previous is not None and previous.transaction_id == start.transaction_id:
                return  # Josev said it again: the meter runs it already
            self._running.pop(evse_id, None)
            if previous is not None and previous.periodic is not None:
                previous.periodic.cancel()  # a start without the end of the one before
            running = _Running(start.transaction_id)
            self._running[evse_id] = running
            signer = self._signers.get(evse_id)
            try:
                record = await signer.start_transaction(start) if signer is not None else None
                await self._send(evse_id, "start", record)
            finally:  # the beat goes on even if the start's push failed
                running.periodic = asyncio.create_task(
                    self._every_interval(evse_id), name=f"meter-push-{evse_id}"
                )

    async def _end(self, evse_id: str, transaction_id: str) -> None:
        async with self._lock(evse_id):
            running = self._running.pop(evse_id, None)
            if running is not None and running.periodic is not None:
                running.periodic.cancel()
            signer = self._signers.get(evse_id)
            meter_id = running.transaction_id if running is not None else _cut(transaction_id)
            record = await signer.stop_transaction(meter_id) if signer is not None else None
            await self._send(evse_id, "end", record)

    async def _every_interval(self, evse_id: str) -> None:
        interval = self._intervals.get(evse_id, DEFAULT_INTERVAL_S)
        while True:
            await asyncio.sleep(interval)
            try:
                sample = self._reading(evse_id)
                if sample is None:
                    self._skipped(evse_id, "periodic", "no_reading")
                    continue
                self._push(Message(_update(evse_id, sample)))
            except Exception:  # a bug in a reading: this beat is lost, not the next ones
                self.counters.add(Counted.METER_PUSH_SKIPPED, "periodic/failed")
                self._warnings.exception(("failed", evse_id), "event=meter_values_push_failed")

    async def _send(self, evse_id: str, moment: Moment, record: OcmfRecord | None) -> None:
        signer = self._signers.get(evse_id)
        signed = None
        if signer is not None:
            signed = await self._signed_value(evse_id, moment, signer, record)
        if self._on_signed is not None:
            self._on_signed(evse_id, signed if moment == "start" else None)
        sample = self._reading(evse_id)
        if sample is not None:
            update = _update(evse_id, sample, signed)
        elif record is not None and (registered := _last_register(record)) is not None:
            update = _update_from_record(evse_id, registered, signed)
        else:
            self._skipped(evse_id, moment, "no_reading")
            return
        self._push(Message(update))

    async def _signed_value(
        self, evse_id: str, moment: Moment, signer: SigningMeter, record: OcmfRecord | None
    ) -> SignedMeterValue | None:
        if record is None:
            self._unsigned(evse_id, moment, "meter_gave_none")
            return None
        key = await signer.public_key()
        if key is None:
            self._unsigned(evse_id, moment, "no_public_key")
            return None
        if len(key) > MAX_PUBLIC_KEY:
            self._unsigned(evse_id, moment, "key_too_long")
            return None
        self._known_key(evse_id, key)
        if len(record.text) > MAX_SIGNED_DATA:
            self._unsigned(evse_id, moment, "record_too_long")
            return None
        method = record.signing_algorithm
        return SignedMeterValue(
            measurand=MEASURAND,
            signed_meter_data=record.text,
            signing_method=method if len(method) <= MAX_METHOD else "",
            encoding_method=ENCODING,
            public_key=key,
        )

    async def read_public_keys(self) -> None:
        """Ask every signing meter for its key now (at start-up, so that status shows it before
        the first transaction); a meter that does not answer is asked again at a start."""
        for evse_id, signer in self._signers.items():
            key = await signer.public_key()
            if key is not None and len(key) <= MAX_PUBLIC_KEY:
                self._known_key(evse_id, key)

    def _known_key(self, evse_id: str, key: str) -> None:
        if self.public_keys.get(evse_id) != key:
            self.public_keys[evse_id] = key
            if self._on_public_key is not None:
                self._on_public_key(evse_id, key)

    def _unsigned(self, evse_id: str, moment: Moment, why: str) -> None:
        self.counters.add(Counted.SIGNED_VALUE_MISSING, f"{moment}/{why}")
        self._warnings.warning(
            ("unsigned", moment, why),
            "event=signed_value_missing evse=%s moment=%s why=%s",
            evse_id,
            moment,
            why,
        )

    def _skipped(self, evse_id: str, moment: Moment | Literal["periodic"], why: str) -> None:
        self.counters.add(Counted.METER_PUSH_SKIPPED, f"{moment}/{why}")
        self._warnings.warning(
            ("skipped", moment, why),
            "event=meter_values_push_skipped evse=%s moment=%s why=%s",
            evse_id,
            moment,
            why,
        )


def _update(
    evse_id: str, sample: MeterReading, signed: SignedMeterValue | None = None
) -> MeterValuesUpdate:
    return _meter_values(
        evse_id,
        max(0.0, sample.energy_import_wh),
        signed,
        exported_wh=max(0.0, sample.energy_export_wh),
        dc_voltage=_optional(sample.dc_voltage, lower=0.0),
        dc_current=_optional(sample.dc_current),
    )


def _update_from_record(
    evse_id: str, import_wh: float, signed: SignedMeterValue | None
) -> MeterValuesUpdate:
    """The live reading is missing: the signed record's own register is the reading."""
    return _meter_values(evse_id, import_wh, signed)


def _meter_values(
    evse_id: str,
    imported_wh: float,
    signed: SignedMeterValue | None,
    *,
    exported_wh: float | Absent = ABSENT,
    dc_voltage: float | Absent = ABSENT,
    dc_current: float | Absent = ABSENT,
) -> MeterValuesUpdate:
    """A DC meter's update: no phases, power factor 1, 0 Hz (the message requires them)."""
    return MeterValuesUpdate(
        evse_id=evse_id,
        timestamp=josev_date_time(datetime.now(UTC)),
        voltage=NO_PHASES,
        current=NO_PHASES,
        power_factor=1.0,
        frequency=0.0,
        total_active_energy_imported=round(imported_wh, 3),
        total_reactive_energy_imported=0.0,
        dc_voltage=dc_voltage,
        dc_current=dc_current,
        total_active_energy_exported=(
            round(exported_wh, 3) if not isinstance(exported_wh, Absent) else ABSENT
        ),
        signed_meter_values=[signed] if signed is not None else ABSENT,
    )


def _last_register(record: OcmfRecord) -> float | None:
    values = [each.value_wh for each in record.readings if each.value_wh is not None]
    return values[-1] if values and values[-1] >= 0 else None


def _optional(value: float | None, *, lower: float | None = None) -> float | Absent:
    if value is None:
        return ABSENT
    return round(value if lower is None else max(lower, value), 3)


def _cut(text: str) -> str:
    """At most MAX_ID_BYTES bytes, cut on a character boundary."""
    encoded = text.encode()[:MAX_ID_BYTES]
    return encoded.decode(errors="ignore")
