"""The simulators as real as the hardware, without a bus: the board plays the EV's pilot and
moves its connector lock, and modules switch themselves off when the controller's commands stop
for their own CAN timeout. Every clock here is injected; nothing sleeps. (On python-can's
virtual bus: tests/integration/test_sim_wire_devices.py.)"""

from __future__ import annotations

import struct
import time
import tomllib
from dataclasses import dataclass, field
from typing import Any

import can
import pytest

from csbridge.config import Config, load_config
from csbridge.limits import DEFAULT_WATCHDOG_S
from csbridge.power.drivers import DEFAULT_MIN_CURRENT_A, NoBoardDriver, NoModuleDriver
from csbridge.power.simulated import SimulatedBoardDriver, simulated_module_driver
from csbridge.sources import BoardReading, CpState, LockState, ModuleReading, SourceReading
from csbridge.sources.can import (
    DbcCodec,
    IdFieldsCodec,
    Outcome,
    Profile,
    ProfileRegistry,
    setpoint_frames,
    switch_frames,
)
from csbridge.sources.can.state import BoardState
from csbridge.sources.simulated import (
    SimulatedBoard,
    SimulatedCanBoard,
    SimulatedDevices,
    SimulatedModule,
)
from csbridge.sources.simulated.can_devices import (
    MODULE_COMMAND_TIMEOUT_S,
    SimulatedCanModule,
    build_wire_module,
)
from csbridge.support.resources import example_config
from csbridge.testing.harness import wait_until
from tests.support import FIXTURES

REGISTRY = ProfileRegistry()
DC = "DE*CSB*E0001"
AC = "DE*CSB*E0002"


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Sink:
    readings: list[tuple[str, SourceReading]] = field(default_factory=list)

    def __call__(self, evse_id: str, reading: SourceReading) -> None:
        self.readings.append((evse_id, reading))

    def boards(self, evse_id: str = DC) -> list[BoardReading]:
        return [r for e, r in self.readings if e == evse_id and isinstance(r, BoardReading)]


def reading_devices(config: Config | None = None) -> tuple[SimulatedDevices, Sink, Clock]:
    sink, clock = Sink(), Clock()
    config = config or load_config(FIXTURES / "configs" / "reading-station.toml")
    return SimulatedDevices.from_config(config, sink, clock, REGISTRY), sink, clock


def with_dc_board_on_can() -> Config:
    raw = load_config(example_config("sim-station.toml")).model_dump(mode="json", exclude_none=True)
    raw["evse"][0]["board"]["can"] = {"profile": "generic-charger-board", "bus": "sim-can1"}
    return Config.model_validate(raw)


def wire_board_reading(board: SimulatedCanBoard) -> BoardReading:
    profile = REGISTRY.get("generic-charger-board")
    outcome, decoded = DbcCodec(profile, REGISTRY.dbc_path(profile)).decode(board.status_frame())
    assert outcome is Outcome.DECODED
    assert decoded is not None
    return BoardState().apply(decoded, 0.0)


# --- the EV's pilot ------------------------------------------------------------------------------


def test_the_reading_level_board_plays_a_real_evs_pilot() -> None:
    devices, sink, _ = reading_devices()
    steps = ["plug_in", "ev_ready", "ev_pause", "ev_ready", "unplug"]
    for action in steps:
        assert devices.apply(DC, {"action": action}) is None, action
    assert [reading.cp_state for reading in sink.boards()] == [
        CpState.B,
        CpState.C,
        CpState.B,
        CpState.C,
        CpState.A,
    ]


def test_the_wire_board_plays_the_pilot_in_its_status_frame() -> None:
    devices, _, _ = reading_devices(with_dc_board_on_can())
    board = devices.boards[DC]
    assert isinstance(board, SimulatedCanBoard)
    seen = []
    for action in ["plug_in", "ev_ready", "ev_pause", "unplug"]:
        assert devices.apply(DC, {"action": action}) is None
        seen.append(wire_board_reading(board).cp_state)
    assert seen == [CpState.B, CpState.C, CpState.B, CpState.A]


