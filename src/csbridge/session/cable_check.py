"""The cable check's verdict: the IMD's self-test, then a fresh sample (bounded like EVerest's:
the self-test 30 s, a sample within 5 s, else `fault`)."""

from __future__ import annotations

from dataclasses import dataclass

from csbridge.messages import IsolationStatus
from csbridge.sources import ImdReading

SELF_TEST_TIMEOUT_S = 30.0
SAMPLE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Verdict:
    finished: bool
    isolation: IsolationStatus | None = None
    """Set when finished."""

    @property
    def passed(self) -> bool:
        return self.finished and self.isolation in ("valid", "warning")


ONGOING = Verdict(finished=False)


def cable_check_verdict(
    started: float, now: float, reading: ImdReading | None, reported: IsolationStatus | None
) -> Verdict:
    """Where a cable check started at `started` stands, from the IMD's latest reading and the
    isolation status reported now."""
    isolation: IsolationStatus = reported if reported is not None else "invalid"
    fresh_after_start = reading is not None and reading.at > started
    verdict = isolation in ("valid", "warning", "fault")
    if fresh_after_start and reading is not None and not reading.self_test_running and verdict:
        return Verdict(True, isolation)
    testing = fresh_after_start and reading is not None and reading.self_test_running
    if now - started > SELF_TEST_TIMEOUT_S:
        return Verdict(True, "fault")
    last_sample = reading.at if reading is not None else started
    if not testing and now - max(last_sample, started) > SAMPLE_TIMEOUT_S:
        return Verdict(True, "fault")
    return ONGOING
