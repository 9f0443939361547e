"""An EV's DC charge loop kept running in the background while a scenario does other things:
its setpoint every LOOP_STEP_S at the current it asks for now, each answer and the present
current Josev is told checked as the dc-session's charge loop checks them. A scenario with two
EVs charging at once (shared-pool) runs one loop per EV.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from csbridge.tools.emulator import EmulatorError
from csbridge.tools.scenarios.common import SimulatedEvse, StepFailedError

LOOP_STEP_S = 0.25
"""The EV's CurrentDemand pace."""
VOLTAGE_V = 400.0
RAMP_ALLOWANCE_S = 5.0
"""How long the present current may stay above the maximum Josev was told: an EVSE giving
modules away has its limit lowered before its current ramps down (the switching sequence), and
a donor that has not come down within the sequence's ramp timeout (5 s by default) has its
session ended."""


@dataclass
class EvLoop:
    """The charge loop of one EV: `start`, change what it asks for with `ask`, `check` it at
    each step of the scenario, `stop` it when the EV stops."""

    evse: SimulatedEvse
    current_a: float = 1000.0
    """What the EV asks for now (its CurrentDemand's target current)."""
    voltage_v: float = VOLTAGE_V
    rounds: int = 0
    """Setpoints answered so far."""
    worst_a: float = 0.0
    """The highest present current Josev was told while the loop ran."""
    over_allowance_s: float = RAMP_ALLOWANCE_S
    """A present current above the maximum told is a problem once it lasts longer than this."""
    problems: list[str] = field(default_factory=list)
    _task: asyncio.Task[None] | None = field(init=False, default=None)
    _over_since: float | None = field(init=False, default=None)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"ev-loop-{self.evse.evse_id}")

    async def ask(self, current_a: float, rated: dict[str, Any] | None = None) -> None:
        """The EV asks for `current_a` from its next setpoint on; `rated`: the dc_rated_limits
        it tells Josev with it (an ev_rated_limits update), as an EV renegotiating would."""
        self.current_a = current_a
        if rated is not None:
            await self.evse.josev.update(
                "ev_rated_limits", {"evse_id": self.evse.evse_id, "dc_rated_limits": rated}
            )

    def check(self) -> None:
        """StepFailedError with the first problem the loop met, if any."""
        if self.problems:
            raise StepFailedError(f"{self.evse.evse_id}'s charge loop: {self.problems[0]}")
        if self._task is not None and self._task.done():
            raise StepFailedError(f"{self.evse.evse_id}'s charge loop ended")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _note_over(self, over: str | None) -> None:
        now = time.monotonic()
        if over is None:
            self._over_since = None
            return
        if self._over_since is None:
            self._over_since = now
        if now - self._over_since >= self.over_allowance_s:
            self.problems.append(f"{over} for {now - self._over_since:.1f} s")

    async def _run(self) -> None:
        while True:
            try:
                answer = await self.evse.setpoint(self.voltage_v, self.current_a)
            except EmulatorError as error:
                self.problems.append(str(error))
                return
            if answer["status"] != "accepted":
                self.problems.append(f"setpoint {self.current_a} A {answer['status']}")
                return
            self.rounds += 1
            self._note_over(self.evse.over_reported())
            self.worst_a = max(self.worst_a, float(self.evse.entry()["dc"]["present_current"]))
            await asyncio.sleep(LOOP_STEP_S)
