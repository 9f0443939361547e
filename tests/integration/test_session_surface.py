"""The session's new surface through a real mosquitto: EIM authorization in its three modes
(free, a local allowlist file, Josev), Josev's authorization updates and process_authorized_token,
the connector lock (cs_connector), availability (change_availability, the operator topic, kept
across a restart) and the token topic's bad input.

A test picks its EVSE's authorization mode with
`@pytest.mark.parametrize("authorization", ["allowlist"], indirect=True)`; without it the EVSE is
free-vend, as the tests' station is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest

from csbridge.config import Config
from csbridge.protocol import Leaf
from csbridge.service.station import Station
from csbridge.session.machine import ENERGY_STATES, State
from csbridge.sources import LockState
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from tests.conftest import josev_for, start_station, stop_bridge
from tests.support import ready_to_charge

DC = "DE*CSB*E0001"
AC = "DE*CSB*E0002"
MODULES = ("m1", "m2", "m3")
LISTED = "04A2B9C1"
UNLISTED = "04A2B9C2"
JOSEV_TIMEOUT_S = 0.5


# -- the EVSE's authorization mode -------------------------------------------------------


@pytest.fixture
def allowlist_file(tmp_path: Path) -> Path:
    path = tmp_path / "allowlist.txt"
    path.write_text(f"# the operator's cards\nISO14443 {LISTED}\n", encoding="utf-8")
    return path


@pytest.fixture
def authorization(request: pytest.FixtureRequest, allowlist_file: Path) -> dict[str, Any]:
    """The DC EVSE's [evse.authorization] table, by mode (the parameter, default free)."""
    mode = getattr(request, "param", "free")
    if mode == "allowlist":
        return {"mode": "allowlist", "allowlist_file": str(allowlist_file)}
    if mode == "josev":
        return {"mode": "josev", "josev_timeout_s": JOSEV_TIMEOUT_S}
    return {"mode": "free"}


@pytest.fixture
def config(config: Config, authorization: dict[str, Any]) -> Config:
    """The tests' station (on this test's topics and state folder), the DC EVSE in the
    authorization mode asked for."""
    raw = config.model_dump(mode="json", exclude_none=True)
    for evse in raw["evse"]:
        if evse["evse_id"] == DC:
            evse["authorization"] = authorization
    return Config.model_validate(raw)