@pytest.mark.parametrize(
    ("before", "action", "why"),
    [
        ([], "ev_ready", "ev_ready needs the EV plugged in"),
        (["plug_in", "unplug"], "ev_ready", "ev_ready needs the EV plugged in"),
        ([], "ev_pause", "ev_pause needs the EV ready"),
        (["plug_in"], "ev_pause", "ev_pause needs the EV ready"),
    ],
)
def test_the_pilot_refuses_what_no_ev_can_do(before: list[str], action: str, why: str) -> None:
    devices, sink, _ = reading_devices()
    for step in before:
        devices.apply(DC, {"action": step})
    state = devices.boards[DC].cp_state
    emitted = len(sink.readings)
    refused = devices.apply(DC, {"action": action})
    assert refused is not None
    assert refused.startswith(f"{DC}: {why}")
    assert devices.boards[DC].cp_state is state
    assert len(sink.readings) == emitted  # nothing reported: nothing changed


def test_ev_ready_again_and_plug_in_again_are_as_before() -> None:
    devices, _, _ = reading_devices()
    for action in ["plug_in", "ev_ready", "ev_ready"]:
        assert devices.apply(DC, {"action": action}) is None
    assert devices.boards[DC].cp_state is CpState.C
    assert devices.apply(DC, {"action": "plug_in"}) is None  # as it always did: B
    assert devices.boards[DC].cp_state is CpState.B


@pytest.mark.parametrize(
    ("evse_id", "command", "why"),
    [
        ("DE*CSB*E0009", {"action": "ev_ready"}, "has no simulated board"),
        (DC, {"action": "fly"}, "no simulated action 'fly'"),
        (DC, {}, "no simulated action None"),
        (DC, {"action": "silence_module"}, "has no simulated module None"),
        (DC, {"action": "silence_module", "module": "m9"}, "has no simulated module 'm9'"),
    ],
)
def test_bad_simulation_commands_are_refused_not_raised(
    evse_id: str, command: dict[str, Any], why: str
) -> None:
    devices, sink, _ = reading_devices()
    refused = devices.apply(evse_id, command)
    assert refused is not None
    assert why in refused
    assert sink.readings == []


def test_modules_are_still_silenced_and_restored() -> None:
    devices, _, _ = reading_devices()
    assert devices.apply(DC, {"action": "silence_module", "module": "m2"}) is None
    assert devices.modules[(DC, "m2")].silent
    assert devices.apply(DC, {"action": "restore_module", "module": "m2"}) is None
    assert not devices.modules[(DC, "m2")].silent


# --- the reading-level board's connector lock ----------------------------------------------------


def test_the_reading_level_lock_travels_then_reports_its_end() -> None:
    devices, sink, clock = reading_devices()
    board = devices.boards[DC]
    assert isinstance(board, SimulatedBoard)
    driver = SimulatedBoardDriver(devices, board)
    assert driver.lock() is True
    assert sink.boards()[-1].lock is LockState.MOVING  # told at once
    clock.now += 0.19
    assert board.reading(clock.now).lock is LockState.MOVING
    clock.now += 0.01
    assert board.reading(clock.now).lock is LockState.LOCKED
    assert driver.unlock() is True
    assert sink.boards()[-1].lock is LockState.MOVING
    clock.now += 0.2
    assert board.reading(clock.now).lock is LockState.UNLOCKED


def test_a_jammed_reading_level_lock_faults_and_a_repeat_does_not_retry() -> None:
    devices, sink, clock = reading_devices()
    board = devices.boards[DC]
    assert isinstance(board, SimulatedBoard)
    board.lock_jammed = True
    devices.command_lock(board, locked=True)
    clock.now += 1.0
    assert board.reading(clock.now).lock is LockState.MOVING
    clock.now += 0.5
    assert board.reading(clock.now).lock is LockState.FAULT
    emitted = len(sink.readings)
    devices.command_lock(board, locked=True)
    assert len(sink.readings) == emitted
    assert board.reading(clock.now).lock is LockState.FAULT


