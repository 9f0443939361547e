"""Example tests of a csbridge station, to copy (docs/testing.md explains every fixture).

    pip install 'csbridge[testing]'      # csbridge, pytest and pytest-asyncio
    apt-get install mosquitto            # the broker the fixtures start on a free port
    pytest test_example_station.py

The station is the packaged examples/sim-station.toml: a DC EVSE (DE*CSB*E0001) fed by three
simulated 80 A Infypower modules and a Bender IMD that speak their real CAN protocols on
python-can's virtual buses, and an AC EVSE. Each test gets it on topics and CAN channels of its
own, so the tests never hear each other.
"""

from __future__ import annotations

import can
import pytest

from csbridge.resources import example_config
from csbridge.station import Station
from csbridge.testing.can_tap import StationCan
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient

pytestmark = [
    # pytest-asyncio's strict mode (its default) runs only async tests marked so.
    pytest.mark.asyncio,
    # The station config: put the path of your own file here, relative to this file.
    # settle_s: the station reports an increase only once it has held that long; 0.2 s
    # instead of the file's 1 s keeps the stack filling module by module quick to watch.
    pytest.mark.csbridge_config(example_config("sim-station.toml"), settle_s=0.2),
]

DC = "DE*CSB*E0001"


async def test_josev_boots_and_sees_the_full_stack(
    csbridge_station: Station, csbridge_josev: JosevClient
) -> None:
    parameters, status = await csbridge_josev.boot()
    assert parameters.data["number_of_evses"] == 2
    assert {entry["evse_id"] for entry in status.data["evses"]} == {DC, "DE*CSB*E0002"}

    # The modules join the stack one by one as they answer their first polls: wait for the
    # update that shows all three (3 x 80 A), whenever it came.
    entry = await csbridge_josev.wait_for_evse(DC, lambda e: e["dc"]["max_current"] == 240.0)
    assert entry["status_code"] == "evse_ready"
    assert entry["dc"]["max_power"] == 120000

    csbridge_josev.assert_no_problems()  # every message the station sent met Josev's schemas


async def test_a_silenced_module_leaves_the_stack(
    csbridge_station: Station, csbridge_josev: JosevClient
) -> None:
    await csbridge_josev.wait_for_evse(DC, lambda e: e["dc"]["max_current"] == 240.0)
    since = csbridge_josev.mark()  # from here on: only updates sent after the module fell silent

    # As an operator would, over MQTT: <prefix>/csbridge/<evse_id>/simulate.
    await csbridge_josev.simulate(DC, "silence_module", module="m2")

    # Module m2 stops answering polls; after its deadline (three 1 s polls) the station drops it.
    entry = await csbridge_josev.wait_for_evse(
        DC, lambda e: e["dc"]["max_current"] == 160.0, since=since
    )
    assert entry["status_code"] == "evse_ready"  # two modules still charge
    assert csbridge_station.engine.reported_binding(DC)["max_current"] == "module_dropout"

    since = csbridge_josev.mark()
    await csbridge_josev.simulate(DC, "restore_module", module="m2")
    await csbridge_josev.wait_for_evse(DC, lambda e: e["dc"]["max_current"] == 240.0, since=since)


async def test_low_insulation_is_an_emergency_shutdown(
    csbridge_station: Station, csbridge_josev: JosevClient
) -> None:
    # The simulated devices are in the station's process: change them directly.
    imd = csbridge_station.devices.imds[DC]
    imd.resistance_ohm = 50_000.0  # 50 kOhm on a 920 V EVSE: far below 100 Ohm/V
    csbridge_station.devices.emit(imd)  # its next cyclic frame, now

    entry = await csbridge_josev.wait_for_evse(
        DC, lambda e: e["status_code"] == "evse_emergency_shutdown"
    )
    assert entry["dc"]["isolation_status"] == "fault"
    assert entry["dc"]["max_current"] == 0


async def test_the_station_polls_every_module(
    csbridge_station: Station, csbridge_can: StationCan
) -> None:
    tap = csbridge_can.tap("sim-can0")  # the modules' bus
    polls = await tap.collect(2.5, lambda frame: frame.arbitration_id & 0xFF == 0xF0)
    # Infypower identifiers: command 0x0A, then the function, destination and source (0xF0).
    addressed = {(frame.arbitration_id >> 8) & 0xFF for frame in polls}
    assert addressed >= {1, 2, 3}


async def test_an_impossible_frame_on_the_bus_changes_nothing(
    csbridge_station: Station, csbridge_josev: JosevClient, csbridge_can: StationCan
) -> None:
    await csbridge_josev.wait_for_evse(DC, lambda e: e["dc"]["max_current"] == 240.0)
    counters = csbridge_station.engine.counters

    # Another node claims to be module 1, able to give 6553.5 A: beyond its profile's range.
    csbridge_can.tap("sim-can0").send(
        can.Message(
            arbitration_id=0x028AF001, data=bytes.fromhex("03E80096FFFF0BB8"), is_extended_id=True
        )
    )

    # The station counts the frame it refused, by bus, profile and reason.
    refused = "sim-can0/infypower-reg/out_of_range"
    await wait_until(lambda: counters.get("can_frames", refused) > 0, timeout=5)
    assert csbridge_station.engine.entries.get(DC)["dc"]["max_current"] == 240.0


@pytest.mark.csbridge_config(example_config("shared-pool.toml"))
async def test_a_shared_pool_offers_each_idle_evse_the_whole_pool(
    csbridge_station: Station, csbridge_josev: JosevClient
) -> None:
    # examples/shared-pool.toml: two DC EVSEs share six simulated 30 kW modules. Without a
    # session, each reports what it would get if it started now: all six, 180 kW.
    for evse_id in ("DE*CSB*E0001", "DE*CSB*E0002"):
        entry = await csbridge_josev.wait_for_evse(
            evse_id, lambda e: e["dc"]["max_power"] == 180000
        )
        assert entry["status_code"] == "evse_ready"
    pool = csbridge_station.engine.reports.get("DE*CSB*E0001")["pool"]
    assert pool["name"] == "cabinet"
    assert pool["share_w"] == 180000
    csbridge_josev.assert_no_problems()
