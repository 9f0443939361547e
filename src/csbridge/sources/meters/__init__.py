"""The EVSEs' energy meters as sources: a CAN shunt (the IVT-S, profile and DBC in hal/meters/),
Modbus meters through pymodbus by a declarative register map (the Eastron SDM630), and a
simulated meter (alone, or played on the wire); each hands MeterSample readings (the meter's
own energy registers, per-phase values where it has them) to the engine; and the Eichrecht DC
meter over HTTP (rest.py, the LEM DCBM 400/600) with the OCMF records it signs (ocmf.py).

Imports sources (readings), config and support.
"""

from __future__ import annotations

from csbridge.sources import MeterSample
from csbridge.sources.meters.can_meter import CanMeter
from csbridge.sources.meters.ivts import (
    CanMeterProfile,
    CanMeterState,
    Refused,
    load_can_meter_profile,
)
from csbridge.sources.meters.modbus import ModbusMeter, modbus_client
from csbridge.sources.meters.ocmf import OcmfError, OcmfReading, OcmfRecord, parse_ocmf
from csbridge.sources.meters.register_map import (
    MeterProfileError,
    ReadBlock,
    RegisterMap,
    RegisterValue,
    load_register_map,
    meter_profile_path,
    parse_register_map,
)
from csbridge.sources.meters.rest import RestDcMeter, RestMeterSample, TransactionStart
from csbridge.sources.meters.sample import sample_from_values
from csbridge.sources.meters.simulated import Flow, SimulatedMeter
from csbridge.sources.meters.sources import Meter, MeterSources, meter_problems
from csbridge.sources.meters.wire_sims import SimulatedCanMeter, SimulatedModbusMeter

__all__ = [
    "CanMeter",
    "CanMeterProfile",
    "CanMeterState",
    "Flow",
    "Meter",
    "MeterProfileError",
    "MeterSample",
    "MeterSources",
    "ModbusMeter",
    "OcmfError",
    "OcmfReading",
    "OcmfRecord",
    "ReadBlock",
    "Refused",
    "RegisterMap",
    "RegisterValue",
    "RestDcMeter",
    "RestMeterSample",
    "SimulatedCanMeter",
    "SimulatedMeter",
    "SimulatedModbusMeter",
    "TransactionStart",
    "load_can_meter_profile",
    "load_register_map",
    "meter_problems",
    "meter_profile_path",
    "modbus_client",
    "parse_ocmf",
    "parse_register_map",
    "sample_from_values",
]
