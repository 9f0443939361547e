"""limits/ramp.py: steps toward a setpoint, both directions, through 0 A, within the ramp."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from csbridge.limits import ZERO, Ceilings, Step, ramp_step
from tests.support import examples

WIDE = Ceilings(export=1_000.0, import_=1_000.0)


def test_a_charge_to_discharge_goes_down_the_ramp_to_zero_then_up_in_import() -> None:
    step = Step(import_=False, current=100.0)
    target = Step(import_=True, current=50.0)
    seen = []
    for _ in range(12):
        step = ramp_step(step, target, voltage=400.0, dt=1.0, ramp_w_per_s=10_000.0, ceilings=WIDE)
        seen.append(step)
    # 10 kW/s at 400 V is 25 A per second
    assert seen[:6] == [
        Step(False, 75.0),
        Step(False, 50.0),
        Step(False, 25.0),
        Step(False, 0.0),
        Step(True, 25.0),
        Step(True, 50.0),
    ]
    assert seen[-1] == target


def test_without_a_ramp_a_direction_change_still_stops_at_zero_first() -> None:
    first = ramp_step(
        Step(True, 80.0), Step(False, 60.0), voltage=400.0, dt=0.1, ramp_w_per_s=None, ceilings=WIDE
    )
    assert first == Step(True, 0.0)
    second = ramp_step(
        first, Step(False, 60.0), voltage=400.0, dt=0.1, ramp_w_per_s=None, ceilings=WIDE
    )
    assert second == Step(False, 60.0)


def test_a_dropped_limit_wins_over_the_ramp_at_once() -> None:
    step = ramp_step(
        Step(True, 100.0),
        Step(True, 100.0),
        voltage=400.0,
        dt=0.1,
        ramp_w_per_s=1_000.0,
        ceilings=Ceilings(export=100.0, import_=20.0),
    )
    assert step == Step(True, 20.0)


def test_a_long_pause_counts_as_one_second_at_most() -> None:
    step = ramp_step(
        ZERO, Step(True, 100.0), voltage=500.0, dt=3_600.0, ramp_w_per_s=5_000.0, ceilings=WIDE
    )
    assert step == Step(True, 10.0)


steps = st.builds(Step, st.booleans(), st.floats(0.0, 500.0))


@settings(max_examples=examples(2_000), deadline=None)
@given(
    start=steps,
    targets=st.lists(st.tuples(steps, st.floats(0.0, 2.0)), min_size=1, max_size=20),
    voltage=st.floats(50.0, 1_000.0),
    ramp=st.floats(1.0, 100_000.0),
    ceilings=st.builds(Ceilings, st.floats(0.0, 600.0), st.floats(0.0, 600.0)),
)
def test_steps_keep_the_ramp_pass_zero_and_stay_under_the_ceilings(
    start: Step,
    targets: list[tuple[Step, float]],
    voltage: float,
    ramp: float,
    ceilings: Ceilings,
) -> None:
    previous = Step(start.import_, min(start.current, ceilings.of(start.import_)))
    for target, dt in targets:
        step = ramp_step(
            previous, target, voltage=voltage, dt=dt, ramp_w_per_s=ramp, ceilings=ceilings
        )
        assert 0.0 <= step.current <= ceilings.of(step.import_)
        if step.import_ != previous.import_:
            assert previous.current == 0.0, (previous, step)
        assert abs(voltage * (step.signed() - previous.signed())) <= ramp * min(dt, 1.0) + 1e-9
        previous = step
