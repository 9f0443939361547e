"""A LEM DCBM 400/600 played on loopback: the meter's HTTP/JSON interface as its public facts
describe it (docs/lem-dcbm.md), for tests and the emulator's scenarios.

It serves /v1/status, /v1/settings (the time), /v1/livemeasure, /v1/legal (start with POST,
stop with PUT ?transactionId=) and /v1/ocmf?transactionId=, keeps its energy registers in kWh as
the meter does, refuses what the meter refuses (a start without a time sync, a second running
transaction, identifiers over 37 bytes), and signs its OCMF records with a real ECDSA
secp256r1 key, so that a test can check a record's signature against the public key the meter
gives. A test can make it answer with an HTTP error, a body that is not JSON, or not at all
(`fault`).

A plain threaded HTTP server: it runs beside any event loop and never blocks one.
"""

from __future__ import annotations

import enum
import json
import ssl
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

MAX_ID_BYTES: Final = 37
MAX_USER_DATA_BYTES: Final = 128
ONGOING: Final = 0b100
"""transactionStatus bit 2: the transaction is running."""
IMPORT_OBIS: Final = "01-00:01.08.00.FF"
"""Active energy import, the register an OCMF reading of a DC meter names (RI)."""
POLL_S: Final = 0.02
"""How soon the server notices it is to stop."""
HANG_LIMIT_S: Final = 30.0
"""A hanging answer gives up after this even if the test never releases it."""


class Fault(enum.Enum):
    NONE = "none"
    HTTP_500 = "http_500"
    NOT_JSON = "not_json"
    HANG = "hang"
    """No answer until the fault is cleared (the client's timeout is what a test sees)."""
    BAD_OCMF = "bad_ocmf"
    """OCMF requests get a text that is no OCMF record."""


@dataclass(slots=True)
class PlayedTransaction:
    transaction_id: str
    evse_id: str
    client_id: str
    page: int
    begin_time: str
    begin_import_kwh: float
    begin_export_kwh: float
    end_time: str | None = None
    end_import_kwh: float | None = None
    end_export_kwh: float | None = None

    @property
    def running(self) -> bool:
        return self.end_time is None


