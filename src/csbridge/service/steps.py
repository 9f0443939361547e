"""A scripted step and the loop that plays steps: what a scenario is made of (the demo's script,
built from the simulated devices, lives in service.scenario)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass

Action = Callable[[], None]


@dataclass(frozen=True, slots=True)
class Step:
    after_s: float
    description: str
    action: Action


async def play(steps: list[Step], on_step: Callable[[Step], None] | None = None) -> None:
    """Play the steps in a loop, until cancelled."""
    if not steps:
        await asyncio.sleep(math.inf)
    while True:
        for step in steps:
            await asyncio.sleep(step.after_s)
            step.action()
            if on_step is not None:
                on_step(step)
