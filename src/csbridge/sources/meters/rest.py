"""An Eichrecht DC meter over its HTTP/JSON interface: the LEM DCBM 400/600 (facts and sources
in docs/lem-dcbm.md).

What it gives the station: live readings (`read`), the transaction the meter signs (`start_
transaction`, `stop_transaction`, each handing back the meter's OCMF record of it) and the
meter's OCMF public key (`public_key`). Every request has a timeout. A failed request (no
answer in time, an HTTP error, a body that is not what the meter sends) is counted and logged
once per kind a minute, and falls to the safe side: `read` gives the last good sample until its
deadline, then None (a silent meter: a source fault for whoever reads it); a transaction call
gives None (no signed value rather than a made-up one).
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import httpx

from csbridge.sources.meters.ocmf import OcmfError, OcmfRecord, parse_ocmf
from csbridge.support import Counted, Counters, RateLimitedLog

log = logging.getLogger("csbridge.sources.meters")

KIND: Final = "rest"
DEFAULT_TIMEOUT_S: Final = 2.0
DEFAULT_POLL_S: Final = 1.0
"""How often `poll` reads the meter (EVerest's driver publishes about once a second)."""
DEFAULT_DEADLINE_S: Final = 5.0
"""A sample older than this is no reading: the meter counts as silent."""
KILO: Final = 1000.0
"""livemeasure gives energy in kWh and power in kW (docs/lem-dcbm.md)."""
MAX_ID_BYTES: Final = 37
"""evseId, transactionId and clientId of a transaction start, in bytes."""
MAX_USER_DATA_BYTES: Final = 128
TARIFF_IDS: Final = range(5)
CABLE_IDS: Final = range(8)
TRANSACTION_ONGOING_BIT: Final = 0b100
"""transactionStatus bit 2: set while the meter still runs the transaction."""

Request = Literal["livemeasure", "status", "settings", "start", "stop", "ocmf"]
Why = Literal["timeout", "unreachable", "http_status", "bad_body", "bad_ocmf", "bad_request"]


@dataclass(frozen=True, slots=True)
class RestMeterSample:
    """One reading of the meter: `time` is the station's clock when it arrived, energies are
    the meter's total registers in Wh, power in W (negative while energy flows back)."""

    time: float
    energy_import_wh: float
    energy_export_wh: float
    dc_voltage: float
    dc_current: float
    power: float
    meter_time: str
    """The meter's own timestamp of the reading, as it wrote it."""


@dataclass(frozen=True, slots=True)
class TransactionStart:
    """What the meter is told of a transaction it is to sign (the identifiers end up in the
    OCMF record). Limits as the meter takes them: ids <= 37 bytes, transaction_id not empty,
    tariff 0..4, cable loss compensation 0..7, user_data <= 128 bytes."""

    transaction_id: str
    evse_id: str = ""
    client_id: str = ""
    tariff_id: int = 0
    cable_id: int = 0
    user_data: str = ""

    def problem(self) -> str | None:
        """Why the meter would refuse it, or None."""
        if not self.transaction_id:
            return "transaction_id is empty"
        for name in ("transaction_id", "evse_id", "client_id"):
            if len(getattr(self, name).encode()) > MAX_ID_BYTES:
                return f"{name} is longer than {MAX_ID_BYTES} bytes"
        if len(self.user_data.encode()) > MAX_USER_DATA_BYTES:
            return f"user_data is longer than {MAX_USER_DATA_BYTES} bytes"
        if self.tariff_id not in TARIFF_IDS:
            return f"tariff_id {self.tariff_id} is not 0..4"
        if self.cable_id not in CABLE_IDS:
            return f"cable_id {self.cable_id} is not 0..7"
        return None

    def body(self) -> dict[str, Any]:
        return {
            "evseId": self.evse_id,
            "transactionId": self.transaction_id,
            "clientId": self.client_id,
            "tariffId": self.tariff_id,
            "cableId": self.cable_id,
            "userData": self.user_data,
        }


class MeterRequestError(Exception):
    """Inside this module only: why one request gave nothing usable."""

    def __init__(self, why: Why, detail: str) -> None:
        super().__init__(detail)
        self.why = why
        self.detail = detail


class RestDcMeter:
    """One LEM DCBM 400/600 at `url` (scheme and host, e.g. http://192.168.1.2)."""

    def __init__(
        self,
        url: str,
        *,
        name: str = KIND,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        deadline_s: float = DEFAULT_DEADLINE_S,
        api: str = "v1",
        sync_time: bool = True,
        verify: bool | str = True,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = name
        """A configured name: the meter's label in logs and counters."""
        self.deadline_s = deadline_s
        self.counters = counters if counters is not None else Counters()
        self._prefix = f"/{api}"
        self._sync_time = sync_time
        self._clock = clock
        self._wall_clock = wall_clock
        # verify: over HTTPS, the meter's certificate (GET /v1/certificate gives it) as a CA
        # file, or True for the system's CAs; never off in a station that bills.
        self._client = client or httpx.AsyncClient(
            base_url=url,
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            verify=ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify,
        )
        self._owns_client = client is None
        self._failures = RateLimitedLog(log, clock)
        self._last: RestMeterSample | None = None
        self._public_key: str | None = None

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    @property
    def last_sample(self) -> RestMeterSample | None:
        """The last good sample, however old."""
        return self._last

    def current(self) -> RestMeterSample | None:
        """The last good sample while it is within its deadline (no request made)."""
        last = self._last
        if last is None or self._clock() - last.time > self.deadline_s:
            return None
        return last

    async def read(self) -> RestMeterSample | None:
        """A fresh sample; after a failed request the last good one until its deadline."""
        try:
            body = await self._json("livemeasure", "GET", "livemeasure", expect=200)
            self._last = _sample(body, self._clock())
        except MeterRequestError as failure:
            self._failed("livemeasure", failure)
        return self.current()

    async def poll(self, every_s: float = DEFAULT_POLL_S) -> None:
        """Read the meter every `every_s` seconds until cancelled: `current()` then always holds
        the newest good sample (the station's task for a configured REST meter)."""
        while True:
            await self.read()
            await asyncio.sleep(every_s)

    async def public_key(self) -> str | None:
        """The meter's OCMF public key (read once, then kept: it is fixed in the meter)."""
        if self._public_key is None:
            try:
                body = await self._json("status", "GET", "status", expect=200)
                key = body.get("publicKeyOcmf")
                if not isinstance(key, str) or not key:
                    raise MeterRequestError("bad_body", "status has no publicKeyOcmf")
                self._public_key = key
            except MeterRequestError as failure:
                self._failed("status", failure)
        return self._public_key

    @property
    def known_public_key(self) -> str | None:
        """The public key if it was read (no request made): for status displays."""
        return self._public_key

    async def start_transaction(self, transaction: TransactionStart) -> OcmfRecord | None:
        """Start the signed transaction; the meter's OCMF record of its beginning, or None when
        the meter did not start it or gave no valid record."""
        problem = transaction.problem()
        if problem is not None:
            self._failed("start", MeterRequestError("bad_request", problem))
            return None
        if self._sync_time:
            await self._set_time()
        try:
            body = await self._json("start", "POST", "legal", expect=201, body=transaction.body())
            if body.get("running") is not True:
                raise MeterRequestError("bad_body", "the transaction is not running")
        except MeterRequestError as failure:
            self._failed("start", failure)
            return None
        return await self._ocmf(transaction.transaction_id)

    async def stop_transaction(self, transaction_id: str) -> OcmfRecord | None:
        """End the signed transaction; the meter's OCMF record of it, or None."""
        try:
            body = await self._json(
                "stop",
                "PUT",
                "legal",
                expect=200,
                body={"running": False},
                params={"transactionId": transaction_id},
            )
            status = _nested(body, "meterValue", "transactionStatus")
            if not isinstance(status, int) or isinstance(status, bool):
                raise MeterRequestError("bad_body", "no meterValue.transactionStatus")
            if status & TRANSACTION_ONGOING_BIT:
                raise MeterRequestError("bad_body", f"transaction still going (status {status})")
        except MeterRequestError as failure:
            self._failed("stop", failure)
            return None
        return await self._ocmf(transaction_id)

    async def _ocmf(self, transaction_id: str) -> OcmfRecord | None:
        try:
            response = await self._send(
                "ocmf", "GET", "ocmf", expect=200, params={"transactionId": transaction_id}
            )
            return parse_ocmf(response.text)
        except MeterRequestError as failure:
            self._failed("ocmf", failure)
        except OcmfError as error:
            self._failed("ocmf", MeterRequestError("bad_ocmf", str(error)))
        return None

    async def _set_time(self) -> None:
        """The meter signs with its own clock and refuses a start without a valid sync. A sync
        that fails is counted and the start still asked for: the meter decides (its clock may
        be synchronised already, by NTP or an earlier start)."""
        now = self._wall_clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            body = await self._json(
                "settings", "PUT", "settings", expect=200, body={"time": {"utc": now}}
            )
            if body.get("result") != 1:
                raise MeterRequestError("bad_body", "the meter refused the time")
        except MeterRequestError as failure:
            self._failed("settings", failure)

    async def _json(
        self,
        request: Request,
        method: str,
        endpoint: str,
        *,
        expect: int,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        response = await self._send(
            request, method, endpoint, expect=expect, body=body, params=params
        )
        try:
            value = response.json()
        except ValueError:
            raise MeterRequestError("bad_body", f"{endpoint} answered no JSON") from None
        if not isinstance(value, dict):
            raise MeterRequestError("bad_body", f"{endpoint} answered no JSON object")
        return value

    async def _send(
        self,
        request: Request,
        method: str,
        endpoint: str,
        *,
        expect: int,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        try:
            response = await self._client.request(
                method, f"{self._prefix}/{endpoint}", json=body, params=params
            )
        except httpx.TimeoutException:
            raise MeterRequestError("timeout", f"{endpoint} did not answer in time") from None
        except httpx.HTTPError as error:
            raise MeterRequestError("unreachable", f"{endpoint}: {type(error).__name__}") from None
        if response.status_code != expect:
            raise MeterRequestError(
                "http_status", f"{endpoint} answered {response.status_code}, not {expect}"
            )
        return response

    def _failed(self, request: Request, failure: MeterRequestError) -> None:
        self.counters.add(Counted.METER_REQUEST_FAILED, f"{KIND}/{request}/{failure.why}")
        self._failures.warning(
            (request, failure.why),
            "event=meter_request_failed meter=%s request=%s why=%s detail=%s",
            self.name,
            request,
            failure.why,
            failure.detail,
        )


def _number(body: Mapping[str, Any], key: str) -> float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MeterRequestError("bad_body", f"livemeasure {key} is not a finite number")
    return float(value)


def _sample(body: Mapping[str, Any], at: float) -> RestMeterSample:
    energy_import = _number(body, "energyImportTotal")
    energy_export = _number(body, "energyExportTotal")
    if energy_import < 0 or energy_export < 0:
        raise MeterRequestError("bad_body", "livemeasure has a negative energy register")
    return RestMeterSample(
        time=at,
        energy_import_wh=energy_import * KILO,
        energy_export_wh=energy_export * KILO,
        dc_voltage=_number(body, "voltage"),
        dc_current=_number(body, "current"),
        power=_number(body, "power") * KILO,
        meter_time=str(body.get("timestamp", "")),
    )


def _nested(body: Mapping[str, Any], *keys: str) -> Any:
    value: Any = body
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value
