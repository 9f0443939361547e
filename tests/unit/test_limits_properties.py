"""Properties of the whole engine over arbitrary sequences of readings and time steps: what it
reports never exceeds what the hardware and the configuration allow, silence never helps, and
everything it would publish passes its schema."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csbridge.engine.engine import LimitsEngine
from csbridge.messages.envelope import EnvelopeCodec, MessageType, new_message_id
from csbridge.messages.registry import Direction, SchemaRegistry
from csbridge.sources.readings import (
    BoardReading,
    Capability,
    ExternalLimit,
    ImdReading,
    ModuleReading,
    OperatorCommand,
    SourceReading,
)
from tests.support import examples, station_config

CONFIG = station_config("mqtt://127.0.0.1:1", "props")
DC, AC = (evse.evse_id for evse in CONFIG.evse)
REGISTRY = SchemaRegistry()
CODEC = EnvelopeCodec(REGISTRY, Direction.FROM_JOSEV, 1 << 20)
EXAMPLES = settings(
    max_examples=examples(2000),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EPSILON = 1e-9
ZEROED_WHEN_NOT_READY = (
    ("dc", "max_current"),
    ("dc", "max_power"),
    ("dc_bpt", "evse_max_discharge_current"),
    ("dc_bpt", "evse_max_discharge_power"),
)


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


numbers = st.one_of(
    st.floats(min_value=-50, max_value=2000, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1e9]),
)
capabilities = st.builds(
    Capability,
    max_voltage=numbers,
    min_voltage=numbers,
    max_current=numbers,
    max_power=st.one_of(numbers, st.floats(0, 200_000)),
    min_current=numbers,
)


# Drawn by the composites below: built once here, not again for every draw (hypothesis checks
# each new strategy before its first use, which cost more than the examples' own engine work).
maybe_numbers = st.none() | numbers
maybe_capabilities = st.none() | capabilities
module_names = st.sampled_from(["m1", "m2", "m3", "stranger"])
addresses = st.integers(0, 255)
flags = st.booleans()
resistances = st.none() | st.floats(-1, 1e8) | st.sampled_from([99_999.0, 100_000.0, math.nan])
either_evse = st.sampled_from([DC, AC])
phase_counts = st.none() | st.sampled_from([1, 2, 3, 0])
validity_s = st.floats(0, 10)


@st.composite
def module_readings(draw: st.DrawFn) -> tuple[str, SourceReading]:
    return DC, ModuleReading(
        name=draw(module_names),
        address=draw(addresses),
        at=0.0,
        online=draw(flags),
        output_voltage=draw(maybe_numbers),
        output_current=draw(maybe_numbers),
        export=draw(maybe_capabilities),
        import_=draw(maybe_capabilities),
        temperature_c=draw(maybe_numbers),
        fault=draw(flags),
        over_temperature=draw(flags),
        input_lost=draw(flags),
    )


@st.composite
def imd_readings(draw: st.DrawFn) -> tuple[str, SourceReading]:
    return DC, ImdReading(
        at=0.0,
        resistance_ohm=draw(resistances),
        self_test_running=draw(flags),
        value_outdated=draw(flags),
        device_fault=draw(flags),
    )


@st.composite
def board_readings(draw: st.DrawFn) -> tuple[str, SourceReading]:
    return draw(either_evse), BoardReading(
        at=0.0,
        evse_temperature_c=draw(maybe_numbers),
        plug_temperature_c=draw(maybe_numbers),
        rcd_error=draw(flags),
        emergency_stop=draw(flags),
        fault=draw(flags),
        max_current_a=draw(maybe_numbers),
        max_discharge_current_a=draw(maybe_numbers),
        phases=draw(phase_counts),
    )


@st.composite
def external_limits(draw: st.DrawFn) -> tuple[str, SourceReading]:
    valid_for = draw(validity_s)
    return draw(either_evse), ExternalLimit(
        at=0.0,
        until=valid_for,  # made absolute when applied
        max_power=draw(maybe_numbers),
        max_current=draw(maybe_numbers),
    )


@st.composite
def operator_commands(draw: st.DrawFn) -> tuple[str, SourceReading]:
    return draw(either_evse), OperatorCommand(at=0.0, enabled=draw(flags))


steps = st.lists(
    st.one_of(
        st.floats(0, 6).map(lambda dt: ("wait", dt)),
        module_readings(),
        module_readings(),
        imd_readings(),
        board_readings(),
        external_limits(),
        operator_commands(),
    ),
    min_size=1,
    max_size=12,
)


@dataclass
class Run:
    """Plays steps into an engine; keeps every reading so tests can judge freshness themselves."""

    engine: LimitsEngine
    clock: FakeClock
    latest: dict[tuple[str, str], SourceReading]

    @classmethod
    def new(cls) -> Run:
        clock = FakeClock()
        return cls(LimitsEngine(CONFIG, clock=clock), clock, {})

    def play(self, step: Any) -> None:
        if step[0] == "wait":
            # Time moved: every EVSE is evaluated, as the engine's tick does.
            self.clock.now += step[1]
            self.engine.evaluate()
            return
        # A reading: the engine evaluates its EVSE at once; the others are current already.
        evse_id, reading = step
        reading = _stamped(reading, self.clock.now)
        self.engine.ingest(evse_id, reading)
        key = reading.name if isinstance(reading, ModuleReading) else type(reading).__name__
        self.latest[(evse_id, key)] = reading


def _stamped(reading: SourceReading, now: float) -> SourceReading:
    if isinstance(reading, ExternalLimit):
        return dataclasses.replace(reading, at=now, until=now + reading.until)
    return dataclasses.replace(reading, at=now)


def _fresh_healthy_modules(run: Run) -> list[ModuleReading]:
    healthy = []
    for module in CONFIG.evse[0].module:
        reading = run.latest.get((DC, module.name))
        if not isinstance(reading, ModuleReading) or reading.export is None:
            continue
        if run.clock.now - reading.at > module.freshness_deadline_s:
            continue
        if reading.fault or reading.over_temperature or not reading.online:
            continue
        values = (reading.export.max_current, reading.export.max_power, reading.export.max_voltage)
        if all(math.isfinite(v) and v >= 0 for v in values):
            healthy.append(reading)
    return healthy


def _entries(run: Run) -> dict[str, dict[str, Any]]:
    return {entry["evse_id"]: entry for entry in run.engine.entries.values()}


@EXAMPLES
@given(steps)
def test_no_reported_maximum_exceeds_configuration_or_hardware(sequence: list[Any]) -> None:
    config_dc = CONFIG.evse[0]
    assert config_dc.dc_limits is not None
    assert config_dc.cable is not None
    run = Run.new()
    for step in sequence:
        run.play(step)
        dc = _entries(run)[DC]["dc"]
        healthy = _fresh_healthy_modules(run)
        assert dc["max_current"] <= min(
            config_dc.dc_limits.max_current_a or math.inf, config_dc.cable.max_current_a
        )
        assert dc["max_current"] <= sum(m.export.max_current for m in healthy if m.export) + EPSILON
        assert dc["max_power"] <= min(150_000, 200_000 * 0.95)
        assert dc["max_power"] <= sum(m.export.max_power for m in healthy if m.export) + EPSILON
        if healthy:
            assert dc["max_voltage"] <= min(
                [m.export.max_voltage for m in healthy if m.export] + [920]
            )
        bpt = _entries(run)[DC]["dc_bpt"]
        assert bpt["evse_max_discharge_current"] <= 150
        assert bpt["evse_max_discharge_power"] <= 80_000
        ac = _entries(run)[AC]
        for phase in ("l1", "l2", "l3"):
            assert ac["ac"]["max_current"][phase] <= 25.0  # installation, below the 32 A nameplate
            assert ac["ac_bpt"]["evse_max_discharge_power"][phase] <= 3680


@EXAMPLES
@given(steps)
def test_a_source_falling_silent_never_raises_a_limit(sequence: list[Any]) -> None:
    run = Run.new()
    for step in sequence:
        run.play(step)
    before = _entries(run)
    run.clock.now += 60.0  # every source is stale now, nothing new arrives
    run.engine.evaluate()
    after = _entries(run)
    for evse_id, entry in after.items():
        for block, fields in (
            ("dc", ("max_current", "max_power")),
            ("dc_bpt", ("evse_max_discharge_current",)),
        ):
            if block in entry:
                for name in fields:
                    assert entry[block][name] <= before[evse_id][block][name]
    assert after[DC]["dc"]["max_current"] == 0  # silent modules: malfunction or not ready


@EXAMPLES
@given(steps)
def test_isolation_is_never_valid_on_stale_or_absent_data(sequence: list[Any]) -> None:
    run = Run.new()
    deadline = CONFIG.evse[0].imd.deadline_s if CONFIG.evse[0].imd else 5.0
    for step in sequence:
        run.play(step)
        isolation = _entries(run)[DC]["dc"]["isolation_status"]
        imd = run.latest.get((DC, "ImdReading"))
        unusable = (
            not isinstance(imd, ImdReading)
            or run.clock.now - imd.at > deadline
            or imd.device_fault
            or imd.self_test_running
            or imd.value_outdated
        )
        if unusable:
            assert isolation == "invalid"
        if isolation in ("valid", "warning"):
            assert isinstance(imd, ImdReading)
            assert imd.resistance_ohm is not None
            assert imd.resistance_ohm >= 100_000


@EXAMPLES
@given(steps)
def test_everything_the_bridge_would_publish_passes_its_schema(sequence: list[Any]) -> None:
    run = Run.new()
    for step in sequence:
        run.play(step)
        entries = run.engine.entries.values()
        for message_type in (MessageType.UPDATE, MessageType.RESPONSE):
            CODEC.encode_document(
                {
                    "id": new_message_id(),
                    "name": "cs_status_and_limits",
                    "type": message_type.value,
                    "data": {"evses": entries},
                }
            )
        for evse_id in run.engine.evse_ids:
            report = orjson.loads(orjson.dumps(run.engine.reports.get(evse_id)))
            assert REGISTRY.violation("EvseLimitsReport", report) is None


@EXAMPLES
@given(steps)
def test_minimum_never_above_maximum_when_ready(sequence: list[Any]) -> None:
    run = Run.new()
    for step in sequence:
        run.play(step)
        for entry in _entries(run).values():
            if entry["status_code"] not in ("evse_ready", "evse_isolation_monitoring_active"):
                for block, name in ZEROED_WHEN_NOT_READY:
                    if block in entry:
                        assert entry[block][name] == 0, (block, name)
                continue
            if "dc" in entry:
                dc = entry["dc"]
                assert dc["min_current"] <= dc["max_current"]
                assert dc["min_voltage"] <= dc["max_voltage"]
            if "dc_bpt" in entry:
                bpt = entry["dc_bpt"]
                assert bpt["evse_min_discharge_current"] <= bpt["evse_max_discharge_current"]
                assert bpt["evse_min_discharge_power"] <= bpt["evse_max_discharge_power"]
            if "ac_bpt" in entry:
                for phase in ("l1", "l2", "l3"):
                    assert (
                        entry["ac_bpt"]["evse_min_discharge_power"][phase]
                        <= entry["ac_bpt"]["evse_max_discharge_power"][phase]
                    )


def _healthy_station(temperature_c: float | None) -> Run:
    """Three 80 A modules at `temperature_c`, a good IMD and a cool board."""
    run = Run.new()
    for module in ("m1", "m2", "m3"):
        capability = Capability(max_voltage=1000, min_voltage=150, max_current=80, max_power=40_000)
        reading = ModuleReading(
            name=module, address=1, at=0.0, export=capability, temperature_c=temperature_c
        )
        run.play((DC, reading))
    run.play((DC, ImdReading(at=0.0, resistance_ohm=5e6)))
    run.play((DC, BoardReading(at=0.0, evse_temperature_c=30, plug_temperature_c=30)))
    return run


def test_the_properties_see_every_status() -> None:
    """Not a tautology: the generated sequences drive the engine through ready and non-ready."""
    run = _healthy_station(35.0)
    assert _entries(run)[DC]["status_code"] == "evse_ready"
    assert _entries(run)[DC]["dc"]["max_current"] == 240.0
    run.play(("wait", 4.0))
    assert _entries(run)[DC]["status_code"] == "evse_malfunction"


def test_a_module_without_temperature_is_derated_to_its_curve_floor() -> None:
    """The module curve falls to 20 A at 90 degC; no temperature is the worst case."""
    run = _healthy_station(None)
    assert _entries(run)[DC]["dc"]["max_current"] == 60.0
    assert run.engine.reported_binding(DC)["max_current"] == "temperature"
