"""The shared-pool scenario's pure pieces: reading a limits report's pool block, deciding whether
a step's expected state is reached, and timing a decision from the updates Josev received."""

from __future__ import annotations

import math
from typing import Any

import pytest

from csbridge.messages import Message, MessageType
from csbridge.tools.emulator import Exchange
from csbridge.tools.scenarios.pool_view import (
    Expected,
    MoveTiming,
    PoolView,
    arrivals,
    mismatch,
    status_updates,
    timing,
    told_at,
)
from csbridge.tools.scenarios.registry import SCENARIOS

E1, E2 = "DE*CSB*E0001", "DE*CSB*E0002"


def block(
    decision: int = 2,
    *,
    targets: tuple[str | None, ...] = (E1, E1, E1, E2, E2, E2),
    serving: bool = True,
    settled: bool = True,
    share_w: float = 90_000.0,
    decided_at: float = 1000.0,
    settled_at: float | None = 1000.25,
) -> dict[str, Any]:
    return {
        "name": "cabinet",
        "policy": "equal_share",
        "decision": decision,
        "decided_at": decided_at,
        "settled": settled,
        "settled_at": settled_at,
        "share_w": share_w,
        "why": "share",
        "modules": [
            {"name": f"m{i + 1}", "phase": "serving", "target": target, "serving": serving}
            for i, target in enumerate(targets)
        ],
    }


def entry(evse_id: str, max_power: float) -> dict[str, Any]:
    dc = {
        "present_voltage": 0.0,
        "present_current": 0.0,
        "max_current": 450.0,
        "min_current": 1.0,
        "max_voltage": 920.0,
        "min_voltage": 150.0,
        "max_power": max_power,
        "peak_current_ripple": 2.0,
    }
    return {"evse_id": evse_id, "status_code": "evse_ready", "dc": dc}


def update(message_id: str, *entries: dict[str, Any]) -> Message:
    return Message.from_data(
        "cs_status_and_limits", MessageType.UPDATE, {"evses": list(entries)}, message_id
    )


def received(message_id: str, at: float) -> Exchange:
    return Exchange(at, False, "cs_status_and_limits", "update", message_id, {})


def test_a_pool_block_reads_as_the_contract_says() -> None:
    view = PoolView.of({"pool": block(targets=(E1, None, E2), settled_at=None)})
    assert view is not None
    assert (view.name, view.policy, view.decision, view.settled) == (
        "cabinet",
        "equal_share",
        2,
        True,
    )
    assert view.settled_at is None
    assert view.serving(E1) == ("m1",)
    assert view.serving(E2) == ("m3",)
    module = view.module("m2")
    assert module is not None
    assert module.target is None


@pytest.mark.parametrize(
    "report",
    [
        {},
        {"pool": None},
        {"pool": {"name": "cabinet"}},
        {"pool": {**block(), "decision": "two"}},
        {"pool": {**block(), "modules": [{"name": "m1"}]}},
    ],
)
def test_a_report_without_a_usable_pool_block_reads_as_none(report: dict[str, Any]) -> None:
    assert PoolView.of(report) is None


def test_a_pool_before_its_first_decision_has_no_decision_time() -> None:
    view = PoolView.of({"pool": {**block(0, targets=()), "decided_at": None, "why": "idle"}})
    assert view is not None
    assert view.decided_at is None
    assert view.modules == ()
    move = timing(view, [], told_before={E1: 0.0}, final={E1: 180_000.0})
    assert move.describe({E1: "EV1"}) == "decision 0: EV1 update not found, moved: -"


def test_a_module_connected_but_not_serving_does_not_count() -> None:
    view = PoolView.of({"pool": block(serving=False)})
    assert view is not None
    assert view.serving(E1) == ()


def _views(**changes: Any) -> dict[str, PoolView | None]:
    view = PoolView.of({"pool": block(**changes)})
    return {E1: view, E2: view}


HALF = {E1: Expected(90_000.0, 3), E2: Expected(90_000.0, 3)}
TOLD_HALF = {E1: entry(E1, 90_000.0), E2: entry(E2, 90_000.0)}


def test_the_expected_state_is_reached_when_pool_and_josev_agree() -> None:
    assert mismatch(_views(), TOLD_HALF, HALF, after_decision=1) is None


