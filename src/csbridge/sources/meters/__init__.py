"""Meters as sources: the Eichrecht DC meter over HTTP (rest.py, the LEM DCBM 400/600) and the
OCMF records it signs (ocmf.py).

Imports support.
"""

from __future__ import annotations

from csbridge.sources.meters.ocmf import OcmfError, OcmfReading, OcmfRecord, parse_ocmf
from csbridge.sources.meters.rest import RestDcMeter, RestMeterSample, TransactionStart

__all__ = [
    "OcmfError",
    "OcmfReading",
    "OcmfRecord",
    "RestDcMeter",
    "RestMeterSample",
    "TransactionStart",
    "parse_ocmf",
]
