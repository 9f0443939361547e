"""The power path's drivers: one per transport, chosen once when the station is wired, and what
each puts on its transport; the session asks power, never a transport."""

from __future__ import annotations

import ast
import dataclasses
import logging
import math
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import can
import pytest

from csbridge.config import Config, load_config
from csbridge.engine import LimitsEngine
from csbridge.limits import Setpoint
from csbridge.limits.setpoint import ModuleSetpoint
from csbridge.messages import CableCheckRequest, CpPwmRequest, SchemaRegistry, StopChargingRequest
from csbridge.power import (
    EvsePower,
    NoBoardDriver,
    NoImdDriver,
    NoModuleDriver,
    PowerOnReason,
    PowerStage,
    wire_power,
)
from csbridge.power.can import CanBoard, CanImd, CanModule
from csbridge.power.everest import EverestApiImd, EverestApiModule
from csbridge.power.simulated import SimulatedBoardDriver, SimulatedImdDriver, SimulatedModuleDriver
from csbridge.session import SessionHandlers
from csbridge.session.machine import Event, State
from csbridge.sources import BoardReading, ImdReading, SourceReading
from csbridge.sources.can import (
    BoardCommand,
    CanBuses,
    DbcCodec,
    DeviceRouter,
    IdFieldsCodec,
    PowerReason,
    Profile,
    ProfileRegistry,
    read_board_command,
    setpoint_frames,
    switch_frames,
)
from csbridge.sources.everest import EverestSources
from csbridge.sources.simulated import SimulatedDevices
from csbridge.support import Counters
from csbridge.support.resources import example_config
from tests.support import FIXTURES

REGISTRY = ProfileRegistry()
DC = "DE*CSB*E0001"
AC = "DE*CSB*E0002"
SRC = Path(__file__).resolve().parents[2] / "src" / "csbridge"


@dataclass
class Wired:
    stage: PowerStage
    devices: SimulatedDevices
    buses: CanBuses
    readings: list[tuple[str, SourceReading]]


@dataclass
class ReadingRecorder:
    """Takes readings as the engine's ingest does (at once, or stored for one evaluation per
    drained burst) and only notes them."""

    readings: list[tuple[str, SourceReading]] = field(default_factory=list)

    def __call__(self, evse_id: str, reading: SourceReading) -> None:
        self.readings.append((evse_id, reading))

    def store(self, evse_id: str, reading: SourceReading) -> bool:
        self.readings.append((evse_id, reading))
        return True

    def evaluate(self, evse_ids: Iterable[str]) -> None:
        del evse_ids  # nothing to evaluate: the readings are all a test looks at


def wired(config: Config) -> Wired:
    sink = ReadingRecorder()
    readings = sink.readings

    def clock() -> float:
        return 100.0

    router = DeviceRouter(config, REGISTRY)
    buses = CanBuses(config, router, sink, Counters(), clock)
    devices = SimulatedDevices.from_config(config, sink, clock, REGISTRY)
    everest = EverestSources(config, sink, clock, SchemaRegistry())
    return Wired(wire_power(config, router, buses, devices, everest), devices, buses, readings)


def with_dc_board_on_can(path: Path, *, simulated: bool) -> Config:
    raw = load_config(path).model_dump(mode="json", exclude_none=True)
    dc = raw["evse"][0]
    dc["board"]["can"] = {"profile": "generic-charger-board", "bus": "sim-can1"}
    if not simulated:
        dc["board"].pop("simulated")
    return Config.model_validate(raw)


# --- the drivers are chosen once, by transport ---------------------------------------------------


def test_reading_level_simulated_devices_get_simulated_drivers() -> None:
    stage = wired(load_config(FIXTURES / "configs" / "reading-station.toml")).stage
    dc = stage.evses[DC]
    assert {type(driver) for driver in dc.modules.values()} == {SimulatedModuleDriver}
    assert list(dc.modules) == ["m1", "m2", "m3"]
    assert isinstance(dc.board, SimulatedBoardDriver)
    assert isinstance(dc.imd, SimulatedImdDriver)
    ac = stage.evses[AC]
    assert (ac.modules, type(ac.imd)) == ({}, NoImdDriver)
    assert isinstance(ac.board, SimulatedBoardDriver)


