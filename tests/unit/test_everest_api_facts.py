"""csbridge's EVerest API side against the facts in EVerest's own sources (EVerest/EVerest, 2026
head): channel names and payloads written here from docs/source/reference/EVerest_API/*.yaml,
the error semantics of lib/everest/framework/lib/error/error_manager_impl.cpp, the
communication check of lib/everest/everest_api_types/include/everest_api_types/utilities/
CommCheckHandler.hpp and the cable-check voltage of modules/EVSE/EvseManager/EvseManager.cpp.
Pure: the sources run on a recorded publish and a hand-moved clock, no broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from csbridge.config import Config, load_config
from csbridge.messages import InboundRejected
from csbridge.messages.registry import SchemaRegistry
from csbridge.power.everest import EverestApiImd, EverestApiModule
from csbridge.sources.everest import EverestSources, cable_check_voltage
from csbridge.sources.readings import ImdReading, ModuleReading, SourceReading
from csbridge.support.resources import example_config

EVSE = "DE*CSB*E0002"
PSU = "everest_api/1/power_supply_DC/psu1"
IMD = "everest_api/1/isolation_monitor/imd1"
CAPABILITIES = {
    "bidirectional": False,
    "max_export_voltage_V": 1000.0,
    "min_export_voltage_V": 150.0,
    "max_export_current_A": 400.0,
    "min_export_current_A": 0.0,
    "max_export_power_W": 150000.0,
    "current_regulation_tolerance_A": 1.0,
    "peak_current_ripple_A": 0.5,
}
PSU_ERRORS = [
    "CommunicationFault",
    "HardwareFault",
    "OverTemperature",
    "UnderTemperature",
    "UnderVoltageAC",
    "OverVoltageAC",
    "UnderVoltageDC",
    "OverVoltageDC",
    "OverCurrentAC",
    "OverCurrentDC",
    "VendorError",
    "VendorWarning",
]
IMD_ERRORS = ["DeviceFault", "CommunicationFault", "VendorError", "VendorWarning"]


def everest_config(**api: Any) -> Config:
    """examples/everest-psu.toml, with these keys on both devices' `everest` tables."""
    raw = load_config(example_config("everest-psu.toml")).model_dump(mode="json", exclude_none=True)
    evse = raw["evse"][0]
    for device in (evse["module"][0]["everest"], evse["imd"]["everest"]):
        device.update(api)
    return Config.model_validate(raw)


@dataclass
class Rig:
    """EverestSources with what it publishes and hands on recorded, on a hand-moved clock."""

    config: Config
    published: list[tuple[str, Any]] = field(default_factory=list)
    readings: list[SourceReading] = field(default_factory=list)
    now: float = 100.0
    sources: EverestSources = field(init=False)

    def __post_init__(self) -> None:
        self.sources = EverestSources(
            self.config,
            lambda _evse, reading: self.readings.append(reading),
            self.clock,
            SchemaRegistry(),
        )
        self.sources.publish = self.publish

    def clock(self) -> float:
        return self.now

    def publish(self, topic: str, payload: bytes) -> bool:
        self.published.append((topic, orjson.loads(payload)))
        return True

    def send(self, topic: str, value: Any) -> str:
        return self.sources.handle(topic, orjson.dumps(value))

    def on(self, topic: str) -> list[Any]:
        return [value for sent, value in self.published if sent == topic]

    def module(self) -> ModuleReading | None:
        found = [r for r in self.readings if isinstance(r, ModuleReading)]
        return found[-1] if found else None

    def imd(self) -> ImdReading | None:
        found = [r for r in self.readings if isinstance(r, ImdReading)]
        return found[-1] if found else None


def rig(config: Config | None = None) -> Rig:
    return Rig(config or everest_config())


# -- 1. the isolation monitor's commands, by API revision -------------------------------------


async def test_the_imd_commands_carry_everest_2026_02_names_by_default() -> None:
    # isolation_monitor_API.yaml: e2m/start and e2m/stop with {}, e2m/start_self_test with a
    # bare number (SelfTestVoltage).
    r = rig()
    await r.sources.on_connected()
    EverestApiImd(r.sources, EVSE).start_self_test()
    r.sources.stop_measuring()
    assert r.on(f"{IMD}/e2m/start") == [{}]
    assert r.on(f"{IMD}/e2m/start_self_test") == [500.0]
    assert r.on(f"{IMD}/e2m/stop") == [{}]
    assert not [t for t, _ in r.published if "/receive_" in t]