@pytest.mark.parametrize(
    ("views", "told", "after", "why"),
    [
        (_views(decision=1), TOLD_HALF, 1, "still decision 1"),
        (_views(settled=False), TOLD_HALF, 1, "not settled"),
        (_views(targets=(E1, E1, E2, E2, E2, E2)), TOLD_HALF, 1, "2 modules serve it, not 3"),
        (_views(share_w=180_000.0), TOLD_HALF, 1, "pool share 180000 W"),
        (_views(), {E1: entry(E1, 180_000.0), E2: entry(E2, 90_000.0)}, 1, "told 180000.0 W"),
        (_views(), {E2: entry(E2, 90_000.0)}, 1, "told None W"),
        ({E1: None, E2: None}, TOLD_HALF, 1, "no pool block"),
    ],
)
def test_each_way_of_not_being_there_yet_is_named(
    views: dict[str, PoolView | None], told: dict[str, Any], after: int, why: str
) -> None:
    found = mismatch(views, told, HALF, after_decision=after)
    assert found is not None
    assert why in found


def test_two_evses_reporting_different_decisions_are_not_there_yet() -> None:
    views = {E1: PoolView.of({"pool": block(3)}), E2: PoolView.of({"pool": block(2)})}
    found = mismatch(views, TOLD_HALF, HALF, after_decision=1)
    assert found == "the EVSEs' reports name decisions [2, 3]"


def test_an_unchecked_power_leaves_only_the_modules_checked() -> None:
    expected = {E1: Expected(None, 3)}
    assert mismatch(_views(share_w=1.0), {}, expected, after_decision=1) is None


def test_arrivals_carry_each_update_s_receipt_on_the_wall_clock() -> None:
    updates = [update("a", entry(E1, 1.0)), update("b", entry(E2, 2.0)), update("lost")]
    exchanges = [
        received("a", 10.0),
        Exchange(10.5, True, "cs_status_and_limits", "update", "b", {}),  # sent, not received
        received("b", 11.0),
    ]
    timed = arrivals(updates, exchanges, wall_offset=1000.0)
    assert [(at, message.id) for at, message in timed] == [(1010.0, "a"), (1011.0, "b")]


def _entries(*pairs: tuple[float, float]) -> list[tuple[float, list[dict[str, Any]]]]:
    """(arrival, E1's max_power) per update."""
    return [(at, [entry(E1, power)]) for at, power in pairs]


def test_told_at_is_the_update_that_changed_the_figure_to_its_final_value() -> None:
    updates = _entries((1.0, 180_000.0), (2.0, 90_000.0), (3.0, 90_000.0))
    assert told_at(updates, E1, before=180_000.0, final=90_000.0) == 2.0


def test_an_update_repeating_the_figure_is_not_the_one_that_told_it() -> None:
    # A present value moved: the same maximum again, and nothing changed it.
    updates = _entries((1.0, 90_000.0), (2.0, 90_000.0))
    assert told_at(updates, E1, before=90_000.0, final=90_000.0) is None


def test_a_figure_that_dipped_and_came_back_was_told_by_its_return() -> None:
    updates = _entries((1.0, 0.0), (2.0, 45_000.0), (3.0, 90_000.0), (4.0, 90_000.0))
    assert told_at(updates, E1, before=90_000.0, final=90_000.0) == 3.0


def test_a_figure_that_left_its_final_value_again_was_not_told_for_good() -> None:
    updates = _entries((1.0, 90_000.0), (2.0, 60_000.0))
    assert told_at(updates, E1, before=180_000.0, final=90_000.0) is None


def test_other_evses_entries_and_status_updates_only_count() -> None:
    timed = [
        (0.5, update("early", entry(E1, 90_000.0))),
        (1.0, update("other", entry(E2, 90_000.0))),
        (2.0, update("mine", entry(E2, 0.0), entry(E1, 90_000.0))),
    ]
    updates = status_updates(timed, since=1.0)
    assert [at for at, _ in updates] == [1.0, 2.0]
    assert told_at(updates, E1, before=180_000.0, final=90_000.0) == 2.0


