"""The iso165C's chassis-fault bit on the wire (IMD_Info's IMC status bit 1, as foxBMS reads
it) takes the EVSE out of service like the IMD's system failure: the isolation is no longer
valid and nothing is offered."""

from __future__ import annotations

from csbridge.service.station import Station
from csbridge.sources.simulated import SimulatedCanImd
from csbridge.testing.harness import wait_until

DC = "DE*CSB*E0001"


def dc(station: Station) -> dict[str, float | str]:
    entry = station.engine.entries.get(DC)
    return {**entry["dc"], "status_code": entry["status_code"]}


async def test_a_chassis_fault_on_the_wire_is_an_imd_fault(wire_station: Station) -> None:
    imd = wire_station.devices.imds[DC]
    assert isinstance(imd, SimulatedCanImd)
    assert dc(wire_station)["isolation_status"] == "valid"
    imd.chassis_fault = True
    wire_station.devices.emit(imd)
    await wait_until(lambda: dc(wire_station)["isolation_status"] != "valid", 5, "not valid")
    await wait_until(lambda: dc(wire_station)["status_code"] != "evse_ready", 5, "not ready")
    status = dc(wire_station)
    assert status["isolation_status"] == "invalid", status
    imd.chassis_fault = False
    wire_station.devices.emit(imd)
    await wait_until(lambda: dc(wire_station)["isolation_status"] == "valid", 5, "valid again")
