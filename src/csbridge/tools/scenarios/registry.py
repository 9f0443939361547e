"""Every scenario `csbridge emulate --scenario NAME` plays, by name: how to build it on a
connected Josev emulator, and whether it also needs a client that watches the station's
limits reports (OutputWatch)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from csbridge.tools.emulator import JosevEmulator
from csbridge.tools.scenarios.ac_session import AcSession
from csbridge.tools.scenarios.bpt_session import BptSession
from csbridge.tools.scenarios.common import StepAction, StepResult
from csbridge.tools.scenarios.dc_session import DcSession
from csbridge.tools.scenarios.misuse import Misuse
from csbridge.tools.scenarios.shared_pool import SharedPool
from csbridge.tools.scenarios.watch import OutputWatch


class Scenario(Protocol):
    name: str

    def steps(self) -> list[tuple[str, StepAction]]: ...

    async def run(self) -> list[StepResult]: ...


@dataclass(frozen=True, slots=True)
class ScenarioKind:
    build: Callable[[JosevEmulator, OutputWatch | None, str], Scenario]
    """(the emulator, the watch, the station's local prefix) -> the scenario."""
    watches: bool = False
    """It reads the limits reports: `build` needs a connected OutputWatch (else it gets None,
    and no client more than the scenario needs connects to the broker)."""


def _watch(watch: OutputWatch | None) -> OutputWatch:
    if watch is None:
        msg = "this scenario reads the limits reports: give it an OutputWatch"
        raise ValueError(msg)
    return watch


def _misuse(josev: JosevEmulator, watch: OutputWatch | None, prefix: str) -> Scenario:
    return Misuse(josev, _watch(watch), prefix)


def _shared_pool(josev: JosevEmulator, watch: OutputWatch | None, prefix: str) -> Scenario:
    return SharedPool(josev, _watch(watch), prefix)


SCENARIOS: dict[str, ScenarioKind] = {
    "dc-session": ScenarioKind(lambda josev, _, prefix: DcSession(josev, prefix)),
    "ac-session": ScenarioKind(lambda josev, _, prefix: AcSession(josev, prefix)),
    "misuse": ScenarioKind(_misuse, watches=True),
    "bpt-session": ScenarioKind(lambda josev, _, prefix: BptSession(josev, prefix)),
    "shared-pool": ScenarioKind(_shared_pool, watches=True),
}
"""In the order `--help` names them."""
