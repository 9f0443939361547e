"""Safe switching of a shared pool's modules between EVSEs (issue 18, item 4): a pure, clock-driven
state machine. It is told where each module serves now, where it should serve, and each step what
the modules read (output current, on or off, contactor feedback per EVSE bus); it answers with
the next commands in the one safe order for a move:

donor's limit lowered (the engine tells Josev) and its setpoint re-clamped -> the module's current
below the threshold (or, after the ramp timeout, the donor's session ended) -> module off ->
contactor to the donor opened, feedback open -> contactor to the receiver closed, feedback closed
-> module on at the receiver's setpoint voltage -> only then the receiver's limit raised.

A contactor whose feedback disagrees with its command for longer than its time limit is a fault:
the module leaves the pool (`hardware_fault`). No I/O, no clock of its own: `step` gets the time.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

HARDWARE_FAULT = "hardware_fault"
"""The Josev notification a module fault becomes (fault_name is the engine's to choose)."""


@dataclass(frozen=True, slots=True)
class SwitchingSettings:
    """Thresholds and time limits of a move; every figure is the station's own choice."""

    current_threshold_a: float = 1.0
    """A contactor never opens or closes while its module carries this much or more."""
    contactor_time_limit_s: float = 0.3
    """Longest a contactor's feedback may disagree with its command before it is a fault."""
    ramp_timeout_s: float = 5.0
    """Longest the donor may take to bring a leaving module's current below the threshold; then
    the donor's session is ended."""
    stop_timeout_s: float = 2.0
    """Longest a module switched off (or whose donor session was ended) may keep carrying
    current or reading on; then it is a fault."""
    start_timeout_s: float = 2.0
    """Longest a module switched on at the receiver may take to read on; then it is a fault."""

    def __post_init__(self) -> None:
        for name in (
            "current_threshold_a",
            "contactor_time_limit_s",
            "ramp_timeout_s",
            "stop_timeout_s",
            "start_timeout_s",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, not {value!r}")


@dataclass(frozen=True, slots=True)
class ModuleSense:
    """What one module reads now."""

    current_a: float
    output_on: bool
    closed_to: frozenset[str] | None
    """EVSEs whose contactor feedback from this module reads closed; None: no feedback known
    (it then agrees with no command)."""


UNKNOWN = ModuleSense(current_a=math.inf, output_on=True, closed_to=None)
"""A module with no reading: worst case on every count (carries current, may be on, feedback
unknown), so nothing is switched on its account."""


@dataclass(frozen=True, slots=True)
class SwitchingInputs:
    now: float
    modules: Mapping[str, ModuleSense]
    setpoint_voltage: Mapping[str, float] = field(default_factory=dict)
    """Per EVSE with a session, the voltage its modules are set to; an EVSE without one is
    absent (a module moved to it is connected and left off)."""


# --- the commands ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LimitEvse:
    """The EVSE's limits are now those of these modules: the engine recomputes them and tells
    Josev. Lowering comes before anything is switched; raising only after the modules named
    are connected (and on, where the EVSE has a session)."""

    evse: str
    modules: frozenset[str]


@dataclass(frozen=True, slots=True)
class ReclampSetpoint:
    """Clamp the EVSE's module setpoints to its lowered limit now, without waiting for the EV."""

    evse: str


@dataclass(frozen=True, slots=True)
class EndSession:
    """End the EVSE's session safely: a module leaving it did not ramp down in time."""

    evse: str
    module: str
    reason: str


@dataclass(frozen=True, slots=True)
class SwitchModule:
    module: str
    on: bool
    voltage: float | None = None
    """Switching on: the receiver's setpoint voltage, so the module joins without a surge."""


@dataclass(frozen=True, slots=True)
class SetContactor:
    module: str
    evse: str
    closed: bool


@dataclass(frozen=True, slots=True)
class ModuleFault:
    """The module leaves the pool for good (until the operator clears it)."""

    module: str
    evse: str | None
    reason: str
    fault: str = HARDWARE_FAULT


SwitchingCommand = (
    LimitEvse | ReclampSetpoint | EndSession | SwitchModule | SetContactor | ModuleFault
)


class Phase(enum.StrEnum):
    PARKED = "parked"
    """Off, every contactor open (confirmed)."""
    CLOSING = "closing"
    STARTING = "starting"
    SERVING = "serving"
    LOWERING = "lowering"
    STOPPING = "stopping"
    OPENING = "opening"
    FAULTED = "faulted"


@dataclass(slots=True)
class _Module:
    name: str
    phase: Phase
    bus: str | None
    """The EVSE it is connected to, or moving to or from."""
    since: float
    commanded: dict[str, bool] = field(default_factory=dict)
    """Per EVSE: the contactor's last command (absent: open, never commanded)."""
    disagree_since: dict[str, float] = field(default_factory=dict)
    session_ended: bool = False


class SwitchingSequencer:
    """The moves of one pool's modules. Call `retarget` with a new allocation, then `step` on
    every tick with fresh readings; carry out the commands it returns in their order."""

    def __init__(
        self,
        evses: Collection[str],
        allocation: Mapping[str, str | None],
        settings: SwitchingSettings,
        now: float,
    ) -> None:
        self.settings = settings
        self._evses = frozenset(evses)
        self._modules: dict[str, _Module] = {}
        for module, evse in allocation.items():
            self._check_evse(evse)
            state = _Module(module, Phase.PARKED if evse is None else Phase.SERVING, evse, now)
            if evse is not None:
                state.commanded[evse] = True
                state.disagree_since[evse] = now
            self._modules[module] = state
        self._target: dict[str, str | None] = dict(allocation)
        self._reported: dict[str, frozenset[str]] = {
            evse: frozenset(m for m, to in allocation.items() if to == evse) for evse in evses
        }

    # --- what it holds ---------------------------------------------------------------------

    @property
    def target(self) -> Mapping[str, str | None]:
        return dict(self._target)

    @property
    def faulted(self) -> frozenset[str]:
        return frozenset(m.name for m in self._modules.values() if m.phase is Phase.FAULTED)

    def phase(self, module: str) -> Phase:
        return self._modules[module].phase

    def since(self, module: str) -> float:
        """When the module entered its phase (its last transition)."""
        return self._modules[module].since

    def bus(self, module: str) -> str | None:
        """The EVSE the module is connected to, or moving to or from (None: parked)."""
        return self._modules[module].bus

    def reported(self, evse: str) -> frozenset[str]:
        """The modules whose limits the EVSE reports now (its last LimitEvse)."""
        return self._reported.get(evse, frozenset())

    @property
    def settled(self) -> bool:
        """Every module that is not faulted serves its target (or is parked, targeted nowhere)."""
        for state in self._modules.values():
            if state.phase is Phase.FAULTED:
                continue
            wanted = self._target.get(state.name)
            if wanted is None and state.phase is not Phase.PARKED:
                return False
            if wanted is not None and (state.phase is not Phase.SERVING or state.bus != wanted):
                return False
        return True

    def retarget(self, target: Mapping[str, str | None]) -> None:
        """The allocation to move to; a module left out goes nowhere (parked). A faulted
        module stays out whatever the target says."""
        unknown = set(target) - set(self._modules)
        if unknown:
            raise ValueError(f"modules not in the pool: {sorted(unknown)}")
        for evse in target.values():
            self._check_evse(evse)
        self._target = {module: target.get(module) for module in self._modules}

    # --- one tick --------------------------------------------------------------------------

    def step(self, inputs: SwitchingInputs) -> list[SwitchingCommand]:
        """The commands due now: limit changes first (lowered limits before any switching),
        then what the modules and contactors are told."""
        device: list[SwitchingCommand] = []
        for state in self._modules.values():
            sense = inputs.modules.get(state.name, UNKNOWN)
            if state.phase is Phase.FAULTED:
                device += self._park_faulted(state, sense, inputs.now)
                continue
            fault = self._feedback_fault(state, sense, inputs.now)
            if fault is None:
                device += self._advance(state, sense, inputs)
            else:
                device += self._fault(state, fault, inputs.now)
        return self._limit_changes(inputs) + device

    def _advance(
        self, state: _Module, sense: ModuleSense, inputs: SwitchingInputs
    ) -> list[SwitchingCommand]:
        """One transition at most per module and step, so each waits for fresh readings."""
        wanted = self._target.get(state.name)
        match state.phase:
            case Phase.PARKED:
                return self._from_parked(state, sense, wanted, inputs.now)
            case Phase.CLOSING:
                return self._from_closing(state, sense, wanted, inputs)
            case Phase.STARTING:
                return self._from_starting(state, sense, wanted, inputs.now)
            case Phase.SERVING if wanted != state.bus:
                self._enter(state, Phase.LOWERING, inputs.now)
                return self._lower(state, sense, inputs.now)
            case Phase.LOWERING if wanted == state.bus and not state.session_ended:
                return self._stay(state, sense, inputs)
            case Phase.LOWERING:
                return self._lower(state, sense, inputs.now)
            case Phase.STOPPING:
                return self._from_stopping(state, sense, inputs.now)
            case Phase.OPENING if sense.closed_to == frozenset():
                self._enter(state, Phase.PARKED, inputs.now)
        return []

    def _from_parked(
        self, state: _Module, sense: ModuleSense, wanted: str | None, now: float
    ) -> list[SwitchingCommand]:
        """Closing needs every contactor of the module reading open and no current."""
        low = sense.current_a < self.settings.current_threshold_a
        if wanted is None or not low or sense.closed_to != frozenset():
            return []
        self._enter(state, Phase.CLOSING, now)
        state.bus = wanted
        return [self._command_contactor(state, wanted, True, now)]

    def _from_closing(
        self, state: _Module, sense: ModuleSense, wanted: str | None, inputs: SwitchingInputs
    ) -> list[SwitchingCommand]:
        assert state.bus is not None
        if sense.closed_to != frozenset({state.bus}):
            return []
        voltage = inputs.setpoint_voltage.get(state.bus)
        if wanted == state.bus and voltage is not None:
            self._enter(state, Phase.STARTING, inputs.now)
            return [SwitchModule(state.name, True, voltage)]
        # No session there (left off, counted in the share it reports) or retargeted meanwhile.
        self._enter(state, Phase.SERVING if wanted == state.bus else Phase.LOWERING, inputs.now)
        return []

    def _from_starting(
        self, state: _Module, sense: ModuleSense, wanted: str | None, now: float
    ) -> list[SwitchingCommand]:
        if sense.output_on:
            self._enter(state, Phase.SERVING if wanted == state.bus else Phase.LOWERING, now)
        elif now - state.since > self.settings.start_timeout_s:
            return self._fault(state, "did not switch on at the receiver", now)
        return []

    def _stay(
        self, state: _Module, sense: ModuleSense, inputs: SwitchingInputs
    ) -> list[SwitchingCommand]:
        """Allocated back to the EVSE it was leaving: it serves again at once, unless that EVSE
        has a session and the module is off (it was retargeted before it started): then it is
        started first, like any receiver's module."""
        assert state.bus is not None
        voltage = inputs.setpoint_voltage.get(state.bus)
        if voltage is not None and not sense.output_on:
            self._enter(state, Phase.STARTING, inputs.now)
            return [SwitchModule(state.name, True, voltage)]
        self._enter(state, Phase.SERVING, inputs.now)
        return []

    def _from_stopping(
        self, state: _Module, sense: ModuleSense, now: float
    ) -> list[SwitchingCommand]:
        assert state.bus is not None
        if sense.current_a < self.settings.current_threshold_a and not sense.output_on:
            self._enter(state, Phase.OPENING, now)
            return [self._command_contactor(state, state.bus, False, now)]
        if now - state.since > self.settings.stop_timeout_s:
            return self._fault(state, "still on or carrying current when off", now)
        return []

    def _lower(self, state: _Module, sense: ModuleSense, now: float) -> list[SwitchingCommand]:
        """LOWERING: wait for the current to fall, ending the donor's session if it will not."""
        assert state.bus is not None
        if sense.current_a < self.settings.current_threshold_a:
            self._enter(state, Phase.STOPPING, now)
            return [SwitchModule(state.name, False)]
        waited = now - state.since
        if waited > self.settings.ramp_timeout_s + self.settings.stop_timeout_s:
            return self._fault(state, "current did not fall after the session ended", now)
        if waited > self.settings.ramp_timeout_s and not state.session_ended:
            state.session_ended = True
            reason = (
                f"module {state.name} did not ramp down within {self.settings.ramp_timeout_s} s"
            )
            log.warning("event=switching_ramp_timeout module=%s evse=%s", state.name, state.bus)
            return [EndSession(state.bus, state.name, reason)]
        return []

    def _feedback_fault(self, state: _Module, sense: ModuleSense, now: float) -> str | None:
        """A contactor whose feedback has disagreed with its command for too long."""
        limit = self.settings.contactor_time_limit_s
        closed = sense.closed_to
        for evse in sorted(self._evses | set(state.commanded) | (closed or frozenset())):
            command = state.commanded.get(evse, False)
            if closed is not None and (evse in closed) == command:
                state.disagree_since.pop(evse, None)
                continue
            start = state.disagree_since.setdefault(evse, now)
            if now - start > limit:
                reads = "unknown" if closed is None else ("closed" if evse in closed else "open")
                wants = "closed" if command else "open"
                return f"contactor to {evse} reads {reads}, commanded {wants}, for over {limit} s"
        return None

    def _fault(self, state: _Module, reason: str, now: float) -> list[SwitchingCommand]:
        log.error(
            "event=switching_module_fault module=%s evse=%s phase=%s reason=%r",
            state.name,
            state.bus,
            state.phase,
            reason,
        )
        evse = state.bus
        self._enter(state, Phase.FAULTED, now)
        return [ModuleFault(state.name, evse, reason), SwitchModule(state.name, False)]

    def _park_faulted(
        self, state: _Module, sense: ModuleSense, now: float
    ) -> list[SwitchingCommand]:
        """A faulted module is told off; once it carries no current and reads off its
        contactors are told to open (a welded one stays closed, to its one EVSE, never to a
        second; one that stays on keeps its contactor closed, as any module on does)."""
        if sense.current_a >= self.settings.current_threshold_a or sense.output_on:
            return []
        return [
            self._command_contactor(state, evse, False, now)
            for evse, closed in sorted(state.commanded.items())
            if closed
        ]

    def _limit_changes(self, inputs: SwitchingInputs) -> list[SwitchingCommand]:
        lowered: list[SwitchingCommand] = []
        raised: list[SwitchingCommand] = []
        for evse in sorted(self._evses):
            serving = self._serving(evse, inputs)
            before = self._reported.get(evse, frozenset())
            if serving == before:
                continue
            self._reported[evse] = serving
            if before - serving:
                lowered += [LimitEvse(evse, serving), ReclampSetpoint(evse)]
            else:
                raised.append(LimitEvse(evse, serving))
        return lowered + raised

    def _serving(self, evse: str, inputs: SwitchingInputs) -> frozenset[str]:
        """Modules serving the EVSE: settled there, and their feedback says connected to it
        alone."""
        only = frozenset({evse})
        return frozenset(
            state.name
            for state in self._modules.values()
            if state.phase is Phase.SERVING
            and state.bus == evse
            and inputs.modules.get(state.name, UNKNOWN).closed_to == only
        )

    def _command_contactor(
        self, state: _Module, evse: str, closed: bool, now: float
    ) -> SetContactor:
        state.commanded[evse] = closed
        state.disagree_since[evse] = now
        return SetContactor(state.name, evse, closed)

    def _enter(self, state: _Module, phase: Phase, now: float) -> None:
        state.phase, state.since = phase, now
        if phase is Phase.PARKED:
            state.bus, state.session_ended = None, False

    def _check_evse(self, evse: str | None) -> None:
        if evse is not None and evse not in self._evses:
            raise ValueError(f"EVSE {evse!r} is not one of the pool's {sorted(self._evses)}")
