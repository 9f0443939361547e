"""A DC EVSE fed by EVerest API devices (power_supply_DC `psu1`, isolation_monitor `imd1`),
end to end through a real mosquitto: the test plays the EVerest API modules with a plain MQTT
client, Josev is the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import orjson
import pytest
import pytest_asyncio

from csbridge.config import Config, broker_address
from csbridge.service.station import Station
from csbridge.support.resources import example_config
from csbridge.testing.brokers import Broker
from csbridge.testing.harness import isolated_config
from csbridge.testing.harness import wait_until as _until
from csbridge.tools.emulator import JosevEmulator
from tests.conftest import josev_for, stop_bridge
from tests.integration.test_dc_session import _finished_cable_check, _setpoint
from tests.support import ready_for_cable_check, unique_prefix

EVSE = "DE*CSB*E0002"
CHECK_S = 1.0
CAPABILITIES = {
    "bidirectional": False,
    "max_export_voltage_V": 1000.0,
    "min_export_voltage_V": 150.0,
    "max_export_current_A": 400.0,
    "min_export_current_A": 0.0,
    "max_export_power_W": 150000.0,
    "current_regulation_tolerance_A": 1.0,
    "peak_current_ripple_A": 0.5,
}


def everest_config(broker_url: str, prefix: str) -> Config:
    """examples/everest-psu.toml on this test's own topics, with a 1 s communication check."""
    config = isolated_config(example_config("everest-psu.toml"), broker_url, prefix)
    raw = config.model_dump(mode="json", exclude_none=True)
    evse = raw["evse"][0]
    for api in (evse["module"][0]["everest"], evse["imd"]["everest"]):
        api["communication_check_s"] = CHECK_S
    evse["imd"]["deadline_s"] = CHECK_S
    # The pilot comes from a board (EVerest's modules here are the supply and the IMD only):
    # without one no session may start.
    evse["board"] = {"simulated": {"evse_temperature_c": 30, "plug_temperature_c": 30}}
    return Config.model_validate(raw)


