"""A simulated station for the demo and for `csbridge run` without hardware.

It starts from the configured limits and plays a short, repeating script of the things a
commissioning engineer sees on a real charger: a thermal derating of the DC stage, its recovery,
and a grid operator capping the AC EVSE. Later issues replace this with simulated devices that
speak the real CAN protocols.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from csbridge.config import Config
from csbridge.model import EvseSnapshot, PerPhase
from csbridge.static_source import static_snapshot
from csbridge.station_state import StationState

Change = Callable[[EvseSnapshot], EvseSnapshot]


@dataclass(frozen=True, slots=True)
class Step:
    """After `after_s`, the station is its configured self with `changes` applied."""

    after_s: float
    description: str
    changes: tuple[Change, ...] = ()


def _derate_dc(factor: float) -> Change:
    def change(snapshot: EvseSnapshot) -> EvseSnapshot:
        if snapshot.dc is None:
            return snapshot
        dc = dataclasses.replace(
            snapshot.dc,
            max_current=snapshot.dc.max_current * factor,
            max_power=snapshot.dc.max_power * factor,
        )
        return dataclasses.replace(snapshot, dc=dc)

    return change


def _cap_ac(amps: float) -> Change:
    def change(snapshot: EvseSnapshot) -> EvseSnapshot:
        if snapshot.ac is None:
            return snapshot
        current = snapshot.ac.max_current
        capped = PerPhase(min(current.l1, amps), min(current.l2, amps), min(current.l3, amps))
        return dataclasses.replace(
            snapshot, ac=dataclasses.replace(snapshot.ac, max_current=capped)
        )

    return change


DEFAULT_SCRIPT = (
    Step(3.0, "DC stage hot: derated to 75 %", (_derate_dc(0.75),)),
    Step(
        3.0,
        "DC still hot, and the grid operator caps AC at 16 A",
        (_derate_dc(0.75), _cap_ac(16.0)),
    ),
    Step(3.0, "DC stage cooled down; AC cap still on", (_cap_ac(16.0),)),
    Step(3.0, "AC cap lifted: everything at its configured limits", ()),
)


class SimulatedStation:
    """Feeds a StationState from the configured limits and a repeating script of changes."""

    def __init__(self, config: Config, script: tuple[Step, ...] = DEFAULT_SCRIPT) -> None:
        self._configured = {evse.evse_id: static_snapshot(evse) for evse in config.evse}
        self.state = StationState(self._configured.values())
        self._script = script
        self.on_step: Callable[[Step], None] | None = None

    async def run(self) -> None:
        """Play the script forever; each step applies to the configured limits afresh."""
        while True:
            for step in self._script:
                await asyncio.sleep(step.after_s)
                for configured in self._configured.values():
                    snapshot = configured
                    for change in step.changes:
                        snapshot = change(snapshot)
                    self.state.set(snapshot)
                if self.on_step is not None:
                    self.on_step(step)
