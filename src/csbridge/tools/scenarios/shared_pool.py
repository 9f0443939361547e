"""`csbridge emulate --scenario shared-pool`: two EVs on two DC EVSEs that share one pool of
modules (examples/shared-pool.toml: six simulated 30 kW modules in a full matrix,
equal_share), each simulated as the dc-session simulates one EV.

EV1 charges alone and is offered the whole pool; EV2 arrives and each gets half; EV2's demand
drops to one module's worth and, after the pool's settle time, its spare modules go back to
EV1; one of EV1's modules fails and EV1's limit drops; EV1 leaves and EV2, asking for full power
again, gets every module that remains. Each step is checked on what Josev receives (the
cs_status_and_limits updates) and on the `pool` block of both EVSEs' limits reports, and its
detail gives the times from the allocation decision (`decided_at`) to the donor's update (the
EVSE whose limit is lowered), to the receiver's update (and how long after its modules
delivered), and to the modules moved (`settled_at`). The failed module's dropout is a decision
of its own: it counts for nothing at once and the rest is re-shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from csbridge.messages import Message
from csbridge.tools.emulator import EmulatorError, JosevEmulator
from csbridge.tools.scenarios.common import (
    POLL_S,
    SimulatedEvse,
    StepAction,
    StepFailedError,
    StepResult,
    run_steps,
)
from csbridge.tools.scenarios.ev_loop import VOLTAGE_V, EvLoop
from csbridge.tools.scenarios.pool_view import (
    Expected,
    MoveTiming,
    PoolView,
    arrivals,
    mismatch,
    offered_w,
    status_updates,
    timing,
)
from csbridge.tools.scenarios.watch import OutputWatch

MODULE_W: Final = 30_000.0
"""One module of the example's pool."""
FULL_DEMAND_A: Final = 1000.0
"""What an EV asking for full power asks for: more than the pool gives."""
EV_RATED: Final = {"max_voltage": 500.0, "max_charge_current": 500.0, "max_charge_power": 350_000.0}
"""The EVs' rated limits (a 350 kW EV): what they tell Josev at ChargeParameterDiscovery."""
LOW_DEMAND_A: Final = MODULE_W / VOLTAGE_V
"""EV2's lowered demand: one module's worth at the loop's voltage."""
LOW_RATED: Final = {**EV_RATED, "max_charge_current": LOW_DEMAND_A, "max_charge_power": MODULE_W}
FAIL_ACTION: Final = "silence_module"
"""How a module fails: the simulate topic's one way (it stops answering)."""
REPORT_WAIT_S: Final = 5.0
"""How long the boot waits for an EVSE's retained limits report."""
MOVE_TIMEOUT_S: Final = 30.0
"""How long a step waits for the pool to settle where it expects: the settle time before a
lower demand gives modules back, then the moves."""


@dataclass(frozen=True, slots=True)
class Mark:
    """Before a step's cause: the latest decision, what Josev was told of each EVSE's power,
    and when (time.time())."""

    decision: int
    told: Mapping[str, float | None]
    since: float


