"""Discharge through the real power path (session/power_path.py) of the tests' station, whose
DC EVSE has a bidirectional stack (fixtures/configs/reading-station.toml: three modules that
import 60 A / 30 kW each, dc_bpt nameplate 150 A / 80 kW, a ramp of 10 kW/s), its limits from
the real limits engine fed with the simulated modules' readings. Scripts of charge and
discharge requests, pauses and outside discharge limits; after every action:

- no commanded import above the reported discharge limits (dc_bpt current and power), nor above
  the EV's own discharge maxima;
- no direction change without a step at 0 A in between (never both directions at once);
- no step in power larger than the ramp allows for the time since the last one, unless a
  limit that dropped forced it down.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csbridge.config import Config, load_config
from csbridge.engine import LimitsEngine
from csbridge.limits import DcRequest, Refused, Setpoint
from csbridge.power import EvsePower, ModuleDriver, NoBoardDriver, NoImdDriver, PowerStage
from csbridge.session.power_path import PowerPath
from csbridge.sources import BoardReading, ExternalLimit, ImdReading
from csbridge.sources.simulated import SimulatedModule
from tests.support import FIXTURES, csbridge_logs_to_devnull, examples

DC = "DE*CSB*E0001"
CONFIG: Config = load_config(FIXTURES / "configs" / "reading-station.toml")
DC_CONFIG = next(evse for evse in CONFIG.evse if evse.evse_id == DC)
assert DC_CONFIG.dc_limits is not None
RAMP_W_PER_S: float = DC_CONFIG.dc_limits.power_ramp_limit_w_per_s or 0.0
assert RAMP_W_PER_S > 0
EPSILON = 1e-6


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True, slots=True)
class Command:
    module: str
    import_: bool | None
    """None: off."""
    voltage: float = 0.0
    current: float = 0.0


@dataclass(slots=True)
class RecordingModule:
    """A bidirectional module driver that records every command and tells its simulated
    module (so the readings the engine sees follow)."""

    name: str
    module: SimulatedModule
    clock: Clock
    log: list[Command]
    watchdog_s: float = 10.0
    min_current_a: float = 1.0

    def command(self, voltage: float, current: float, *, precharge: bool) -> None:
        self.log.append(Command(self.name, False, voltage, current))
        self.module.command(voltage, current, self.clock())

    def command_import(self, voltage: float, current: float) -> None:
        self.log.append(Command(self.name, True, voltage, current))
        self.module.command(voltage, current, self.clock())

    def switch_off(self) -> None:
        self.log.append(Command(self.name, None))
        self.module.switch_off(self.clock())


class Rig:
    def __init__(self) -> None:
        self.clock = Clock()
        self.engine = LimitsEngine(CONFIG, clock=self.clock)
        self.modules = {m.name: SimulatedModule(evse_id=DC, config=m) for m in DC_CONFIG.module}
        self.log: list[Command] = []
        drivers: dict[str, ModuleDriver] = {
            name: RecordingModule(name, module, self.clock, self.log)
            for name, module in self.modules.items()
        }
        stage = PowerStage({DC: EvsePower(drivers, NoBoardDriver(), NoImdDriver())})
        self.power = PowerPath(CONFIG, self.engine, stage, self.clock)
        self.feed()

    def feed(self) -> None:
        now = self.clock()
        for module in self.modules.values():
            self.engine.ingest(DC, module.reading(now))
        self.engine.ingest(DC, ImdReading(at=now, resistance_ohm=5_000_000.0))
        self.engine.ingest(
            DC, BoardReading(at=now, evse_temperature_c=30.0, plug_temperature_c=30.0)
        )
        self.engine.evaluate([DC])

    def reported(self) -> dict[str, float]:
        entry = self.engine.entries.get(DC)
        bpt = entry["dc_bpt"]
        return {
            "import_current": float(bpt["evse_max_discharge_current"]),
            "import_power": float(bpt["evse_max_discharge_power"]),
        }


@dataclass(frozen=True, slots=True)
class Ask:
    discharge: bool
    current: float
    power: float | None
    voltage: float
    ev_max_discharge_current: float | None


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float


@dataclass(frozen=True, slots=True)
class Outside:
    max_discharge_power: float | None


Action = Ask | Wait | Outside

asks = st.builds(
    Ask,
    discharge=st.booleans(),
    current=st.floats(0.0, 300.0),
    power=st.none() | st.floats(0.0, 120_000.0),
    voltage=st.floats(150.0, 920.0),
    ev_max_discharge_current=st.none() | st.floats(1.0, 200.0),
)
actions = st.one_of(
    asks,
    st.builds(Wait, st.floats(0.01, 3.0)),
    st.builds(Outside, st.none() | st.floats(0.0, 90_000.0)),
)


def request_of(ask: Ask) -> DcRequest:
    if ask.discharge:
        return DcRequest(
            voltage=ask.voltage,
            ev_max_voltage=1000.0,
            discharge_current=ask.current,
            discharge_power=ask.power,
            ev_max_discharge_current=ask.ev_max_discharge_current,
        )
    return DcRequest(
        voltage=ask.voltage, ev_max_voltage=1000.0, current=ask.current, power=ask.power
    )


def signed(setpoint: Setpoint | None) -> float:
    if setpoint is None:
        return 0.0
    return -setpoint.total_current if setpoint.import_ else setpoint.total_current


def apply(rig: Rig, action: Action) -> Refused | None:
    """One action on the rig, as the session would run it."""
    if isinstance(action, Wait):
        rig.clock.now += action.seconds
        rig.feed()
        return rig.power.keep_alive(DC)
    if isinstance(action, Outside):
        limit = ExternalLimit(
            at=rig.clock(), until=float("inf"), max_discharge_power=action.max_discharge_power
        )
        rig.engine.ingest(DC, limit)
        rig.engine.evaluate([DC])
        return rig.power.follow_limits(DC)
    rig.clock.now += 0.05
    rig.feed()
    result = rig.power.run(DC, request_of(action))
    return result if isinstance(result, Refused) else None


def check_import_limits(rig: Rig, commanded: Setpoint | None, ev_max: float | None) -> None:
    if commanded is None or not commanded.import_:
        return
    limits = rig.reported()
    total = commanded.total_current
    assert total <= limits["import_current"] + EPSILON
    assert commanded.voltage * total <= limits["import_power"] + EPSILON
    if ev_max is not None:
        assert total <= ev_max + EPSILON
    assert commanded.commanded_current <= total + EPSILON


@settings(
    max_examples=examples(2_000),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(script=st.lists(actions, min_size=1, max_size=30))
def test_discharge_stays_in_limits_passes_zero_and_keeps_the_ramp(script: list[Action]) -> None:
    with csbridge_logs_to_devnull():
        rig = Rig()
        previous: Setpoint | None = None
        last_step_at = rig.clock()
        ev_max: float | None = None
        for action in script:
            if isinstance(action, Ask) and action.discharge:
                ev_max = action.ev_max_discharge_current
            if apply(rig, action) is not None:
                rig.power.off(DC)  # as the session does: the stack off, a step at 0 A
                last_step_at = rig.clock()
            commanded = rig.power.commanded(DC)
            check_import_limits(rig, commanded, ev_max)
            # never both directions at once, and a step at 0 A between them
            before, after = signed(previous), signed(commanded)
            assert before * after >= 0, f"{before} A -> {after} A without a step at 0 A"
            if previous is not None and commanded is not None:
                assert commanded.import_ == previous.import_ or previous.total_current == 0.0
            # the ramp, once a discharge was asked: a larger step only down to a limit
            if commanded is not None and commanded is not previous and _discharged(rig):
                dt = min(rig.clock() - last_step_at, 1.0)
                step_w = abs(commanded.voltage * (after - before))
                if step_w > RAMP_W_PER_S * dt + 1e-3:
                    assert abs(after) < abs(before), (before, after, dt)
                    assert _at_a_ceiling(rig, commanded, ev_max), (before, after, dt)
            if commanded is not previous:
                last_step_at = rig.clock()
            previous = commanded
        assert all(command.current >= 0.0 for command in rig.log)


def _at_a_ceiling(rig: Rig, commanded: Setpoint, ev_discharge_max: float | None) -> bool:
    """The commanded current sits at what the reported limits (and the EV's own discharge
    maximum) allow at its voltage: a limit, not the ramp, set it."""
    entry = rig.engine.entries.get(DC)
    voltage = commanded.voltage
    if commanded.import_:
        bpt = entry["dc_bpt"]
        ceilings = [
            bpt["evse_max_discharge_current"],
            bpt["evse_max_discharge_power"] / voltage,
        ]
        if ev_discharge_max is not None:
            ceilings.append(ev_discharge_max)
    else:
        ceilings = [entry["dc"]["max_current"], entry["dc"]["max_power"] / voltage]
    return bool(commanded.total_current >= min(ceilings) * (1 - 1e-9) - 1e-9)


def _discharged(rig: Rig) -> bool:
    return rig.power.ramped(DC)


def test_a_discharge_after_charging_ramps_down_through_zero_then_imports() -> None:
    with csbridge_logs_to_devnull():
        rig = Rig()
        charge = DcRequest(voltage=400.0, ev_max_voltage=1000.0, current=100.0)
        assert not isinstance(rig.power.run(DC, charge), Refused)
        assert signed(rig.power.commanded(DC)) == 100.0  # charging alone: at once
        discharge = DcRequest(voltage=400.0, ev_max_voltage=1000.0, discharge_current=50.0)
        totals = []
        assert not isinstance(rig.power.run(DC, discharge), Refused)
        totals.append(signed(rig.power.commanded(DC)))
        for _ in range(8):
            rig.clock.now += 1.0
            rig.feed()
            assert rig.power.keep_alive(DC) is None
            totals.append(signed(rig.power.commanded(DC)))
    # 10 kW/s at 400 V: 25 A a second (the first step 0.0 s after the charge: none)
    assert totals == [100.0, 75.0, 50.0, 25.0, 0.0, -25.0, -50.0, -50.0, -50.0]
    imports = [c for c in rig.log if c.import_]
    assert imports
    assert {c.module for c in imports} == set(rig.modules)
    first_import = rig.log.index(imports[0])
    assert all(c.current == 0.0 for c in rig.log[first_import - 3 : first_import])