def with_mode(mode: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("authorization", [mode], indirect=True)


# -- helpers ----------------------------------------------------------------------------


def _state(station: Station, evse_id: str = DC) -> State:
    return station.session.sessions[evse_id].state


def _authorization(station: Station) -> dict[str, Any]:
    block = station.session.report_block(DC)["authorization"]
    assert isinstance(block, dict)
    return block


def _asked(josev: JosevClient) -> list[dict[str, Any]]:
    """The data of every authorization request the station sent Josev."""
    return [r.data for r in josev.station_requests if r.name == "authorization"]


def _currents(station: Station) -> list[float]:
    return [station.devices.modules[(DC, name)].output_current for name in MODULES]


def _status(station: Station, evse_id: str = DC) -> str:
    return str(station.engine.entries.get(evse_id)["status_code"])


def _accepted(station: Station, leaf: Leaf) -> int:
    return station.bridge.counters.get("inbound_accepted", leaf)


async def _token(josev: JosevClient, id_token: str, evse_id: str = DC) -> None:
    await josev.publish(
        josev.local_topic(evse_id, Leaf.TOKEN), {"id_token": id_token, "token_type": "ISO14443"}
    )


async def _present(station: Station, josev: JosevClient, id_token: str) -> None:
    """A card held to the reader, and the station has taken it."""
    taken = _accepted(station, Leaf.TOKEN)
    await _token(josev, id_token)
    await wait_until(lambda: _accepted(station, Leaf.TOKEN) > taken, 5, "the token taken")


async def _plug_in(station: Station, josev: JosevClient, expect: State) -> None:
    await josev.simulate(DC, "plug_in")
    await wait_until(lambda: _state(station) is expect, 5, f"plugged in, {expect}")


def _setpoint(voltage: float, current: float) -> dict[str, Any]:
    return {
        "evse_id": DC,
        "dc": {"voltage": voltage, "charge_current": current},
        "ev_limits": {"maximum_voltage": 800.0},
        "is_precharge": False,
    }


async def _charging(station: Station, josev: JosevClient) -> None:
    await ready_to_charge(station, josev, DC)
    answer = await josev.request("power_electronics_setpoint", _setpoint(400.0, 90.0), 5)
    assert answer.data == {"evse_id": DC, "status": "accepted"}
    assert sum(_currents(station)) == pytest.approx(90.0)


def _lock(station: Station) -> LockState:
    """What the simulated board's lock feedback says now."""
    return station.devices.boards[DC].lock_state


def _connector(action: str, connector_id: int = 1) -> dict[str, Any]:
    return {"evse_id": DC, "connector_id": connector_id, "action": action}


# -- free vend ---------------------------------------------------------------------------


async def test_free_vend_authorizes_at_plug_in_and_tells_josev(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    await _plug_in(station, josev, State.AUTHORIZED)
    await wait_until(lambda: bool(_asked(josev)), 5, "the authorization sent")
    assert _asked(josev) == [{"token_type": "no_authorization", "evse_id": DC}]
    assert _authorization(station) == {"status": "accepted", "token_type": "no_authorization"}
    josev.assert_no_problems()


# -- the allowlist ---------------------------------------------------------------------


@with_mode("allowlist")
async def test_allowlist_a_listed_token_authorizes_and_goes_to_josev_as_local(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    await _plug_in(station, josev, State.OCCUPIED)
    assert _asked(josev) == [], "no free vend in allowlist mode"
    await _present(station, josev, LISTED.lower())  # a reader may print it in lower case
    await wait_until(lambda: _state(station) is State.AUTHORIZED, 5, "authorized")
    await wait_until(lambda: bool(_asked(josev)), 5, "Josev told")
    assert _asked(josev) == [{"token_type": "local", "id_token": LISTED, "evse_id": DC}]
    assert _authorization(station) == {
        "status": "accepted",
        "token_type": "local",
        "id_token": LISTED,
    }
    josev.assert_no_problems()


@with_mode("allowlist")
async def test_allowlist_an_unlisted_token_does_not_authorize_and_nothing_is_sent(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    await _plug_in(station, josev, State.OCCUPIED)
    await _present(station, josev, UNLISTED)
    assert _state(station) is State.OCCUPIED
    assert _authorization(station)["status"] == "rejected"
    assert _asked(josev) == []
    answer = await josev.request(
        "cable_check", {"evse_id": DC, "cable_check_action": "start"}, timeout=5
    )
    assert answer.data["cable_check_status"] == "finished"  # refused: not authorized
    assert answer.data["isolation_level"] == "invalid"
    josev.assert_no_problems()


@with_mode("allowlist")
async def test_allowlist_the_file_is_read_again_when_it_changes(
    station: Station, josev: JosevClient, allowlist_file: Path
) -> None:
    await josev.boot(timeout=5)
    await _plug_in(station, josev, State.OCCUPIED)
    await _present(station, josev, UNLISTED)
    assert _authorization(station)["status"] == "rejected"
    await asyncio.to_thread(
        allowlist_file.write_text,
        f"ISO14443 {LISTED}\nISO14443 {UNLISTED.lower()}  # a new card\n",
        encoding="utf-8",
    )

    async def authorized_once_read() -> bool:
        # The file is looked at no more than once a second: the driver holds the card again.
        await _present(station, josev, UNLISTED)
        return _state(station) is State.AUTHORIZED

    await wait_until(authorized_once_read, 5, "the new card accepted", every=0.25)
    await wait_until(lambda: bool(_asked(josev)), 5, "Josev told")
    assert _asked(josev) == [{"token_type": "local", "id_token": UNLISTED, "evse_id": DC}]
    josev.assert_no_problems()


# -- Josev decides -------------------------------------------------------------------


@with_mode("josev")
@pytest.mark.parametrize(
    ("answer", "after"),
    [("accepted", State.AUTHORIZED), ("rejected", State.OCCUPIED), (None, State.OCCUPIED)],
    ids=["accepted", "rejected", "no answer"],
)
async def test_josev_mode_sends_the_token_and_follows_the_answer(
    station: Station, josev: JosevClient, answer: str | None, after: State
) -> None:
    await josev.boot(timeout=5)
    josev.authorization_answer = answer
    await _plug_in(station, josev, State.OCCUPIED)
    assert _asked(josev) == [], "a token is awaited first"
    presented = time.monotonic()
    await _present(station, josev, LISTED)
    await wait_until(lambda: bool(_asked(josev)), 5, "the token sent to Josev")
    assert _asked(josev) == [{"token_type": "ISO14443", "id_token": LISTED, "evse_id": DC}]
    await wait_until(
        lambda: _authorization(station)["status"] != "pending", 5, "Josev's answer taken"
    )
    assert _state(station) is after
    assert _authorization(station)["status"] == (answer or "rejected")
    if answer is None:
        took = time.monotonic() - presented
        assert took >= JOSEV_TIMEOUT_S, "rejected only once the wait ran out"
        assert station.bridge.counters.get("request_unanswered", "authorization") == 1
    josev.assert_no_problems()


@with_mode("josev")
async def test_josev_mode_a_token_waits_in_authorizing(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    josev.authorization_answer = None
    await _plug_in(station, josev, State.OCCUPIED)
    await _present(station, josev, LISTED)
    assert _state(station) is State.AUTHORIZING
    assert _authorization(station)["status"] == "pending"
    answer = await josev.request("power_electronics_setpoint", _setpoint(400.0, 50.0), timeout=5)
    assert answer.data["status"] == "rejected"
    await wait_until(lambda: _state(station) is State.OCCUPIED, 5, "the wait ran out")


# -- Josev's authorization updates -----------------------------------------------------


async def _withdrawn_while_charging(station: Station, josev: JosevClient, status: str) -> int:
    """A free-vend session charging, then Josev withdraws its authorization; how many
    authorization requests the station had sent Josev by then."""
    await josev.boot(timeout=5)
    await _charging(station, josev)
    asked = len(_asked(josev))
    await josev.update(
        "authorization", {"evse_id": DC, "token_type": "no_authorization", "status": status}
    )
    await wait_until(lambda: not any(_currents(station)), 5, "the modules off")
    return asked


@pytest.mark.parametrize("status", ["deauthorized", "rejected"])
async def test_josev_withdrawing_the_authorization_stops_a_running_session(
    station: Station, josev: JosevClient, status: str
) -> None:
    await _withdrawn_while_charging(station, josev, status)
    assert not station.devices.boards[DC].contactor_closed
    assert _state(station) not in ENERGY_STATES
    answer = await josev.request("power_electronics_setpoint", _setpoint(400.0, 90.0), 5)
    assert answer.data["status"] == "rejected"
    assert not any(_currents(station))
    assert not station.devices.boards[DC].contactor_closed
    josev.assert_no_problems()


@pytest.mark.parametrize("status", ["deauthorized", "rejected"])
async def test_an_authorization_josev_withdrew_is_not_granted_again_by_free_vend(
    station: Station, josev: JosevClient, status: str
) -> None:
    asked = await _withdrawn_while_charging(station, josev, status)
    await wait_until(
        lambda: _state(station) not in (*ENERGY_STATES, State.STOPPING, State.FINISHING),
        5,
        "the session over",
    )
    assert _state(station) is State.OCCUPIED
    assert _authorization(station)["status"] == status
    assert len(_asked(josev)) == asked, "not asked again"
    check = await josev.request(
        "cable_check", {"evse_id": DC, "cable_check_action": "start"}, timeout=5
    )
    assert check.data["isolation_level"] == "invalid", "no new session without a new word"


@with_mode("josev")
async def test_a_remote_start_authorizes_the_plugged_in_ev(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    await _plug_in(station, josev, State.OCCUPIED)
    await josev.update(
        "authorization",
        {"evse_id": DC, "token_type": "central", "status": "accepted", "id_token": "remote-1"},
    )
    await wait_until(lambda: _state(station) is State.AUTHORIZED, 5, "authorized")
    assert _authorization(station) == {
        "status": "accepted",
        "token_type": "central",
        "id_token": "remote-1",
    }


# -- process_authorized_token -------------------------------------------------------


def _process(evse_id: str | None = DC) -> dict[str, Any]:
    data: dict[str, Any] = {"token_type": "ISO14443", "id_token": LISTED}
    if evse_id is not None:
        data["evse_id"] = evse_id
    return data


@with_mode("josev")
async def test_process_authorized_token_is_accepted_and_used_where_an_ev_waits(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    await _plug_in(station, josev, State.OCCUPIED)
    answer = await josev.request("process_authorized_token", _process(), timeout=5)
    assert answer.data == {"status": "accepted", "evse_id": DC}
    assert _state(station) is State.AUTHORIZED
    assert _authorization(station)["id_token"] == LISTED


@with_mode("josev")
async def test_process_authorized_token_before_the_plug_in_authorizes_it(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    answer = await josev.request("process_authorized_token", _process(), timeout=5)
    assert answer.data == {"status": "accepted", "evse_id": DC}
    assert _state(station) is State.AVAILABLE
    await _plug_in(station, josev, State.AUTHORIZED)
    assert _asked(josev) == [], "used as it was, not asked again"


async def test_process_authorized_token_is_discarded_where_a_session_runs_or_out_of_service(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    await _plug_in(station, josev, State.AUTHORIZED)  # free vend: busy
    busy = await josev.request("process_authorized_token", _process(), timeout=5)
    assert busy.data == {"status": "discarded", "evse_id": DC}
    out = await josev.request(
        "change_availability", {"operational_status": "inoperative", "evse_id": AC}, 5
    )
    assert out.data["status"] == "accepted"
    unavailable = await josev.request("process_authorized_token", _process(AC), timeout=5)
    assert unavailable.data == {"status": "discarded", "evse_id": AC}
    anywhere = await josev.request("process_authorized_token", _process(None), timeout=5)
    assert anywhere.data == {"status": "discarded"}, "no EVSE can use it"
    assert _state(station) is State.AUTHORIZED
    assert _state(station, AC) is State.UNAVAILABLE
    josev.assert_no_problems()


# -- the connector lock --------------------------------------------------------------


async def test_cs_connector_locks_unlocks_and_says_the_state_from_the_board(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    status = await josev.request("cs_connector", _connector("status"), timeout=5)
    assert status.data == {"evse_id": DC, "connector_id": 1, "status": "unlocked"}
    locked = await josev.request("cs_connector", _connector("lock"), timeout=5)
    assert locked.data == {"evse_id": DC, "connector_id": 1, "status": "locked"}
    assert _lock(station) is LockState.LOCKED
    status = await josev.request("cs_connector", _connector("status"), timeout=5)
    assert status.data["status"] == "locked"
    unlocked = await josev.request("cs_connector", _connector("unlock"), timeout=5)
    assert unlocked.data == {"evse_id": DC, "connector_id": 1, "status": "unlocked"}
    assert _lock(station) is LockState.UNLOCKED
    unknown = await josev.request("cs_connector", _connector("status", 2), timeout=5)
    assert unknown.data["status"] == "unknown"
    assert "info" in unknown.data
    josev.assert_no_problems()


async def test_a_jammed_lock_is_an_error_and_a_hardware_fault(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    station.devices.boards[DC].lock_jammed = True
    since = josev.mark()
    answer = await josev.request("cs_connector", _connector("lock"), timeout=5)
    assert answer.data["status"] == "error"
    assert "1 s" in answer.data["info"]
    fault = await josev.wait_for_update(name="hardware_fault", since=since, timeout=5)
    assert fault.data == {
        "evse_id": DC,
        "component_name": "connector_lock",
        "fault_name": "other",
    }
    josev.assert_no_problems()


async def test_the_connector_is_never_unlocked_while_the_contactors_are_closed(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    await _charging(station, josev)
    board = station.devices.boards[DC]
    assert board.contactor_closed
    await wait_until(lambda: board.lock_state is LockState.LOCKED, 5, "locked for the session")
    answer = await josev.request("cs_connector", _connector("unlock"), timeout=5)
    assert answer.data["status"] == "error"
    assert "contactors are closed" in answer.data["info"]
    assert board.lock_state is LockState.LOCKED
    assert _state(station) is State.CHARGING
    assert sum(_currents(station)) == pytest.approx(90.0)
    josev.assert_no_problems()


# -- availability ---------------------------------------------------------------------


async def test_inoperative_takes_an_idle_evse_out_of_service_at_once(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    since = josev.mark()
    answer = await josev.request(
        "change_availability", {"operational_status": "inoperative", "evse_id": DC}, 5
    )
    assert answer.data == {"status": "accepted"}
    assert _state(station) is State.UNAVAILABLE
    entry = await josev.wait_for_evse(DC, lambda e: e["status_code"] == "evse_shutdown", 5)
    assert entry["status_code"] == "evse_shutdown"
    assert "availability" in station.engine.reported_binding(DC).values()
    update = await josev.wait_for_update(
        lambda m: m.data["evse_id"] == DC, 5, name="connector_and_charging", since=since
    )
    assert update.data["connector_status"] == "unavailable"
    refused = await josev.request("power_electronics_setpoint", _setpoint(400.0, 50.0), 5)
    assert refused.data["status"] == "rejected"
    back = await josev.request(
        "change_availability", {"operational_status": "operative", "evse_id": DC}, 5
    )
    assert back.data == {"status": "accepted"}
    assert _state(station) is State.AVAILABLE
    await josev.wait_for_evse(DC, lambda e: e["status_code"] == "evse_ready", 5)
    josev.assert_no_problems()


async def test_inoperative_during_a_session_takes_effect_at_its_end(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    await _charging(station, josev)
    answer = await josev.request(
        "change_availability", {"operational_status": "inoperative", "evse_id": DC}, 5
    )
    assert answer.data == {"status": "accepted"}
    assert _state(station) is State.CHARGING
    assert sum(_currents(station)) == pytest.approx(90.0), "the running session goes on"
    assert _status(station) == "evse_ready"
    stopped = await josev.request("stop_charging", {"evse_id": DC}, 5)
    assert stopped.data["status"] == "accepted"
    await wait_until(lambda: _state(station) is State.UNAVAILABLE, 5, "out of service at the end")
    await josev.wait_for_evse(DC, lambda e: e["status_code"] == "evse_shutdown", 5)
    josev.assert_no_problems()


async def test_availability_for_the_station_and_for_a_connector(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    connector = await josev.request(
        "change_availability",
        {"operational_status": "inoperative", "evse_id": DC, "connector_id": 1},
        5,
    )
    assert connector.data == {"status": "accepted"}
    assert _state(station) is State.UNAVAILABLE
    no_connector = await josev.request(
        "change_availability",
        {"operational_status": "operative", "evse_id": DC, "connector_id": 2},
        5,
    )
    assert no_connector.data == {"status": "rejected"}
    assert _state(station) is State.UNAVAILABLE
    no_evse = await josev.request(
        "change_availability", {"operational_status": "operative", "evse_id": "DE*CSB*E9999"}, 5
    )
    assert no_evse.data == {"status": "rejected"}
    whole = await josev.request("change_availability", {"operational_status": "operative"}, 5)
    assert whole.data == {"status": "accepted"}
    assert _state(station) is State.AVAILABLE
    assert _state(station, AC) is State.AVAILABLE
    off = await josev.request("change_availability", {"operational_status": "inoperative"}, 5)
    assert off.data == {"status": "accepted"}
    assert _state(station) is State.UNAVAILABLE
    assert _state(station, AC) is State.UNAVAILABLE
    josev.assert_no_problems()


async def test_out_of_service_survives_a_restart(config: Config) -> None:
    first, task = await start_station(config)
    try:
        async with josev_for(config) as josev:
            await josev.boot(timeout=5)
            answer = await josev.request(
                "change_availability", {"operational_status": "inoperative", "evse_id": DC}, 5
            )
            assert answer.data == {"status": "accepted"}
    finally:
        await stop_bridge(task)
    assert _state(first) is State.UNAVAILABLE
    # A second station on the same state folder, as after a reboot.
    second, task = await start_station(config, wait_ready=False)
    try:
        assert _state(second) is State.UNAVAILABLE
        assert _state(second, AC) is State.AVAILABLE
        async with josev_for(config) as josev:
            _, status = await josev.boot(timeout=5)
            (entry,) = [e for e in status.data["evses"] if e["evse_id"] == DC]
            await wait_until(lambda: _status(second) == "evse_shutdown", 5, "still shut down")
            if entry["status_code"] != "evse_shutdown":
                await josev.wait_for_evse(DC, lambda e: e["status_code"] == "evse_shutdown", 5)
            back = await josev.request(
                "change_availability", {"operational_status": "operative", "evse_id": DC}, 5
            )
            assert back.data == {"status": "accepted"}
            assert _state(second) is State.AVAILABLE
    finally:
        await stop_bridge(task)
    third, task = await start_station(config)
    try:
        assert _state(third) is State.AVAILABLE
    finally:
        await stop_bridge(task)


async def test_the_operator_topic_is_sent_to_josev_as_a_change_availability_update(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    since = josev.mark()
    topic = josev.local_topic(DC, Leaf.OPERATOR)
    await josev.publish(topic, {"enabled": False, "reason": "maintenance"})
    down = await josev.wait_for_update(name="change_availability", since=since, timeout=5)
    assert down.data == {"operational_status": "inoperative", "evse_id": DC}
    assert _state(station) is State.UNAVAILABLE
    since = josev.mark()
    await josev.publish(topic, {"enabled": True})
    up = await josev.wait_for_update(name="change_availability", since=since, timeout=5)
    assert up.data == {"operational_status": "operative", "evse_id": DC}
    await wait_until(lambda: _state(station) is State.AVAILABLE, 5, "back in service")
    josev.assert_no_problems()


# -- the token topic's bad input ----------------------------------------------------


BAD_TOKENS: list[tuple[str, bytes]] = [
    ("missing token_type", orjson.dumps({"id_token": LISTED})),
    ("an extra key", orjson.dumps({"id_token": LISTED, "token_type": "ISO14443", "x": 1})),
    ("a number for id_token", orjson.dumps({"id_token": 4, "token_type": "ISO14443"})),
    ("a token type Josev only sends", orjson.dumps({"id_token": LISTED, "token_type": "central"})),
    ("an empty id_token", orjson.dumps({"id_token": "", "token_type": "ISO14443"})),
    ("a UID of odd length", orjson.dumps({"id_token": "04A2B9C", "token_type": "ISO14443"})),
    ("a UID of 5 bytes", orjson.dumps({"id_token": "04A2B9C1D0", "token_type": "ISO14443"})),
    ("a UID that is no hex", orjson.dumps({"id_token": "04A2B9ZZ", "token_type": "ISO14443"})),
    ("a UID with a space", orjson.dumps({"id_token": "04A2 B9C1", "token_type": "ISO14443"})),
    ("no JSON", b"\x04\xa2\xb9\xc1"),
    ("a JSON list", b'["04A2B9C1", "ISO14443"]'),
]


def _rejected_lines(caplog: pytest.LogCaptureFixture, topic: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if "event=inbound_rejected" in r.getMessage() and f"topic={topic} " in r.getMessage()
    ]


@with_mode("josev")
async def test_bad_input_on_the_token_topic_is_logged_counted_and_changes_nothing(
    station: Station,
    josev: JosevClient,
    config: Config,
    raw_client: aiomqtt.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge")
    await josev.boot(timeout=5)
    await _plug_in(station, josev, State.OCCUPIED)
    before = _authorization(station)
    counters = station.bridge.counters
    rejected_before = counters.total("inbound_rejected")
    topic = josev.local_topic(DC, Leaf.TOKEN)
    for _, payload in BAD_TOKENS:
        await raw_client.publish(topic, payload, qos=1)
    unknown = f"{config.mqtt.local_prefix}/DE*CSB*E9999/token"
    await raw_client.publish(unknown, orjson.dumps({"id_token": LISTED, "token_type": "ISO14443"}))
    expected = len(BAD_TOKENS) + 1
    await wait_until(
        lambda: counters.total("inbound_rejected") - rejected_before == expected,
        5,
        "every bad token refused",
    )
    assert counters.get("inbound_rejected", "unknown_evse") == 1
    assert counters.get("inbound_rejected", "not_json") == 1
    assert counters.get("inbound_accepted", Leaf.TOKEN) == 0
    assert _state(station) is State.OCCUPIED
    assert _authorization(station) == before
    assert _asked(josev) == []
    lines = _rejected_lines(caplog, topic)
    reasons = sorted(line.split("reason=")[1].split()[0] for line in lines)
    assert reasons == ["not_json", "not_object", "schema"], "one line per kind"
    assert len(_rejected_lines(caplog, unknown)) == 1
    # The topic still serves the next good token.
    josev.authorization_answer = "accepted"
    await _present(station, josev, LISTED)
    await wait_until(lambda: _state(station) is State.AUTHORIZED, 5, "the good token taken")
    assert _asked(josev) == [{"token_type": "ISO14443", "id_token": LISTED, "evse_id": DC}]
    josev.assert_no_problems()


async def test_a_token_for_an_evse_busy_with_a_session_changes_nothing(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    await _charging(station, josev)
    before = _authorization(station)
    await _present(station, josev, LISTED)
    assert _state(station) is State.CHARGING
    assert _authorization(station) == before
    assert sum(_currents(station)) == pytest.approx(90.0)
