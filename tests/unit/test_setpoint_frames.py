"""What actually goes on the wire: no CAN setpoint frame ever commands more than the bridge
reported, whatever Josev asks and whichever modules have dropped out."""

from __future__ import annotations

import math
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csbridge.limits.setpoint import DcRequest, ModuleContact, Setpoint, dc_setpoint
from csbridge.sources.can.codec import IdFieldsCodec
from csbridge.sources.can.commands import setpoint_frames
from csbridge.sources.can.profile import ProfileRegistry
from tests.support import examples

CODEC = IdFieldsCodec(ProfileRegistry().get("infypower-reg"), 0xF0)
SET_OUTPUT = 0x1C
ADDRESSES = {"m1": 1, "m2": 2, "m3": 3, "m4": 4}

limits = st.floats(min_value=0, max_value=1500, allow_nan=False)
requests = st.one_of(
    st.none(), st.floats(min_value=-10, max_value=5000), st.sampled_from([math.nan, math.inf])
)


def _wire_setpoints(setpoint: Setpoint) -> list[tuple[int, float, float]]:
    """(address, V, A) of every Infypower set-output frame, read back by hand: u32 mV, u32 mA."""
    found = []
    for module in setpoint.modules:
        try:
            frames = setpoint_frames(CODEC, ADDRESSES[module.name], module.voltage, module.current)
        except ValueError:
            continue  # above what the module is rated for: refused, the module is switched off
        for frame in frames:
            if (frame.arbitration_id >> 16) & 0x3F == SET_OUTPUT:
                millivolts, milliamps = struct.unpack(">II", bytes(frame.data))
                found.append(
                    (frame.arbitration_id >> 8 & 0xFF, millivolts / 1000, milliamps / 1000)
                )
    return found


@settings(max_examples=examples(2000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    max_current=limits,
    max_power=st.floats(min_value=0, max_value=200_000, allow_nan=False),
    max_voltage=st.floats(min_value=0, max_value=1000, allow_nan=False),
    min_voltage=st.floats(min_value=0, max_value=200, allow_nan=False),
    voltage=st.floats(min_value=-10, max_value=1200, allow_nan=False),
    ev_max=st.floats(min_value=0, max_value=1200, allow_nan=False),
    current=requests,
    power=requests,
    precharge=st.booleans(),
    healthy=st.lists(st.sampled_from(list(ADDRESSES)), min_size=0, max_size=4, unique=True),
    silent_for=st.lists(st.floats(min_value=0, max_value=30), min_size=0, max_size=3),
)
def test_no_frame_commands_more_than_was_reported(
    max_current: float,
    max_power: float,
    max_voltage: float,
    min_voltage: float,
    voltage: float,
    ev_max: float,
    current: float | None,
    power: float | None,
    precharge: bool,
    healthy: list[str],
    silent_for: list[float],
) -> None:
    entry = {
        "status_code": "evse_ready",
        "dc": {
            "max_current": max_current,
            "min_current": 0.0,
            "max_power": max_power,
            "max_voltage": max_voltage,
            "min_voltage": min_voltage,
        },
    }
    silent_names = [name for name in ADDRESSES if name not in healthy][: len(silent_for)]
    contacts = [ModuleContact(name, True) for name in healthy] + [
        ModuleContact(name, False, seconds)
        for name, seconds in zip(silent_names, silent_for, strict=False)
    ]
    request = DcRequest(
        voltage=voltage, ev_max_voltage=ev_max, current=current, power=power, precharge=precharge
    )
    result = dc_setpoint(entry, request, contacts)
    if not isinstance(result, Setpoint):
        return
    wire = _wire_setpoints(result)
    assert {address for address, _, _ in wire} <= {ADDRESSES[m.name] for m in result.modules}
    total = sum(amps for _, _, amps in wire)
    assert total <= max_current
    if precharge:
        assert total <= 2.0
    for _, volts, amps in wire:
        assert volts <= max_voltage
        assert volts <= ev_max
        assert amps * result.counted <= max_current + 1e-9
    volts = max((v for _, v, _ in wire), default=0.0)
    assert volts * total <= max_power + 1e-6
    silent_counted = sum(1 for c in contacts if not c.healthy and c.counted)
    assert result.counted == len(healthy) + silent_counted


def test_an_ordinary_request_does_reach_the_wire() -> None:
    """Not vacuous: within the limits, three modules each get their share on the wire."""
    entry = {
        "status_code": "evse_ready",
        "dc": {
            "max_current": 240.0,
            "min_current": 0.0,
            "max_power": 120_000.0,
            "max_voltage": 920.0,
            "min_voltage": 150.0,
        },
    }
    contacts = [ModuleContact(name, True) for name in ("m1", "m2", "m3")]
    result = dc_setpoint(
        entry, DcRequest(voltage=400.0, ev_max_voltage=500.0, current=150.0), contacts
    )
    assert isinstance(result, Setpoint)
    assert sorted(_wire_setpoints(result)) == [(1, 400.0, 50.0), (2, 400.0, 50.0), (3, 400.0, 50.0)]
