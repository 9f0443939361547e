"""The bounded intake: Josev's topic first, each class bounded and counted, order kept per class."""

from __future__ import annotations

import asyncio
import logging

import aiomqtt
import pytest

from csbridge.protocol.intake import Intake, MessageIntake, TopicClass, capacities, queue_type
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
    assert not _offer(intake, JOSEV, b"one too many")
    assert counters.get("inbound_dropped", "josev") == 1
    assert counters.get("inbound_dropped", "everest") == 0
    assert intake.queued(TopicClass.JOSEV) == 20
    assert len(intake) == 30
    # What was kept is what came first.
    taken = _drain(intake)
    assert taken[20] == ("csbridge/x0/operator", b"{}")
    assert taken[-1] == ("csbridge/x9/operator", b"{}")


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
