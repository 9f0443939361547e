"""One EVSE's limits at one moment: every source's bound, the tightest one, and its name.

DC current and power are kept apart, each the minimum over the sources that limit it (ISO 15118
carries both and the EV respects both). For AC, a source that limits power becomes a per-phase
current at the nominal voltage and the phases in use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from csbridge.config import (
    CableConfig,
    DeratingConfig,
    EvseConfig,
    ExternalDefaults,
    InstallationConfig,
    Kind,
    ModuleConfig,
)
from csbridge.limits.bounds import Bound, LimitSource, tightest_lower, tightest_upper
from csbridge.limits.derating import DeratingCurve
from csbridge.limits.isolation import IsolationRule, isolation_status
from csbridge.limits.model import (
    AcBptLimits,
    AcLimits,
    DcBptLimits,
    DcLimits,
    EvseSnapshot,
    IsolationStatus,
    PerPhase,
    StatusCode,
)
from csbridge.limits.pool_scope import PoolScope
from csbridge.limits.stack import DirectionTotals, ModuleSpec, StackState, compose_stack
from csbridge.limits.status import StatusFacts, allows_energy, decide_status
from csbridge.sources import (
    BoardReading,
    ExternalLimit,
    ImdReading,
    MeterSample,
    ModuleReading,
    OperatorCommand,
    SessionCondition,
)


@dataclass(frozen=True, slots=True)
class EvseInputs:
    """The latest reading of every source of one EVSE (None: nothing since start)."""

    modules: Mapping[str, ModuleReading] = field(default_factory=dict)
    imd: ImdReading | None = None
    board: BoardReading | None = None
    external: ExternalLimit | None = None
    operator: OperatorCommand | None = None
    session: SessionCondition | None = None
    meter: MeterSample | None = None
    pool: PoolScope | None = None
    """A pooled EVSE's view of its pool (its `modules` are then those connected to it)."""


@dataclass(frozen=True, slots=True)
class Composition:
    snapshot: EvseSnapshot
    binding: Mapping[str, LimitSource]
    facts: StatusFacts
    stack: StackState | None = None
    meter_disagrees: frozenset[str] = frozenset()
    """The quantities (voltage, current) on which a fresh meter and the modules disagree by
    more than the meter's tolerance."""


@dataclass(frozen=True, slots=True)
class _Curves:
    module_current: tuple[DeratingCurve, ...]
    module_power: tuple[DeratingCurve, ...]
    evse_current: tuple[tuple[str, DeratingCurve], ...]
    evse_power: tuple[tuple[str, DeratingCurve], ...]


def _curves(derating: list[DeratingConfig]) -> _Curves:
    def pick(inputs: set[str], quantity: str) -> list[DeratingConfig]:
        return [c for c in derating if c.input in inputs and c.quantity == quantity]

    return _Curves(
        module_current=tuple(DeratingCurve.of(c.points) for c in pick({"module"}, "current")),
        module_power=tuple(DeratingCurve.of(c.points) for c in pick({"module"}, "power")),
        evse_current=tuple(
            (c.input, DeratingCurve.of(c.points)) for c in pick({"evse", "plug"}, "current")
        ),
        evse_power=tuple(
            (c.input, DeratingCurve.of(c.points)) for c in pick({"evse", "plug"}, "power")
        ),
    )


@dataclass(frozen=True, slots=True)
class _SiteBounds:
    current: tuple[Bound, ...]
    power: tuple[Bound, ...]


def _cable_bounds(cable: CableConfig | None, board: BoardReading | None) -> list[Bound]:
    """The configured cable rating and, where the board codes one, the plugged cable's (PP)."""
    bounds = []
    if cable is not None:
        bounds.append(Bound(cable.max_current_a, LimitSource.CABLE))
    if board is not None and board.cable_max_current_a is not None:
        bounds.append(Bound(board.cable_max_current_a, LimitSource.CABLE))
    return bounds


@dataclass(frozen=True, slots=True)
class ExternalInForce:
    """The external limit that holds now."""

    limit: ExternalLimit | None
    """The external limit still valid now, as it was given; None: the configured default holds."""
    max_power: float | None
    """What binds: the valid limit's own value, else the configured default (None: no bound)."""
    max_current: float | None
    max_discharge_power: float | None = None
    """The discharge power that binds (None: max_power bounds discharge too)."""