async def test_api_revision_2025_10_keeps_the_old_command_names() -> None:
    r = rig(everest_config(api_revision="2025.10"))
    await r.sources.on_connected()
    r.sources.start_self_test(EVSE)
    r.sources.stop_measuring()
    assert r.on(f"{IMD}/e2m/receive_start") == [{}]
    assert r.on(f"{IMD}/e2m/receive_start_self_test") == [500.0]
    assert r.on(f"{IMD}/e2m/receive_stop") == [{}]
    assert r.on(f"{IMD}/e2m/start") == []


def test_an_unknown_api_revision_is_refused() -> None:
    with pytest.raises(ValidationError, match="api_revision"):
        everest_config(api_revision="2024.1")


# -- 3. a communication check of 0 is no check ------------------------------------------------


@pytest.mark.parametrize("check_s", [0, -1])
def test_no_communication_check_any_message_makes_the_device_present(check_s: float) -> None:
    config = everest_config(communication_check_s=check_s)
    module = config.evse[0].module[0]
    assert module.everest is not None
    assert not module.everest.checks_communication
    r = rig(config)
    r.send(f"{PSU}/m2e/capabilities", CAPABILITIES)
    reading = r.module()
    assert reading is not None
    assert reading.at == 100.0
    assert reading.export is not None
    assert reading.export.max_current == 400.0
    r.now = 101.0
    r.send(f"{PSU}/m2e/voltage_current", {"voltage_V": 10.0, "current_A": 0.0})
    fresh = r.module()
    assert fresh is not None
    assert fresh.at == 101.0  # any message keeps it fresh
    assert module.freshness_deadline_s == 5.0  # silence still falls to the safe side


def test_with_a_check_nothing_counts_before_the_first_true() -> None:
    r = rig(everest_config(communication_check_s=5))
    r.send(f"{PSU}/m2e/capabilities", CAPABILITIES)
    assert r.module() is None  # EVerest's "Initial communication check" fault
    r.send(f"{PSU}/m2e/communication_check", True)
    assert r.module() is not None


# -- 4. clear_error without sub_type; the closed error lists ----------------------------------


def test_clear_error_without_sub_type_clears_only_the_error_raised_without_one() -> None:
    r = rig(everest_config(communication_check_s=0))
    r.send(f"{PSU}/m2e/capabilities", CAPABILITIES)
    r.send(f"{PSU}/m2e/raise_error", {"type": "HardwareFault", "sub_type": "fan"})
    r.send(f"{PSU}/m2e/raise_error", {"type": "HardwareFault"})
    r.send(f"{PSU}/m2e/clear_error", {"type": "HardwareFault"})
    still = r.module()
    assert still is not None
    assert still.stops_evse  # "fan" is still raised in EVerest
    r.send(f"{PSU}/m2e/clear_error", {"type": "HardwareFault", "sub_type": "fan"})
    cleared = r.module()
    assert cleared is not None
    assert not cleared.stops_evse


@pytest.mark.parametrize(
    ("schema", "types"), [("EverestPsuError", PSU_ERRORS), ("EverestImdError", IMD_ERRORS)]
)
def test_the_error_schemas_hold_each_apis_closed_list(schema: str, types: list[str]) -> None:
    registry = SchemaRegistry()
    for kind in types:
        assert registry.violation(schema, {"type": kind, "sub_type": "x"}) is None, kind
    for kind in {*PSU_ERRORS, *IMD_ERRORS, "SomethingNew"} - set(types):
        assert registry.violation(schema, {"type": kind}) is not None, kind


