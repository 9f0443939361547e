"""The reconnect backoff: doubling from a tenth of a second to its cap, jittered below it (the
bridge reconnecting to a real broker: tests/integration/test_reconnect.py)."""

from __future__ import annotations

from csbridge.mqtt.link import backoff_delays, jittered


def test_backoff_doubles_from_a_tenth_of_a_second_to_the_cap() -> None:
    assert backoff_delays() == [0.1, 0.2, 0.4, 0.8, 1.5]
    samples = [jittered(1.5) for _ in range(1000)]
    assert min(samples) >= 0.75
    assert max(samples) <= 1.5
