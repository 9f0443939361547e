"""examples/shared-pool.toml through a real mosquitto: two DC EVSEs share six simulated 30 kW
modules through the simulated contactor matrix board (issue 18)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, cast

import aiomqtt
import orjson
import pytest

from csbridge.config import Config, load_config
from csbridge.config.pool import PoolSwitchingConfig
from csbridge.messages import Message
from csbridge.power import PoolModules, SimulatedMatrixDriver
from csbridge.resources import example_config
from csbridge.service.station import Station
from csbridge.session import PoolCoordinator
from csbridge.session.machine import ENERGY_STATES
from csbridge.sources.simulated import SimulatedModule
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from tests.support import precharge_then_charge, ready_for_cable_check, ready_to_charge

pytestmark = [pytest.mark.csbridge_config(example_config("shared-pool.toml"), settle_s=0.2)]

EVSE1 = "DE*CSB*E0001"
EVSE2 = "DE*CSB*E0002"
POOL_SETTLE_S = 2.0
"""examples/shared-pool.toml's demand_settle_s."""


def _pool(station: Station) -> PoolCoordinator:
    [pool] = station.pools
    return pool


def _matrix(station: Station) -> SimulatedMatrixDriver:
    matrix = _pool(station).matrix
    assert isinstance(matrix, SimulatedMatrixDriver)
    return matrix


def _record_closes(station: Station) -> list[tuple[float, str, str]]:
    """Every contactor the pool closes, with the time (perf_counter, as Josev's exchanges)."""
    matrix = _matrix(station)
    closes: list[tuple[float, str, str]] = []
    command = matrix.command

    def recorded(bank: str, evse_id: str, closed: bool) -> None:
        if closed:
            closes.append((time.perf_counter(), bank, evse_id))
        command(bank, evse_id, closed)

    matrix.command = recorded  # type: ignore[method-assign]
    return closes


def _record_sent(
    station: Station, evse_id: str, max_power: float
) -> tuple[list[float], list[float]]:
    """When the bridge finished publishing each update telling `evse_id` that `max_power`
    (perf_counter, as Josev's exchanges; and on the station's clock)."""
    bridge = station.bridge
    send = bridge.send
    sent: list[float] = []
    sent_on_clock: list[float] = []

    async def recorded(message: Message) -> bool:
        done = await send(message)
        data = message.data
        if message.name == "cs_status_and_limits" and any(
            e["evse_id"] == evse_id and e["dc"]["max_power"] == max_power
            for e in data.get("evses", [])
        ):
            sent.append(time.perf_counter())
            sent_on_clock.append(station.engine.clock())
        return done

    bridge.send = recorded  # type: ignore[method-assign]
    return sent, sent_on_clock


def _serving(station: Station) -> dict[str, set[str]]:
    """Which EVSEs each module is reported serving, from both limits reports."""
    serving: dict[str, set[str]] = {}
    for evse_id in (EVSE1, EVSE2):
        block = station.engine.reports.get(evse_id)["pool"]
        for module in block["modules"]:
            if module["serving"]:
                serving.setdefault(module["name"], set()).add(evse_id)
    return serving


def _current_to(station: Station, evse_id: str) -> float:
    """What the modules serving the EVSE deliver now."""
    serving = _pool(station).serving(evse_id)
    return sum(
        module.output_current
        for (_, name), module in station.devices.modules.items()
        if name in serving
    )


def _first_update_at(josev: JosevClient, evse_id: str, predicate: Any, since: float) -> float:
    """When Josev first received an update for `evse_id` matching `predicate`, from `since`
    (perf_counter) on."""
    for exchange in josev.exchanges:
        if exchange.name != "cs_status_and_limits" or exchange.outgoing or exchange.at < since:
            continue
        for entry in exchange.data.get("evses", []):
            if entry["evse_id"] == evse_id and predicate(entry) and exchange.type == "update":
                return exchange.at
    raise AssertionError(f"no such update for {evse_id}")


