"""The DC session requests as Josev sends them, through a real mosquitto."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiomqtt
import orjson
import pytest

from csbridge.config import Config
from csbridge.service.station import Station
from csbridge.sources.readings import CpState
from csbridge.testing.brokers import MosquittoBroker
from csbridge.testing.can_tap import CanTap
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from csbridge.tools.emulator import JosevEmulator
from tests.conftest import stop_bridge
from tests.support import (
    ready_for_cable_check,
    ready_to_charge,
    station_config,
    unique_prefix,
    wire_station_config,
)

DC = "DE*CSB*E0001"
AC = "DE*CSB*E0002"


def _setpoint(
    voltage: float, current: float, *, precharge: bool = False, ev_max: float = 800.0
) -> dict[str, Any]:
    return {
        "evse_id": DC,
        "dc": {"voltage": voltage, "charge_current": current},
        "ev_limits": {"maximum_voltage": ev_max},
        "is_precharge": precharge,
    }


async def _finished_cable_check(
    josev: JosevEmulator, evse_id: str, timeout: float, every: float
) -> dict[str, Any]:
    """What Josev does after starting a cable check: ask for its status, `every` seconds,
    until it is finished; that last answer."""
    answers: list[dict[str, Any]] = []

    async def finished() -> bool:
        status = await josev.request(
            "cable_check", {"evse_id": evse_id, "cable_check_action": "status"}, timeout=5
        )
        answers.append(status.data)
        return bool(status.data["cable_check_status"] == "finished")

    await wait_until(finished, timeout, "a finished cable check", every=every)
    return answers[-1]


async def _cable_check_verdict(josev: JosevEmulator, timeout: float = 15.0) -> dict[str, Any]:
    started = await josev.request(
        "cable_check", {"evse_id": DC, "cable_check_action": "start"}, timeout=5
    )
    assert started.data["cable_check_status"] == "ongoing"
    return await _finished_cable_check(josev, DC, timeout, every=0.25)


def _stack_current(station: Station) -> float:
    return sum(station.devices.modules[(DC, n)].output_current for n in ("m1", "m2", "m3"))


def _stack_off(station: Station) -> bool:
    return not any(station.devices.modules[(DC, n)].output_current for n in ("m1", "m2", "m3"))


def _status(station: Station) -> str:
    return str(station.engine.entries.get(DC)["status_code"])


async def test_cable_check_runs_the_self_test_then_answers_with_the_isolation(
    station: Station, josev: JosevEmulator
) -> None:
    await josev.boot(timeout=5)
    await ready_for_cable_check(station, josev, DC)
    verdict = await _cable_check_verdict(josev)
    assert verdict == {"evse_id": DC, "cable_check_status": "finished", "isolation_level": "valid"}
    contactor = await josev.request("cs_contactor_status", {"evse_id": DC}, timeout=5)
    assert contactor.data["status"] == "closed"
    assert josev.problems == []


async def test_a_setpoint_reaches_the_modules_clamped_and_split(
    station: Station, josev: JosevEmulator
) -> None:
    await josev.boot(timeout=5)
    await ready_to_charge(station, josev, DC)
    precharge = await josev.request(
        "power_electronics_setpoint", _setpoint(400.0, 50.0, precharge=True), timeout=5
    )
    assert precharge.data["status"] == "accepted"
    assert sum(station.devices.modules[(DC, n)].output_current for n in ("m1", "m2", "m3")) <= 2.0
    answer = await josev.request("power_electronics_setpoint", _setpoint(400.0, 500.0), timeout=5)
    assert answer.data == {"evse_id": DC, "status": "accepted"}
    currents = [station.devices.modules[(DC, name)].output_current for name in ("m1", "m2", "m3")]
    assert currents == pytest.approx(
        [80.0, 80.0, 80.0]
    )  # 500 A asked, 240 A reported, three modules
    assert sum(currents) <= station.engine.entries.get(DC)["dc"]["max_current"]
    stopped = await josev.request("stop_charging", {"evse_id": DC}, timeout=5)
    assert stopped.data == {"evse_id": DC, "status": "accepted"}
    assert all(station.devices.modules[(DC, n)].output_current == 0.0 for n in ("m1", "m2", "m3"))


async def test_a_setpoint_is_rejected_when_the_evse_is_not_ready(
    station: Station, josev: JosevEmulator, config: Config, raw_client: aiomqtt.Client
) -> None:
    await josev.boot(timeout=5)
    await raw_client.publish(
        f"{config.mqtt.local_prefix}/{DC}/operator", orjson.dumps({"enabled": False}), qos=1
    )
    await wait_until(lambda: _status(station) == "evse_shutdown", 5, "the EVSE shut down")
    answer = await josev.request("power_electronics_setpoint", _setpoint(400.0, 100.0), timeout=5)
    assert answer.data == {"evse_id": DC, "status": "rejected"}
    assert all(station.devices.modules[(DC, n)].output_current == 0.0 for n in ("m1", "m2", "m3"))


async def test_meter_values_and_cp_pwm_are_answered(station: Station, josev: JosevEmulator) -> None:
    await josev.boot(timeout=5)
    meter = await josev.request(
        "meter_values", {"evse_id": DC, "timestamp": "2026-11-23T10:00:00Z"}, timeout=5
    )
    assert meter.data["evse_id"] == DC
    assert meter.data["power_factor"] == 1.0
    pwm = await josev.request(
        "cp_pwm",
        {"evse_id": DC, "hlc": True, "error_state": False, "fault_state": False},
        timeout=5,
    )
    assert pwm.data["status"] == "valid"
    assert josev.problems == []


async def test_josev_ending_the_session_switches_the_modules_off(
    station: Station, josev: JosevEmulator, config: Config, raw_client: aiomqtt.Client
) -> None:
    await josev.boot(timeout=5)
    await ready_to_charge(station, josev, DC)
    await josev.request("power_electronics_setpoint", _setpoint(400.0, 90.0), timeout=5)
    assert station.devices.modules[(DC, "m1")].output_current == pytest.approx(30.0)
    for name, data in (
        ("hlc_charging", {"evse_id": DC, "status": True}),
        ("iso15118_state_info", {"evse_id": DC, "session_status": "SessionStop"}),
    ):
        message = {"id": str(uuid.uuid4()), "name": name, "type": "update", "data": data}
        await raw_client.publish(config.mqtt.request_topic, orjson.dumps(message), qos=1)
    await wait_until(
        lambda: station.devices.modules[(DC, "m1")].output_current == 0.0, 5, "m1 switched off"
    )
    assert station.session.sessions[DC].hlc_charging is True
    assert station.session.sessions[DC].iso15118_state == "SessionStop"


async def test_setpoints_go_out_over_can_never_above_the_reported_limits(broker: Any) -> None:
    config = wire_station_config(broker.url, unique_prefix())
    station = Station(config)
    task = asyncio.create_task(station.run())
    sniffer = CanTap(config.bus[0])
    try:
        await wait_until(
            lambda: station.engine.entries.get(DC)["dc"]["max_current"] == 240.0,
            10,
            "the full stack",
        )
        async with JosevClient.for_config(config) as josev:
            await ready_to_charge(station, josev, DC)
            answer = await josev.request(
                "power_electronics_setpoint", _setpoint(600.0, 900.0), timeout=5
            )
            assert answer.data["status"] == "accepted"
        frames = await sniffer.collect(
            2.0,
            lambda frame: (frame.arbitration_id >> 16) & 0x3F == 0x1C,  # Infypower set V/I
            until=lambda found: len(found) >= 3,
        )
        setpoints = [
            (
                int.from_bytes(frame.data[:4], "big") / 1000,
                int.from_bytes(frame.data[4:], "big") / 1000,
            )
            for frame in frames[:3]
        ]
        assert len(setpoints) == 3
        assert all(volts == 600.0 for volts, _ in setpoints)
        total = sum(amps for _, amps in setpoints)
        assert total <= 240.0
        assert 600.0 * total <= 120_000  # 900 A asked; the 120 kW reported binds at 600 V
        assert all(amps == pytest.approx(200.0 / 3, abs=0.001) for _, amps in setpoints)
    finally:
        sniffer.close()
        await stop_bridge(task)


async def test_plug_in_gives_b1_then_b2_once_the_pwm_is_on(
    station: Station, josev: JosevEmulator
) -> None:
    await josev.boot(timeout=5)
    seen = len(josev.updates)
    board = station.devices.boards[DC]
    board.cp_state = CpState.B
    station.devices.emit(board)
    b1 = await josev.wait_update(lambda m: m.name == "cp_status", timeout=5, since=seen)
    assert b1.data == {"evse_id": DC, "connector_id": 1, "state": "B1"}
    seen = len(josev.updates)
    await josev.request(
        "cp_pwm",
        {"evse_id": DC, "hlc": True, "error_state": False, "fault_state": False},
        timeout=5,
    )
    b2 = await josev.wait_update(lambda m: m.name == "cp_status", timeout=5, since=seen)
    assert b2.data["state"] == "B2"
    assert josev.problems == []


async def test_contactor_changes_and_faults_are_pushed_to_josev(
    station: Station, josev: JosevEmulator
) -> None:
    await josev.boot(timeout=5)
    await ready_for_cable_check(station, josev, DC)
    seen = len(josev.updates)
    await josev.request("cable_check", {"evse_id": DC, "cable_check_action": "start"}, timeout=5)
    closed = await josev.wait_update(
        lambda m: m.name == "cs_contactor_status", timeout=5, since=seen
    )
    assert closed.data == {"evse_id": DC, "status": "closed"}
    await _finished_cable_check(josev, DC, 15.0, every=0.25)
    answer = await josev.request("power_electronics_setpoint", _setpoint(400.0, 90.0), timeout=5)
    assert answer.data["status"] == "accepted"
    seen = len(josev.updates)
    module = station.devices.modules[(DC, "m3")]
    module.fault = True
    station.devices.emit(module)
    fault = await josev.wait_update(lambda m: m.name == "hardware_fault", timeout=5, since=seen)
    assert fault.data == {"evse_id": DC, "component_name": "m3", "fault_name": "other"}
    assert all(station.devices.modules[(DC, n)].output_current == 0.0 for n in ("m1", "m2", "m3"))
    assert josev.problems == []


async def test_losing_mqtt_switches_the_modules_off(own_mosquitto: MosquittoBroker) -> None:
    config = station_config(own_mosquitto.url, unique_prefix())
    station = Station(config)
    task = asyncio.create_task(station.run())
    try:
        await asyncio.wait_for(station.bridge.link.connected.wait(), 5)
        await wait_until(lambda: _status(station) == "evse_ready", 5, "the EVSE ready")
        async with JosevClient.for_config(config) as josev:
            await ready_to_charge(station, josev, DC)
            await josev.request("power_electronics_setpoint", _setpoint(400.0, 90.0), timeout=5)
            assert station.devices.modules[(DC, "m1")].output_current > 0
            own_mosquitto.kill()
            await wait_until(
                lambda: station.devices.modules[(DC, "m1")].output_current == 0.0,
                5,
                "m1 switched off",
            )
    finally:
        own_mosquitto.start()
        await stop_bridge(task)


async def test_the_keepalive_follows_a_limit_that_falls(
    station: Station, josev: JosevEmulator
) -> None:
    await josev.boot(timeout=5)
    await ready_to_charge(station, josev, DC)
    await josev.request("power_electronics_setpoint", _setpoint(400.0, 240.0), timeout=5)
    assert sum(
        station.devices.modules[(DC, n)].output_current for n in ("m1", "m2", "m3")
    ) == pytest.approx(240.0)
    board = station.devices.boards[DC]
    board.plug_temperature_c = 85.0  # the plug curve: 100 A at 85 degC
    station.devices.emit(board)
    await wait_until(lambda: _stack_current(station) <= 100.0 + 1e-6, 5, "the stack at 100 A")
    assert station.engine.entries.get(DC)["dc"]["max_current"] == 100.0


async def _josev_update(
    raw_client: aiomqtt.Client, config: Config, name: str, data: dict[str, Any]
) -> None:
    message = {"id": str(uuid.uuid4()), "name": name, "type": "update", "data": data}
    await raw_client.publish(config.mqtt.request_topic, orjson.dumps(message), qos=1)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("service_status", {"service": "iso15118", "status": "stopping"}),
        ("transaction_status", {"transaction_id": "t-1", "status": "ended", "evse_id": DC}),
        ("hlc_charging", {"evse_id": DC, "status": False}),
    ],
)
async def test_josev_going_away_switches_the_modules_off(
    station: Station,
    josev: JosevEmulator,
    config: Config,
    raw_client: aiomqtt.Client,
    name: str,
    data: dict[str, Any],
) -> None:
    await josev.boot(timeout=5)
    await ready_to_charge(station, josev, DC)
    await josev.request("power_electronics_setpoint", _setpoint(400.0, 90.0), timeout=5)
    assert station.devices.modules[(DC, "m1")].output_current > 0
    await _josev_update(raw_client, config, name, data)
    await wait_until(lambda: _stack_off(station), 5, "the stack switched off")


async def test_the_evs_rated_maximum_voltage_clamps_the_setpoint(
    station: Station, josev: JosevEmulator, config: Config, raw_client: aiomqtt.Client
) -> None:
    await josev.boot(timeout=5)
    await ready_to_charge(station, josev, DC)
    await _josev_update(
        raw_client,
        config,
        "ev_rated_limits",
        {"evse_id": DC, "dc_rated_limits": {"max_voltage": 420.0}},
    )
    await wait_until(
        lambda: station.session.sessions[DC].ev_rated_limits is not None, 5, "the EV's limits"
    )
    await josev.request(
        "power_electronics_setpoint", _setpoint(480.0, 30.0, ev_max=500.0), timeout=5
    )
    assert station.devices.modules[(DC, "m1")].output_voltage == 420.0
