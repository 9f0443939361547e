"""No update storms: however fast an input changes, each EVSE's entry goes to Josev at most once
per 50 ms, a held change goes out no later than 50 ms after it arose, at the latest value, and
the engine's snapshots (which the power path follows) change at once.

Driven through the real engine with an injected clock; the pusher is played as the bridge runs
it: woken by every change and at the time the first held change is due."""

from __future__ import annotations

import asyncio
import itertools
import math
import tomllib
from dataclasses import dataclass, field

import pytest

from csbridge.config import Config
from csbridge.engine import UPDATE_GAP_S, LimitsEngine, PacedUpdates
from csbridge.engine.latest import AsDocuments, LatestByEvse
from csbridge.messages import DcLimits, EvseStatusAndLimits
from csbridge.sources import ExternalLimit, OperatorCommand
from tests.support import small_station

E1 = "DE*CSB*E0001"
E2 = "DE*CSB*E0002"
T0 = 1000.0
START_W = 100_000.0
"""Below the station's 150 kW, so the external limit is what binds max_power."""


class _Clock:
    now = T0

    def __call__(self) -> float:
        return self.now


@dataclass(slots=True)
class _Rig:
    clock: _Clock
    engine: LimitsEngine
    sent: list[tuple[float, EvseStatusAndLimits]] = field(default_factory=list)
    """Every entry told to Josev, with the time it went out."""

    def push(self) -> None:
        """The pusher woken now: whatever is due goes out."""
        for _, entry in self.engine.updates.take_due():
            self.sent.append((self.clock.now, entry))

    def run_until(self, until: float) -> None:
        """The pusher's timed wake-ups up to `until`: each held change goes out when due."""
        while (due_at := self.engine.updates.next_due_at()) is not None and due_at <= until:
            self.clock.now = due_at
            self.push()

    def at(self, when: float) -> None:
        self.run_until(when)
        self.clock.now = when

    def of(self, evse_id: str) -> list[tuple[float, EvseStatusAndLimits]]:
        return [(at, entry) for at, entry in self.sent if entry.evse_id == evse_id]


def _rig() -> _Rig:
    config = Config.model_validate(tomllib.loads(small_station((E1, ""), (E2, ""))))
    clock = _Clock()
    rig = _Rig(clock, LimitsEngine(config, clock=clock))
    rig.push()  # the state at start, as the first update after connecting
    rig.clock.now += 1.0
    rig.sent.clear()
    return rig


def _max_power(entry: EvseStatusAndLimits) -> float:
    assert isinstance(entry.dc, DcLimits)
    return float(entry.dc.max_power)


def _external(rig: _Rig, evse_id: str, watts: float) -> None:
    rig.engine.ingest(evse_id, ExternalLimit(at=rig.clock.now, until=math.inf, max_power=watts))


def _most_in_one_second(times: list[float]) -> int:
    """The most updates in any window [t, t + 1 s). Twenty 50 ms gaps summed in floats can
    fall a hair short of 1 s; a nanosecond of slack keeps that from counting as a 21st."""
    most, first = 0, 0
    for last, at in enumerate(times):
        while times[first] <= at - 1.0 + 1e-9:
            first += 1
        most = max(most, last - first + 1)
    return most


@pytest.mark.parametrize("rate", [50, 5000])
def test_a_limit_falling_1_w_per_message_is_told_at_most_20_times_a_second(rate: int) -> None:
    rig = _rig()
    seconds = 2.0 if rate <= 1000 else 1.0
    count = int(rate * seconds)
    start = rig.clock.now
    arose: list[tuple[float, float, int]] = []
    """(when, watts) of every message, and how many updates had gone out before it."""
    for index in range(count):
        rig.at(start + index / rate)
        watts = START_W - index
        _external(rig, E1, watts)
        # The power path is not slowed: the snapshot it follows is the new limit already.
        snapshot = rig.engine.snapshots.get(E1)
        assert snapshot.dc is not None
        assert snapshot.dc.max_power == watts
        arose.append((rig.clock.now, watts, len(rig.sent)))
        rig.push()
    last_at, last_w, _ = arose[-1]
    rig.run_until(math.inf)

    told = rig.of(E1)
    times = [at for at, _ in told]
    assert _most_in_one_second(times) <= 20
    assert all(b >= a + UPDATE_GAP_S for a, b in itertools.pairwise(times))
    assert len(told) >= 19 * seconds, "paced, not starved: about 20 a second"
    final_at, final = told[-1]
    assert _max_power(final) == last_w
    assert final_at - last_at <= UPDATE_GAP_S
    # The first decrease went out at once; every later one within 50 ms, at its value or lower.
    assert told[0][0] == arose[0][0]
    assert _max_power(told[0][1]) == arose[0][1]
    assert len(told) == len(rig.sent), "E2 was never told"
    for when, watts, before in arose:
        at, entry = rig.sent[before]
        assert at - when <= UPDATE_GAP_S
        assert _max_power(entry) <= watts


