"""Banks of modules in a shared pool (issue 18, item 1) through a real mosquitto: examples/
shared-pool.toml's six simulated 30 kW modules as two `[[pool.group]]` banks of three, either
switched together by one contactor per EVSE on the simulated matrix board, or each wired to its
EVSE without a contactor (no board at all)."""

from __future__ import annotations

import pytest

from csbridge.config import Config, load_config
from csbridge.power import SimulatedMatrixDriver, WiredOnly
from csbridge.resources import example_config
from csbridge.service.station import Station
from csbridge.session import PoolCoordinator
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from tests.support import precharge_then_charge, ready_for_cable_check, ready_to_charge

EVSE1 = "DE*CSB*E0001"
EVSE2 = "DE*CSB*E0002"
LEFT = ("m1", "m2", "m3")
RIGHT = ("m4", "m5", "m6")
BANKS = {"left": LEFT, "right": RIGHT}


def _banked(switched: bool) -> Config:
    raw = load_config(example_config("shared-pool.toml")).model_dump(mode="json")
    pool = raw["pool"][0]
    if switched:
        pool["group"] = [{"name": "left", "modules": LEFT}, {"name": "right", "modules": RIGHT}]
        pool["contactor"] = [
            {
                "group": group,
                "evse": evse,
                "command": f"CLOSE_M{channel:02d}_B{bus}",
                "feedback": f"CLOSED_M{channel:02d}_B{bus}",
            }
            for channel, group in enumerate(("left", "right"))
            for bus, evse in enumerate((EVSE1, EVSE2))
        ]
    else:
        pool["group"] = [
            {"name": "left", "modules": LEFT, "wired_to": EVSE1},
            {"name": "right", "modules": RIGHT, "wired_to": EVSE2},
        ]
        pool["contactor"] = []
        pool["board"] = None
    return Config.model_validate(raw)


SWITCHED = _banked(switched=True)
WIRED = _banked(switched=False)


def _pool(station: Station) -> PoolCoordinator:
    [pool] = station.pools
    return pool


async def _booted(
    station: Station, josev: JosevClient
) -> tuple[PoolCoordinator, SimulatedMatrixDriver]:
    """Josev booted; the pool and its simulated board."""
    await josev.boot(timeout=5)
    pool = _pool(station)
    matrix = pool.matrix
    assert isinstance(matrix, SimulatedMatrixDriver)
    return pool, matrix


def _current(station: Station, modules: tuple[str, ...] | frozenset[str]) -> float:
    return sum(
        module.output_current
        for (_, name), module in station.devices.modules.items()
        if name in modules
    )


@pytest.mark.csbridge_config(SWITCHED, settle_s=0.2)
async def test_a_bank_moves_whole_by_its_one_contactor_and_only_de_energised(
    station: Station, josev: JosevClient
) -> None:
    pool, matrix = await _booted(station, josev)
    switched: list[tuple[str, str, bool, float]] = []
    """Each contactor command: (bank, EVSE, closed, what the bank's modules carried then)."""
    command = matrix.command

    def recorded(bank: str, evse_id: str, closed: bool) -> None:
        switched.append((bank, evse_id, closed, _current(station, BANKS[bank])))
        command(bank, evse_id, closed)

    matrix.command = recorded  # type: ignore[method-assign]

    await ready_to_charge(station, josev, EVSE1)
    await wait_until(lambda: len(pool.serving(EVSE1)) == 6, 5, "both banks serve EVSE1")
    await josev.wait_for_evse(EVSE1, lambda e: e["dc"]["max_power"] == 180000)
    # Two contactors closed, one per bank: never one per module.
    assert sorted(bank for bank, _, closed, _ in switched if closed) == ["left", "right"]
    await precharge_then_charge(josev, EVSE1, 450.0)
    assert _current(station, LEFT + RIGHT) == pytest.approx(450.0)

    switched.clear()
    await ready_for_cable_check(station, josev, EVSE2)
    await wait_until(
        lambda: len(pool.serving(EVSE1)) == len(pool.serving(EVSE2)) == 3, 8, "a bank each"
    )
    for evse_id in (EVSE1, EVSE2):
        await josev.wait_for_evse(evse_id, lambda e: e["dc"]["max_power"] == 90000)
    moved = pool.serving(EVSE2)
    assert moved in (frozenset(LEFT), frozenset(RIGHT))  # whole, never split
    bank = "left" if moved == frozenset(LEFT) else "right"
    assert [(b, evse, closed) for b, evse, closed, _ in switched] == [
        (bank, EVSE1, False),
        (bank, EVSE2, True),
    ]
    threshold = pool.sequencer.settings.current_threshold_a
    assert all(carried < threshold for *_, carried in switched), switched
    # EVSE1's setpoint re-clamped to its one bank: 90 kW at 400 V.
    assert _current(station, pool.serving(EVSE1)) == pytest.approx(225.0)
    assert station.engine.counters.total("hardware_faults") == 0
    josev.assert_no_problems()


@pytest.mark.csbridge_config(SWITCHED, settle_s=0.2)
async def test_a_stuck_bank_contactor_takes_every_module_of_the_bank_out(
    station: Station, josev: JosevClient
) -> None:
    pool, matrix = await _booted(station, josev)
    matrix.board.stuck.add(matrix.contact("left", EVSE1))
    await ready_for_cable_check(station, josev, EVSE1)
    await wait_until(lambda: pool.sequencer.faulted == frozenset(LEFT), 5, "the left bank out")
    await wait_until(lambda: pool.serving(EVSE1) == frozenset(RIGHT), 5, "the right bank serves")
    await josev.wait_for_evse(EVSE1, lambda e: e["dc"]["max_power"] == 90000)
    for module in LEFT:
        assert station.engine.counters.get("hardware_faults", module) == 1


@pytest.mark.csbridge_config(WIRED, settle_s=0.2)
async def test_banks_wired_to_their_evse_need_no_board_and_serve_it_alone(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    pool = _pool(station)
    assert isinstance(pool.matrix, WiredOnly)
    for evse_id in (EVSE1, EVSE2):
        entry = await josev.wait_for_evse(evse_id, lambda e: e["dc"]["max_power"] == 90000)
        assert entry["status_code"] == "evse_ready"
    assert pool.serving(EVSE1) == frozenset(LEFT)
    assert pool.serving(EVSE2) == frozenset(RIGHT)

    await ready_to_charge(station, josev, EVSE1)
    await precharge_then_charge(josev, EVSE1, 300.0)
    assert _current(station, LEFT) == pytest.approx(225.0)  # 90 kW at 400 V: the left bank's
    assert _current(station, RIGHT) == 0.0
    assert pool.serving(EVSE2) == frozenset(RIGHT)  # never moves, whatever EVSE1 asks
    assert station.engine.counters.total("hardware_faults") == 0
    josev.assert_no_problems()