async def test_the_reading_level_lock_is_told_at_its_end_on_a_running_loop() -> None:
    """With an event loop running, the end of the travel is reported when it comes, not at the
    board's next period."""
    sink = Sink()
    config = load_config(FIXTURES / "configs" / "reading-station.toml")
    devices = SimulatedDevices.from_config(config, sink, time.monotonic, REGISTRY)
    SimulatedBoardDriver(devices, devices.boards[DC]).lock()
    # nothing reports the board periodically here: only the timer can tell the end
    await wait_until(lambda: sink.boards()[-1].lock is LockState.LOCKED, timeout=3.0)
    seen = [r.lock for r in sink.boards()]
    assert (seen[0], seen[-1], set(seen)) == (
        LockState.MOVING,
        LockState.LOCKED,
        {LockState.MOVING, LockState.LOCKED},
    )


def test_no_board_refuses_the_lock() -> None:
    assert NoBoardDriver().lock() is False
    assert NoBoardDriver().unlock() is False


def test_the_simulated_board_driver_reports_the_pwm_of_a_wire_board() -> None:
    devices, _, _ = reading_devices(with_dc_board_on_can())
    board = devices.boards[DC]
    assert isinstance(board, SimulatedCanBoard)
    assert SimulatedBoardDriver(devices, board).drive_pwm(True, 5.0) is True
    assert (board.pwm_on, board.pwm_duty_percent) == (True, 5.0)
    assert struct.unpack_from("<B", bytes(board.status_frame().data))[0] & 0b1000


# --- modules that switch themselves off ----------------------------------------------------------


def test_a_reading_level_module_switches_off_after_its_timeout() -> None:
    devices, _, clock = reading_devices()
    driver = simulated_module_driver(devices, DC, "m1")
    assert driver is not None
    module = driver.module
    driver.command(400.0, 20.0, precharge=False)
    clock.now += 9.9
    assert module.reading(clock.now).output_current == 20.0
    driver.command(400.0, 30.0, precharge=False)  # a fresh command restarts the count
    clock.now += 9.9
    reading = module.reading(clock.now)
    assert (reading.output_voltage, reading.output_current) == (400.0, 30.0)
    clock.now += 0.1
    reading = module.reading(clock.now)
    assert (reading.output_voltage, reading.output_current) == (0.0, 0.0)
    clock.now += 60.0
    assert module.reading(clock.now).output_current == 0.0


def test_a_scripted_output_never_commanded_stays() -> None:
    devices, _, clock = reading_devices()
    module = devices.modules[(DC, "m1")]
    assert isinstance(module, SimulatedModule)
    module.output_current = 80.0  # a scenario's stuck module
    clock.now += 3600.0
    reading = module.reading(clock.now)
    assert isinstance(reading, ModuleReading)
    assert reading.output_current == 80.0


def test_switch_off_is_a_command_too() -> None:
    devices, _, clock = reading_devices()
    driver = simulated_module_driver(devices, DC, "m1")
    assert driver is not None
    driver.command(400.0, 20.0, precharge=False)
    driver.switch_off()
    assert driver.module.last_command_at == clock.now
    assert driver.watchdog_s == DEFAULT_WATCHDOG_S == MODULE_COMMAND_TIMEOUT_S


def infy_profile(watchdog_s: float | None) -> Profile:
    text = (REGISTRY.directory / "infypower-reg.toml").read_text(encoding="utf-8")
    line = "watchdog_s = 10.0"
    assert line in text
    replaced = "" if watchdog_s is None else f"watchdog_s = {watchdog_s}"
    return Profile.model_validate(tomllib.loads(text.replace(line, replaced)))


def wire_module(profile: Profile, clock: Clock) -> SimulatedCanModule:
    config = load_config(example_config("sim-station.toml"))
    module = config.evse[0].module[0]  # m1, address 1, on sim-can0
    return SimulatedCanModule(
        evse_id=DC, config=module, codec=IdFieldsCodec(profile, 0xF0), clock=clock
    )


