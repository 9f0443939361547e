"""A meter as a source: its [evse.meter] settings, its samples in the composition (present
values, a silent meter as a fault, disagreement with the modules), the engine's bookkeeping,
and the simulated meter's registers."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import ValidationError

from csbridge.config import Config, ConfigError, EvseConfig, MeterConfig, SimulatedMeterConfig
from csbridge.engine import LimitsEngine
from csbridge.limits import EvseComposer, EvseInputs, StatusCode
from csbridge.sources import ImdReading, MeterSample
from csbridge.sources.meters import Flow, MeterSources, SimulatedMeter, meter_problems
from csbridge.support import Counted, Counters
from tests.support import station_config
from tests.unit.test_limits_compose import NOW, dc_inputs, module

BASE = station_config("mqtt://127.0.0.1:1883", "meter-sources")
METER = MeterConfig(kind="simulated", deadline_s=5.0, voltage_tolerance_v=10.0)


def with_meter(meter: MeterConfig | None = METER) -> Config:
    evses = [BASE.evse[0].model_copy(update={"meter": meter}), *BASE.evse[1:]]
    return BASE.model_copy(update={"evse": evses})


DC: EvseConfig = with_meter().evse[0]


def flowing(at: float = NOW, **changes: Any) -> EvseInputs:
    """Three modules at 400 V sharing 30 A, everything fresh, then `changes`."""
    inputs = dc_inputs(at)
    modules = {
        name: module(name, at=at, output_voltage=400.0, output_current=10.0)
        for name in inputs.modules
    }
    return dataclasses.replace(inputs, modules=modules, **changes)


def sample(at: float = NOW, **values: Any) -> MeterSample:
    return MeterSample(
        at=at, energy_import_wh=100.0, dc_voltage_v=401.0, dc_current_a=29.5, **values
    )


# -- [evse.meter] ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"kind": "modbus"}, r'kind = "modbus" needs \[evse.meter.modbus\]'),
        ({"kind": "can"}, r'kind = "can" needs \[evse.meter.can\]'),
        ({"kind": "rest"}, r'kind = "rest" needs \[evse.meter.rest\]'),
        (
            {"kind": "simulated", "rest": {"url": "http://127.0.0.1"}},
            "does not read rest",
        ),
        ({"kind": "modbus", "modbus": {}}, "over `tcp` or `serial`, exactly one"),
        ({"kind": "rest", "rest": {"url": "ftp://meter"}}, "should match pattern"),
    ],
)
def test_a_meter_without_the_settings_of_its_kind_is_refused(
    settings: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        MeterConfig.model_validate(settings)


def test_meter_defaults_send_meter_values_every_minute() -> None:
    meter = MeterConfig.model_validate({"kind": "rest", "rest": {"url": "http://192.168.1.2"}})
    assert meter.update_interval_s == 60.0
    assert meter.polled


def test_a_can_meter_must_name_a_configured_bus() -> None:
    document = BASE.model_dump(mode="json")
    document["evse"][0]["meter"] = {
        "kind": "can",
        "can": {"profile": "isabellenhuette-ivt-s", "bus": "nowhere"},
    }
    with pytest.raises(ValidationError, match=r"evse\[0\].meter.can.bus: no \[\[bus\]\]"):
        Config.model_validate(document)


# -- the composition ---------------------------------------------------------------------------


def test_present_values_come_from_a_fresh_meter() -> None:
    composition = EvseComposer(DC).compose(flowing(meter=sample()), NOW)
    assert composition.snapshot.dc is not None
    assert composition.snapshot.dc.present_voltage == 401.0
    assert composition.snapshot.dc.present_current == 29.5
    assert composition.meter_disagrees == frozenset()
    assert composition.snapshot.status_code is StatusCode.EVSE_READY


def test_without_a_meter_present_values_are_the_module_sums() -> None:
    unmetered = with_meter(None).evse[0]
    composition = EvseComposer(unmetered).compose(flowing(meter=sample()), NOW)
    assert composition.snapshot.dc is not None
    assert composition.snapshot.dc.present_voltage == 400.0
    assert composition.snapshot.dc.present_current == 30.0


def test_a_meter_silent_past_its_deadline_is_a_fault_and_its_values_count_no_more() -> None:
    composer = EvseComposer(DC)
    composition = composer.compose(flowing(NOW + 5.1, meter=sample(NOW)), NOW + 5.1)
    assert composition.snapshot.status_code is StatusCode.EVSE_MALFUNCTION
    assert composition.facts.meter_failed
    assert composition.snapshot.dc is not None
    assert composition.snapshot.dc.present_voltage == 400.0  # the modules' again
    assert composition.snapshot.dc.max_current == 0.0
    # Just inside the deadline it still counts.
    inside = composer.compose(flowing(NOW + 4.9, meter=sample(NOW)), NOW + 4.9)
    assert inside.snapshot.status_code is StatusCode.EVSE_READY


def test_a_meter_not_heard_yet_keeps_the_evse_not_ready() -> None:
    composition = EvseComposer(DC).compose(flowing(), NOW)
    assert composition.snapshot.status_code is StatusCode.EVSE_NOT_READY
    assert not composition.facts.meter_failed


@pytest.mark.parametrize(
    ("meter_values", "disagrees"),
    [
        ({"dc_voltage_v": 411.0}, frozenset({"voltage"})),  # 11 V off, 10 V allowed
        ({"dc_voltage_v": 409.0}, frozenset()),
        ({"dc_current_a": 27.5}, frozenset({"current"})),  # 2.5 A off, 2 A allowed
        ({"dc_current_a": -29.0}, frozenset()),  # discharging: magnitudes compared
        ({"dc_voltage_v": 300.0, "dc_current_a": 0.0}, frozenset({"voltage", "current"})),
    ],
)
def test_meter_and_modules_disagreeing_beyond_the_tolerance_is_reported(
    meter_values: dict[str, Any], disagrees: frozenset[str]
) -> None:
    reading = dataclasses.replace(sample(), **meter_values)
    composition = EvseComposer(DC).compose(flowing(meter=reading), NOW)
    assert composition.meter_disagrees == disagrees


# -- the engine --------------------------------------------------------------------------------


def _ready_engine(config: Config) -> tuple[LimitsEngine, list[float]]:
    now = [NOW]
    engine = LimitsEngine(config, clock=lambda: now[0])
    for name, reading in flowing().modules.items():
        engine.ingest(DC.evse_id, dataclasses.replace(reading, name=name))
    engine.ingest(DC.evse_id, ImdReading(at=NOW, resistance_ohm=5_000_000.0))
    board = dc_inputs().board
    assert board is not None
    engine.ingest(DC.evse_id, board)
    return engine, now


def test_the_engine_counts_a_disagreement_once_when_it_starts() -> None:
    engine, _ = _ready_engine(with_meter())
    off = dataclasses.replace(sample(), dc_voltage_v=300.0)
    for _ in range(3):
        engine.ingest(DC.evse_id, off)
    assert engine.counters.get(Counted.METER_DISAGREEMENTS, f"{DC.evse_id}/voltage") == 1
    engine.ingest(DC.evse_id, sample())
    engine.ingest(DC.evse_id, off)
    assert engine.counters.get(Counted.METER_DISAGREEMENTS, f"{DC.evse_id}/voltage") == 2


def test_a_meter_sample_for_an_evse_without_a_meter_is_ignored_and_counted() -> None:
    engine, _ = _ready_engine(with_meter(None))
    assert not engine.ingest(DC.evse_id, sample())
    assert engine.counters.get(Counted.READING_IGNORED, "unknown_source") == 1
    assert engine.inputs(DC.evse_id).meter is None


# -- the simulated meter -----------------------------------------------------------------------


def test_the_simulated_meter_keeps_import_and_export_registers() -> None:
    now = [0.0]
    flow = [Flow(400.0, 25.0)]  # 10 kW
    meter = SimulatedMeter(
        "E1",
        SimulatedMeterConfig(),
        lambda: flow[0],
        sink=lambda _evse, _reading: None,
        clock=lambda: now[0],
    )
    meter.measure()
    now[0] = 360.0  # 10 kW for a tenth of an hour
    flow[0] = Flow(400.0, -12.5)  # 5 kW back from the EV
    meter.measure()
    now[0] = 720.0
    last = meter.measure()
    assert last.energy_import_wh == pytest.approx(1000.0)
    assert last.energy_export_wh == pytest.approx(500.0)
    assert last.dc_current_a == -12.5
    assert last.voltage_v is None


def test_the_simulated_ac_meter_gives_the_phases_in_use_only() -> None:
    meter = SimulatedMeter(
        "E2",
        SimulatedMeterConfig(frequency_hz=50.0, power_factor=0.98),
        lambda: Flow(230.0, 16.0, phases=1),
        sink=lambda _evse, _reading: None,
        clock=lambda: 0.0,
    )
    reading = meter.measure()
    assert reading.voltage_v == (230.0, 0.0, 0.0)
    assert reading.current_a == (16.0, 0.0, 0.0)
    assert reading.power_factor == 0.98
    assert reading.dc_voltage_v is None


# -- the profiles a configuration names ----------------------------------------------------------


def _document_with_meter(meter: dict[str, Any], bitrate: int | None = 500_000) -> Config:
    document = BASE.model_dump(mode="json")
    document["bus"] = [{"name": "meters", "interface": "virtual", "bitrate": bitrate}]
    document["evse"][0]["meter"] = meter
    return Config.model_validate(document)


def test_the_shipped_meter_profiles_pass_the_check() -> None:
    can_meter = {"kind": "can", "can": {"profile": "isabellenhuette-ivt-s", "bus": "meters"}}
    assert meter_problems(_document_with_meter(can_meter)) == []
    modbus = {"kind": "modbus", "modbus": {"tcp": {"host": "127.0.0.1"}}}
    assert meter_problems(_document_with_meter(modbus)) == []


def test_a_missing_profile_and_a_wrong_bitrate_are_named_by_key() -> None:
    modbus = {"kind": "modbus", "modbus": {"register_map": "acme-x", "tcp": {"host": "h"}}}
    assert meter_problems(_document_with_meter(modbus)) == [
        "evse[0].meter: no meter profile 'acme-x' in hal/meters/ or the profile folders"
    ]
    can_meter = {"kind": "can", "can": {"profile": "isabellenhuette-ivt-s", "bus": "meters"}}
    assert meter_problems(_document_with_meter(can_meter, bitrate=250_000)) == [
        "evse[0].meter.can: isabellenhuette-ivt-s talks at 500000 bit/s, bus meters is set to"
        " 250000"
    ]
    with pytest.raises(ConfigError):
        MeterSources(_document_with_meter(modbus), lambda _e, _r: None, Counters())