def external_in_force(
    defaults: ExternalDefaults, external: ExternalLimit | None, now: float
) -> ExternalInForce:
    """A valid external limit, else the configured default; a quantity the valid limit leaves
    out falls back to its default too."""
    if external is not None and now < external.until:
        return ExternalInForce(
            external,
            external.max_power if external.max_power is not None else defaults.max_power_w,
            external.max_current if external.max_current is not None else defaults.max_current_a,
            (
                external.max_discharge_power
                if external.max_discharge_power is not None
                else defaults.max_discharge_power_w
            ),
        )
    return ExternalInForce(
        None, defaults.max_power_w, defaults.max_current_a, defaults.max_discharge_power_w
    )


def _fresh(
    reading: BoardReading | ImdReading | MeterSample | None, now: float, deadline_s: float
) -> bool:
    return reading is not None and now - reading.at <= deadline_s


def fresh_meter(evse: EvseConfig, inputs: EvseInputs, now: float) -> MeterSample | None:
    """The EVSE's meter sample while it is fresh; None: no meter, or silent past its deadline
    (its last good value then counts for nothing). The one freshness rule for what a meter
    says now: the limits, the meter_values answer and the pushed updates all read it here."""
    meter = evse.meter
    if meter is None or not _fresh(inputs.meter, now, meter.deadline_s):
        return None
    return inputs.meter