def test_an_error_type_outside_the_list_still_takes_the_evse_out_of_service(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = rig(everest_config(communication_check_s=0))
    r.send(f"{IMD}/m2e/isolation_measurement", {"resistance_F_Ohm": 5e6})
    r.send(f"{IMD}/m2e/raise_error", {"type": "HardwareFault"})  # a PSU type, not an IMD's
    reading = r.imd()
    assert reading is not None
    assert reading.device_fault
    assert any("event=everest_unknown_error_type" in m for m in caplog.messages)


# -- 6. the entry point: discover, query-modules ----------------------------------------------


def _apis(check_s: int, heartbeat_ms: int) -> dict[str, dict[str, Any]]:
    """ApiParameter per entrypoint_API.yaml, written out."""
    monitoring = {"heartbeat_period_ms": heartbeat_ms, "communication_check_period_s": check_s}
    return {
        "power_supply_DC": {
            "type": "power_supply_DC",
            "module_id": "psu1",
            "version": 1,
            "communication_monitoring": monitoring,
        },
        "isolation_monitor": {
            "type": "isolation_monitor",
            "module_id": "imd1",
            "version": 1,
            "communication_monitoring": monitoring,
        },
    }


def test_discover_is_answered_once_per_device_on_reply_to() -> None:
    r = rig(everest_config(communication_check_s=10, heartbeat_interval_s=5))
    request = {"headers": {"replyTo": "your/arbitrary/reply/topic"}}
    assert r.send("everest_api/discover", request) == "everest:entrypoint/discover"
    apis = _apis(10, 5000)
    assert r.on("your/arbitrary/reply/topic") == [
        {"apis": [apis["power_supply_DC"]]},
        {"apis": [apis["isolation_monitor"]]},
    ]


def test_query_modules_answers_only_that_type_and_nothing_for_others() -> None:
    r = rig()
    request = {"headers": {"replyTo": "client/q"}}
    r.send("everest_api/query-modules/isolation_monitor", request)
    assert r.on("client/q") == [{"apis": [_apis(5, 1000)["isolation_monitor"]]}]
    r.send("everest_api/query-modules/evse_board_support", request)
    assert len(r.on("client/q")) == 1


async def test_the_ready_beacon_goes_out_after_each_connect() -> None:
    r = rig()
    await r.sources.on_connected()
    await r.sources.on_connected()
    assert r.on("everest_api/ready_beacon") == [{}, {}]


@pytest.mark.parametrize(
    "reply_to",
    [
        "josev/cs",
        "cs/josev",
        "csbridge/DE*CSB*E0002/limits",
        f"{PSU}/e2m/mode",
        "everest_api/discover",
    ],
)
def test_a_reply_never_goes_to_a_topic_it_would_harm(reply_to: str) -> None:
    r = rig()
    with pytest.raises(InboundRejected, match="replyTo"):
        r.send("everest_api/discover", {"headers": {"replyTo": reply_to}})
    assert r.published == []


@pytest.mark.parametrize("request_", [{}, {"headers": {}}, {"headers": {"replyTo": "a/#"}}])
def test_a_request_without_a_usable_reply_to_is_rejected(request_: dict[str, Any]) -> None:
    r = rig()
    with pytest.raises(InboundRejected):
        r.send("everest_api/discover", request_)
    assert r.published == []


# -- 7. the cable check: phase and voltage ----------------------------------------------------


@pytest.mark.parametrize(
    ("ev_max", "evse_max", "expected"),
    [
        (None, 1000.0, 500.0),  # EV max unknown: EVerest assumes 500 V
        (400.0, 1000.0, 450.0),  # <= 500 V: EV max + 50 V
        (480.0, 1000.0, 500.0),  # ... but at most 500 V
        (400.0, 420.0, 420.0),  # never above the EVSE's maximum
        (800.0, 1000.0, 880.0),  # > 500 V: 1.1 times the EV's maximum
        (950.0, 1000.0, 1000.0),
    ],
)
def test_the_cable_check_voltage_follows_iec_61851_23_cc1(
    ev_max: float | None, evse_max: float, expected: float
) -> None:
    assert cable_check_voltage(ev_max, evse_max) == pytest.approx(expected)


def test_a_setpoint_during_the_imd_self_test_is_phase_cable_check() -> None:
    r = rig(everest_config(communication_check_s=0))
    module = EverestApiModule(r.sources, EVSE, "psu1")
    assert r.sources.start_self_test(EVSE, ev_max_voltage=800.0)
    assert r.on(f"{IMD}/e2m/start_self_test") == [pytest.approx(880.0)]
    module.command(880.0, 2.0, precharge=False)
    assert r.on(f"{PSU}/e2m/mode")[-1] == {"mode": "Export", "charging_phase": "CableCheck"}
    r.send(f"{IMD}/m2e/self_test_result", True)
    module.command(400.0, 10.0, precharge=True)
    assert r.on(f"{PSU}/e2m/mode")[-1] == {"mode": "Export", "charging_phase": "PreCharge"}
    module.command(400.0, 100.0, precharge=False)
    assert r.on(f"{PSU}/e2m/mode")[-1] == {"mode": "Export", "charging_phase": "Charging"}