async def test_one_ev_gets_the_whole_pool_then_two_share_it(
    station: Station, josev: JosevClient, config: Config
) -> None:
    await josev.boot(timeout=5)
    # Idle, each EVSE reports what it would get if it started now: all six modules.
    for evse_id in (EVSE1, EVSE2):
        entry = await josev.wait_for_evse(evse_id, lambda e: e["dc"]["max_power"] == 180000)
        assert entry["status_code"] == "evse_ready"

    pool = _pool(station)
    await ready_to_charge(station, josev, EVSE1)
    await wait_until(lambda: len(pool.serving(EVSE1)) == 6, 5, "six modules serve EVSE1")
    assert station.engine.entries.get(EVSE1)["dc"]["max_power"] == 180000
    await precharge_then_charge(josev, EVSE1, 450.0)
    assert _current_to(station, EVSE1) == pytest.approx(450.0)
    assert station.engine.reported_binding(EVSE1)["max_power"] == "hardware"  # all of it
    # EVSE2, idle, would get half if it started now.
    await josev.wait_for_evse(EVSE2, lambda e: e["dc"]["max_power"] == 90000)

    closes = _record_closes(station)
    sent, sent_on_clock = _record_sent(station, EVSE1, 90000)
    started = time.perf_counter()
    decision = pool.status.decision
    await ready_for_cable_check(station, josev, EVSE2)
    await wait_until(lambda: pool.sequencer.settled and pool.status.decision > decision, 5, "moved")
    for evse_id in (EVSE1, EVSE2):
        await wait_until(
            lambda e=evse_id: josev.view.evses[e]["dc"]["max_power"] == 90000, 5, "90 kW each"
        )
    assert len(pool.serving(EVSE1)) == len(pool.serving(EVSE2)) == 3
    # Josev heard it: the first update after EVSE2 arrived that lowered EVSE1.
    lowered_at = _first_update_at(
        josev, EVSE1, lambda e: e["dc"]["max_power"] < 180000, since=started
    )
    assert lowered_at >= min(sent) - 0.001
    to_evse2 = [at for at, _, evse in closes if evse == EVSE2]
    assert to_evse2, "modules were closed to EVSE2"
    assert sent, "EVSE1's lowered limit was published"
    decided = pool.status.decided_on_clock
    assert decided is not None
    assert min(sent_on_clock) - decided < 0.05, "published within 50 ms of the decision"
    assert min(sent) < min(to_evse2), "EVSE1's lowered limit went to Josev before any move"
    assert all(len(evses) == 1 for evses in _serving(station).values())
    # EVSE1's setpoint was re-clamped to its three modules' 90 kW (225 A at 400 V).
    assert _current_to(station, EVSE1) == pytest.approx(225.0)
    assert station.engine.counters.total("hardware_faults") == 0

    block = station.engine.reports.get(EVSE1)["pool"]
    assert block["name"] == "cabinet"
    assert block["policy"] == "equal_share"
    assert block["settled"] is True
    assert block["settled_at"] >= block["decided_at"]
    assert block["share_w"] == 90000
    assert station.engine.reported_binding(EVSE1)["max_power"] == "pool"
    josev.assert_no_problems()