class EvseComposer:
    """Composes one configured EVSE; the configuration is digested once, not per evaluation."""

    def __init__(self, config: EvseConfig, pool_modules: Sequence[ModuleConfig] = ()) -> None:
        """`pool_modules`: the modules of the shared pool that feeds the EVSE (none: it is
        not pooled and its own `[[evse.module]]` are its stack)."""
        self.config = config
        self._curves = _curves(config.derating)
        self._specs = tuple(
            ModuleSpec(m.name, m.freshness_deadline_s, m.bidirectional)
            for m in (*config.module, *pool_modules)
        )
        self.pooled = bool(pool_modules)
        self._pool_now: PoolScope | None = None
        """The pool scope of the composition under way (a pooled EVSE's)."""
        self._out_of_service = False
        """The last composition's shutdown came from availability alone (its binding source)."""

    @property
    def module_names(self) -> frozenset[str]:
        return frozenset(spec.name for spec in self._specs)

    def compose(self, inputs: EvseInputs, now: float) -> Composition:
        if self.config.kind is Kind.DC:
            return self._compose_dc(inputs, now)
        return self._compose_ac(inputs, now)

    # -- shared pieces -------------------------------------------------------------------

    def _board(self, inputs: EvseInputs, now: float) -> BoardReading | None:
        board = self.config.board
        if board is None or not _fresh(inputs.board, now, board.deadline_s):
            return None
        return inputs.board

    def _temperature_bounds(self, board: BoardReading | None) -> tuple[list[Bound], list[Bound]]:
        """EVSE and plug curves; a missing or stale temperature is the worst case."""

        def temperature(input_name: str) -> float | None:
            if board is None:
                return None
            return board.evse_temperature_c if input_name == "evse" else board.plug_temperature_c

        current = [
            Bound(curve.limit_at(temperature(name)), LimitSource.TEMPERATURE)
            for name, curve in self._curves.evse_current
        ]
        power = [
            Bound(curve.limit_at(temperature(name)), LimitSource.TEMPERATURE)
            for name, curve in self._curves.evse_power
        ]
        return current, power

    def _facts(
        self,
        inputs: EvseInputs,
        now: float,
        board: BoardReading | None,
        *,
        isolation: IsolationStatus = IsolationStatus.NO_IMD,
        stack: StackState | None = None,
    ) -> StatusFacts:
        config = self.config
        imd_failed = False
        self_test = False
        if config.imd is not None and inputs.imd is not None:
            imd_fresh = _fresh(inputs.imd, now, config.imd.deadline_s)
            imd_failed = inputs.imd.device_fault or not imd_fresh
            self_test = imd_fresh and inputs.imd.self_test_running
        board_failed = (
            config.board is not None and inputs.board is not None and (board is None or board.fault)
        )
        pool = inputs.pool if self.pooled else None
        waiting = (
            (stack is not None and stack.configured > 0 and stack.starting)
            or (pool is not None and pool.starting)
            or (config.imd is not None and inputs.imd is None)
            or (config.board is not None and inputs.board is None)
            or (config.meter is not None and inputs.meter is None)
        )
        return StatusFacts(
            emergency_stop=board is not None and board.emergency_stop,
            isolation_fault=isolation is IsolationStatus.FAULT,
            rcd_error=config.kind is Kind.AC and board is not None and board.rcd_error,
            station_stopping=inputs.operator is not None and inputs.operator.station_stopping,
            modules_lost=(
                stack is not None
                and stack.configured > 0
                and not stack.healthy
                and not stack.starting
            )
            or (pool is not None and not pool.starting and pool.usable == 0)
            or any(module.stops_evse for module in inputs.modules.values()),
            imd_failed=imd_failed,
            board_failed=board_failed,
            meter_failed=config.meter is not None
            and inputs.meter is not None
            and self._meter(inputs, now) is None,
            input_lost=stack is not None and stack.input_lost,
            disabled=inputs.operator is not None and not inputs.operator.enabled,
            unavailable=inputs.session is not None and not inputs.session.operative,
            stray_output=inputs.session is not None and bool(inputs.session.stray_output),
            self_test_running=self_test,
            waiting_for_first_data=waiting,
        )

    def _meter(self, inputs: EvseInputs, now: float) -> MeterSample | None:
        return fresh_meter(self.config, inputs, now)

    def _present(
        self, inputs: EvseInputs, now: float, stack: StackState | None, *, importing: bool
    ) -> tuple[float, float, frozenset[str]]:
        """(present voltage, present current, disagreements): the meter's where one is fresh
        and measures DC, else the modules' sums. The current is signed: negative while energy
        flows back from the EV (the meter signs it itself; the modules' sum carries no sign)."""
        voltage = stack.present_voltage if stack else 0.0
        carried = stack.present_current if stack else 0.0
        current = -carried if importing else carried
        meter = self._meter(inputs, now)
        if meter is None:
            return voltage, current, frozenset()
        disagrees: set[str] = set()
        config = self.config.meter
        assert config is not None  # a fresh sample means a configured meter
        if meter.dc_voltage_v is not None:
            if stack is not None and abs(meter.dc_voltage_v - voltage) > config.voltage_tolerance_v:
                disagrees.add("voltage")
            voltage = max(0.0, meter.dc_voltage_v)
        if meter.dc_current_a is not None:
            # Magnitudes: the modules report what they carry, the meter signs the direction.
            if stack is not None and abs(abs(meter.dc_current_a) - abs(current)) > (
                config.current_tolerance_a
            ):
                disagrees.add("current")
            current = meter.dc_current_a
        return voltage, current, frozenset(disagrees)

    def _zero_source(self, status: StatusCode) -> LimitSource:
        if status is not StatusCode.EVSE_SHUTDOWN:
            return LimitSource.SAFETY
        return LimitSource.AVAILABILITY if self._out_of_service else LimitSource.OPERATOR

    # -- DC ------------------------------------------------------------------------------

    def _stack_source(self, stack: StackState, derated: bool) -> LimitSource:
        if derated or stack.thermally_limited:
            return LimitSource.TEMPERATURE
        if stack.absent:
            return LimitSource.MODULE_DROPOUT
        if self._pool_now is not None and not self._pool_now.whole:
            return LimitSource.POOL  # the allocation gives it less than the pool has
        return LimitSource.HARDWARE

    def _installation_power(self, installation: InstallationConfig | None) -> Bound | None:
        if installation is None:
            return None
        candidates = []
        if installation.max_power_w is not None:
            candidates.append(installation.max_power_w)
        if installation.max_current_a is not None:
            candidates.append(
                installation.max_current_a * installation.grid_voltage_v * installation.grid_phases
            )
        if not candidates:
            return None
        return Bound(min(candidates) * installation.efficiency, LimitSource.INSTALLATION)

    def _site_bounds(
        self, inputs: EvseInputs, now: float, board: BoardReading | None, *, discharge: bool = False
    ) -> _SiteBounds:
        """Bounds that limit energy in both directions: cable, grid, heat, the outside world.
        Discharge adds the installation's export limit, and takes the external discharge power
        in place of the external power where one is given."""
        config = self.config
        thermal_current, thermal_power = self._temperature_bounds(board)
        current = [*thermal_current, *_cable_bounds(config.cable, board)]
        power = list(thermal_power)
        installation = self._installation_power(config.installation)
        if installation is not None and self.pooled:
            # Shared: the pool's one grid connection, split in the allocation's proportion.
            fraction = inputs.pool.installation_fraction if inputs.pool is not None else 0.0
            installation = Bound(installation.value * fraction, installation.source)
        if installation is not None:
            power.append(installation)
        export_limit = config.installation.max_export_power_w if config.installation else None
        if discharge and export_limit is not None:
            power.append(Bound(export_limit, LimitSource.INSTALLATION))
        external = external_in_force(config.external, inputs.external, now)
        external_power = external.max_power
        if discharge and external.max_discharge_power is not None:
            external_power = external.max_discharge_power
        if external_power is not None:
            power.append(Bound(external_power, LimitSource.EXTERNAL))
        if external.max_current is not None:
            current.append(Bound(external.max_current, LimitSource.EXTERNAL))
        return _SiteBounds(tuple(current), tuple(power))

    def _direction(
        self,
        rated: tuple[float | None, float | None],
        totals: DirectionTotals | None,
        stack: StackState | None,
        site: _SiteBounds,
        status: StatusCode,
    ) -> tuple[Bound, Bound]:
        """(max current, max power) in one direction: nameplate, stack, site, status."""
        rated_current, rated_power = rated
        current = list(site.current)
        power = list(site.power)
        if rated_current is not None:
            current.append(Bound(rated_current, LimitSource.HARDWARE))
        if rated_power is not None:
            power.append(Bound(rated_power, LimitSource.HARDWARE))
        if stack is not None and totals is not None:
            derated_current = totals.max_current < totals.rated_current
            derated_power = totals.max_power < totals.rated_power
            current.append(Bound(totals.max_current, self._stack_source(stack, derated_current)))
            power.append(Bound(totals.max_power, self._stack_source(stack, derated_power)))
        if not allows_energy(status):
            zero = Bound(0.0, self._zero_source(status))
            current.append(zero)
            power.append(zero)
        return tightest_upper(current), tightest_upper(power)

    def _dc_voltage(self, stack: StackState | None, status: StatusCode) -> tuple[Bound, Bound]:
        """(max voltage, min voltage): nameplate, stack, cable, and 0 when the status stops
        energy, like every other maximum."""
        rated = self.config.dc_limits
        assert rated is not None
        upper: list[Bound] = []
        lower = [Bound(rated.min_voltage_v, LimitSource.HARDWARE)]
        if rated.max_voltage_v is not None:
            upper.append(Bound(rated.max_voltage_v, LimitSource.HARDWARE))
        if stack is not None:
            if stack.healthy:
                upper.append(Bound(stack.export.max_voltage, LimitSource.HARDWARE))
                lower.append(Bound(stack.export.min_voltage, LimitSource.HARDWARE))
            else:
                upper.append(Bound(0.0, self._stack_source(stack, False)))
        cable = self.config.cable
        if cable is not None and cable.max_voltage_v is not None:
            upper.append(Bound(cable.max_voltage_v, LimitSource.CABLE))
        if not allows_energy(status):
            upper.append(Bound(0.0, self._zero_source(status)))
        return tightest_upper(upper), tightest_lower(lower)

    def _isolation(self, inputs: EvseInputs, now: float) -> IsolationStatus:
        """Judged against the rated voltage, never the live one: a stack that lost its modules
        reports 0 V, and 0 Ohm/V would call any insulation valid."""
        imd = self.config.imd
        if imd is None:
            return IsolationStatus.NO_IMD
        rated = self.config.dc_limits
        rated_voltage = imd.rated_voltage_v or (rated.max_voltage_v if rated else None) or 0.0
        return isolation_status(
            inputs.imd,
            now=now,
            deadline_s=imd.deadline_s,
            rule=IsolationRule(imd.rule),
            rated_voltage=rated_voltage,
        )

    def _pool_stacks(self, inputs: EvseInputs, now: float) -> tuple[StackState, StackState]:
        """(capability, present): the capability of the modules the pool counts for the EVSE
        now; the present voltage and current of those connected to its bus."""
        scope = inputs.pool or PoolScope("")
        counted = compose_stack(
            [spec for spec in self._specs if spec.name in scope.counted],
            scope.readings,
            now,
            self._curves.module_current,
            self._curves.module_power,
        )
        present = compose_stack(
            [spec for spec in self._specs if spec.name in inputs.modules], inputs.modules, now
        )
        return counted, present

    def _compose_dc(self, inputs: EvseInputs, now: float) -> Composition:
        config = self.config
        rated = config.dc_limits
        assert rated is not None  # EvseConfig guarantees it for a dc EVSE
        board = self._board(inputs, now)
        stack = present_stack = None
        if config.module:
            stack = present_stack = compose_stack(
                self._specs,
                inputs.modules,
                now,
                self._curves.module_current,
                self._curves.module_power,
            )
        elif self.pooled:
            stack, present_stack = self._pool_stacks(inputs, now)
        self._pool_now = inputs.pool if self.pooled else None
        isolation = self._isolation(inputs, now)
        facts = self._facts(inputs, now, board, isolation=isolation, stack=stack)
        status = decide_status(facts)
        self._out_of_service = _out_of_service_only(facts)
        max_voltage, min_voltage = self._dc_voltage(stack, status)
        site = self._site_bounds(inputs, now, board)
        max_current, max_power = self._direction(
            (rated.max_current_a, rated.max_power_w),
            stack.export if stack else None,
            stack,
            site,
            status,
        )
        min_current = [Bound(rated.min_current_a, LimitSource.HARDWARE)]
        if stack is not None and stack.healthy:
            min_current.append(Bound(stack.export.min_current, LimitSource.HARDWARE))
        lowest_current = tightest_lower(min_current)
        binding = {
            "max_current": max_current.source,
            "max_power": max_power.source,
            "max_voltage": max_voltage.source,
            "min_voltage": min_voltage.source,
            "min_current": lowest_current.source,
        }
        importing = inputs.session is not None and inputs.session.importing
        present_voltage, present_current, disagrees = self._present(
            inputs, now, present_stack, importing=importing
        )
        dc = DcLimits(
            present_voltage=present_voltage,
            present_current=present_current,
            max_current=max_current.value,
            min_current=min(lowest_current.value, max_current.value),
            max_voltage=max_voltage.value,
            min_voltage=min(min_voltage.value, max_voltage.value),
            max_power=max_power.value,
            peak_current_ripple=rated.peak_current_ripple_a,
            current_reg_tolerance=rated.current_reg_tolerance_a,
            energy_to_be_delivered=rated.energy_to_be_delivered_wh,
            power_ramp_limit=rated.power_ramp_limit_w_per_s,
            isolation_status=isolation,
        )
        dc_bpt = None
        bpt = config.dc_bpt_limits
        if config.bpt and bpt is not None:
            rated_discharge = (bpt.max_discharge_current_a, bpt.max_discharge_power_w)
            totals = stack.discharge if stack else None
            if config.module and not any(m.bidirectional for m in config.module):
                rated_discharge = (0.0, 0.0)  # no module can take energy back: the hardware says 0
                totals = None
            discharge_current, discharge_power = self._direction(
                rated_discharge,
                totals,
                stack,
                self._site_bounds(inputs, now, board, discharge=True),
                status,
            )
            dc_bpt = DcBptLimits(
                max_discharge_power=discharge_power.value,
                min_discharge_power=min(bpt.min_discharge_power_w, discharge_power.value),
                max_discharge_current=discharge_current.value,
                min_discharge_current=min(bpt.min_discharge_current_a, discharge_current.value),
            )
            binding["evse_max_discharge_current"] = discharge_current.source
            binding["evse_max_discharge_power"] = discharge_power.source
        snapshot = EvseSnapshot(evse_id=config.evse_id, status_code=status, dc=dc, dc_bpt=dc_bpt)
        return Composition(snapshot, binding, facts, stack, disagrees)

    # -- AC ------------------------------------------------------------------------------

    def _ac_site_current(
        self, inputs: EvseInputs, now: float, board: BoardReading | None, per_phase_w: float
    ) -> list[Bound]:
        """Per-phase current bounds from cable, grid, heat and the outside world; powers are
        spread over the phases in use at the nominal voltage."""
        config = self.config
        current: list[Bound] = _cable_bounds(config.cable, board)
        installation = config.installation
        if installation is not None:
            if installation.max_current_a is not None:
                current.append(Bound(installation.max_current_a, LimitSource.INSTALLATION))
            if installation.max_power_w is not None:
                current.append(
                    Bound(installation.max_power_w / per_phase_w, LimitSource.INSTALLATION)
                )
        thermal_current, thermal_power = self._temperature_bounds(board)
        current += thermal_current
        current += [Bound(b.value / per_phase_w, b.source) for b in thermal_power]
        external = external_in_force(config.external, inputs.external, now)
        if external.max_current is not None:
            current.append(Bound(external.max_current, LimitSource.EXTERNAL))
        if external.max_power is not None:
            current.append(Bound(external.max_power / per_phase_w, LimitSource.EXTERNAL))
        return current

    def _compose_ac(self, inputs: EvseInputs, now: float) -> Composition:
        config = self.config
        rated = config.ac_limits
        assert rated is not None  # EvseConfig guarantees it for an ac EVSE
        assert config.nominal_voltage is not None
        voltage = float(config.nominal_voltage)
        board = self._board(inputs, now)
        phases: int = config.phases
        if board is not None and board.phases is not None:
            phases = min(phases, max(1, board.phases))
        site = self._ac_site_current(inputs, now, board, voltage * phases)
        facts = self._facts(inputs, now, board)
        status = decide_status(facts)
        self._out_of_service = _out_of_service_only(facts)
        zero = [] if allows_energy(status) else [Bound(0.0, self._zero_source(status))]

        current = [*site, *zero, Bound(rated.max_current_a, LimitSource.HARDWARE)]
        if board is not None and board.max_current_a is not None:
            current.append(Bound(board.max_current_a, LimitSource.HARDWARE))
        max_current = tightest_upper(current)
        ac = AcLimits(
            max_current=PerPhase.uniform(max_current.value, phases),
            nominal_voltage=voltage,
            rcd_error=board.rcd_error if board is not None else False,
        )
        binding = {"max_current": max_current.source}
        ac_bpt = None
        bpt = config.ac_bpt_limits
        if config.bpt and bpt is not None:
            # Discharge power per phase (W): every per-phase current bound at the nominal voltage.
            power = [Bound(b.value * voltage, b.source) for b in [*site, *zero]]
            power.append(Bound(bpt.max_discharge_power_w, LimitSource.HARDWARE))
            if board is not None and board.max_discharge_current_a is not None:
                power.append(Bound(board.max_discharge_current_a * voltage, LimitSource.HARDWARE))
            maximum = tightest_upper(power)
            ac_bpt = AcBptLimits(
                max_discharge_power=PerPhase.uniform(maximum.value, phases),
                min_discharge_power=PerPhase.uniform(
                    min(bpt.min_discharge_power_w, maximum.value), phases
                ),
            )
            binding["evse_max_discharge_power"] = maximum.source
        snapshot = EvseSnapshot(evse_id=config.evse_id, status_code=status, ac=ac, ac_bpt=ac_bpt)
        return Composition(snapshot, binding, facts)


def _out_of_service_only(facts: StatusFacts) -> bool:
    """Shut down because change_availability took the EVSE out of service, and nothing else."""
    return facts.unavailable and not facts.disabled and not facts.station_stopping
