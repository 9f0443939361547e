"""An OCMF record (the Open Charge Metering Format of S.A.F.E. e.V.) as an Eichrecht meter hands
it out: `OCMF|<payload JSON>|<signature JSON>`, three sections, no `|` inside one.

The signature covers the payload section byte for byte, so the record is kept as the text the
meter sent (`text`) and only read, never written back from its parsed parts. Reading it checks
the layout, the payload's mandatory keys and the signature's SD, so that a record that could
never be verified is refused here rather than handed to a CSMS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

HEADER: Final = "OCMF"
PAYLOAD_REQUIRED: Final = ("PG", "MS", "IS", "IT")
"""The keys OCMF makes mandatory in the payload section (pagination, meter serial,
identification status and type)."""
DEFAULT_SIGNING_ALGORITHM: Final = "ECDSA-secp256r1-SHA256"
"""SA when the signature section leaves it out (OCMF's default)."""
DEFAULT_SIGNATURE_ENCODING: Final = "hex"
"""SE when the signature section leaves it out (OCMF's default)."""
ENERGY_UNITS_WH: Final = {"kWh": 1000.0, "Wh": 1.0}
"""RU of an energy reading, to Wh."""


class OcmfError(ValueError):
    """A text that is no OCMF record; the message says what is wrong, never the whole text."""


@dataclass(frozen=True, slots=True)
class OcmfReading:
    """One entry of the payload's RD list: its time (TM, sync state letter included), type of
    reading (TX: B begin, E end, ...), value in Wh (RV scaled by RU), and status (ST)."""

    time: str
    kind: str
    value_wh: float | None
    status: str


@dataclass(frozen=True, slots=True)
class OcmfRecord:
    """A checked OCMF record: `text` is exactly what the meter sent."""

    text: str
    payload: dict[str, Any]
    signature: dict[str, Any]

    @property
    def signing_algorithm(self) -> str:
        return str(self.signature.get("SA", DEFAULT_SIGNING_ALGORITHM))

    @property
    def signature_encoding(self) -> str:
        return str(self.signature.get("SE", DEFAULT_SIGNATURE_ENCODING))

    @property
    def meter_serial(self) -> str:
        return str(self.payload["MS"])

    @property
    def readings(self) -> tuple[OcmfReading, ...]:
        return tuple(_reading(entry) for entry in self.payload.get("RD", ()))


def parse_ocmf(text: str) -> OcmfRecord:
    """The record in `text` (surrounding whitespace, as an HTTP body may carry, is dropped), or
    OcmfError saying what makes it unusable."""
    record = text.strip()
    sections = record.split("|")
    if len(sections) != 3:
        raise OcmfError(f"{len(sections)} sections, not 3 (OCMF|payload|signature)")
    header, payload_text, signature_text = sections
    if header != HEADER:
        raise OcmfError(f"header {header[:10]!r}, not {HEADER!r}")
    payload = _object(payload_text, "payload")
    signature = _object(signature_text, "signature")
    missing = [key for key in PAYLOAD_REQUIRED if key not in payload]
    if missing:
        raise OcmfError(f"payload lacks {', '.join(missing)}")
    if not isinstance(payload.get("RD", []), list):
        raise OcmfError("payload RD is not a list")
    if not isinstance(signature.get("SD"), str) or not signature["SD"]:
        raise OcmfError("signature lacks SD")
    return OcmfRecord(record, payload, signature)


def _object(text: str, section: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise OcmfError(f"{section} is not JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise OcmfError(f"{section} is not a JSON object")
    return value


def _reading(entry: Any) -> OcmfReading:
    if not isinstance(entry, dict):
        return OcmfReading(time="", kind="", value_wh=None, status="")
    scale = ENERGY_UNITS_WH.get(str(entry.get("RU", "")))
    value = entry.get("RV")
    value_wh = None
    if isinstance(value, int | float) and not isinstance(value, bool) and scale is not None:
        value_wh = float(value) * scale
    return OcmfReading(
        time=str(entry.get("TM", "")),
        kind=str(entry.get("TX", "")),
        value_wh=value_wh,
        status=str(entry.get("ST", "")),
    )