def test_status_changes_are_paced_too_and_the_latest_state_wins() -> None:
    rig = _rig()
    start = rig.clock.now
    enabled = True
    for index in range(1001):  # 1,000 operator toggles a second, the last one off
        rig.at(start + index / 1000)
        enabled = not enabled
        rig.engine.ingest(E1, OperatorCommand(at=rig.clock.now, enabled=enabled, reason="t"))
        rig.push()
    last_at = rig.clock.now
    rig.run_until(math.inf)

    told = rig.of(E1)
    assert _most_in_one_second([at for at, _ in told]) <= 20
    final_at, final = told[-1]
    assert final.status_code == rig.engine.wire_entries.get(E1).status_code
    assert final.status_code != "evse_ready", "the last toggle disabled the EVSE"
    assert final_at - last_at <= UPDATE_GAP_S


def test_a_change_after_a_quiet_gap_goes_out_at_once() -> None:
    rig = _rig()
    rig.engine.ingest(E1, OperatorCommand(at=rig.clock.now, enabled=False, reason="maintenance"))
    rig.push()
    assert [(at, e.status_code) for at, e in rig.sent] == [(rig.clock.now, "evse_shutdown")]


def test_a_safe_state_held_behind_a_decrease_goes_out_within_the_gap() -> None:
    rig = _rig()
    _external(rig, E1, 90_000.0)
    rig.push()
    rig.at(rig.clock.now + 0.01)
    rig.engine.ingest(E1, OperatorCommand(at=rig.clock.now, enabled=False, reason="maintenance"))
    stopped_at = rig.clock.now
    rig.push()
    assert len(rig.sent) == 1, "held: the decrease went out 10 ms ago"
    rig.run_until(math.inf)
    at, entry = rig.sent[-1]
    assert entry.status_code == "evse_shutdown"
    assert at - stopped_at <= UPDATE_GAP_S


def test_evses_are_paced_each_on_its_own() -> None:
    rig = _rig()
    _external(rig, E1, 90_000.0)
    rig.push()
    rig.at(rig.clock.now + 0.01)
    _external(rig, E1, 80_000.0)
    _external(rig, E2, 70_000.0)
    rig.push()
    assert [(e.evse_id, _max_power(e)) for _, e in rig.sent] == [(E1, 90_000), (E2, 70_000)]
    assert rig.engine.updates.held == (E1,)
    # What a running setpoint is clamped to (session/power_path.py) is not held back.
    assert rig.engine.entries.get(E1)["dc"]["max_power"] == 80_000
    rig.run_until(math.inf)
    assert [(e.evse_id, _max_power(e)) for _, e in rig.sent][2:] == [(E1, 80_000)]


def test_a_change_undone_within_the_gap_is_told_as_it_stands_at_the_end() -> None:
    rig = _rig()
    _external(rig, E1, 90_000.0)
    rig.push()
    rig.at(rig.clock.now + 0.01)
    rig.engine.ingest(E1, OperatorCommand(at=rig.clock.now, enabled=False, reason="t"))
    assert rig.engine.entries.get(E1)["status_code"] == "evse_shutdown"
    rig.push()
    rig.at(rig.clock.now + 0.01)
    rig.engine.ingest(E1, OperatorCommand(at=rig.clock.now, enabled=True, reason="t"))
    rig.push()
    rig.run_until(math.inf)
    # The shutdown in between is never told: the latest state wins. The state is told again
    # (the first may not have reached Josev), once.
    told = [(e.status_code, _max_power(e)) for _, e in rig.sent]
    assert told == [("evse_ready", 90_000), ("evse_ready", 90_000)]
    assert rig.engine.updates.held == ()


