"""The EVSEs' energy meters as sources: a CAN shunt (the IVT-S, profile and DBC in hal/meters/),
Modbus meters through pymodbus by a declarative register map (the Eastron SDM630), and a
simulated meter (alone, or played on the wire); each hands MeterSample readings (the meter's
own energy registers, per-phase values where it has them) to the engine. A meter's REST client
(rest.py) is its own.

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
from csbridge.sources.meters.register_map import (
    MeterProfileError,
    ReadBlock,
    RegisterMap,
    RegisterValue,
    load_register_map,
    meter_profile_path,
    parse_register_map,
)
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
    "ReadBlock",
    "Refused",
    "RegisterMap",
    "RegisterValue",
    "SimulatedCanMeter",
    "SimulatedMeter",
    "SimulatedModbusMeter",
    "load_can_meter_profile",
    "load_register_map",
    "meter_problems",
    "meter_profile_path",
    "modbus_client",
    "parse_register_map",
    "sample_from_values",
]