@dataclass(slots=True)
class MeterState:
    meter_id: str = "LEM0000001"
    voltage_v: float = 0.0
    current_a: float = 0.0
    energy_import_kwh: float = 0.0
    energy_export_kwh: float = 0.0
    time_synced: bool = False
    refuse_time: bool = False
    """Answer a time setting with result 0 (as the meter does during a transaction)."""
    fault: Fault = Fault.NONE
    transactions: dict[str, PlayedTransaction] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(method, path) of every request, in order."""


class PlayedLemDcbm:
    """The played meter; `url` once started. Change what it measures with `measure`."""

    def __init__(
        self, meter_id: str = "LEM0000001", tls: ssl.SSLContext | None = None, port: int = 0
    ) -> None:
        self.state = MeterState(meter_id=meter_id)
        self._tls = tls
        self._port = port
        """The loopback port to serve on; 0: any free one (`url` tells which)."""
        """A server context: the meter over HTTPS, as it also serves."""
        self.lock = threading.Lock()
        self.released = threading.Event()
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.public_key_hex = (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .hex()
            .upper()
        )
        """The OCMF public key as /v1/status gives it: DER (SubjectPublicKeyInfo), hex."""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the played meter first"
        host, port = self._server.server_address[:2]
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{host!s}:{port}"

    def start(self) -> None:
        meter = self

        class Handler(_Handler):
            played = meter

        self._server = _Server(("127.0.0.1", self._port), Handler)
        if self._tls is not None:
            # the handshake in the handler's thread, so a client that never speaks holds no one
            self._server.socket = self._tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(POLL_S,),
            name="played-lem-dcbm",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self.released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def measure(
        self,
        *,
        voltage_v: float | None = None,
        current_a: float | None = None,
        import_kwh: float | None = None,
        export_kwh: float | None = None,
    ) -> None:
        with self.lock:
            state = self.state
            state.voltage_v = state.voltage_v if voltage_v is None else voltage_v
            state.current_a = state.current_a if current_a is None else current_a
            state.energy_import_kwh = state.energy_import_kwh if import_kwh is None else import_kwh
            state.energy_export_kwh = state.energy_export_kwh if export_kwh is None else export_kwh

    def set_fault(self, fault: Fault) -> None:
        with self.lock:
            self.state.fault = fault
        if fault is Fault.HANG:
            self.released.clear()
        else:
            self.released.set()

    def requested(self, path: str) -> int:
        """How many requests reached `path` (without the query)."""
        with self.lock:
            return sum(1 for _, seen in self.state.requests if seen == path)

    # -- what the meter answers (called with the lock held) --------------------------------

    def livemeasure(self) -> dict[str, Any]:
        state = self.state
        return {
            "voltage": state.voltage_v,
            "current": state.current_a,
            "power": round(state.voltage_v * state.current_a / 1000.0, 6),
            "temperatureH": 30.0,
            "temperatureL": 28.0,
            "energyImportTotal": state.energy_import_kwh,
            "energyExportTotal": state.energy_export_kwh,
            "timestamp": _now(),
        }

    def status(self) -> dict[str, Any]:
        state = self.state
        running = any(each.running for each in state.transactions.values())
        return {
            "status": {
                "value": (ONGOING if running else 0) | (0b10000 if state.time_synced else 0),
                "bits": {
                    "transactionIsOnGoing": running,
                    "timeSyncStatusIsOk": state.time_synced,
                    "muFatalErrorOccured": False,
                },
            },
            "meterId": state.meter_id,
            "publicKey": self.public_key_hex,
            "publicKeyOcmf": self.public_key_hex,
            "version": {"applicationFirmwareVersion": "1.1.0.0"},
        }

    def start_transaction(self, body: Any) -> tuple[int, dict[str, Any]]:
        state = self.state
        problem = _start_problem(body)
        if problem is None and not state.time_synced:
            problem = "time is not synchronised"
        if problem is None and any(each.running for each in state.transactions.values()):
            problem = "a transaction is running"
        if problem is not None:
            return 400, {"error": problem}
        transaction = PlayedTransaction(
            transaction_id=body["transactionId"],
            evse_id=body["evseId"],
            client_id=body["clientId"],
            page=len(state.transactions) + 1,
            begin_time=_ocmf_time(),
            begin_import_kwh=state.energy_import_kwh,
            begin_export_kwh=state.energy_export_kwh,
        )
        state.transactions[transaction.transaction_id] = transaction
        return 201, {
            "evseId": transaction.evse_id,
            "transactionId": transaction.transaction_id,
            "clientId": transaction.client_id,
            "tariffId": body["tariffId"],
            "cableId": body["cableId"],
            "running": True,
        }

    def stop_transaction(self, transaction_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        state = self.state
        transaction = state.transactions.get(transaction_id)
        if transaction is None:
            return 404, {"error": "no such transaction"}
        if not isinstance(body, dict) or body.get("running") is not False:
            return 400, {"error": "body must be {running: false}"}
        if transaction.running:
            transaction.end_time = _ocmf_time()
            transaction.end_import_kwh = state.energy_import_kwh
            transaction.end_export_kwh = state.energy_export_kwh
        end_import = transaction.end_import_kwh or 0.0
        end_export = transaction.end_export_kwh or 0.0
        return 200, {
            "transactionId": transaction_id,
            "evseId": transaction.evse_id,
            "meterId": state.meter_id,
            "meterValue": {
                "transactionStatus": 0b11001,
                "intermediateRead": False,
                "sampleValue": {
                    "energyUnit": "kWh",
                    "energyImport": round(end_import - transaction.begin_import_kwh, 3),
                    "energyImportTotalStart": transaction.begin_import_kwh,
                    "energyImportTotalStop": end_import,
                    "energyExport": round(end_export - transaction.begin_export_kwh, 3),
                    "energyExportTotalStart": transaction.begin_export_kwh,
                    "energyExportTotalStop": end_export,
                },
            },
            "publicKey": self.public_key_hex,
        }

    def ocmf(self, transaction_id: str) -> tuple[int, str]:
        state = self.state
        transaction = state.transactions.get(transaction_id)
        if transaction is None:
            return 404, "no such transaction"
        readings = [_reading(transaction.begin_time, "B", transaction.begin_import_kwh)]
        if transaction.end_time is not None and transaction.end_import_kwh is not None:
            readings.append(_reading(transaction.end_time, "E", transaction.end_import_kwh))
        payload = {
            "FV": "1.0",
            "GI": "csbridge played LEM DCBM",
            "GS": state.meter_id,
            "PG": f"T{transaction.page}",
            "MV": "LEM",
            "MM": "DCBM 400",
            "MS": state.meter_id,
            "IS": True,
            "IL": "NONE",
            "IT": "NONE",
            "ID": transaction.client_id,
            "CT": "EVSEID",
            "CI": transaction.evse_id,
            "RD": readings,
        }
        payload_text = json.dumps(payload, separators=(",", ":"))
        signature = self._key.sign(payload_text.encode(), ec.ECDSA(hashes.SHA256()))
        signature_text = json.dumps(
            {"SA": "ECDSA-secp256r1-SHA256", "SE": "hex", "SD": signature.hex().upper()},
            separators=(",", ":"),
        )
        return 200, f"OCMF|{payload_text}|{signature_text}"


@contextmanager
def played_lem_dcbm(
    meter_id: str = "LEM0000001", tls: ssl.SSLContext | None = None
) -> Iterator[PlayedLemDcbm]:
    """A started played meter (over HTTPS with a server context `tls`), stopped on the way
    out."""
    meter = PlayedLemDcbm(meter_id, tls)
    meter.start()
    try:
        yield meter
    finally:
        meter.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (its timeout, while the meter hangs) is what a test wants;
        anything else is printed as the base does."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    played: PlayedLemDcbm
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the requests from the meter's state."""

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_PUT(self) -> None:
        self._answer("PUT")

    def _answer(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        meter = self.played
        with meter.lock:
            meter.state.requests.append((method, parts.path))
            fault = meter.state.fault
        if fault is Fault.HANG:
            meter.released.wait(HANG_LIMIT_S)
        if fault is Fault.HTTP_500:
            self._send(500, "text/plain", b"internal error")
            return
        if fault is Fault.NOT_JSON and parts.path != "/v1/ocmf":
            self._send(200, "application/json", b"<html>not json</html>")
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(400, "text/plain", b"body is not JSON")
            return
        with meter.lock:
            status, answer = self._route(method, parts.path, query, body, fault)
        if isinstance(answer, str):
            self._send(status, "text/plain", answer.encode())
        else:
            self._send(status, "application/json", json.dumps(answer).encode())

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any, fault: Fault
    ) -> tuple[int, dict[str, Any] | str]:
        meter = self.played
        match method, path:
            case "GET", "/v1/livemeasure":
                return 200, meter.livemeasure()
            case "GET", "/v1/status":
                return 200, meter.status()
            case "PUT", "/v1/settings":
                utc = body.get("time", {}).get("utc") if isinstance(body, dict) else None
                if not isinstance(utc, str):
                    return 400, {"error": "time.utc missing"}
                if meter.state.refuse_time:
                    return 200, {"meterId": meter.state.meter_id, "result": 0}
                meter.state.time_synced = True
                return 200, {"meterId": meter.state.meter_id, "result": 1}
            case "POST", "/v1/legal":
                return meter.start_transaction(body)
            case "PUT", "/v1/legal":
                return meter.stop_transaction(query.get("transactionId", ""), body)
            case "GET", "/v1/ocmf":
                if fault is Fault.BAD_OCMF:
                    return 200, "OCMF|{not json}|"
                return meter.ocmf(query.get("transactionId", ""))
        return 404, {"error": f"no {method} {path}"}

    def _send(self, status: int, content_type: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _start_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body is not an object"
    for name in ("evseId", "transactionId", "clientId", "userData"):
        if not isinstance(body.get(name), str):
            return f"{name} is not a string"
    if not body["transactionId"]:
        return "transactionId is empty"
    for name in ("evseId", "transactionId", "clientId"):
        if len(body[name].encode()) > MAX_ID_BYTES:
            return f"{name} is over {MAX_ID_BYTES} bytes"
    if len(body["userData"].encode()) > MAX_USER_DATA_BYTES:
        return f"userData is over {MAX_USER_DATA_BYTES} bytes"
    if body.get("tariffId") not in range(5) or body.get("cableId") not in range(8):
        return "tariffId is not 0..4 or cableId not 0..7"
    return None


def _reading(time: str, kind: str, import_kwh: float) -> dict[str, Any]:
    return {
        "TM": time,
        "TX": kind,
        "RV": round(import_kwh, 3),
        "RI": IMPORT_OBIS,
        "RU": "kWh",
        "RT": "DC",
        "EF": "",
        "ST": "G",
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _ocmf_time() -> str:
    """OCMF's TM: local time with a comma before the milliseconds, the offset, and the sync
    state letter (S: synchronised)."""
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S,") + f"{moment.microsecond // 1000:03d}+0000 S"
