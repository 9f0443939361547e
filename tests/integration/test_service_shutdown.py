"""The station stopping as systemd stops it, in this process: modules off for good, and the
watchdog fed only while every part makes progress (the whole command under systemd's
protocol: tests/system/test_service_lifecycle.py)."""

from __future__ import annotations

import asyncio
import socket
import time

from csbridge.config import Config
from csbridge.service.sd_notify import SystemdNotifier
from csbridge.service.station import Station
from csbridge.service.watchdog import MIN_STALL_S, Watched, feed_watchdog
from csbridge.sources.readings import OperatorCommand
from csbridge.support.counters import Counters
from csbridge.testing.harness import wait_until
from tests.conftest import josev_for
from tests.integration.test_dc_session import _setpoint
from tests.support import notifications_within, ready_to_charge

DC = "DE*CSB*E0001"


async def test_shut_down_switches_the_modules_off_and_no_operator_brings_them_back(
    wire_station: Station, wire_config: Config
) -> None:
    station = wire_station
    async with josev_for(wire_config) as josev:
        await ready_to_charge(station, josev, DC)
        setpoint = _setpoint(400.0, 90.0)
        answer = await josev.request("power_electronics_setpoint", setpoint, timeout=5)
        assert answer.data["status"] == "accepted"
        await wait_until(
            lambda: station.devices.modules[(DC, "m1")].output_current != 0.0, 5, "m1 on"
        )
        await station.shut_down()
        await wait_until(
            lambda: not any(m.output_current for m in station.devices.modules.values()),
            3,
            "every module off",
        )
        assert station.engine.entries.get(DC)["status_code"] == "evse_shutdown"
        station.engine.ingest(DC, OperatorCommand(at=station.engine.clock(), enabled=True))
        assert station.engine.entries.get(DC)["status_code"] == "evse_shutdown"
        refused = await josev.request("power_electronics_setpoint", setpoint, timeout=5)
        assert refused.data["status"] != "accepted"


async def test_the_watchdog_is_fed_only_while_every_part_makes_progress(
    systemd_socket: tuple[socket.socket, str],
) -> None:
    sock, name = systemd_socket
    notifier = SystemdNotifier(name, watchdog_s=0.2)
    stuck_since: list[float] = []

    def progress(now: float) -> float:
        return now - stuck_since[0] if stuck_since else 0.0

    counters = Counters()
    feeding = asyncio.create_task(
        feed_watchdog(notifier, [Watched("can:can0", progress)], counters)
    )
    try:
        healthy = await notifications_within(sock, 0.5)
        assert healthy.count("WATCHDOG=1") >= 3
        stuck_since.append(time.monotonic() - MIN_STALL_S - 1)
        # From the first ping withheld on, none follows; drop those sent before it.
        await wait_until(
            lambda: counters.get("watchdog_withheld", "can:can0") >= 1, 2, "a ping withheld"
        )
        await notifications_within(sock, 0.05)
        withheld = await notifications_within(sock, 0.5)
        assert withheld == []
        assert counters.get("watchdog_withheld", "can:can0") >= 2
    finally:
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
