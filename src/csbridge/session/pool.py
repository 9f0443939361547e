"""A shared module pool at work (issue 18): who gets which module, decided by the pure allocation
(limits/allocation.py), and the safe moves that carry each decision out (power/switching.py).

Every step (the engine's tick, a reading of the pool's modules or board, a session event) the
coordinator builds the allocation's inputs (the modules' health and capability, each EVSE's
session, settled demand and external or operator limit), retargets the sequencer when the
target changed (one decision), feeds the sequencer the modules' readings and the contactor
feedback, and carries out what it answers in its order: a lowered limit reaches the engine
(and Josev, at once) before anything is switched; the donor's setpoint is re-clamped and the
leaving module stops; modules are switched at the pool's drivers, contactors at the matrix
board; a fault takes the module out (`hardware_fault`); a donor that will not ramp down has
its session ended by the session machine's all-off path.

Each pooled EVSE's limits count (PoolScope): once energy may flow (cable check, precharge,
charging), only the modules the sequencer confirms connected to it alone; before that, its
allocated share (in session) or the share it would get if it started now (idle), so that
Josev's boot answer and ChargeParameterDiscovery see a true figure. The pool's
installation limit is split in the allocation's proportion of the pool's power.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from csbridge.config import BankTopology, EvseConfig, ModuleConfig, PoolConfig
from csbridge.engine import LimitsEngine
from csbridge.limits import (
    Allocation,
    Demand,
    EvseInputs,
    EvseState,
    PoolModule,
    PoolScope,
    Share,
    Why,
    allocate,
    external_in_force,
    pool_banks,
)
from csbridge.messages import HardwareFaultUpdate, Message
from csbridge.power import (
    BankedSequencer,
    EndSession,
    LimitEvse,
    MatrixDriver,
    ModuleDriver,
    ModuleFault,
    ModuleSense,
    Phase,
    PoolModules,
    PowerStage,
    ReclampSetpoint,
    SetContactor,
    SwitchingCommand,
    SwitchingInputs,
    SwitchingSettings,
    SwitchModule,
)
from csbridge.session.handlers import SessionHandlers
from csbridge.session.machine import ENERGY_STATES, State
from csbridge.sources import ModuleReading
from csbridge.support import Clock, Counted, Counters, Timed

log = logging.getLogger("csbridge.pool")

POOL_SESSION_STATES = frozenset(
    {State.AUTHORIZED, State.CABLE_CHECK, State.PRECHARGE, State.CHARGING, State.PAUSED}
)
"""The states in which an EVSE holds a share of its pool: from its authorization until its
session stops (stopping and finishing hand the modules back)."""
ON_VOLTAGE_V = 1.0
"""A module whose output voltage is above this counts as on (no module reading carries an
on/off flag of its own; an off module's output reads 0 V on the simulated modules)."""
STEP_EVERY_S = 0.025
"""The pool steps at least this often (a move in flight needs a step every 50 ms at most)."""
TELL_WAIT_S = 0.2
"""After a lowered limit, the moves wait until its update has gone to Josev, at most this long
(with MQTT down nothing is taken: the modules still move only de-energised)."""
MAX_STEP_PASSES = 4
"""Steps run again at once when a command changed what the next step sees; bounded."""
STALE = "stale"
"""A module's absence: no fresh reading (silent past its deadline, or never heard)."""


@dataclass(slots=True)
class _Demand:
    """An EVSE's EV demand and since when it has stayed below the EVSE's share."""

    low_since: float | None = None
    applied: bool = False
    """It settled: the allocation follows the demand until the EV asks for more."""


@dataclass(slots=True)
class PoolStatus:
    """What the pool's report blocks, `csbridge status` and the metrics show."""

    decision: int = 0
    decided_at: float | None = None
    """Wall-clock time (time.time) of the latest decision, for people and reports."""
    decided_on_clock: float | None = None
    """The same on the station's clock (monotonic), for durations."""
    settled_at: float | None = None
    moves_started: dict[str, float] = field(default_factory=dict)
    """Per module moving now: when its move's decision was taken (monotonic)."""
    told: dict[str, tuple[int, str, float]] = field(default_factory=dict)
    """Per EVSE, its latest decision's update as csbridge timed it: (decision, after what:
    `decision` for a lowered limit, `delivering` for the raise once the decision's modules
    deliver, seconds until the update was taken to go to Josev)."""


class PoolCoordinator:
    """One pool: its allocation, its sequencer, and the I/O that carries the moves out."""

    def __init__(
        self,
        pool: PoolConfig,
        evses: Mapping[str, EvseConfig],
        engine: LimitsEngine,
        stage: PowerStage,
        session: SessionHandlers,
        *,
        matrix: MatrixDriver,
        clock: Clock = time.monotonic,
        wall: Callable[[], float] = time.time,
        settings: SwitchingSettings | None = None,
    ) -> None:
        self.pool = pool
        self._evses = {evse_id: evses[evse_id] for evse_id in pool.evse_ids}
        self._engine = engine
        self._session = session
        self.matrix = matrix
        self._clock = clock
        self._wall = wall
        self._counters: Counters = engine.counters
        self._views: dict[str, PoolModules] = {}
        for evse_id in pool.evse_ids:
            view = stage.evses[evse_id].modules
            assert isinstance(view, PoolModules)  # power/wiring.py wires a pooled EVSE so
            self._views[evse_id] = view
        self._drivers: Mapping[str, ModuleDriver] = self._views[pool.evse_ids[0]].every
        self._topology = pool.banks()
        self._wired = wired_modules(self._topology)
        self._deadline = {m.name: m.freshness_deadline_s for m in pool.module}
        self.sequencer = BankedSequencer(
            pool.evse_ids,
            self._topology,
            {m.name: self._wired.get(m.name) for m in pool.module},
            settings or SwitchingSettings(),
            clock(),
        )
        self.allocation: Allocation | None = None
        self.status = PoolStatus()
        self._since: dict[str, float] = {}
        """Per EVSE in session: when its session took its share (orders first_come)."""
        self._demand = {evse_id: _Demand() for evse_id in pool.evse_ids}
        self._stepping = False
        self.holding = False
        """True until the board is first heard (set by whoever runs the pool): every contact
        is unknown until then, so no step, from the tick or from a session event, may start a
        move."""
        self._again = False
        self._leaving: dict[str, frozenset[str]] = {}
        self._telling: dict[str, float] = {}  # EVSEs whose lowered limit waits to go to Josev
        self._closed_to: dict[str, frozenset[str]] = {}
        """The board's latest feedback: per module, the EVSEs whose contactor reads closed."""
        self._absent: dict[str, str] = {}
        """Modules out of the allocation now (not faulted by the switching), and why: `stale`,
        `offline`, `fault`, `over_temperature`, `no_capability`."""
        self._off_at: dict[str, float] = {}
        """When each module was commanded off as it dropped out (its watchdog runs from then
        at the latest)."""
        self._surely_off: frozenset[str] = frozenset()
        """Silent modules whose own watchdog has surely switched them off by now."""
        self._allocated: dict[str, str | None] = dict(self.sequencer.target)
        """The latest allocation's target, before silent modules are held where they are."""
        self._step_scheduled = False
        self._limits_seen: dict[str, tuple[object, object]] = {}
        """Per EVSE, the external limit and operator command its last evaluation saw."""
        self._usable = 0
        self._usable_names: frozenset[str] = frozenset()
        self._pool_power_w = 0.0
        self._allocated_for: object = None
        self._told_from: dict[str, tuple[int, str, float]] = {}
        """Per EVSE, a decision's update not taken yet: (decision, after what, since when)."""
        session.on_step.append(self._session_stepped)
        engine.observers.append(self._observed)
        engine.updates.taken.append(self._update_taken)

    # --- what the others read ---------------------------------------------------------------

    def serving(self, evse_id: str) -> frozenset[str]:
        """The modules connected to the EVSE alone, delivering, and counted in its limits now
        (a module that dropped out is not, wherever its contactor still is)."""
        return self.sequencer.reported(evse_id) - self._absent.keys()

    def absent(self, module: str) -> str | None:
        """Why the module is out of the allocation (None: it is not, or faulted for good)."""
        return self._absent.get(module)

    def connected(self, evse_id: str) -> frozenset[str]:
        """The modules on the EVSE's bus now: those serving it, and any whose contactor to it
        still reads closed (leaving it, or faulted there). Its present voltage and current are
        theirs, and so is the voltage its connector lock waits to fall."""
        closed = {module for module, evses in self._closed_to.items() if evse_id in evses}
        return self.serving(evse_id) | closed

    def share(self, evse_id: str) -> Share | None:
        """Its allocated share, or what it would get if it started now."""
        if self.allocation is None:
            return None
        if evse_id in self.allocation.would_get:
            return self.allocation.would_get[evse_id]
        return self.allocation.shares.get(evse_id)

    # --- triggers -----------------------------------------------------------------------------

    def _session_stepped(self, evse_id: str, _event: object, before: State, after: State) -> None:
        if evse_id not in self._evses:
            return
        held = before in POOL_SESSION_STATES
        holds = after in POOL_SESSION_STATES
        if holds and not held:
            self._since[evse_id] = self._clock()
        elif held and not holds:
            self._since.pop(evse_id, None)
            self._demand[evse_id] = _Demand()
        if held != holds or (before in ENERGY_STATES) != (after in ENERGY_STATES):
            # Energy may now flow (or no longer): what its limits count changes at once.
            self.step()

    def _observed(self, evse_id: str, inputs: EvseInputs, *_: object) -> None:
        """A reading of the pool's EVSEs: a move in flight steps on it as soon as the loop is
        free, and so does a new external limit or operator command (a decision need not wait
        for the tick, which catches everything else)."""
        if evse_id not in self._evses:
            return
        limits = (inputs.external, inputs.operator)
        changed = self._limits_seen.get(evse_id) != limits
        self._limits_seen[evse_id] = limits
        if changed or not self.sequencer.settled:
            # Once the loop is free: readings that arrive together make one step, and an
            # update already on its way to Josev goes first.
            self._step_soon()

    @staticmethod
    def _loop_running() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def _step_soon(self) -> None:
        """Step once the loop is free: after the update the evaluation just made is on its way
        to Josev (a step costs milliseconds; a decrease must not wait for it)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a script driving the engine): step now
            self.step()
            return
        if not self._step_scheduled:
            self._step_scheduled = True
            loop.call_soon(self._scheduled_step)

    def _scheduled_step(self) -> None:
        self._step_scheduled = False
        self.step()

    async def run(self) -> None:
        """Step on a tick, until cancelled."""
        while True:
            self.step()
            await asyncio.sleep(STEP_EVERY_S)

    # --- one step -----------------------------------------------------------------------------

    def step(self) -> None:
        """Decide, feed the sequencer, carry out its commands. Re-entered from what those
        commands cause (an evaluation, a session event): run again after this one instead."""
        if self.holding:
            return
        if self._stepping:
            self._again = True
            return
        self._stepping = True
        try:
            for _ in range(MAX_STEP_PASSES):
                self._again = False
                told = self._step_once()
                if not self._again:
                    break
                if told and self._loop_running():
                    # A limit's update waits to go to Josev: the next pass once it has.
                    self._step_soon()
                    break
        finally:
            self._stepping = False

    def _step_once(self) -> bool:
        """One pass; True when it set an EVSE's limits (an update is on its way to Josev)."""
        now = self._clock()
        readings = self._engine.pool_readings(self.pool.evse_ids[0])
        self._decide(now, readings)
        self._count_out_absent()
        if self._telling_josev(now):
            self._publish(readings)
            return False
        inputs = SwitchingInputs(now, self._senses(now, readings), self._setpoint_voltages())
        commands = self.sequencer.step(inputs)
        # Settled as the step finds the modules delivering: before the raise is evaluated, so
        # "settled_at -> the receiver's update" counts all of csbridge's own time.
        self._note_progress(now)
        told = False
        for command in commands:
            told |= isinstance(command, LimitEvse)
            self._carry_out(command, now)
        if told:
            # The other EVSEs' report blocks can wait until the limit's update is on its way
            # to Josev (the pusher runs first): their evaluation costs milliseconds.
            self._publish_soon()
        else:
            self._publish(readings)
        return told

    def _publish_soon(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a script driving the engine): now
            self._publish(self._engine.pool_readings(self.pool.evse_ids[0]))
            return
        loop.call_soon(lambda: self._publish(self._engine.pool_readings(self.pool.evse_ids[0])))

    # --- the allocation -----------------------------------------------------------------------

    def _decide(self, now: float, readings: Mapping[str, ModuleReading]) -> None:
        faulted = self.sequencer.faulted
        modules = {
            m.name: pool_module_now(m, readings.get(m.name), now, faulted=m.name in faulted)
            for m in self.pool.module
        }
        usable = [module for module in modules.values() if module.usable]
        self._note_absence(now, readings, modules, faulted)
        self._usable = len(usable)
        self._usable_names = frozenset(module.name for module in usable)
        self._pool_power_w = math.fsum(module.max_power_w for module in usable)
        banks = pool_banks(self._topology, modules)
        target_now = self.sequencer.target
        current = {
            bank.name: evse
            for bank in self._topology
            if (evse := target_now.get(bank.modules[0])) is not None
        }
        states = [self._state(evse_id, now) for evse_id in self.pool.evse_ids]
        key = (tuple(modules.values()), tuple(states), tuple(sorted(current.items())))
        if key != self._allocated_for or self.allocation is None:
            # Pure and deterministic: the same inputs give the same allocation.
            self.allocation = allocate(banks, states, self.pool.policy, current)
            self._allocated_for = key
        allocation = self.allocation
        allocated = {m.name: allocation.evse_of(m.name) for m in self.pool.module}
        target = dict(allocated) | self._wired
        for name, why in self._absent.items():
            bus = self.sequencer.bus(name)
            if why == STALE and bus is not None and name not in self._surely_off:
                # Silent: its current is unknown, so no contactor of it may move (it may carry
                # load). It stays where it is, commanded off and counted for nothing, until it
                # is heard again or its own watchdog has surely switched it off.
                target[name] = bus
        if target == target_now and allocated == self._allocated:
            return
        # A dropout is a decision even when no module moves: the allocation changed.
        self._allocated = allocated
        if target != target_now:
            self.sequencer.retarget(target)
        status = self.status
        status.decision += 1
        status.decided_at = self._wall()
        status.decided_on_clock = now
        status.settled_at = None
        for name, evse in target.items():
            if evse != target_now.get(name):
                status.moves_started[name] = now
        self._counters.add(Counted.POOL_DECISIONS, self.pool.name)
        log.info(
            "event=pool_decision pool=%s decision=%d target=%s",
            self.pool.name,
            status.decision,
            ",".join(f"{m}:{e or '-'}" for m, e in sorted(target.items())),
        )

    def _note_absence(
        self,
        now: float,
        readings: Mapping[str, ModuleReading],
        modules: Mapping[str, PoolModule],
        faulted: frozenset[str],
    ) -> None:
        """Which modules dropped out (and why), which came back, and which silent ones their
        own watchdog has surely switched off by now. A module that drops out is commanded off
        at once; one that reports a fault is a hardware fault (counted, logged)."""
        config = {m.name: m for m in self.pool.module}
        absent = {
            name: module_absence(config[name], readings.get(name), now)
            for name, module in modules.items()
            if not module.usable and name not in faulted
        }
        for name, why in sorted(absent.items()):
            was = self._absent.get(name)
            if was == why:
                continue
            if was is None:
                self._drivers[name].switch_off()
                self._off_at[name] = now
            log.warning(
                "event=pool_module_absent pool=%s module=%s evse=%s why=%s -- out of the"
                " allocation, commanded off",
                self.pool.name,
                name,
                self.sequencer.bus(name),
                why,
            )
            if why == "fault":
                self._counters.add(Counted.HARDWARE_FAULTS, name)
                log.error(
                    "event=pool_module_fault pool=%s module=%s evse=%s why='reports a fault'",
                    self.pool.name,
                    name,
                    self.sequencer.bus(name),
                )
        for name in sorted(self._absent.keys() - absent.keys()):
            self._off_at.pop(name, None)
            log.info("event=pool_module_back pool=%s module=%s", self.pool.name, name)
        self._absent = absent
        self._surely_off = frozenset(
            name
            for name, why in absent.items()
            if why == STALE and self._watchdog_passed(name, readings.get(name), now)
        )

    def _watchdog_passed(self, name: str, reading: ModuleReading | None, now: float) -> bool:
        """The silent module's own watchdog has surely ended its output: counted from the later
        of its last reading and our off command (a module that received the command is off
        already; one that did not heard nothing since, and nothing else is sent to it)."""
        last = max(reading.at if reading is not None else -math.inf, self._off_at[name])
        return now - last >= self._drivers[name].watchdog_s

    def _count_out_absent(self) -> None:
        """Each EVSE's power path drives, and its limits count, only the modules the
        sequencer reports serving it that have not dropped out: a dropout lowers the limit at
        once (told to Josev at once), a module back raises it as any module returning does."""
        for evse_id in self.pool.evse_ids:
            view = self._views[evse_id]
            serving = self.serving(evse_id)
            if view.serving == serving:
                continue
            lowered = bool(view.serving - serving)
            view.serving = serving
            self._publish_evse(evse_id, urgent=lowered)

    def _state(self, evse_id: str, now: float) -> EvseState:
        terms = next(e for e in self.pool.evse if e.evse_id == evse_id)
        limit_current, limit_power = self._limits(evse_id, now)
        return EvseState(
            evse_id,
            session_since_s=self._since.get(evse_id),
            demand=self._settled_demand(evse_id, now),
            minimum_power_w=terms.minimum_power_w,
            weight=terms.weight,
            limit_current_a=limit_current,
            limit_power_w=limit_power,
        )

    def _limits(self, evse_id: str, now: float) -> tuple[float | None, float | None]:
        """The lowest external or operator limit in force on the EVSE."""
        inputs = self._engine.inputs(evse_id)
        if inputs.operator is not None and not inputs.operator.enabled:
            return 0.0, 0.0
        external = external_in_force(self._evses[evse_id].external, inputs.external, now)
        return external.max_current, external.max_power

    def _settled_demand(self, evse_id: str, now: float) -> Demand:
        """The EV's demand once it has stayed below the EVSE's share for the settle time (its
        modules then go back), and for as long as it asks no more than its share then; before
        that, and as soon as it asks for more, no bound (its share grows back at once)."""
        demand = self._raw_demand(evse_id)
        tracked = self._demand[evse_id]
        share = self.allocation.shares.get(evse_id) if self.allocation is not None else None
        if share is None or not share.modules or _above(demand, share):
            tracked.low_since, tracked.applied = None, False
            return Demand()
        if tracked.applied:
            return demand
        if not _below(demand, share):
            tracked.low_since = None
            return Demand()
        if tracked.low_since is None:
            tracked.low_since = now
        if now - tracked.low_since >= self.pool.demand_settle_s:
            tracked.applied = True
            log.info(
                "event=pool_demand_settled pool=%s evse=%s current_a=%s power_w=%s",
                self.pool.name,
                evse_id,
                demand.current_a,
                demand.power_w,
            )
            return demand
        return Demand()

    def _raw_demand(self, evse_id: str) -> Demand:
        request = self._session.power.request(evse_id)
        rated = self._session.sessions[evse_id].ev_rated_limits
        ev_current, ev_power = _rated_maxima(rated.dc_rated_limits if rated is not None else None)
        if request is None or request.precharge:
            return Demand(ev_max_current_a=ev_current, ev_max_power_w=ev_power)
        power = request.power
        if request.current is not None and request.voltage > 0:
            asked = request.current * request.voltage
            power = asked if power is None else min(power, asked)
        return Demand(request.current, power, ev_current, ev_power)

    # --- the switching ------------------------------------------------------------------------

    def _telling_josev(self, now: float) -> bool:
        """A lowered limit's update has not been taken to Josev yet: nothing moves until it
        is (Josev hears of a decrease before any module is switched)."""
        for evse_id, since in list(self._telling.items()):
            if not self._engine.updates.pending(evse_id) or now - since > TELL_WAIT_S:
                del self._telling[evse_id]
        return bool(self._telling)

    def _senses(self, now: float, readings: Mapping[str, ModuleReading]) -> dict[str, ModuleSense]:
        """Each module's current, on-state and contactor feedback. A module without a fresh
        reading counts as carrying current and on (nothing is switched on its account). A
        reading taken before the module's last transition, or before the latest decision,
        says nothing of what it does now (a current from before its setpoint, an output from
        before it was switched): until the next one it counts as carrying current and not yet
        on, so no step is taken on its account (a poll period at most). The feedback is
        always the board's."""
        feedback = self.matrix.feedback()
        bank_of = self.sequencer.bank_of
        closed_to: dict[str, frozenset[str] | None] = {}
        for module in self.pool.module:
            name = module.name
            if name in self._wired:  # the wiring, not a reading: on its EVSE's bus for good
                closed_to[name] = frozenset({self._wired[name]})
            elif feedback is not None:
                closed_to[name] = feedback.get(bank_of(name), frozenset())
            else:
                closed_to[name] = None
        self._closed_to = {name: closed for name, closed in closed_to.items() if closed}
        threshold = self.sequencer.settings.current_threshold_a
        decided = self.status.decided_on_clock
        senses = {}
        for module in self.pool.module:
            name = module.name
            closed = closed_to[name]
            reading = readings.get(name)
            if name in self._surely_off:
                # Silent past its own watchdog: off, carrying nothing, so it can be parked.
                senses[name] = ModuleSense(0.0, False, closed)
                continue
            if reading is None or now - reading.at > self._deadline[name]:
                senses[name] = ModuleSense(math.inf, True, closed)
                continue
            if reading.at < max(self.sequencer.since(name), decided or -math.inf):
                senses[name] = ModuleSense(math.inf, False, closed)
                continue
            # A magnitude: a module feeding back (discharge) carries its current all the same.
            current = abs(reading.output_current or 0.0)
            on = (reading.output_voltage or 0.0) > ON_VOLTAGE_V or current >= threshold
            senses[name] = ModuleSense(current, on, closed)
        return senses

    def _setpoint_voltages(self) -> dict[str, float]:
        voltages = {}
        for evse_id in self.pool.evse_ids:
            commanded = self._session.power.commanded(evse_id)
            if commanded is not None and commanded.voltage > 0:
                voltages[evse_id] = commanded.voltage
        return voltages

    def _carry_out(self, command: SwitchingCommand, now: float) -> None:
        match command:
            case LimitEvse(evse, modules):
                view = self._views[evse]
                modules -= self._absent.keys()
                self._leaving[evse] = view.serving - modules
                lowered = bool(self._leaving[evse])
                view.serving = modules
                # Lowered before a move, or raised by modules confirmed connected to it alone
                # and delivering: a deliberate, known-good change, told to Josev at once
                # (neither the settle time of a fluctuating reading nor the update gap).
                self._publish_evse(evse, urgent=True)
                if lowered and self._engine.updates.pending(evse):
                    self._telling[evse] = now
                self._time_update(evse, lowered, now)
            case ReclampSetpoint(evse):
                # The evaluation above re-clamped the setpoint over the modules left; the
                # modules leaving stop now (their share is 0).
                for name in sorted(self._leaving.pop(evse, frozenset())):
                    self._drivers[name].switch_off()
            case SwitchModule(module, on, voltage):
                if on and voltage is not None:
                    self._drivers[module].command(voltage, 0.0, precharge=False)
                else:
                    self._drivers[module].switch_off()
            case SetContactor(bank, evse, closed):
                self.matrix.command(bank, evse, closed)
            case ModuleFault(module, evse, reason):
                self._fault(module, evse, reason)
            case EndSession(evse, module, reason):
                log.error("event=pool_session_ended evse=%s module=%s why=%r", evse, module, reason)
                self._session.switch_off(evse, reason)

    def _time_update(self, evse: str, lowered: bool, now: float) -> None:
        """Time the decision's update of the EVSE until it is taken to go to Josev: a lowered
        limit from the decision, the raise that completes the decision from the step that
        found its modules delivering."""
        status = self.status
        if not self._engine.updates.pending(evse) or status.decided_on_clock is None:
            return
        if lowered:
            self._told_from[evse] = (status.decision, "decision", status.decided_on_clock)
        elif self.sequencer.settled:
            self._told_from[evse] = (status.decision, "delivering", now)

    def _update_taken(self, evse_id: str, at: float) -> None:
        timed = self._told_from.pop(evse_id, None)
        if timed is None:
            return
        decision, after, since = timed
        self.status.told[evse_id] = (decision, after, max(0.0, at - since))
        self._publish_soon()  # into its report block

    def _fault(self, module: str, evse: str | None, reason: str) -> None:
        self._counters.add(Counted.HARDWARE_FAULTS, module)
        self.status.moves_started.pop(module, None)
        log.error(
            "event=pool_module_fault pool=%s module=%s evse=%s why=%r -- out of the pool",
            self.pool.name,
            module,
            evse,
            reason,
        )
        for evse_id in [evse] if evse is not None else list(self.pool.evse_ids):
            self._session.pushed.put_nowait(
                Message(
                    HardwareFaultUpdate(evse_id=evse_id, component_name=module, fault_name="other")
                )
            )
        self._again = True  # the allocation leaves it out from the next step

    def _note_progress(self, now: float) -> None:
        status = self.status
        target = self.sequencer.target
        for name, started in list(status.moves_started.items()):
            evse = target.get(name)
            done = (evse is None and self.sequencer.phase(name) is Phase.PARKED) or (
                evse is not None and name in self.sequencer.reported(evse)
            )
            if done:
                del status.moves_started[name]
                self._counters.add(Counted.POOL_MODULE_MOVES, self.pool.name)
                self._counters.observe(Timed.POOL_MODULE_MOVE, self.pool.name, now - started)
        if status.settled_at is None and status.decision and self.sequencer.settled:
            status.settled_at = self._wall()

    # --- what the engine counts, and the report ---------------------------------------------

    def _publish(self, readings: Mapping[str, ModuleReading]) -> None:
        for evse_id in self.pool.evse_ids:
            self._publish_evse(evse_id, readings=readings)

    def _publish_evse(
        self,
        evse_id: str,
        *,
        urgent: bool = False,
        readings: Mapping[str, ModuleReading] | None = None,
    ) -> None:
        if readings is None:
            readings = self._engine.pool_readings(evse_id)
        share = self.share(evse_id)
        counted = frozenset(share.modules if share is not None else ())
        if self._session.sessions[evse_id].state in ENERGY_STATES:
            # Energy may flow: only what is connected to it alone and delivering counts.
            counted = self.serving(evse_id)
        scope = PoolScope(
            self.pool.name,
            counted=counted,
            installation_fraction=self._fraction(share),
            starting=not readings,
            usable=self._usable,
            whole=bool(counted) and counted >= self._usable_names,
        )
        self._engine.set_pool_scope(
            evse_id, scope, self.connected(evse_id), self.report_block(evse_id), urgent=urgent
        )

    def _fraction(self, share: Share | None) -> float:
        """The EVSE's part of the pool's installation limit: its share of the pool's power."""
        if share is None or self._pool_power_w <= 0:
            return 0.0
        return min(1.0, share.max_power_w / self._pool_power_w)

    def report_block(self, evse_id: str) -> dict[str, Any]:
        """The `pool` block of the EVSE's limits report (EvseLimitsReport.json)."""
        status = self.status
        share = self.share(evse_id)
        why = "idle"
        if evse_id in self._since:
            why = "share"
            if self.allocation is not None and any(
                a.evse_id == evse_id and a.why is Why.MINIMUM for a in self.allocation.assignments
            ):
                why = "minimum"
        target = self.sequencer.target
        serving = self.serving(evse_id)
        modules = []
        for module in self.pool.module:
            name = module.name
            phase = self.sequencer.phase(name)
            bus = self.sequencer.bus(name)
            if target.get(name) != evse_id and bus != evse_id:
                continue
            entry: dict[str, Any] = {
                "name": name,
                "phase": phase.value,
                "target": target.get(name),
                "serving": name in serving,
            }
            if name in self._absent:
                entry["absent"] = self._absent[name]
            modules.append(entry)
        told = status.told.get(evse_id)
        return {
            "told": None if told is None else {"decision": told[0], "after": told[1], "s": told[2]},
            "name": self.pool.name,
            "policy": self.pool.policy.value,
            "decision": status.decision,
            "decided_at": status.decided_at,
            "settled": self.sequencer.settled,
            "settled_at": status.settled_at,
            "share_w": share.max_power_w if share is not None else 0.0,
            "why": why,
            "modules": modules,
        }


def pool_module_now(
    module: ModuleConfig, reading: ModuleReading | None, now: float, *, faulted: bool = False
) -> PoolModule:
    """What one pool module can give the allocation now: its capability if it is fresh,
    online, without fault and not over temperature; else nothing (it counts as failed)."""
    if reading is None or reading.export is None:
        return PoolModule(module.name, 0.0, 0.0, healthy=False)
    healthy = (
        not faulted
        and now - reading.at <= module.freshness_deadline_s
        and reading.online
        and not reading.fault
        and not reading.over_temperature
    )
    return PoolModule(
        module.name, reading.export.max_current, reading.export.max_power, healthy=healthy
    )


def module_absence(module: ModuleConfig, reading: ModuleReading | None, now: float) -> str:
    """Why a module that is not usable is out of the allocation (pool_module_now)."""
    if reading is None or now - reading.at > module.freshness_deadline_s:
        return STALE
    if not reading.online:
        return "offline"
    if reading.fault:
        return "fault"
    if reading.over_temperature:
        return "over_temperature"
    return "no_capability"


def idle_allocation(
    pool: PoolConfig, readings: Mapping[str, ModuleReading], now: float
) -> Allocation:
    """The pool's allocation with no session anywhere: what each EVSE would get if its session
    started now (`csbridge replay`, which runs no sessions)."""
    modules = {m.name: pool_module_now(m, readings.get(m.name), now) for m in pool.module}
    states = [
        EvseState(e.evse_id, minimum_power_w=e.minimum_power_w, weight=e.weight) for e in pool.evse
    ]
    return allocate(pool_banks(pool.banks(), modules), states, pool.policy)


def wired_modules(topology: Iterable[BankTopology]) -> dict[str, str]:
    """Each module of a bank wired to its one EVSE without a contactor, and that EVSE: always on
    its bus, so it always serves it (off while it has no session), and never moves."""
    return {
        module: next(iter(bank.evse_ids))
        for bank in topology
        if bank.wired
        for module in bank.modules
    }


def _below(demand: Demand, share: Share) -> bool:
    """The EV's demand is below what its share delivers (in current or in power)."""
    current = min(
        (v for v in (demand.current_a, demand.ev_max_current_a) if v is not None),
        default=None,
    )
    power = min(
        (v for v in (demand.power_w, demand.ev_max_power_w) if v is not None),
        default=None,
    )
    return (current is not None and current < share.max_current_a) or (
        power is not None and power < share.max_power_w
    )


def _above(demand: Demand, share: Share) -> bool:
    """The EV asks for more than its share delivers (its request, in current or power)."""
    return (demand.current_a is not None and demand.current_a > share.max_current_a) or (
        demand.power_w is not None and demand.power_w > share.max_power_w
    )


def _rated_maxima(rated: object) -> tuple[float | None, float | None]:
    """The EV's rated maximum charge current and power from its dc_rated_limits (a number that
    cannot be used is ignored, as the session does)."""
    if not isinstance(rated, Mapping):
        return None, None

    def lowest(quantity: str) -> float | None:
        values = [
            float(value)
            for key, value in rated.items()
            if isinstance(key, str)
            and "max" in key
            and quantity in key
            and "discharge" not in key
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and 0 < value < math.inf
        ]
        return min(values, default=None)

    return lowest("current"), lowest("power")


__all__ = [
    "POOL_SESSION_STATES",
    "PoolCoordinator",
    "PoolStatus",
    "idle_allocation",
    "pool_module_now",
]