@dataclass
class SharedPool:
    josev: JosevEmulator
    watch: OutputWatch
    local_prefix: str = "csbridge"
    ev1: SimulatedEvse = field(init=False)
    ev2: SimulatedEvse = field(init=False)
    loops: dict[str, EvLoop] = field(init=False, default_factory=dict)
    modules: int = 0
    """How many modules the pool has (its whole power over one module's)."""
    failed: str | None = None
    """The module this run silenced."""
    moves: list[MoveTiming] = field(default_factory=list)
    """Each step's decision, timed."""
    _wall_offset: float = field(init=False, default=0.0)
    _mark: Mark | None = field(init=False, default=None)

    name = "shared-pool"

    def __post_init__(self) -> None:
        self.ev1 = SimulatedEvse(self.josev, self.local_prefix)
        self.ev2 = SimulatedEvse(self.josev, self.local_prefix)
        self._wall_offset = time.time() - time.perf_counter()

    def steps(self) -> list[tuple[str, StepAction]]:
        return [
            ("boot: two DC EVSEs on one pool", self._boot),
            ("EV1 plugs in, to precharge", lambda: self._start(self.ev1)),
            ("EV1 charges alone: the whole pool", self._ev1_alone),
            ("EV2 plugs in, to precharge", lambda: self._start(self.ev2)),
            ("EV2 charges: half each", self._ev2_arrives),
            ("EV2 asks for one module: the rest back to EV1", self._ev2_lower),
            ("one of EV1's modules fails", self._module_fails),
            ("EV1 stops and leaves", self._ev1_leaves),
            ("EV2 asks for full power: all that remains", self._ev2_full),
            ("EV2 stops and leaves", self._ev2_leaves),
        ]

    async def run(self) -> list[StepResult]:
        return await run_steps(self.steps(), self._cleanup)

    @property
    def names(self) -> dict[str, str]:
        return {self.ev1.evse_id: "EV1", self.ev2.evse_id: "EV2"}

    # -- the steps --------------------------------------------------------------------------

    async def _boot(self) -> str:
        parameters, _ = await self.josev.boot()
        pooled = await self._pooled_dc_evses(parameters)
        if len(pooled) < 2:
            raise StepFailedError(f"needs two DC EVSEs on one pool, found {pooled}")
        (self.ev1.evse_id, self.ev1.connector_id), (self.ev2.evse_id, self.ev2.connector_id) = (
            pooled[:2]
        )
        view = self._view(self.ev1.evse_id)
        # An idle EVSE lists no modules: it would get the whole pool, which says how many.
        self.modules = round(view.share_w / MODULE_W)
        whole = MODULE_W * self.modules
        if self.modules < 2:
            raise StepFailedError(f"a pool of {view.share_w:.0f} W: needs two modules or more")
        for evse in (self.ev1, self.ev2):
            if evse.entry()["status_code"] != "evse_ready":
                raise StepFailedError(f"{evse.evse_id} is {evse.entry()['status_code']}")
            told = offered_w(evse.entry())
            if told is None or abs(told - whole) > 1.0:
                raise StepFailedError(f"idle {evse.evse_id} offers {told} W, not {whole:.0f} W")
        return (
            f"{self.ev1.evse_id} and {self.ev2.evse_id} on pool {view.name} ({view.policy}),"
            f" {self.modules} modules, {whole / 1000:.0f} kW offered to each while idle"
        )

    async def _start(self, evse: SimulatedEvse) -> str:
        """An EV's session up to precharge; what the pool does meanwhile counts in the next
        step, which starts the EV's charge loop."""
        self._mark = self._marked()
        return await evse.start_dc_session()

    async def _ev1_alone(self) -> str:
        # Who holds the modules while both EVSEs are idle is the station's choice: EV1's
        # start need not change any target, so no later decision is asked for.
        self._loop(self.ev1).start()
        await self._loop(self.ev1).ask(FULL_DEMAND_A, EV_RATED)
        move = await self._settled(
            {self.ev1.evse_id: Expected(self._modules_w(self.modules), self.modules)},
            new_decision=False,
        )
        return f"EV1 {self._kw(self.ev1)}; {move}"

    async def _ev2_arrives(self) -> str:
        self._loop(self.ev2).start()
        await self._loop(self.ev2).ask(FULL_DEMAND_A, EV_RATED)
        half = self.modules // 2
        move = await self._settled(
            {
                self.ev1.evse_id: Expected(self._modules_w(half), half),
                self.ev2.evse_id: Expected(self._modules_w(half), half),
            },
        )
        return f"EV1 {self._kw(self.ev1)}, EV2 {self._kw(self.ev2)}; {move}"

    async def _ev2_lower(self) -> str:
        self._mark = self._marked()
        await self._loop(self.ev2).ask(LOW_DEMAND_A, LOW_RATED)
        rest = self.modules - 1
        move = await self._settled(
            {
                self.ev1.evse_id: Expected(self._modules_w(rest), rest),
                self.ev2.evse_id: Expected(self._modules_w(1), 1),
            },
        )
        return f"EV1 {self._kw(self.ev1)}, EV2 {self._kw(self.ev2)}; {move}"

    async def _module_fails(self) -> str:
        self._mark = self._marked()
        serving = self._view(self.ev1.evse_id).serving(self.ev1.evse_id)
        if not serving:
            raise StepFailedError("no module serves EV1")
        self.failed = serving[-1]
        since = len(self.josev.updates)
        # The simulated pool's modules answer on its first EVSE's simulate topic (EV1's).
        await self.ev1.simulate(FAIL_ACTION, self.failed)
        rest = len(serving) - 1
        # The dropout is a decision: the silent module counts for nothing at once and the
        # rest is re-shared. Its current cannot be read, so it stays connected where it is
        # (commanded off, not serving) until its own watchdog has surely switched it off.
        move = await self._settled(
            {
                self.ev1.evse_id: Expected(self._modules_w(rest), rest),
                self.ev2.evse_id: Expected(self._modules_w(1), 1),
            },
        )
        gone = self._view(self.ev1.evse_id).module(self.failed)
        where = "out of the pool"
        if gone is not None:
            where = f"{gone.phase} on {gone.target}, absent: {gone.absent or '-'}"
        faults = [
            f"{m.data['component_name']} {m.data['fault_name']}"
            for m in self.josev.updates[since:]
            if m.name == "hardware_fault" and m.data.get("evse_id") == self.ev1.evse_id
        ]
        told = f"hardware_fault {', '.join(faults)}" if faults else "no hardware_fault"
        return f"{self.failed} silent ({where}): EV1 {self._kw(self.ev1)}, {told}; {move}"

    async def _ev1_leaves(self) -> str:
        await self._loop(self.ev1).stop()
        self._loop(self.ev1).check()
        stopped = await self.ev1.stop()
        await self.ev1.pilot("ev_pause", "B2")
        await self.ev1.unplug()

        # The failed module may stay where it fell silent; every other goes.
        kept = {self.failed} if self.failed is not None else set()

        def released(report: dict[str, Any]) -> bool:
            view = PoolView.of(report)
            return view is not None and view.settled and set(view.serving(self.ev1.evse_id)) <= kept

        if await self.watch.wait_report(self.ev1.evse_id, released, MOVE_TIMEOUT_S) is None:
            raise StepFailedError(f"modules still serve EV1: {self._view(self.ev1.evse_id)}")
        left = self._view(self.ev1.evse_id).serving(self.ev1.evse_id)
        return f"{stopped}, unplugged; on EV1's bus now: {', '.join(left) or 'none'}"

    async def _ev2_full(self) -> str:
        self._mark = self._marked()
        await self._loop(self.ev2).ask(FULL_DEMAND_A, EV_RATED)
        remaining = self.modules - (self.failed is not None)
        move = await self._settled(
            {self.ev2.evse_id: Expected(self._modules_w(remaining), remaining)}
        )
        return f"EV2 {self._kw(self.ev2)}; {move}"

    async def _ev2_leaves(self) -> str:
        await self._loop(self.ev2).stop()
        self._loop(self.ev2).check()
        stopped = await self.ev2.stop()
        await self.ev2.pilot("ev_pause", "B2")
        await self.ev2.unplug()
        await self._restore()
        rounds = ", ".join(
            f"{self.names[evse_id]} {loop.rounds} setpoints, at most {loop.worst_a:.0f} A"
            for evse_id, loop in self.loops.items()
        )
        return f"{stopped}, unplugged; {rounds}"

    # -- what the steps share ---------------------------------------------------------------

    async def _pooled_dc_evses(self, parameters: Message) -> list[tuple[str, int]]:
        """The DC EVSEs (and their connector ids) whose limits reports (retained: the watch
        has them from its start) name the same pool, in cs_parameters' order."""
        found: list[tuple[str, int, str]] = []
        for evse in parameters.data["parameters"]:
            connector = next((c for c in evse["connectors"] if "dc" in c["services"]), None)
            if connector is None:
                continue
            evse_id = str(evse["evse_id"])
            report = await self.watch.wait_report(
                evse_id, lambda r: PoolView.of(r) is not None, REPORT_WAIT_S
            )
            view = PoolView.of(report) if report is not None else None
            if view is not None:
                found.append((evse_id, int(connector["id"]), view.name))
        pool = found[0][2] if found else None
        return [(evse_id, connector) for evse_id, connector, name in found if name == pool]

    def _loop(self, evse: SimulatedEvse) -> EvLoop:
        return self.loops.setdefault(evse.evse_id, EvLoop(evse))

    def _view(self, evse_id: str) -> PoolView:
        view = PoolView.of(self.watch.reports.get(evse_id, {}))
        if view is None:
            raise StepFailedError(f"{evse_id}'s limits report has no pool block")
        return view

    def _views(self) -> dict[str, PoolView | None]:
        return {
            evse_id: PoolView.of(self.watch.reports.get(evse_id, {}))
            for evse_id in (self.ev1.evse_id, self.ev2.evse_id)
        }

    def _decision(self) -> int:
        """The latest decision either EVSE's report names."""
        return max((view.decision for view in self._views().values() if view), default=0)

    def _marked(self) -> Mark:
        """Where things stand before something that makes the pool decide."""
        told = {
            evse.evse_id: offered_w(self.josev.view.evses.get(evse.evse_id))
            for evse in (self.ev1, self.ev2)
        }
        return Mark(self._decision(), told, time.time())

    async def _settled(self, expected: Mapping[str, Expected], *, new_decision: bool = True) -> str:
        """Wait until the pool and Josev's view are where `expected` says, after a decision
        later than the mark's (when `new_decision`); that decision, timed (kept in `moves`)."""
        mark = self._mark or self._marked()
        before = mark.decision if new_decision else -1
        deadline = time.monotonic() + MOVE_TIMEOUT_S
        while True:
            self._check_loops()
            why = mismatch(self._views(), self.josev.view.evses, expected, before)
            if why is None:
                break
            if time.monotonic() > deadline:
                raise StepFailedError(f"after {MOVE_TIMEOUT_S:.0f} s: {why}")
            await asyncio.sleep(POLL_S)
        view = self._view(next(iter(expected)))
        timed = arrivals(self.josev.updates, self.josev.exchanges, self._wall_offset)
        final = {evse_id: want.power_w for evse_id, want in expected.items() if want.power_w}
        cause = None if view.decision > mark.decision else mark.since
        move = timing(view, status_updates(timed, mark.since), mark.told, final, cause)
        self.moves.append(move)
        return move.detail(self.names)

    def _check_loops(self) -> None:
        """Each EV's charge loop still going; when one failed, why the station says its
        session stopped (the limits report's last_stop), if it says so."""
        for evse_id, loop in self.loops.items():
            try:
                loop.check()
            except StepFailedError as error:
                session = self.watch.reports.get(evse_id, {}).get("session", {})
                stop = session.get("last_stop", {}).get("reason")
                if stop is None:
                    raise
                state = session.get("state")
                raise StepFailedError(f"{error}; the session is {state}: {stop}") from None

    def _modules_w(self, count: int) -> float:
        return MODULE_W * count

    def _kw(self, evse: SimulatedEvse) -> str:
        told = offered_w(evse.entry())
        return "-" if told is None else f"{told / 1000:.0f} kW"

    async def _restore(self) -> None:
        failed, self.failed = self.failed, None
        if failed is not None:
            await self.ev1.simulate("restore_module", failed)

    async def _cleanup(self) -> None:
        """A failed run leaves no loop running, no power flowing, no module silent."""
        for loop in self.loops.values():
            await loop.stop()
        with contextlib.suppress(EmulatorError):
            for evse in (self.ev1, self.ev2):
                if evse.evse_id:
                    await self.josev.request("stop_charging", {"evse_id": evse.evse_id}, timeout=5)
            await self._restore()
