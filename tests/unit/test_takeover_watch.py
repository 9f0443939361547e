"""Telling a takeover loop from ordinary losses, and the backoff while it lasts (two real links
on one client id: tests/integration/test_mqtt_takeover.py)."""

from __future__ import annotations

from csbridge.mqtt.link import (
    BACKOFF_CAP_S,
    BACKOFF_START_S,
    TAKEOVER_BACKOFF_CAP_S,
    TAKEOVER_BACKOFF_START_S,
    TAKEOVER_OVER_S,
    Loss,
    TakeoverWatch,
)


def _flips(watch: TakeoverWatch, times: list[float], uptime_s: float = 0.1) -> list[Loss]:
    """A loss at each time, of a connection made `uptime_s` before it."""
    return [watch.lost(at - uptime_s, at) for at in times]


def test_three_quick_losses_in_a_row_are_a_loop() -> None:
    watch = TakeoverWatch()
    assert _flips(watch, [10.0, 10.2, 10.5]) == [Loss.ORDINARY, Loss.ORDINARY, Loss.LOOP_STARTED]
    assert watch.looping
    assert watch.loop_span_s() == 0.5
    assert _flips(watch, [12.0, 15.0]) == [Loss.IN_LOOP, Loss.IN_LOOP]
    assert watch.flips == 2


def test_a_refused_connect_between_losses_is_a_broker_coming_back_not_a_loop() -> None:
    """A restarting broker refuses the attempts in between; a takeover never does."""
    watch = TakeoverWatch()
    for at in (10.0, 10.3, 10.6, 10.9):
        assert watch.lost(at - 0.1, at) is Loss.ORDINARY
        watch.refused()
    assert not watch.looping


def test_losses_spread_over_more_than_the_window_are_no_loop() -> None:
    watch = TakeoverWatch()
    assert _flips(watch, [10.0, 13.0, 16.0, 19.0]) == [Loss.ORDINARY] * 4
    assert not watch.looping


def test_a_connection_that_lived_breaks_the_pattern() -> None:
    """Each loss must come right after its connect: one connection that lasted starts over."""
    watch = TakeoverWatch()
    assert _flips(watch, [10.0, 10.2]) == [Loss.ORDINARY] * 2
    assert watch.lost(10.3, 12.5) is Loss.ORDINARY  # up 2.2 s
    assert _flips(watch, [12.7, 12.9]) == [Loss.ORDINARY] * 2
    assert watch.lost(12.95, 13.0) is Loss.LOOP_STARTED


def test_the_backoff_grows_with_every_flip_while_the_loop_lasts() -> None:
    watch = TakeoverWatch()
    assert watch.next_delay(0) == BACKOFF_START_S
    assert watch.next_delay(10) == BACKOFF_CAP_S
    _flips(watch, [10.0, 10.1, 10.2])
    delays = [watch.next_delay(0)]
    for at in (20.0, 30.0, 40.0, 50.0, 60.0, 70.0):
        watch.lost(at - 5.0, at)
        delays.append(watch.next_delay(0))
    assert delays[0] == TAKEOVER_BACKOFF_START_S
    assert delays == sorted(delays)
    assert delays[-1] == TAKEOVER_BACKOFF_CAP_S
    # A broker that also refuses during the loop never shortens the wait.
    assert watch.next_delay(3) == TAKEOVER_BACKOFF_CAP_S


def test_a_connection_that_outlives_the_loop_ends_it() -> None:
    watch = TakeoverWatch()
    _flips(watch, [10.0, 10.1, 10.2, 12.0])
    assert watch.end() == 1
    assert not watch.looping
    assert watch.next_delay(0) == BACKOFF_START_S
    # Found at the next loss instead, when nothing told the watch earlier.
    _flips(watch, [20.0, 20.1, 20.2])
    assert watch.lost(21.0, 21.0 + TAKEOVER_OVER_S) is Loss.LOOP_OVER
    assert not watch.looping
    # And a new loop afterwards is recognised (and reported) again.
    assert _flips(watch, [100.0, 100.1, 100.2])[-1] is Loss.LOOP_STARTED


def test_the_loop_backoff_outlasts_the_ordinary_one() -> None:
    """The loop's first wait is longer than any ordinary one, and the loop ends only after a
    connection longer than the other side's longest wait."""
    assert TAKEOVER_BACKOFF_START_S > BACKOFF_CAP_S
    assert TAKEOVER_OVER_S > TAKEOVER_BACKOFF_CAP_S