def test_a_decision_is_timed_per_evse_from_decided_at() -> None:
    view = PoolView.of({"pool": block(decided_at=1000.0, settled_at=1000.3)})
    assert view is not None
    timed = [
        (1000.002, update("donor", entry(E1, 90_000.0))),
        (1000.305, update("receiver", entry(E2, 90_000.0))),
    ]
    move = timing(
        view,
        status_updates(timed, since=999.0),
        told_before={E1: 180_000.0, E2: 0.0},
        final={E1: 90_000.0, E2: 90_000.0},
    )
    assert move.decision == 2
    assert move.updates_s[E1] == pytest.approx(0.002)
    assert move.updates_s[E2] == pytest.approx(0.305)
    assert move.moved_s == pytest.approx(0.3)
    text = move.describe({E1: "EV1", E2: "EV2"})
    assert text == "decision 2: EV1 update +2 ms, EV2 update +305 ms, moved +300 ms"


def test_a_figure_josev_already_had_needs_no_update_and_a_missing_one_shows() -> None:
    view = PoolView.of({"pool": block(settled_at=None)})
    assert view is not None
    move = timing(view, [], told_before={E1: 90_000.0, E2: 0.0}, final={E1: 90_000.0, E2: 90_000.0})
    assert move.updates_s[E1] is None
    assert math.isnan(move.updates_s[E2] or 0.0)
    assert move.describe({E1: "EV1"}) == (
        f"decision 2: EV1 unchanged, {E2} update not found, moved: -"
    )


def test_a_step_without_a_decision_is_timed_from_its_cause() -> None:
    view = PoolView.of({"pool": block(decided_at=900.0, settled_at=900.2)})
    assert view is not None
    updates = _entries((1000.02, 120_000.0))
    move = timing(view, updates, {E1: 150_000.0}, {E1: 120_000.0}, cause=1000.0)
    assert not move.decided
    assert move.moved_s is None
    assert move.describe({E1: "EV1"}) == "no decision, from the cause: EV1 update +20 ms, moved: -"


def test_an_update_an_earlier_decision_of_the_step_sent_shows_before_the_decision() -> None:
    move = MoveTiming(4, {E1: -0.05}, 0.2)
    assert move.describe({E1: "EV1"}) == "decision 4: EV1 update -50 ms, moved +200 ms"


def test_the_registry_offers_shared_pool_with_a_watch() -> None:
    assert list(SCENARIOS) == ["dc-session", "ac-session", "misuse", "bpt-session", "shared-pool"]
    assert SCENARIOS["shared-pool"].watches
    assert SCENARIOS["misuse"].watches
    assert not SCENARIOS["dc-session"].watches
    with pytest.raises(ValueError, match="OutputWatch"):
        SCENARIOS["shared-pool"].build(None, None, "csbridge")  # type: ignore[arg-type]


def test_a_decision_names_its_donor_and_receiver_and_the_receivers_lag_after_delivering() -> None:
    view = PoolView.of({"pool": block(decided_at=1000.0, settled_at=1000.3)})
    assert view is not None
    timed = [
        (1000.002, update("donor", entry(E1, 90_000.0))),
        (1000.305, update("receiver", entry(E2, 90_000.0))),
    ]
    move = timing(
        view,
        status_updates(timed, since=999.0),
        told_before={E1: 180_000.0, E2: 0.0},
        final={E1: 90_000.0, E2: 90_000.0},
    )
    assert move.roles == {E1: "donor", E2: "receiver"}
    assert move.detail({E1: "EV1", E2: "EV2"}) == (
        "decision 2: EV1 donor +2 ms, EV2 receiver +305 ms (+5 ms after delivering), moved +300 ms"
    )


def test_an_unchanged_evse_has_no_role() -> None:
    view = PoolView.of({"pool": block(decided_at=1000.0, settled_at=1000.001)})
    assert view is not None
    updates = _entries((1000.004, 120_000.0))
    move = timing(view, updates, {E1: 150_000.0, E2: 30_000.0}, {E1: 120_000.0, E2: 30_000.0})
    assert move.roles == {E1: "donor"}
    assert move.detail({E1: "EV1", E2: "EV2"}) == (
        "decision 2: EV1 donor +4 ms, EV2 unchanged, moved +1 ms"
    )


def test_a_module_that_dropped_out_says_why() -> None:
    report = block(targets=(E1,))
    report["modules"][0].update(serving=False, absent="stale")
    view = PoolView.of({"pool": report})
    assert view is not None
    module = view.module("m1")
    assert module is not None
    assert module.absent == "stale"
    assert view.serving(E1) == ()
    assert PoolView.of({"pool": block(targets=(E1,))}).module("m1").absent is None  # type: ignore[union-attr]