def test_can_modules_get_can_drivers_and_a_simulated_imd_on_can_is_told_directly() -> None:
    stage = wired(load_config(example_config("sim-station.toml"))).stage
    dc = stage.evses[DC]
    assert {type(driver) for driver in dc.modules.values()} == {CanModule}
    assert isinstance(dc.imd, SimulatedImdDriver)  # the wire simulator reads no IMD_Request
    assert isinstance(dc.board, SimulatedBoardDriver)


def test_a_board_on_can_gets_the_can_driver_simulated_or_not() -> None:
    for simulated in (True, False):
        config = with_dc_board_on_can(example_config("sim-station.toml"), simulated=simulated)
        assert isinstance(wired(config).stage.evses[DC].board, CanBoard)


def test_real_can_hardware_gets_can_drivers_and_no_board_says_so() -> None:
    stage = wired(load_config(example_config("infypower-dc.toml"))).stage
    dc = stage.evses[DC]
    assert {type(driver) for driver in dc.modules.values()} == {CanModule}
    assert isinstance(dc.imd, CanImd)
    assert isinstance(dc.board, NoBoardDriver)
    assert stage.drive_pwm(DC, on=True, duty_percent=5.0) is False


def test_everest_api_devices_get_everest_drivers() -> None:
    stage = wired(load_config(example_config("everest-psu.toml"))).stage
    (evse,) = stage.evses.values()
    assert {type(driver) for driver in evse.modules.values()} == {EverestApiModule}
    assert isinstance(evse.imd, EverestApiImd)


def test_minimum_currents_are_the_profiles_or_the_default() -> None:
    stage = wired(load_config(example_config("infypower-dc.toml"))).stage
    profile = REGISTRY.get("infypower-reg").header.min_regulated_current_a
    assert profile is not None
    assert stage.min_currents(DC) == dict.fromkeys(("infy1", "infy2", "infy3"), profile)
    everest = wired(load_config(example_config("everest-psu.toml"))).stage
    (evse_id,) = everest.evses
    assert set(everest.min_currents(evse_id).values()) == {1.0}
    assert NoModuleDriver().min_current_a == 1.0


def test_a_can_module_whose_profile_states_no_minimum_gets_the_default() -> None:
    text = (REGISTRY.directory / "winline-nxr.toml").read_text(encoding="utf-8")
    bare = "\n".join(
        line for line in text.splitlines() if not line.startswith("min_regulated_current_a")
    )
    codec = IdFieldsCodec(Profile.model_validate(tomllib.loads(bare)), 0xF0)
    assert CanModule("m", 1, "can0", codec, None).min_current_a == 1.0
    assert can_module("winline-nxr", 1, None).min_current_a == 2.0


def test_watchdogs_are_the_profiles_or_the_default() -> None:
    stage = wired(load_config(example_config("infypower-dc.toml"))).stage
    profile = REGISTRY.get("infypower-reg").header.watchdog_s
    assert profile == 10.0
    assert stage.watchdogs(DC) == dict.fromkeys(("infy1", "infy2", "infy3"), profile)
    assert NoModuleDriver().watchdog_s == 10.0
    # The R4850's profile states none: it goes on at its offline setpoints when silent, so it is
    # never taken to be off by silence (a shared pool never parks it, the split keeps it).
    assert REGISTRY.get("huawei-r4850").header.watchdog_s is None
    assert can_module("huawei-r4850", 1, None).watchdog_s == math.inf


# --- CAN ------------------------------------------------------------------------------------------


@dataclass
class RecordingLink:
    name: str = "can0"
    bus: object | None = field(default_factory=object)
    accepts: bool = True
    sent: list[can.Message] = field(default_factory=list)

    def send(self, frame: can.Message) -> bool:
        self.sent.append(frame)
        return self.accepts


def wire(frames: list[can.Message]) -> list[tuple[int, bytes]]:
    return [(frame.arbitration_id, bytes(frame.data)) for frame in frames]


def can_module(profile: str, address: int, link: RecordingLink | None) -> CanModule:
    return CanModule("m", address, "can0", IdFieldsCodec(REGISTRY.get(profile), 0xF0), link)


def test_a_can_setpoint_is_set_output_then_switch_on() -> None:
    link = RecordingLink()
    module = can_module("winline-nxr", 0x21, link)
    module.command(400.0, 10.0, precharge=True)
    codec = module.codec
    expected = setpoint_frames(codec, 0x21, 400.0, 10.0) + switch_frames(codec, 0x21, on=True)
    assert wire(link.sent) == wire(expected)
    link.sent.clear()
    module.switch_off()
    assert wire(link.sent) == wire(switch_frames(codec, 0x21, on=False))