async def test_a_contactor_whose_feedback_disagrees_takes_its_module_out(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    pool = _pool(station)
    matrix = _matrix(station)
    # m1's contact to EVSE1 sticks open: the board never closes it.
    matrix.board.stuck.add(matrix.contact("m1", EVSE1))
    await ready_for_cable_check(station, josev, EVSE1)
    await wait_until(lambda: "m1" in pool.sequencer.faulted, 5, "m1 faulted")
    await wait_until(lambda: len(pool.serving(EVSE1)) == 5, 5, "five modules serve EVSE1")
    assert station.engine.counters.get("hardware_faults", "m1") == 1
    await josev.wait_for_evse(EVSE1, lambda e: e["dc"]["max_power"] == 150000)
    fault = await josev.wait_for_update(
        lambda m: m.data["component_name"] == "m1", name="hardware_fault"
    )
    assert fault.data["evse_id"] == EVSE1


async def test_an_ev_asking_for_less_than_its_share_gives_modules_back(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    pool = _pool(station)
    for evse_id in (EVSE1, EVSE2):
        await ready_to_charge(station, josev, evse_id)
    await wait_until(
        lambda: len(pool.serving(EVSE1)) == len(pool.serving(EVSE2)) == 3, 5, "90 kW each"
    )
    for evse_id, current in ((EVSE1, 450.0), (EVSE2, 75.0)):  # EVSE2: 30 kW at 400 V
        await precharge_then_charge(josev, evse_id, current)
    decision = pool.status.decision
    started = time.monotonic()
    # After the pool's 2 s settle time, EVSE2 keeps one module; EVSE1 takes the other five.
    await wait_until(lambda: len(pool.serving(EVSE1)) == 5, 6, "five modules serve EVSE1")
    assert time.monotonic() - started >= POOL_SETTLE_S - 0.1
    assert pool.serving(EVSE2) == frozenset({next(iter(pool.serving(EVSE2)))})
    assert pool.status.decision == decision + 1
    assert _current_to(station, EVSE2) == pytest.approx(75.0)
    assert all(len(evses) == 1 for evses in _serving(station).values())
    await wait_until(
        lambda: josev.view.evses[EVSE1]["dc"]["max_power"] == 150000, 5, "150 kW for EVSE1"
    )
    assert station.engine.counters.total("pool_module_moves") >= 5


async def test_an_external_limit_on_one_evse_gives_its_spare_modules_to_the_other(
    station: Station, josev: JosevClient, config: Config, raw_client: aiomqtt.Client
) -> None:
    await josev.boot(timeout=5)
    pool = _pool(station)
    for evse_id in (EVSE1, EVSE2):
        await ready_for_cable_check(station, josev, evse_id)
    await wait_until(lambda: len(pool.serving(EVSE2)) == 3, 5, "90 kW each")
    topic = f"{config.mqtt.local_prefix}/{EVSE1}/external_limit"
    await raw_client.publish(topic, orjson.dumps({"max_power": 30000, "valid_for": 60}), qos=1)
    # Capped at 30 kW, EVSE1 needs one module: EVSE2 gets the other five at once.
    await wait_until(lambda: len(pool.serving(EVSE2)) == 5, 5, "five modules serve EVSE2")
    assert len(pool.serving(EVSE1)) == 1
    assert station.engine.entries.get(EVSE1)["dc"]["max_power"] == 30000
    assert station.engine.reported_binding(EVSE1)["max_power"] == "external"
    assert all(len(evses) == 1 for evses in _serving(station).values())


async def test_a_module_that_falls_silent_stays_put_and_the_pool_shares_the_rest(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    pool = _pool(station)
    for evse_id in (EVSE1, EVSE2):
        await ready_for_cable_check(station, josev, evse_id)
    await wait_until(lambda: len(pool.serving(EVSE2)) == 3, 5, "90 kW each")
    decision = pool.status.decision
    silent = sorted(pool.serving(EVSE1))[0]
    # Over EVSE2's simulate topic: any EVSE of the pool names the pool's modules.
    await josev.simulate(EVSE2, "silence_module", module=silent)
    # Five modules left: a decision gives EVSE1 one of EVSE2's (the earlier session breaks
    # the tie), the silent one is not moved (its current is unknown) and counts for nothing.
    await wait_until(
        lambda: pool.status.decision > decision and pool.sequencer.settled, 5, "re-allocated"
    )
    assert pool.sequencer.target[silent] == EVSE1
    assert len(pool.serving(EVSE2)) == 2
    for evse_id, power in ((EVSE1, 90000), (EVSE2, 60000)):
        await wait_until(
            lambda e=evse_id, p=power: josev.view.evses[e]["dc"]["max_power"] == p, 5, "shares"
        )
    assert station.engine.counters.total("hardware_faults") == 0
    assert station.session.sessions[EVSE1].state.value == "authorized"
    assert all(len(evses) == 1 for evses in _serving(station).values())
    await josev.simulate(EVSE2, "restore_module", module=silent)
    await wait_until(lambda: len(pool.serving(EVSE2)) == 3, 5, "90 kW each again")


def _quick_ramp_config() -> Config:
    """examples/shared-pool.toml whose donor gets 0.3 s to bring a leaving module down."""
    config = load_config(example_config("shared-pool.toml"))
    switching = PoolSwitchingConfig(ramp_timeout_s=0.3, stop_timeout_s=0.3)
    pool = config.pool[0].model_copy(update={"switching": switching})
    return config.model_copy(update={"pool": [pool]})


@pytest.mark.csbridge_config(_quick_ramp_config(), settle_s=0.2)
async def test_a_donor_whose_leaving_module_does_not_stop_has_its_session_ended(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    pool = _pool(station)
    await ready_to_charge(station, josev, EVSE1)
    await wait_until(lambda: len(pool.serving(EVSE1)) == 6, 5, "six modules serve EVSE1")
    await precharge_then_charge(josev, EVSE1, 450.0)
    for module in station.devices.modules.values():
        assert isinstance(module, SimulatedModule)
        module.stuck_on = True  # every output stage hangs on: no module's current falls
    closes_log = _record_closes(station)
    await ready_for_cable_check(station, josev, EVSE2)
    # The donor cannot give its modules back de-energised: its session ends (all off).
    await wait_until(
        lambda: station.session.sessions[EVSE1].state not in ENERGY_STATES, 5, "EVSE1 stopped"
    )
    last_stop = station.session.sessions[EVSE1].last_stop
    assert last_stop is not None
    assert "did not ramp down" in last_stop[0]
    # No contactor moved under current: only a module the setpoint left at rest (0 A) may
    # have gone to EVSE2.
    feedback = _matrix(station).feedback()
    assert feedback is not None
    for (_, name), module in station.devices.modules.items():
        if EVSE2 in feedback.get(name, frozenset()):
            assert module.output_current == 0.0, (
                name,
                pool.sequencer.phase(name),
                feedback,
                closes_log,
            )


def _record_counted(station: Station, evse_id: str) -> list[tuple[float, int]]:
    """Each time the pool sets what `evse_id`'s limits count, on the station's clock: (when,
    how many modules)."""
    engine = station.engine
    set_scope = engine.set_pool_scope
    counted: list[tuple[float, int]] = []

    def recorded(evse: str, scope: Any, *args: Any, **kwargs: Any) -> None:
        if evse == evse_id:
            counted.append((engine.clock(), len(scope.counted)))
        set_scope(evse, scope, *args, **kwargs)

    engine.set_pool_scope = recorded  # type: ignore[method-assign,assignment]
    return counted


async def test_the_receivers_raise_is_told_as_soon_as_its_modules_deliver(
    station: Station, josev: JosevClient, config: Config, raw_client: aiomqtt.Client
) -> None:
    """A raise from the pool's own confirmed move skips the update gate's settle time (0.2 s
    here) and the update gap: each is told within 50 ms of the module delivering."""
    await josev.boot(timeout=5)
    pool = _pool(station)
    await _charging_halves(station, josev)
    counted = _record_counted(station, EVSE2)
    _, told_150 = _record_sent(station, EVSE2, 150000)
    decision = pool.status.decision
    topic = f"{config.mqtt.local_prefix}/{EVSE1}/external_limit"
    await raw_client.publish(topic, orjson.dumps({"max_power": 30000, "valid_for": 60}), qos=1)
    await wait_until(lambda: len(pool.serving(EVSE2)) == 5, 5, "five modules serve EVSE2")
    await wait_until(lambda: bool(told_150), 2, "EVSE2's 150 kW told")
    assert pool.status.decision == decision + 1
    five_at = min(at for at, count in counted if count == 5)
    assert told_150[0] - five_at < 0.05, "told within 50 ms of the fifth module delivering"
    assert all(len(evses) == 1 for evses in _serving(station).values())


def _module(station: Station, name: str) -> SimulatedModule:
    """A pool module's simulation (the pool's modules report as its first EVSE's)."""
    module = station.devices.modules[(EVSE1, name)]
    assert isinstance(module, SimulatedModule)
    return module


def _short_watchdog(station: Station, watchdog_s: float) -> None:
    """Every pool module switches itself off after `watchdog_s` without a command, and the
    pool knows it (its drivers state it): a module's own CAN timeout, shortened for a test."""
    every = station.stage.evses[EVSE1].modules
    assert isinstance(every, PoolModules)
    drivers = cast(dict[str, Any], every.every)
    for name, driver in drivers.items():
        drivers[name] = dataclasses.replace(driver, watchdog_s=watchdog_s)
        _module(station, name).command_timeout_s = watchdog_s


async def _charging_halves(station: Station, josev: JosevClient) -> None:
    """Both EVSEs in session on three modules each, each asking 450 A at 400 V."""
    pool = _pool(station)
    for evse_id in (EVSE1, EVSE2):
        await ready_to_charge(station, josev, evse_id)
    await wait_until(
        lambda: len(pool.serving(EVSE1)) == len(pool.serving(EVSE2)) == 3, 5, "90 kW each"
    )
    for evse_id in (EVSE1, EVSE2):
        await precharge_then_charge(josev, evse_id, 450.0)


def _entry(station: Station, evse_id: str, module: str) -> dict[str, Any]:
    block = station.engine.reports.get(evse_id)["pool"]
    found: dict[str, Any] = next(m for m in block["modules"] if m["name"] == module)
    return found


async def test_a_silent_module_is_re_allocated_at_once_and_parked_once_surely_off(
    station: Station, josev: JosevClient
) -> None:
    """A dropout is a decision: the silent module counts for nothing at once (told to Josev at
    once) and the rest is re-shared; its contactor does not move while its current is unknown,
    only once its own watchdog has surely switched it off."""
    await josev.boot(timeout=5)
    pool = _pool(station)
    _short_watchdog(station, 1.0)
    await _charging_halves(station, josev)
    silent = sorted(pool.serving(EVSE1))[0]
    opened: list[tuple[float, str, str]] = []
    matrix = _matrix(station)
    command = matrix.command

    def recorded(bank: str, evse_id: str, closed: bool) -> None:
        if not closed:
            opened.append((time.monotonic(), bank, evse_id))
        command(bank, evse_id, closed)

    matrix.command = recorded  # type: ignore[method-assign]
    decision = pool.status.decision
    await josev.simulate(EVSE1, "silence_module", module=silent)
    silenced_at = time.monotonic()
    await wait_until(lambda: pool.absent(silent) == "stale", 3, "the dropout noticed")
    assert pool.status.decision > decision, "a dropout is a decision"
    entry = _entry(station, EVSE1, silent)
    assert entry["serving"] is False
    assert entry["absent"] == "stale"
    assert entry["target"] == EVSE1, "held where it is while its current is unknown"
    assert _module(station, silent).output_current == 0.0, "commanded off"
    # The rest is re-shared: EVSE1 (the earlier session) gets one of EVSE2's modules.
    await wait_until(
        lambda: len(pool.serving(EVSE1)) == 3 and len(pool.serving(EVSE2)) == 2, 5, "re-shared"
    )
    assert silent not in pool.serving(EVSE1)
    for evse_id, power in ((EVSE1, 90000), (EVSE2, 60000)):
        await wait_until(
            lambda e=evse_id, p=power: josev.view.evses[e]["dc"]["max_power"] == p, 5, "shares"
        )
    assert all(len(evses) == 1 for evses in _serving(station).values())
    # Parked (its contactor opened) only once its own watchdog has surely ended its output.
    await wait_until(lambda: pool.sequencer.phase(silent).value == "parked", 5, "parked")
    [(opened_at, _, evse_id)] = [o for o in opened if o[1] == silent]
    assert evse_id == EVSE1
    assert opened_at - silenced_at >= 1.0 + 1.0 - 0.1, "deadline, then the watchdog"
    feedback = matrix.feedback()
    assert feedback is not None
    assert feedback.get(silent, frozenset()) == frozenset()
    assert station.engine.counters.total("hardware_faults") == 0
    await josev.simulate(EVSE1, "restore_module", module=silent)
    await wait_until(lambda: pool.absent(silent) is None, 3, "heard again")


async def test_a_module_reporting_a_fault_is_a_hardware_fault_and_leaves_its_evse(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    pool = _pool(station)
    await _charging_halves(station, josev)
    failing = sorted(pool.serving(EVSE2))[0]
    decision = pool.status.decision
    _module(station, failing).fault = True
    await wait_until(lambda: pool.absent(failing) == "fault", 3, "the fault noticed")
    assert pool.status.decision > decision
    assert station.engine.counters.get("hardware_faults", failing) == 1
    assert _entry(station, EVSE2, failing)["absent"] == "fault"
    # Its current is read (0 A: commanded off), so it leaves at once: parked, contactor open.
    await wait_until(lambda: pool.sequencer.phase(failing).value == "parked", 5, "parked")
    feedback = _matrix(station).feedback()
    assert feedback is not None
    assert feedback.get(failing, frozenset()) == frozenset()
    assert station.engine.counters.get("hardware_faults", failing) == 1, "counted once"