def test_the_full_state_counts_as_told() -> None:
    rig = _rig()
    _external(rig, E1, 90_000.0)
    rig.at(rig.clock.now + 0.01)
    rig.push()
    rig.at(rig.clock.now + 0.01)
    _external(rig, E2, 80_000.0)
    rig.engine.updates.take_due()  # E2 went out at once, E1 is held
    _external(rig, E1, 85_000.0)
    rig.engine.updates.told_all()  # the full state went out after a connect
    told_at = rig.clock.now
    rig.sent.clear()
    assert rig.engine.updates.held == ()
    rig.at(told_at + 0.01)
    _external(rig, E2, 70_000.0)
    rig.push()
    assert rig.sent == [], "50 ms after the full state, not at once"
    rig.run_until(math.inf)
    assert [(at, e.evse_id, _max_power(e)) for at, e in rig.sent] == [
        (told_at + UPDATE_GAP_S, E2, 70_000)
    ]


def test_the_gap_must_be_positive() -> None:
    store: LatestByEvse[int] = LatestByEvse([(E1, 1)])
    with pytest.raises(ValueError, match="positive"):
        PacedUpdates(AsDocuments(store, str), _Clock(), gap_s=0.0)


async def test_the_pusher_sleeps_until_a_held_change_is_due() -> None:
    store: LatestByEvse[int] = LatestByEvse([(E1, 1)])
    loop = asyncio.get_running_loop()
    paced = PacedUpdates(AsDocuments(store, str), loop.time, gap_s=0.05)
    store.set(E1, 2)
    assert await paced.wait_due() == [(E1, "2")]
    store.set(E1, 3)
    store.set(E1, 4)
    before = loop.time()
    async with asyncio.timeout(1.0):
        assert await paced.wait_due() == [(E1, "4")]
    assert loop.time() - before >= 0.04


def test_a_decrease_never_waits_behind_a_routine_update() -> None:
    """An increase that settled goes out (a routine update); a decrease 5 ms later goes out at
    once, not 45 ms later."""
    rig = _rig()
    _external(rig, E1, 90_000.0)  # a decrease: out at once
    rig.push()
    rig.at(rig.clock.now + 0.2)
    _external(rig, E1, 95_000.0)  # an increase: held by the gate for its settle time
    rig.push()
    rig.at(rig.clock.now + 1.5)
    rig.engine.evaluate()  # the settled increase: a routine update, out at once
    rig.push()
    assert _max_power(rig.sent[-1][1]) == 95_000
    rig.at(rig.clock.now + 0.005)
    _external(rig, E1, 85_000.0)
    decreased_at = rig.clock.now
    rig.push()
    assert rig.sent[-1][0] == decreased_at
    assert _max_power(rig.sent[-1][1]) == 85_000
    # Another decrease within the gap of this one waits (a train of decreases is paced).
    rig.at(rig.clock.now + 0.01)
    _external(rig, E1, 80_000.0)
    rig.push()
    assert _max_power(rig.sent[-1][1]) == 85_000
    rig.run_until(math.inf)
    assert rig.sent[-1] == (decreased_at + UPDATE_GAP_S, rig.sent[-1][1])
    assert _max_power(rig.sent[-1][1]) == 80_000


def test_a_routine_change_waits_for_the_gap_after_any_update_an_urgent_one_after_an_urgent() -> (
    None
):
    store: LatestByEvse[int] = LatestByEvse([(E1, 1)])
    clock = _Clock()
    paced = PacedUpdates(AsDocuments(store, str), clock)
    store.set(E1, 2)
    assert paced.take_due() == [(E1, "2")]  # routine, at T0
    clock.now = T0 + 0.005
    store.set(E1, 3)
    paced.urgent(E1)
    assert paced.take_due() == [(E1, "3")]  # urgent: not behind the routine one
    clock.now = T0 + 0.010
    store.set(E1, 4)
    assert paced.take_due() == []  # routine: behind the urgent one sent 5 ms ago
    assert paced.next_due_at() == T0 + 0.005 + UPDATE_GAP_S
    clock.now = T0 + 0.020
    store.set(E1, 5)
    paced.urgent(E1)  # urgent now, but an urgent update went out 15 ms ago
    assert paced.take_due() == []
    assert paced.next_due_at() == T0 + 0.005 + UPDATE_GAP_S
    clock.now = T0 + 0.005 + UPDATE_GAP_S
    assert paced.take_due() == [(E1, "5")]