def test_a_setpoint_that_cannot_be_encoded_switches_the_module_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    link = RecordingLink()
    module = can_module("infypower-reg", 3, link)
    with caplog.at_level(logging.ERROR, logger="csbridge.power"):
        module.command(1e9, 10.0, precharge=False)
    assert wire(link.sent) == wire(switch_frames(module.codec, 3, on=False))
    assert "event=setpoint_not_encodable module=m" in caplog.text


def test_a_module_without_an_off_command_is_set_to_nothing() -> None:
    link = RecordingLink()
    module = can_module("huawei-r4850", 0, link)
    module.switch_off()
    assert wire(link.sent) == wire(setpoint_frames(module.codec, 0, 0.0, 0.0))


def test_a_closed_bus_is_skipped_and_a_refused_frame_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed = RecordingLink(bus=None)
    with caplog.at_level(logging.DEBUG, logger="csbridge.power"):
        can_module("infypower-reg", 1, closed).command(400.0, 10.0, precharge=False)
    assert closed.sent == []
    assert "event=command_not_sent module=m bus=can0 why=closed" in caplog.text
    caplog.clear()
    refusing = RecordingLink(accepts=False)
    with caplog.at_level(logging.WARNING, logger="csbridge.power"):
        can_module("infypower-reg", 1, refusing).command(400.0, 10.0, precharge=False)
    assert len(refusing.sent) == 2
    assert caplog.text.count("event=command_not_sent module=m bus=can0") == 2


def board_codec() -> DbcCodec:
    profile = REGISTRY.get("generic-charger-board")
    return DbcCodec(profile, REGISTRY.dbc_path(profile))


def test_the_can_board_keeps_what_it_is_not_told_again() -> None:
    link = RecordingLink()
    codec = board_codec()
    board = CanBoard(codec, link)
    board.close_contactors(PowerOnReason.DC_CABLE_CHECK)
    assert board.drive_pwm(True, 5.0) is True
    board.close_contactors(PowerOnReason.FULL_POWER_CHARGING)
    board.open_contactors()
    assert [read_board_command(codec, frame) for frame in link.sent] == [
        BoardCommand(True, PowerReason.DC_CABLE_CHECK, False, 0.0),
        BoardCommand(True, PowerReason.DC_CABLE_CHECK, True, 5.0),
        BoardCommand(True, PowerReason.FULL_POWER_CHARGING, True, 5.0),
        BoardCommand(False, PowerReason.POWER_OFF, True, 5.0),
    ]


def test_the_can_board_locks_keeping_what_it_is_not_told_again() -> None:
    link = RecordingLink()
    codec = board_codec()
    board = CanBoard(codec, link)
    assert board.lock() is True
    board.close_contactors(PowerOnReason.FULL_POWER_CHARGING)
    board.drive_pwm(True, 5.0)
    assert board.unlock() is True
    board.open_contactors()
    assert [read_board_command(codec, frame) for frame in link.sent] == [
        BoardCommand(False, PowerReason.POWER_OFF, False, 0.0, lock=True),
        BoardCommand(True, PowerReason.FULL_POWER_CHARGING, False, 0.0, lock=True),
        BoardCommand(True, PowerReason.FULL_POWER_CHARGING, True, 5.0, lock=True),
        BoardCommand(True, PowerReason.FULL_POWER_CHARGING, True, 5.0, lock=False),
        BoardCommand(False, PowerReason.POWER_OFF, True, 5.0, lock=False),
    ]
    # byte 0 bit 4 is the lock, as the DBC says
    assert [bytes(frame.data)[0] >> 4 & 1 for frame in link.sent] == [1, 1, 1, 0, 0]


def test_the_stage_locks_through_the_evses_board() -> None:
    recorder = Recorder()
    stage = PowerStage(
        {
            DC: EvsePower({}, recorder, recorder),
            AC: EvsePower({}, NoBoardDriver(), NoImdDriver()),
        }
    )
    assert stage.lock(DC) is True
    assert stage.unlock(DC) is True
    assert recorder.calls == ["lock", "unlock"]
    assert (stage.lock(AC), stage.unlock(AC)) == (False, False)


