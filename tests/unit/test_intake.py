"""The bounded intake: Josev's topic first, each class bounded and counted, order kept per class."""

from __future__ import annotations

import asyncio
import logging

import aiomqtt
import pytest

from csbridge.protocol.intake import (
    JOSEV_OVERSHOOT,
    JOSEV_PAUSE_AT,
    JOSEV_RESUME_AT,
    Intake,
    MessageIntake,
    TopicClass,
    capacities,
    queue_type,
)
from csbridge.support import Counters

JOSEV = "josev/cs"
EVEREST = "everest_api/1/evse_manager/e1/x"


def _classify(topic: str) -> TopicClass:
    if topic == JOSEV:
        return TopicClass.JOSEV
    if topic.startswith("everest_api/"):
        return TopicClass.EVEREST
    return TopicClass.LOCAL


def _intake(total: int = 40, counters: Counters | None = None) -> Intake[tuple[str, bytes]]:
    return Intake(total, _classify, counters or Counters(), clock=lambda: 0.0)


def _offer(intake: Intake[tuple[str, bytes]], topic: str, payload: bytes) -> bool:
    return intake.offer(topic, (topic, payload))


def _drain(intake: Intake[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    taken = []
    while len(intake):
        taken.append(intake.take())
    return taken


def test_capacities_split_the_total_and_keep_at_least_one_each() -> None:
    assert capacities(1000) == {
        TopicClass.JOSEV: 500,
        TopicClass.LOCAL: 250,
        TopicClass.EVEREST: 250,
    }
    assert min(capacities(2).values()) == 1


def test_josev_is_served_before_local_and_everest_whatever_came_first() -> None:
    intake = _intake()
    _offer(intake, "csbridge/E1/external_limit", b"l1")
    _offer(intake, EVEREST, b"e1")
    _offer(intake, JOSEV, b"j1")
    _offer(intake, "csbridge/E1/operator", b"l2")
    _offer(intake, JOSEV, b"j2")
    assert [payload for _, payload in _drain(intake)] == [b"j1", b"j2", b"l1", b"l2", b"e1"]


def test_order_within_a_class_is_the_order_of_arrival() -> None:
    intake = _intake(total=400)
    for number in range(150):
        _offer(intake, JOSEV, str(number).encode())
        _offer(intake, "csbridge/E1/external_limit", f"l{number}".encode())
    taken = [payload for _, payload in _drain(intake)]
    assert taken[:150] == [str(number).encode() for number in range(150)]
    assert taken[150:] == [f"l{number}".encode() for number in range(100)]  # LOCAL's 100


def test_overflow_is_dropped_and_counted_by_class_and_josev_keeps_its_room() -> None:
    counters = Counters()
    intake = _intake(total=40, counters=counters)
    local_flood = [_offer(intake, f"csbridge/x{n}/operator", b"{}") for n in range(25)]
    assert local_flood.count(True) == 10
    assert counters.get("inbound_dropped", "local") == 15
    # The local flood took none of Josev's room: all 20 of its requests fit.
    assert all(_offer(intake, JOSEV, str(n).encode()) for n in range(20))
    assert counters.get("inbound_dropped", "josev") == 0
    assert counters.get("inbound_dropped", "everest") == 0
    assert intake.queued(TopicClass.JOSEV) == 20
    assert len(intake) == 30
    # What was kept is what came first.
    taken = _drain(intake)
    assert taken[20] == ("csbridge/x0/operator", b"{}")
    assert taken[-1] == ("csbridge/x9/operator", b"{}")


def test_a_full_josev_class_holds_acknowledgements_back_instead_of_dropping() -> None:
    counters = Counters()
    intake = _intake(total=40, counters=counters)
    acknowledged: list[bytes] = []
    intake.acknowledge_with(lambda message: acknowledged.append(message[1]))
    _offer(intake, "csbridge/E1/token", b"t")
    assert all(_offer(intake, JOSEV, str(n).encode()) for n in range(19))
    assert acknowledged == [b"t"] + [str(n).encode() for n in range(19)]  # each at once
    # The 20th fills Josev's part: it and what the broker's window still sends are queued,
    # their acknowledgements held back.
    assert all(_offer(intake, JOSEV, str(n).encode()) for n in range(19, 30))
    assert len(acknowledged) == 20
    assert intake.holding == 11
    assert counters.get("inbound_held") == 1
    assert counters.get("inbound_dropped", "josev") == 0
    # Nothing goes out until the part has drained to half (10 of 20); then all at once.
    for _ in range(19):
        intake.take()
    assert len(acknowledged) == 20
    intake.take()  # 10 left
    assert acknowledged[20:] == [str(n).encode() for n in range(19, 30)]
    assert intake.holding == 0
    assert intake.queued(TopicClass.JOSEV) == 10
    assert [payload for _, payload in _drain(intake)][-1] == b"t"
    assert len(acknowledged) == 31  # every message acknowledged exactly once


def test_a_taken_message_is_acknowledged_whatever_the_room() -> None:
    intake = _intake(total=2)  # Josev's part: 1
    acknowledged: list[bytes] = []
    intake.acknowledge_with(lambda message: acknowledged.append(message[1]))
    _offer(intake, JOSEV, b"a")
    _offer(intake, JOSEV, b"b")
    assert acknowledged == []  # a fills the part: held
    assert intake.take() == (JOSEV, b"a")
    assert acknowledged == [b"a"]  # b still fills the part
    assert intake.take() == (JOSEV, b"b")
    assert acknowledged == [b"a", b"b"]


def test_a_new_connection_owes_nothing_for_what_an_earlier_one_held() -> None:
    intake = _intake(total=2)
    first: list[bytes] = []
    intake.acknowledge_with(lambda message: first.append(message[1]))
    _offer(intake, JOSEV, b"old")
    second: list[bytes] = []
    intake.acknowledge_with(lambda message: second.append(message[1]))
    assert intake.holding == 0
    assert intake.take() == (JOSEV, b"old")  # still handled
    assert first == second == []


def test_a_broker_that_ignores_the_window_still_meets_a_bound_for_josev() -> None:
    counters = Counters()
    intake = _intake(total=40, counters=counters)
    bound = 20 + JOSEV_OVERSHOOT
    kept = [_offer(intake, JOSEV, b"x") for _ in range(bound + 5)]
    assert kept.count(True) == bound
    assert counters.get("inbound_dropped", "josev") == 5


def test_a_newer_state_message_replaces_the_one_waiting_on_its_topic() -> None:
    counters = Counters()
    intake: Intake[tuple[str, bytes]] = Intake(
        40, _classify, counters, clock=lambda: 0.0, supersedes=lambda t: "external" in t
    )
    limit_e1, limit_e2 = "csbridge/E1/external_limit", "csbridge/E2/external_limit"
    _offer(intake, limit_e1, b"60 kW")
    _offer(intake, "csbridge/E1/token", b"card")
    _offer(intake, limit_e2, b"50 kW")
    _offer(intake, limit_e1, b"59 kW")
    _offer(intake, "csbridge/E1/token", b"card 2")  # 5 of LOCAL's 10: half full
    for watts in range(58, 40, -1):
        _offer(intake, limit_e1, f"{watts} kW".encode())
    _offer(intake, "csbridge/E1/token", b"card again")
    assert counters.get("inbound_superseded", "local") == 17
    assert counters.get("inbound_dropped", "local") == 0
    # Below half full each limit is handled in turn; from then on E1's newest waits in the
    # place of the first that came then. Events are all kept.
    assert _drain(intake) == [
        (limit_e1, b"60 kW"),
        ("csbridge/E1/token", b"card"),
        (limit_e2, b"50 kW"),
        (limit_e1, b"59 kW"),
        ("csbridge/E1/token", b"card 2"),
        (limit_e1, b"41 kW"),
        ("csbridge/E1/token", b"card again"),
    ]
    _offer(intake, limit_e1, b"40 kW")  # once taken, the next one queues again
    assert intake.take() == (limit_e1, b"40 kW")


def test_a_state_message_below_half_full_is_handled_in_turn() -> None:
    counters = Counters()
    intake: Intake[tuple[str, bytes]] = Intake(
        40, _classify, counters, clock=lambda: 0.0, supersedes=lambda t: "external" in t
    )
    for watts in (60, 59, 58):
        _offer(intake, "csbridge/E1/external_limit", f"{watts} kW".encode())
    assert counters.get("inbound_superseded", "local") == 0
    assert [payload for _, payload in _drain(intake)] == [b"60 kW", b"59 kW", b"58 kW"]


def test_drops_are_logged_once_an_interval_per_class(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge.intake")
    intake = _intake(total=8)
    for _ in range(50):
        _offer(intake, "csbridge/E1/external_limit", b"{}")
        _offer(intake, EVEREST, b"{}")
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert any("event=inbound_dropped class=local" in line for line in lines)
    assert any("event=inbound_dropped class=everest" in line for line in lines)


def _message(topic: str, payload: bytes) -> aiomqtt.Message:
    return aiomqtt.Message(topic, payload, qos=1, retain=False, mid=1, properties=None)


async def test_the_clients_queue_is_the_intake_and_gives_josev_first() -> None:
    counters = Counters()
    intake: MessageIntake = MessageIntake(8, _classify, counters, clock=lambda: 0.0)
    queue = queue_type(intake)(maxsize=0)
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(_message("csbridge/E1/operator", b"first"))
    assert (await asyncio.wait_for(waiting, 1)).payload == b"first"  # a waiter is woken
    for number in range(3):
        queue.put_nowait(_message("csbridge/E1/external_limit", f"l{number}".encode()))
    queue.put_nowait(_message(JOSEV, b"j"))
    assert queue.qsize() == len(intake) == 3  # LOCAL holds 2: the third was dropped
    assert counters.get("inbound_dropped", "local") == 1
    taken = [(await queue.get()).payload for _ in range(3)]
    assert taken == [b"j", b"l0", b"l1"]
    assert queue.empty()
    # A later client's queue (after a reconnect) sees what an earlier one left.
    queue.put_nowait(_message(EVEREST, b"left"))
    assert (await queue_type(intake)(maxsize=0).get()).payload == b"left"
    with pytest.raises(IndexError):
        intake.take()


async def test_a_josev_request_read_while_a_local_one_waits_goes_first() -> None:
    intake: MessageIntake = MessageIntake(40, _classify, Counters(), clock=lambda: 0.0)
    queue = queue_type(intake)(maxsize=0)
    queue.put_nowait(_message("csbridge/E1/external_limit", b"local"))
    getting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)  # the get has started, with only the local message queued
    queue.put_nowait(_message(JOSEV, b"josev"))  # what paho reads on the next turn
    assert (await asyncio.wait_for(getting, 1)).payload == b"josev"
    assert (await queue.get()).payload == b"local"


def test_payload_bytes_are_bounded_per_class_too() -> None:
    counters = Counters()
    intake: Intake[str] = Intake(1000, _classify, counters, clock=lambda: 0.0, total_bytes=4000)
    assert intake.byte_capacity[TopicClass.LOCAL] == 1000
    assert intake.offer("csbridge/E1/token", "a", 600)
    assert not intake.offer("csbridge/E1/token", "b", 600)  # 1,200 bytes would not fit
    assert intake.offer("csbridge/E1/token", "c", 400)
    assert intake.offer(JOSEV, "j", 2000)  # Josev's bytes are its own
    assert counters.get("inbound_dropped", "local") == 1
    assert intake.queued_bytes(TopicClass.LOCAL) == 1000
    assert [intake.take() for _ in range(3)] == ["j", "a", "c"]
    assert intake.queued_bytes(TopicClass.LOCAL) == intake.queued_bytes(TopicClass.JOSEV) == 0
    assert intake.offer("csbridge/E1/token", "d", 1000)  # room again once taken


def test_a_josev_class_far_over_its_bound_pauses_the_reading_until_it_drains() -> None:
    """The backstop for a broker that keeps sending while acknowledgements are held back."""
    counters = Counters()
    intake = _intake(total=40, counters=counters)  # Josev's part: 20
    calls: list[str] = []
    intake.on_full = lambda: calls.append("pause")
    intake.on_room = lambda: calls.append("resume")
    for n in range(20 + JOSEV_PAUSE_AT - 1):
        _offer(intake, JOSEV, str(n).encode())
    assert calls == []
    _offer(intake, JOSEV, b"one more")
    assert calls == ["pause"]
    assert intake.reading_paused
    _offer(intake, JOSEV, b"still read: a batch already off the socket")
    assert calls == ["pause"]  # once
    while intake.queued(TopicClass.JOSEV) > 20 + JOSEV_RESUME_AT + 1:
        intake.take()
    assert calls == ["pause"]
    intake.take()
    assert calls == ["pause", "resume"]
    assert not intake.reading_paused
    assert counters.get("inbound_paused") == 1
    assert counters.get("inbound_dropped", "josev") == 0
