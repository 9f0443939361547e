"""Josev's `reset` and `device_model` (for OCPP) through a real mosquitto: an EVSE's reset when
idle (out of service, its start-up checks again, back) and during a session (after its end), the
station's reset (the runner's stop, here a callback), a reset refused by the configuration or for
an unknown EVSE, a repeated one acted on once; the device model answered from [station.identity]
(schema-checked by the emulator), none without one, and invalid requests of both kinds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from csbridge.config import Config
from csbridge.messages import new_message_id
from csbridge.service.station import Station
from csbridge.session import State
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from csbridge.tools.emulator import EmulatorError
from tests.support import ready_to_charge

DC = "DE*CSB*E0001"
AC = "DE*CSB*E0002"
PASSWORD = "s3cret-ocpp-Pa55"  # noqa: S105 - the test's own secret, to prove it is never logged
NO_ANSWER_S = 0.5


def _with(config: Config, **station: Any) -> Config:
    raw = config.model_dump(mode="json", exclude_none=True)
    raw["station"].update(station)
    return Config.model_validate(raw)


def _identity(password_file: Path) -> dict[str, Any]:
    return {
        "model": "sim-dc150-ac22",
        "vendor": "csbridge tests",
        "serial_number": "CSB-T-0001",
        "firmware_version": "csbridge 0.1.0",
        "ocpp_version": "ocpp2.0.1",
        "ocpp_csms_url": "wss://csms.example.com/ocpp",
        "security_profile": 2,
        "identity": "CSB-T-0001",
        "basic_auth_password_file": str(password_file),
        "sim_iccid": "8949000000000000001",
    }


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "ocpp-password"
    path.write_text(f"{PASSWORD}\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def config(config: Config, request: pytest.FixtureRequest, password_file: Path) -> Config:
    """The tests' station; `@pytest.mark.parametrize("config", [...], indirect=True)` picks
    `identity` (a [station.identity]), `no_reset` (allow_reset = false) or, by default, plain."""
    variant = getattr(request, "param", "plain")
    if variant == "identity":
        return _with(config, identity=_identity(password_file))
    if variant == "no_reset":
        return _with(config, maintenance={"allow_reset": False})
    return config


def variant(name: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("config", [name], indirect=True)


def _state(station: Station, evse_id: str = DC) -> State:
    return station.session.sessions[evse_id].state


def _resets(station: Station, label: str) -> int:
    return station.engine.counters.get("resets", label)


def _connector_statuses(josev: JosevClient, evse_id: str, since: int) -> list[str]:
    return [
        update.data["connector_status"]
        for update in josev.updates[since:]
        if update.name == "connector_and_charging" and update.data["evse_id"] == evse_id
    ]


async def _charging(station: Station, josev: JosevClient) -> None:
    await ready_to_charge(station, josev, DC)
    answer = await josev.request(
        "power_electronics_setpoint",
        {
            "evse_id": DC,
            "dc": {"voltage": 400.0, "charge_current": 90.0},
            "ev_limits": {"maximum_voltage": 800.0},
            "is_precharge": False,
        },
        5,
    )
    assert answer.data == {"evse_id": DC, "status": "accepted"}
    assert _state(station) is State.CHARGING


# -- reset: one EVSE -----------------------------------------------------------------------


async def test_an_idle_evse_is_taken_out_checked_again_and_brought_back(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    imd = station.devices.imds[DC]
    tested_before = imd.self_test_until
    since = josev.mark()
    answer = await josev.request("reset", {"evse_id": DC}, 5)
    assert answer.data == {"status": "accepted"}
    assert imd.self_test_until > tested_before, "the IMD's self-test runs again"
    await wait_until(lambda: _resets(station, "evse/done") == 1, 10, "the reset done")
    assert _state(station) is State.AVAILABLE
    await wait_until(
        lambda: _connector_statuses(josev, DC, since)[-1:] == ["available"], 5, "available again"
    )
    assert _connector_statuses(josev, DC, since) == ["unavailable", "available"]
    assert _connector_statuses(josev, AC, since) == [], "the other EVSE is left alone"
    assert _resets(station, "evse/started") == 1
    assert station.state.get("availability", {}).get(DC, True) is True, "never stored as out"
    josev.assert_no_problems()


async def test_an_evse_reset_waits_until_every_module_is_heard_from_afresh(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    await josev.simulate(DC, "silence_module", "m2")
    await josev.request("reset", {"evse_id": DC}, 5)
    running = station.resets.running[DC]
    await wait_until(
        lambda: running.self_tested and {"m1", "m3"} <= running.seen,
        10,
        "the self-test over, m1 and m3 heard from",
    )
    assert _state(station) is State.UNAVAILABLE, "m2 is not heard from: still checking"
    assert DC in station.resets.running
    await josev.simulate(DC, "restore_module", "m2")
    await wait_until(lambda: _resets(station, "evse/done") == 1, 10, "the reset done")
    assert _state(station) is State.AVAILABLE
    josev.assert_no_problems()


async def test_an_evse_out_of_service_before_its_reset_stays_out(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    answer = await josev.request(
        "change_availability", {"operational_status": "inoperative", "evse_id": DC}, 5
    )
    assert answer.data == {"status": "accepted"}
    await josev.request("reset", {"evse_id": DC}, 5)
    await wait_until(lambda: _resets(station, "evse/done") == 1, 10, "the reset done")
    assert _state(station) is State.UNAVAILABLE
    assert station.state.get("availability", {})[DC] is False
    josev.assert_no_problems()


async def test_an_evse_reset_during_a_session_waits_for_its_end(
    station: Station, josev: JosevClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="csbridge.session")
    await josev.boot(timeout=5)
    await _charging(station, josev)
    answer = await josev.request("reset", {"evse_id": DC}, 5)
    assert answer.data == {"status": "accepted"}
    assert _state(station) is State.CHARGING, "the session goes on"
    assert DC in station.resets.deferred
    assert _resets(station, "evse/started") == 0
    assert "event=reset_deferred evse=DE*CSB*E0001" in caplog.text
    stopped = await josev.request("stop_charging", {"evse_id": DC}, 5)
    assert stopped.data == {"evse_id": DC, "status": "accepted"}
    await wait_until(lambda: _resets(station, "evse/done") == 1, 15, "the reset done")
    assert _resets(station, "evse/started") == 1
    # Back in service with the EV still plugged in: free vend authorizes it, as at a start.
    assert _state(station) is State.AUTHORIZED
    assert all(
        module.output_current == 0.0
        for (evse_id, _), module in station.devices.modules.items()
        if evse_id == DC
    )
    josev.assert_no_problems()


async def test_a_repeated_reset_is_answered_again_and_acted_on_once(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    document = {"id": new_message_id(), "name": "reset", "type": "request", "data": {"evse_id": AC}}
    for _ in range(2):
        await josev.publish(josev.request_topic, document)
    await wait_until(
        lambda: sum(1 for r in josev.seen if r.id == document["id"]) == 2,
        5,
        "both answered",
    )
    await wait_until(lambda: _resets(station, "evse/done") == 1, 10, "the reset done")
    assert _resets(station, "evse/started") == 1
    assert station.bridge.counters.get("inbound_rejected", "duplicate") == 1


# -- reset: refused --------------------------------------------------------------------------


@variant("no_reset")
async def test_allow_reset_false_rejects_every_reset_and_changes_nothing(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    asked: list[str] = []
    station.resets.on_station_reset = lambda: asked.append("station")
    for data in ({"evse_id": DC}, {}):
        answer = await josev.request("reset", data, 5)
        assert answer.data == {"status": "rejected"}
    assert _state(station) is State.AVAILABLE
    assert asked == []
    assert _resets(station, "evse/rejected") == 1
    assert _resets(station, "station/rejected") == 1
    josev.assert_no_problems()


async def test_a_reset_of_an_unknown_evse_is_rejected(
    station: Station, josev: JosevClient, caplog: pytest.LogCaptureFixture
) -> None:
    await josev.boot(timeout=5)
    answer = await josev.request("reset", {"evse_id": "DE*CSB*E9999"}, 5)
    assert answer.data == {"status": "rejected"}
    long_one = await josev.request("reset", {"evse_id": "X" * 60}, 5)
    assert long_one.data == {"status": "rejected"}, "any string Josev's rule allows is answered"
    assert "event=unknown_evse message=reset evse_id='DE*CSB*E9999'" in caplog.text
    josev.assert_no_problems()


# -- reset: the station ------------------------------------------------------------------


async def test_a_station_reset_waits_for_every_session_then_asks_for_the_restart(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    asked: list[str] = []
    station.resets.on_station_reset = lambda: asked.append("station")
    await _charging(station, josev)
    answer = await josev.request("reset", {}, 5)
    assert answer.data == {"status": "accepted"}
    assert station.resets.station_deferred
    assert asked == []
    assert _state(station) is State.CHARGING
    await josev.request("stop_charging", {"evse_id": DC}, 5)
    await wait_until(lambda: asked == ["station"], 15, "the restart asked for")
    assert _resets(station, "station/deferred") == 1
    assert _resets(station, "station/started") == 1
    josev.assert_no_problems()


# -- reset and device_model: invalid input ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("reset", {"evse_id": 7}, "schema"),
        ("reset", {"evse_id": DC, "type": "immediate"}, "schema"),
        ("reset", [], "bad_envelope"),
        ("device_model", "all", "bad_envelope"),
    ],
    ids=["evse_id a number", "a field Josev's rule has not", "data an array", "data a string"],
)
@variant("identity")
async def test_an_invalid_request_is_not_acted_on_and_the_station_serves_on(
    station: Station, josev: JosevClient, name: str, data: Any, reason: str
) -> None:
    await josev.boot(timeout=5)
    rejected = station.bridge.counters.get("inbound_rejected", reason)
    document = {"id": new_message_id(), "name": name, "type": "request", "data": data}
    await josev.publish(josev.request_topic, document)
    await wait_until(
        lambda: station.bridge.counters.get("inbound_rejected", reason) == rejected + 1,
        5,
        "the request rejected",
    )
    assert not any(r.id == document["id"] for r in josev.seen)
    assert _resets(station, "evse/started") == 0
    assert _state(station) is State.AVAILABLE
    valid = {"evse_id": "DE*CSB*E9999"} if name == "reset" else {}
    answer = await josev.request(name, valid, 5)  # a valid one is still answered
    assert answer.name == name
    josev.assert_no_problems()


# -- device_model ------------------------------------------------------------------------------


@variant("identity")
async def test_the_device_model_is_answered_from_the_identity_and_the_evses(
    station: Station, josev: JosevClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await josev.boot(timeout=5)
    answer = await josev.request("device_model", {}, 5)
    assert answer.data == {
        "model": "sim-dc150-ac22",
        "vendor": "csbridge tests",
        "serial_number": "CSB-T-0001",
        "firmware_version": "csbridge 0.1.0",
        "ocpp_version": "ocpp2.0.1",
        "ocpp_csms_url": "wss://csms.example.com/ocpp",
        "security_profile": 2,
        "identity": "CSB-T-0001",
        "basic_auth_password": PASSWORD,
        "sim_iccid": "8949000000000000001",
        "evses": [
            {
                "ocpp_id": 1,
                "iso15118_id": DC,
                "power_kw": 150.0,
                "supply_phases": 3,
                "connectors": [{"id": 1, "connector_type": "cCCS2"}],
            },
            {
                "ocpp_id": 2,
                "iso15118_id": AC,
                "power_kw": 22.08,
                "supply_phases": 3,
                "connectors": [{"id": 1, "connector_type": "cType2"}],
            },
        ],
    }
    josev.assert_no_problems()  # the emulator checked it against DeviceModelResponse.json
    assert PASSWORD not in caplog.text
    report = orjson.dumps(station.engine.reports.values()).decode()
    assert PASSWORD not in report
    assert PASSWORD not in station.config.model_dump_json()


async def test_without_an_identity_nothing_is_answered_and_it_is_said_once(
    station: Station, josev: JosevClient, caplog: pytest.LogCaptureFixture
) -> None:
    await josev.boot(timeout=5)
    for _ in range(2):
        with pytest.raises(EmulatorError, match="no response to device_model"):
            await josev.request("device_model", {}, NO_ANSWER_S)
    said = [r for r in caplog.records if "event=device_model_unconfigured" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]
    assert "no [station.identity]" in said[0].getMessage()
    assert station.engine.counters.get("device_model_unanswered") == 2
