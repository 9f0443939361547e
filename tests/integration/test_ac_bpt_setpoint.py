"""AC BPT over a real mosquitto: the emulator's AC session up to charging, then discharge
setpoints (ac.discharge_*). Within the reported ac_bpt maxima they are accepted and the board is
told what they allow (the EV's own inverter does the work); beyond them, or asking both
directions at once, they are rejected and the board keeps what it was told."""

from __future__ import annotations

from csbridge.testing.brokers import Broker
from csbridge.testing.josev import JosevClient
from csbridge.tools.scenarios.ac_session import AcSession
from tests.conftest import start_station, stop_bridge
from tests.support import station_config, unique_prefix

AC = "DE*CSB*E0002"
CHARGING_STEPS = 6
"""AcSession's steps up to the EV closing S2 (contactor closed, charging)."""


async def test_ac_discharge_setpoints_are_held_to_ac_bpt_and_passed_to_the_board(
    broker: Broker,
) -> None:
    config = station_config(broker.url, unique_prefix())
    station, task = await start_station(config)
    try:
        async with JosevClient.for_config(config) as josev:
            session = AcSession(josev, config.mqtt.local_prefix)
            for name, action in session.steps()[:CHARGING_STEPS]:
                assert await action(), name
            board = station.devices.boards[AC]
            entry = station.engine.entries.get(AC)
            per_phase = entry["ac_bpt"]["evse_max_discharge_power"]
            allowed = per_phase["l1"] + per_phase["l2"] + per_phase["l3"]
            assert allowed > 1_000.0

            async def setpoint(ac: dict[str, float]) -> str:
                answer = await session.evse.request(
                    "power_electronics_setpoint",
                    {"ac": ac, "ev_limits": {"maximum_voltage": 400.0}},
                )
                return str(answer.data["status"])

            assert await setpoint({"discharge_active_power": 1_000.0}) == "accepted"
            assert board.discharge_allowed_w == 1_000.0
            assert await setpoint({"discharge_active_power": allowed + 1.0}) == "rejected"
            both = {"charge_current": 10.0, "discharge_active_power": 500.0}
            assert await setpoint(both) == "rejected"
            assert board.discharge_allowed_w == 1_000.0
            assert await setpoint({"charge_current": 16.0}) == "accepted"
            assert board.discharge_allowed_w == 0.0
        assert josev.problems == []
    finally:
        await stop_bridge(task)
