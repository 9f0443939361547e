"""The power path as the session runs it: a setpoint clamped to what is reported and sent to the
fewest modules that regulate it, followed at once when a limit drops, and every module held
off while no setpoint runs (a module back from silence is switched off within one poll period,
and one that keeps delivering output while commanded off is a fault).

An EVSE with a bidirectional module stack also takes energy back (a discharge setpoint drives
its bidirectional modules in import mode) and moves between setpoints by steps
(limits/ramp.py): never both directions at once, always through 0 A on a direction change, and,
once a discharge was asked in this run of the modules, never a step in power above the EVSE's
`power_ramp_limit_w_per_s`. Charging alone keeps the path it had before discharge existed:
every setpoint at once (the EV paces its own requests), export only."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from csbridge.config import Config
from csbridge.engine import LimitsEngine
from csbridge.limits import (
    ZERO,
    Absence,
    Ceilings,
    DcRequest,
    Refused,
    Setpoint,
    Step,
    dc_setpoint,
    direction_ceiling,
    fewest_modules,
    module_contacts,
    ramp_step,
)
from csbridge.power import PowerStage

log = logging.getLogger("csbridge.session")

STRAY_CURRENT_A = 1.0
"""Output current above this from a module commanded off is output it must not deliver."""
MIN_OFF_GAP_S = 0.05
"""Offs sent on sight of output are at most this frequent (a reading per frame may come)."""
STRAY_AFTER_PERIODS = 2
"""Poll periods a module is given to stop after it was commanded off."""


@dataclass(slots=True)
class _EvsePath:
    poll_period_s: float
    request: DcRequest | None = None
    commanded: Setpoint | None = None
    clamped_against: object = None
    """The reported snapshot the running setpoint was last clamped to."""
    off_since: float | None = 0.0
    """When the modules were last commanded off (None: a setpoint runs)."""
    off_sent_at: float = float("-inf")
    stray: frozenset[str] = frozenset()
    resting: frozenset[str] = frozenset()
    """Healthy modules the running setpoint leaves off (a small setpoint on fewer modules)."""
    stray_watch: dict[str, float] = field(default_factory=dict)
    bidirectional: frozenset[str] = frozenset()
    """The modules that can import; none: the EVSE's setpoints go at once, export only."""
    ramp_w_per_s: float | None = None
    step: Step = ZERO
    """The direction and total current last commanded (ZERO while off)."""
    stepped_at: float = float("-inf")
    discharged: bool = False
    """A discharge was asked since the modules were last off: from then on every step is
    ramped (a session that only charges keeps its setpoints at once, as before discharge)."""


def _stepped_request(request: DcRequest, step: Step) -> DcRequest:
    """`request` asking for exactly `step` (its direction and current, no power of its own);
    the EV's own maxima stay."""
    if step.import_:
        return replace(
            request, current=None, power=None, discharge_current=step.current, discharge_power=None
        )
    return replace(
        request, current=step.current, power=None, discharge_current=None, discharge_power=None
    )