def replies(module: SimulatedCanModule) -> tuple[float, float]:
    """(voltage, current) the module answers a poll with."""
    codec = module.codec
    output_current = None
    for request in codec.poll_requests(module.config.address):
        reply = module.answer(request)
        if reply is None:
            continue
        outcome, decoded = codec.decode(reply)
        if outcome is Outcome.DECODED and decoded is not None:
            output_current = decoded.values.get("output_current", output_current)
    assert output_current is not None
    return module.output_voltage, output_current


def command(module: SimulatedCanModule, voltage: float, current: float) -> None:
    codec, address = module.codec, module.config.address
    frames: list[can.Message] = setpoint_frames(codec, address, voltage, current)
    for frame in frames + switch_frames(codec, address, on=True):
        assert module.answer(frame) is None


@pytest.mark.parametrize(("watchdog_s", "timeout_s"), [(None, 10.0), (10.0, 10.0), (4.0, 4.0)])
def test_a_wire_module_switches_off_after_its_profiles_watchdog(
    watchdog_s: float | None, timeout_s: float
) -> None:
    clock = Clock()
    module = wire_module(infy_profile(watchdog_s), clock)
    assert module.command_timeout_s == timeout_s
    command(module, 400.0, 25.0)
    assert replies(module) == (400.0, 25.0)
    clock.now += timeout_s - 0.1
    assert replies(module) == (400.0, 25.0)  # polls answered, yet they are no commands
    clock.now += 0.1
    assert replies(module) == (0.0, 0.0)
    assert not module.switched_on
    command(module, 380.0, 10.0)  # commanded again: on again
    assert replies(module) == (380.0, 10.0)


def test_a_silent_wire_module_that_comes_back_late_is_off() -> None:
    """The issue's m3: silent while commanded, back after its timeout: it must not deliver its
    last setpoint."""
    clock = Clock()
    module = wire_module(REGISTRY.get("infypower-reg"), clock)
    command(module, 400.0, 80.0)
    module.silent = True
    command(module, 400.0, 80.0)  # a silent module hears nothing
    clock.now += 30.0
    module.silent = False
    assert replies(module) == (0.0, 0.0)


def test_the_wire_modules_of_a_configuration_take_the_devices_clock() -> None:
    config = load_config(example_config("sim-station.toml"))
    clock = Clock()
    devices = SimulatedDevices.from_config(config, Sink(), clock, REGISTRY)
    wire = devices.modules[(DC, "m1")]
    assert isinstance(wire, SimulatedCanModule)
    assert wire.clock is clock
    assert wire.command_timeout_s == REGISTRY.get("infypower-reg").header.watchdog_s
    bus = next(b for b in config.bus if b.name == "sim-can0")
    assert build_wire_module(DC, config.evse[0].module[0], bus, REGISTRY, clock).clock is clock


# --- each module's minimum regulated current -----------------------------------------------------


def test_reading_level_modules_give_their_configured_minimum() -> None:
    raw = load_config(FIXTURES / "configs" / "reading-station.toml").model_dump(
        mode="json", exclude_none=True
    )
    raw["evse"][0]["module"][1]["simulated"]["min_current_a"] = 1.5
    devices, _, _ = reading_devices(Config.model_validate(raw))
    m1 = simulated_module_driver(devices, DC, "m1")
    m2 = simulated_module_driver(devices, DC, "m2")
    assert m1 is not None
    assert m2 is not None
    assert (m1.min_current_a, m2.min_current_a) == (0.0, 1.5)
    assert simulated_module_driver(devices, AC, "m1") is None


def test_a_module_no_transport_reaches_has_the_default_minimum() -> None:
    assert NoModuleDriver().min_current_a == DEFAULT_MIN_CURRENT_A == 1.0
    assert NoModuleDriver(10.0, 3.0).min_current_a == 3.0
