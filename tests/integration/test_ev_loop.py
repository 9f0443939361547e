"""An EV's charge loop kept in the background (what the shared-pool scenario runs per EV) against
the tests' simulated station in this process: its setpoints are answered, the current the EV
asks for is what the stack delivers, and a station whose present current tops the maximum it
reports is caught (at once here: the scenario allows for a donor's ramp down)."""

from __future__ import annotations

import pytest

from csbridge.testing.brokers import Broker
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from csbridge.tools.scenarios.common import SimulatedEvse, StepFailedError
from csbridge.tools.scenarios.ev_loop import EvLoop
from tests.conftest import start_station, stop_bridge
from tests.support import station_config, unique_prefix

DC = "DE*CSB*E0001"
TOLERANCE_A = 3.0
"""The reported present current moves past a 1 A deadband, and the stack ramps."""


async def test_the_loop_charges_at_what_the_ev_asks_and_a_wrong_report_fails_it(
    broker: Broker,
) -> None:
    config = station_config(broker.url, unique_prefix())
    _, task = await start_station(config)
    try:
        async with JosevClient.for_config(config) as josev:
            await josev.boot()
            evse = SimulatedEvse(josev, config.mqtt.local_prefix, DC)
            await evse.start_dc_session()
            loop = EvLoop(evse, over_allowance_s=0.0)
            loop.start()
            await loop.ask(100.0, {"max_charge_current": 100.0, "max_voltage": 500.0})

            def present() -> float:
                return float(evse.entry()["dc"]["present_current"])

            await wait_until(lambda: abs(present() - 100.0) <= TOLERANCE_A, 15, "100 A delivered")
            await loop.ask(40.0)
            await wait_until(lambda: abs(present() - 40.0) <= TOLERANCE_A, 15, "40 A delivered")
            loop.check()
            assert loop.rounds > 0
            assert loop.worst_a >= 100.0 - TOLERANCE_A

            # Josev is told a maximum below what flows: the loop's next round catches it.
            entry = josev.view.evses[DC]
            entry["dc"] = {**entry["dc"], "max_current": 10.0}
            await wait_until(lambda: bool(loop.problems), 5, "the loop caught the report")
            with pytest.raises(StepFailedError, match=r"above the 10\.0 A reported"):
                loop.check()
            await loop.stop()
            assert await evse.stop() == "modules off, contactors opened"
            assert josev.problems == []
    finally:
        await stop_bridge(task)