class PowerPath:
    def __init__(
        self,
        config: Config,
        engine: LimitsEngine,
        stage: PowerStage,
        clock: Callable[[], float],
        min_current_a: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        self._engine = engine
        self._stage = stage
        self._clock = clock
        self._min_current = min_current_a or {}
        """Per EVSE, each module's minimum regulated current."""
        self._paths = {
            evse.evse_id: _EvsePath(
                min((m.poll_period_s for m in evse.module), default=1.0),
                off_since=clock(),
                stepped_at=clock(),
                bidirectional=frozenset(m.name for m in evse.module if m.bidirectional),
                ramp_w_per_s=(
                    evse.dc_limits.power_ramp_limit_w_per_s if evse.dc_limits is not None else None
                ),
            )
            for evse in config.evse
        }

    def request(self, evse_id: str) -> DcRequest | None:
        return self._paths[evse_id].request

    def commanded(self, evse_id: str) -> Setpoint | None:
        return self._paths[evse_id].commanded

    def stray_output(self, evse_id: str) -> frozenset[str]:
        """Modules delivering output while commanded off for longer than they are given."""
        return self._paths[evse_id].stray

    def clamp(self, evse_id: str, request: DcRequest) -> Setpoint | Refused:
        """The setpoint `request` gets now, nothing commanded (the target: a bidirectional
        stack steps toward it, see `step`)."""
        entry = self._engine.entries.get(evse_id)
        result = dc_setpoint(entry, request, self._contacts(evse_id))
        if isinstance(result, Refused):
            return result
        return fewest_modules(result, self._min_current.get(evse_id, {}))

    def run(self, evse_id: str, request: DcRequest) -> Setpoint | Refused:
        """Clamp `request` and command the modules (a step toward it on a bidirectional stack);
        refused: nothing is commanded."""
        result = self.clamp(evse_id, request)
        if isinstance(result, Refused):
            return result
        path = self._paths[evse_id]
        stepped = self._step(evse_id, path, request, result)
        if isinstance(stepped, Refused):
            return stepped
        path.request = request
        path.clamped_against = self._engine.snapshots.get(evse_id)
        self._command(evse_id, path, stepped)
        return result

    def step(self, evse_id: str) -> Step:
        """The direction and total current last commanded (ZERO while off)."""
        return self._paths[evse_id].step

    def ramped(self, evse_id: str) -> bool:
        """Whether the EVSE's steps keep its power ramp now (a discharge was asked since its
        modules were last off)."""
        return self._paths[evse_id].discharged

    def _step(
        self, evse_id: str, path: _EvsePath, request: DcRequest, target: Setpoint
    ) -> Setpoint | Refused:
        """The setpoint to command now on the way to `target`: the target itself on a stack
        that cannot import; else one ramp step toward it (limits/ramp.py), clamped again to the
        limits reported now."""
        if not path.bidirectional:
            return target
        now = self._clock()
        entry = self._engine.entries.get(evse_id)
        voltage = target.voltage
        ceilings = Ceilings(
            export=direction_ceiling(entry, False, voltage),
            import_=direction_ceiling(entry, True, voltage),
        )
        path.discharged = path.discharged or target.import_
        step = ramp_step(
            path.step,
            Step(target.import_, target.total_current),
            voltage=voltage,
            dt=now - path.stepped_at,
            ramp_w_per_s=path.ramp_w_per_s if path.discharged else None,
            ceilings=ceilings,
        )
        result: Setpoint | Refused = target
        if step != Step(target.import_, target.total_current):
            result = self.clamp(evse_id, _stepped_request(request, step))
        if isinstance(result, Refused):
            return result
        path.step = Step(result.import_, result.total_current)
        path.stepped_at = now
        return result

    def follow_limits(self, evse_id: str) -> Refused | None:
        """After an evaluation: a running setpoint re-clamped to the limits reported now if they
        changed (a lower limit reaches the modules at once, not at the keepalive). Refused: the
        caller switches the EVSE off."""
        path = self._paths[evse_id]
        if path.request is None:
            return None
        snapshot = self._engine.snapshots.get(evse_id)
        if snapshot is path.clamped_against:
            return None
        path.clamped_against = snapshot
        result = self.clamp(evse_id, path.request)
        if isinstance(result, Refused):
            return result
        stepped = self._step(evse_id, path, path.request, result)
        if isinstance(stepped, Refused):
            return stepped
        if stepped != path.commanded:
            self._command(evse_id, path, stepped)
        return None

    def keep_alive(self, evse_id: str) -> Refused | None:
        """Resend the running setpoint, clamped to the limits of now (the modules' watchdog)."""
        path = self._paths[evse_id]
        if path.request is None:
            return None
        result = self.clamp(evse_id, path.request)
        if isinstance(result, Refused):
            return result
        stepped = self._step(evse_id, path, path.request, result)
        if isinstance(stepped, Refused):
            return stepped
        path.clamped_against = self._engine.snapshots.get(evse_id)
        self._command(evse_id, path, stepped)
        return None

    def off(self, evse_id: str) -> bool:
        """Every module of the EVSE off; True when a setpoint was running."""
        path = self._paths[evse_id]
        was_running = path.request is not None
        path.request = None
        path.commanded = None
        path.resting = frozenset()
        path.step = ZERO
        path.discharged = False
        now = self._clock()
        path.stepped_at = now
        if path.off_since is None:
            path.off_since = now
        path.off_sent_at = now
        self._stage.switch_off(evse_id)
        return was_running

    def hold_off(self, now: float) -> dict[str, frozenset[str]]:
        """Every idle EVSE's modules commanded off again once per poll period, and a setpoint's
        resting modules with them; the EVSEs whose stray modules changed, with the new set."""
        changed: dict[str, frozenset[str]] = {}
        for evse_id, path in self._paths.items():
            if path.request is None and now - path.off_sent_at >= path.poll_period_s:
                path.off_sent_at = now
                self._stage.switch_off(evse_id)
            elif path.request is not None and path.resting:
                modules = self._stage.evses[evse_id].modules
                for name in path.resting:
                    modules[name].switch_off()
            stray = self._stray(evse_id, path, now)
            if stray != path.stray:
                path.stray = stray
                changed[evse_id] = stray
        return changed

    def off_if_delivering(self, evse_id: str, now: float) -> None:
        """A module seen delivering where none should (no setpoint runs, or one the setpoint
        leaves at rest) is commanded off at once, not at the next poll period: a module back
        from silence with its last setpoint stops as soon as it is heard from."""
        path = self._paths[evse_id]
        off = set(path.resting) if path.request is not None else None
        delivering = [
            name
            for name, reading in self._engine.inputs(evse_id).modules.items()
            if (reading.output_current or 0.0) > STRAY_CURRENT_A and (off is None or name in off)
        ]
        if not delivering or now - path.off_sent_at < MIN_OFF_GAP_S:
            return
        path.off_sent_at = now
        modules = self._stage.evses[evse_id].modules
        for name in delivering:
            # A pooled EVSE's readings include a module still connected to its bus but no
            # longer its own (leaving it): the pool's switching stops that one, not this path.
            driver = modules.get(name)
            if driver is not None:
                driver.switch_off()

    def measured_current(self, evse_id: str) -> float:
        """What the EVSE's modules measure now, summed (fresh readings only)."""
        return sum(
            reading.output_current or 0.0
            for reading in self._engine.inputs(evse_id).modules.values()
        )

    def measured_voltage(self, evse_id: str) -> float:
        """The highest output voltage the EVSE's modules measure now."""
        return max(
            (
                reading.output_voltage or 0.0
                for reading in self._engine.inputs(evse_id).modules.values()
            ),
            default=0.0,
        )

    def _stray(self, evse_id: str, path: _EvsePath, now: float) -> frozenset[str]:
        off = set(path.resting)
        if path.request is None:
            off = set(self._stage.evses[evse_id].modules)
        given = STRAY_AFTER_PERIODS * path.poll_period_s
        composition = self._engine.composition(evse_id)
        stack = composition.stack if composition is not None else None
        # A silent module's last reading says nothing of now (its own watchdog ends its output).
        silent = {n for n, why in stack.absent.items() if why is Absence.STALE} if stack else set()
        stray = set()
        for name, reading in self._engine.inputs(evse_id).modules.items():
            delivering = (reading.output_current or 0.0) > STRAY_CURRENT_A
            if name not in off or name in silent or not delivering:
                path.stray_watch.pop(name, None)
                continue
            # Given from the later of the off command and its first sight delivering.
            since = path.stray_watch.setdefault(name, now)
            if now - since > given:
                stray.add(name)
        return frozenset(stray)

    def _command(self, evse_id: str, path: _EvsePath, setpoint: Setpoint) -> None:
        path.commanded = setpoint
        path.off_since = None
        self._stage.command(evse_id, setpoint)
        named = {module.name for module in setpoint.modules}
        resting = frozenset(self._stage.evses[evse_id].modules) - named
        modules = self._stage.evses[evse_id].modules
        for name in resting - path.resting:
            modules[name].switch_off()
        path.resting = resting

    def _contacts(self, evse_id: str) -> list[Any]:
        composition = self._engine.composition(evse_id)
        if composition is None or composition.stack is None:
            return []
        stack = composition.stack
        readings = self._engine.inputs(evse_id).modules
        silent = {
            name: readings[name].at
            for name, reason in stack.absent.items()
            if reason is Absence.STALE and name in readings
        }
        return module_contacts(
            stack.healthy,
            silent,
            self._clock(),
            self._stage.watchdogs(evse_id),
            self._paths[evse_id].bidirectional,
        )