def test_a_dbc_imd_is_sent_the_iso165c_self_test_request() -> None:
    link = RecordingLink()
    profile = REGISTRY.get("bender-iso165c")
    codec = DbcCodec(profile, REGISTRY.dbc_path(profile))
    CanImd(codec, link).start_self_test()
    assert wire(link.sent) == [(0x22, bytes.fromhex("2101000000"))]


# --- simulated ------------------------------------------------------------------------------------


def test_simulated_devices_show_what_they_were_told_in_their_next_reading() -> None:
    station = wired(load_config(FIXTURES / "configs" / "reading-station.toml"))
    stage, devices = station.stage, station.devices
    setpoint = Setpoint(
        voltage=400.0,
        total_current=20.0,
        module_current=20.0,
        counted=1,
        modules=(ModuleSetpoint("m2", 400.0, 20.0),),
        precharge=False,
    )
    stage.command(DC, setpoint)
    module = devices.modules[(DC, "m2")]
    assert (module.output_voltage, module.output_current) == (400.0, 20.0)
    stage.close_contactors(DC, PowerOnReason.DC_PRE_CHARGE)
    stage.start_imd_self_test(DC)
    board = [r for e, r in station.readings if e == DC and isinstance(r, BoardReading)]
    imd = [r for e, r in station.readings if e == DC and isinstance(r, ImdReading)]
    assert [reading.contactor_closed for reading in board] == [True]
    assert [reading.self_test_running for reading in imd] == [True]
    stage.open_contactors(DC)
    stage.switch_off(DC)
    assert station.readings[-1][1] == dataclasses.replace(board[0], contactor_closed=False)
    assert (module.output_voltage, module.output_current) == (0.0, 0.0)
    assert stage.drive_pwm(DC, on=True, duty_percent=5.0) is True


# --- the session asks power ----------------------------------------------------------------------


@dataclass
class Recorder:
    """A board and an IMD that note what they are told."""

    calls: list[str] = field(default_factory=list)

    def close_contactors(self, reason: PowerOnReason) -> None:
        self.calls.append(f"close {reason}")

    def open_contactors(self) -> None:
        self.calls.append("open")

    def drive_pwm(self, on: bool, duty_percent: float) -> bool:
        self.calls.append(f"pwm {on} {duty_percent}")
        return True

    def lock(self) -> bool:
        self.calls.append("lock")
        return True

    def unlock(self) -> bool:
        self.calls.append("unlock")
        return True

    def start_self_test(self, ev_max_voltage: float | None = None) -> None:
        self.calls.append("self-test")


def test_the_session_drives_the_board_and_imd_through_power() -> None:
    config = load_config(FIXTURES / "configs" / "reading-station.toml")
    recorder = Recorder()
    stage = PowerStage(
        {
            DC: EvsePower({}, recorder, recorder),
            AC: EvsePower({}, NoBoardDriver(), NoImdDriver()),
        }
    )
    session = SessionHandlers(config, LimitsEngine(config), stage)
    # A free-vend EV plugged in, its HLC session up, S2 closed: the cable check may start.
    for event in (Event.LIMITS_READY, Event.CP_B, Event.HLC_ON, Event.CP_CD):
        session.feed(DC, event)
    assert session.sessions[DC].state is State.AUTHORIZED
    recorder.calls.clear()
    session.cable_check(CableCheckRequest(evse_id=DC, cable_check_action="start"))
    pwm = CpPwmRequest(evse_id=DC, hlc=True, error_state=False, fault_state=False)
    answer = session.cp_pwm(pwm)
    assert answer is not None
    assert answer.status == "valid"
    session.stop_charging(StopChargingRequest(evse_id=DC))
    # The connector locks before the cable check closes the contactors.
    assert recorder.calls[:5] == ["lock", "close DCCableCheck", "self-test", "pwm True 5.0", "open"]
    assert set(recorder.calls[5:]) <= {"open", "unlock"}  # the way down never closes again
    answer = session.cp_pwm(dataclasses.replace(pwm, evse_id=AC))
    assert answer is not None
    assert (answer.status, answer.info) == ("error", "no board to pass the PWM to")


def test_the_session_imports_no_transport() -> None:
    tree = ast.parse((SRC / "session" / "handlers.py").read_text(encoding="utf-8"))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not {
        m for m in imported if m.startswith(("csbridge.sources.can", "csbridge.sources.simulated"))
    }