@dataclass
class EverestModules:
    """What the EVerest API programs would be: psu1 and imd1 on MQTT."""

    client: aiomqtt.Client
    base: str
    received: list[tuple[str, Any]] = field(default_factory=list)
    alive: bool = True

    async def send(self, interface: str, channel: str, value: Any) -> None:
        topic = f"{self.base}/{interface}/{'psu1' if interface == 'power_supply_DC' else 'imd1'}"
        # Capabilities are state: retained, so a bridge that starts later still learns them.
        retain = channel == "m2e/capabilities"
        await self.client.publish(f"{topic}/{channel}", orjson.dumps(value), qos=1, retain=retain)

    async def psu(self, channel: str, value: Any) -> None:
        await self.send("power_supply_DC", channel, value)

    async def imd(self, channel: str, value: Any) -> None:
        await self.send("isolation_monitor", channel, value)

    async def keep_checking(self) -> None:
        """The modules' side of EVerest's communication check, on its own period: the
        behaviour the station watches, not a wait."""
        while True:
            if self.alive:
                await self.psu("m2e/communication_check", True)
                await self.imd("m2e/communication_check", True)
                await self.imd("m2e/isolation_measurement", {"resistance_F_Ohm": 5e6})
            await asyncio.sleep(0.25)

    async def listen(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b"null"
            self.received.append((message.topic.value[len(self.base) + 1 :], orjson.loads(payload)))

    def seen(self, channel_end: str) -> list[Any]:
        return [value for topic, value in self.received if topic.endswith(channel_end)]


@pytest.fixture
def config(broker: Broker) -> Config:
    return everest_config(broker.url, unique_prefix())


@pytest_asyncio.fixture
async def modules(config: Config) -> AsyncIterator[EverestModules]:
    host, port, _ = broker_address(config.mqtt.broker)
    prefix = config.evse[0].module[0].everest
    assert prefix is not None
    async with aiomqtt.Client(host, port) as client:
        everest = EverestModules(client, prefix.topic_prefix)
        await client.subscribe(f"{prefix.topic_prefix}/+/+/e2m/#", qos=1)
        tasks = [
            asyncio.create_task(everest.listen()),
            asyncio.create_task(everest.keep_checking()),
        ]
        await everest.psu("m2e/capabilities", CAPABILITIES)
        await everest.psu("m2e/mode", "Off")
        await everest.psu("m2e/voltage_current", {"voltage_V": 0.0, "current_A": 0.0})
        yield everest
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest_asyncio.fixture
async def station(config: Config, modules: EverestModules) -> AsyncIterator[Station]:
    running = Station(config)
    task = asyncio.create_task(running.run())
    try:
        await _until(lambda: running.engine.entries.get(EVSE)["status_code"] == "evse_ready")
        yield running
    finally:
        await stop_bridge(task)


@pytest_asyncio.fixture
async def josev(config: Config, station: Station) -> AsyncIterator[JosevEmulator]:
    async with josev_for(config) as emulator:
        yield emulator


def _taken(station: Station, channel: str) -> int:
    """How many messages the station has taken from psu1 on `channel`: each is applied to the
    engine before it is counted."""
    return station.bridge.counters.get("inbound_accepted", f"everest:power_supply_DC/{channel}")


def _dc(josev: JosevEmulator) -> dict[str, Any]:
    entry: dict[str, Any] = josev.view.evses[EVSE]
    return {**entry["dc"], "status_code": entry["status_code"]}


async def test_capabilities_reach_josev_as_the_evse_limits(josev: JosevEmulator) -> None:
    await josev.boot(timeout=5)
    dc = _dc(josev)
    assert dc["status_code"] == "evse_ready"
    assert dc["max_current"] == 400.0
    assert dc["max_power"] == 150000
    assert dc["max_voltage"] == 1000.0
    assert dc["min_voltage"] == 150.0
    assert josev.problems == []


async def test_capabilities_above_the_nameplate_are_capped(
    josev: JosevEmulator, modules: EverestModules, station: Station
) -> None:
    taken = _taken(station, "m2e/capabilities")
    await modules.psu("m2e/capabilities", {**CAPABILITIES, "max_export_current_A": 900.0})
    await _until(lambda: _taken(station, "m2e/capabilities") > taken, 5, "the capabilities")
    await josev.boot(timeout=5)
    assert _dc(josev)["max_current"] == 400.0  # 150 kW still binds at 1000 V... and the cap:
    assert station.engine.entries.get(EVSE)["dc"]["max_current"] <= 500.0  # nameplate


async def test_a_silenced_communication_check_is_evse_malfunction_within_the_deadline(
    josev: JosevEmulator, modules: EverestModules, station: Station
) -> None:
    await josev.boot(timeout=5)
    modules.alive = False
    silenced = time.monotonic()
    update = await josev.wait_update(
        lambda message: (
            message.name == "cs_status_and_limits"
            and any(
                e["evse_id"] == EVSE and e["status_code"] == "evse_malfunction"
                for e in message.data["evses"]
            )
        ),
        timeout=5,
        since=len(josev.updates),
    )
    took = time.monotonic() - silenced
    # The last check may have come just before the silence: deadline + one engine tick + slack.
    assert took <= CHECK_S + 0.25 + 0.5, f"{took:.2f} s"
    entry = next(e for e in update.data["evses"] if e["evse_id"] == EVSE)
    assert entry["dc"]["max_current"] == 0.0
    modules.alive = True
    await _until(lambda: station.engine.entries.get(EVSE)["status_code"] == "evse_ready")


@pytest.mark.parametrize(
    ("error", "stops"),
    [
        ({"type": "HardwareFault"}, True),
        ({"type": "VendorWarning"}, False),
        ({"type": "SomethingNewInEverest", "sub_type": "x"}, True),
    ],
)
async def test_every_error_but_vendor_warning_takes_the_evse_out_of_service(
    modules: EverestModules, station: Station, error: dict[str, str], stops: bool
) -> None:
    taken = _taken(station, "m2e/raise_error")
    await modules.psu("m2e/raise_error", error)
    await _until(lambda: _taken(station, "m2e/raise_error") > taken, 5, "the error")
    status = station.engine.entries.get(EVSE)["status_code"]
    assert status == ("evse_malfunction" if stops else "evse_ready")
    # The same error cleared: a clear without sub_type would leave one raised with a sub_type.
    await modules.psu("m2e/clear_error", error)
    await _until(lambda: station.engine.entries.get(EVSE)["status_code"] == "evse_ready")


async def _cable_check_passed(
    station: Station, josev: JosevEmulator, modules: EverestModules
) -> dict[str, Any]:
    await ready_for_cable_check(station, josev, EVSE)
    started = await josev.request(
        "cable_check", {"evse_id": EVSE, "cable_check_action": "start"}, timeout=5
    )
    assert started.data["cable_check_status"] == "ongoing"
    await _until(lambda: bool(modules.seen("e2m/start_self_test")), timeout=5)
    await modules.imd("m2e/self_test_result", True)
    return await _finished_cable_check(josev, EVSE, 5, every=0.1)


async def test_setpoints_go_out_as_mode_and_export_voltage_current(
    josev: JosevEmulator, modules: EverestModules, station: Station
) -> None:
    await josev.boot(timeout=5)
    assert (await _cable_check_passed(station, josev, modules))["isolation_level"] == "valid"
    setpoint_request = {**_setpoint(500.0, 900.0), "evse_id": EVSE}
    answer = await josev.request("power_electronics_setpoint", setpoint_request, timeout=5)
    assert answer.data["status"] == "accepted"
    exporting = {"mode": "Export", "charging_phase": "Charging"}
    # The supply was told Off while no session ran; the setpoint turns it to Export.
    await _until(
        lambda: (
            bool(modules.seen("e2m/export_voltage_current"))
            and modules.seen("e2m/mode")[-1:] == [exporting]
        )
    )
    setpoint = modules.seen("e2m/export_voltage_current")[-1]
    assert setpoint["voltage_V"] == 500.0
    assert setpoint["current_A"] <= 300.0  # 150 kW at 500 V: never above what was reported
    assert modules.seen("e2m/mode")[-1] == exporting
    stop = {"evse_id": EVSE}
    await josev.request("stop_charging", stop, timeout=5)
    await _until(lambda: modules.seen("e2m/mode")[-1]["mode"] == "Off")


async def test_heartbeats_count_up_and_the_imd_is_started(
    modules: EverestModules, station: Station
) -> None:
    await _until(lambda: len(modules.seen("power_supply_DC/psu1/e2m/heartbeat")) >= 2, timeout=5)
    beats = modules.seen("power_supply_DC/psu1/e2m/heartbeat")
    assert beats[1] == beats[0] + 1
    assert modules.seen("isolation_monitor/imd1/e2m/start") == [{}]


async def test_cable_check_runs_the_imd_self_test_over_the_api(
    josev: JosevEmulator, modules: EverestModules, station: Station
) -> None:
    await josev.boot(timeout=5)
    verdict = await _cable_check_passed(station, josev, modules)
    # The cable-check voltage: the EV's maximum is not known here, so EVerest's assumed 500 V
    # (IEC 61851-23:2023 CC.1), not the EVSE's rated 1000 V.
    assert modules.seen("e2m/start_self_test") == [500.0]
    assert verdict.get("isolation_level") == "valid"


@pytest.mark.parametrize(
    ("channel", "payload", "reason"),
    [
        ("m2e/capabilities", b'{"bidirectional": false}', "schema"),
        ("m2e/mode", b'"Precharge"', "schema"),
        ("m2e/communication_check", b"1", "schema"),
        ("m2e/voltage_current", b"{not json", "not_json"),
        ("m2e/capabilities", orjson.dumps({**CAPABILITIES, "max_export_current_A": -1}), "schema"),
    ],
)
async def test_bad_everest_payloads_are_rejected_and_change_nothing(
    modules: EverestModules, station: Station, channel: str, payload: bytes, reason: str
) -> None:
    before = station.engine.entries.get(EVSE)["dc"]["max_current"]
    topic = f"{modules.base}/power_supply_DC/psu1/{channel}"
    await modules.client.publish(topic, payload, qos=1)
    await _until(lambda: station.bridge.counters.get("inbound_rejected", reason) == 1, timeout=5)
    assert station.engine.entries.get(EVSE)["dc"]["max_current"] == before
    # Half a second in which the EVSE must stay ready: the behaviour, not a wait for an event.
    with contextlib.suppress(TimeoutError):
        await _until(lambda: station.engine.entries.get(EVSE)["status_code"] != "evse_ready", 0.5)
    assert station.engine.entries.get(EVSE)["status_code"] == "evse_ready"


async def test_a_graceful_stop_turns_the_supply_off_and_stops_the_imd(
    modules: EverestModules, station: Station
) -> None:
    await station.shut_down()
    await _until(lambda: bool(modules.seen("e2m/stop")), timeout=5)
    assert modules.seen("e2m/mode")[-1] == {"mode": "Off", "charging_phase": "Other"}
    assert station.engine.entries.get(EVSE)["status_code"] == "evse_shutdown"
