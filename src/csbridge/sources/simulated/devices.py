"""Simulated device sources: modules, IMDs and boards that report readings like the real ones,
scriptable from tests and scenarios (silence a module, heat a plug, lower the insulation, jam
the connector lock), and a board that plays the EV's pilot (plug in, S2 closed, paused,
unplugged).

They feed the limits engine directly. The CAN layer replaces them with simulated devices that
speak the real wire protocols; the readings they produce are the same.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from csbridge.config import Config, ConfigError, ImdConfig
from csbridge.sources.can import (
    ContactorMatrixCodec,
    ProfileRegistry,
    board_layout_path,
    load_matrix_layout,
)
from csbridge.sources.readings import (
    BoardReading,
    Capability,
    CpState,
    ImdReading,
    ModuleReading,
    ReadingSink,
)
from csbridge.sources.simulated.can_devices import (
    BoardControls,
    ModuleControls,
    SimulatedCanBoard,
    SimulatedCanBus,
    SimulatedCanImd,
    SimulatedCanModule,
    build_wire_board,
    build_wire_imd,
    build_wire_module,
    wire_bus_for,
    wire_simulation_problems,
)
from csbridge.sources.simulated.contactor_matrix import SimulatedContactorMatrix
from csbridge.sources.simulated.wire_families import module_kind
from csbridge.support import Clock

log = logging.getLogger("csbridge.sim")

PILOT_ACTIONS = frozenset({"plug_in", "ev_ready", "ev_pause", "unplug"})
"""What the simulated EV does at the pilot: plug in (B), close S2 (C), open it again (B),
unplug (A)."""
MODULE_ACTIONS = frozenset({"silence_module", "restore_module"})
PLUGGED_IN = (CpState.B, CpState.C, CpState.D)
EV_READY = (CpState.C, CpState.D)
"""D is C with ventilation asked for: the EV's S2 is closed in both."""


@dataclass(slots=True, kw_only=True)
class SimulatedModule(ModuleControls):
    """A module that hands its readings to the engine directly. Its output is what its driver
    last commanded, until its command timeout passes without another command."""

    stuck_on: bool = False
    """Its output stage ignores every command (a welded or hung output): it keeps delivering
    what it delivers, as a fault test needs."""

    def command(self, voltage: float, current: float, now: float) -> None:
        if self.stuck_on:
            return
        self.last_command_at = now
        self.output_voltage = voltage
        self.output_current = current

    def switch_off(self, now: float) -> None:
        if self.stuck_on:
            return
        self.last_command_at = now
        self.output_voltage = 0.0
        self.output_current = 0.0

    def reading(self, now: float) -> ModuleReading:
        self.expire(now)
        rated = self.config.simulated
        assert rated is not None  # only modules with a [simulated] table are simulated
        export = Capability(
            max_voltage=rated.max_voltage_v,
            min_voltage=rated.min_voltage_v,
            max_current=rated.max_current_a,
            min_current=rated.min_current_a,
            max_power=rated.max_power_w,
        )
        import_ = None
        if self.config.bidirectional and rated.max_import_current_a is not None:
            import_ = Capability(
                max_voltage=rated.max_voltage_v,
                min_voltage=rated.min_voltage_v,
                max_current=rated.max_import_current_a,
                max_power=rated.max_import_power_w or 0.0,
            )
        return ModuleReading(
            name=self.config.name,
            address=self.config.address,
            at=now,
            online=True,
            output_voltage=self.output_voltage,
            output_current=self.output_current,
            export=export,
            import_=import_,
            temperature_c=self.temperature_c,
            fault=self.fault,
            over_temperature=self.over_temperature,
            input_lost=self.input_lost,
        )

    @property
    def period_s(self) -> float:
        return self.config.poll_period_s


@dataclass(slots=True)
class SimulatedImd:
    evse_id: str
    config: ImdConfig
    resistance_ohm: float = 5_000_000.0
    silent: bool = False
    device_fault: bool = False
    self_test_until: float = 0.0

    def start_self_test(self, now: float) -> None:
        assert self.config.simulated is not None
        self.self_test_until = now + self.config.simulated.self_test_s

    def reading(self, now: float) -> ImdReading:
        testing = now < self.self_test_until
        return ImdReading(
            at=now,
            resistance_ohm=None if testing else self.resistance_ohm,
            self_test_running=testing,
            device_fault=self.device_fault,
        )

    @property
    def period_s(self) -> float:
        assert self.config.simulated is not None
        return self.config.simulated.period_s


@dataclass(slots=True, kw_only=True)
class SimulatedBoard(BoardControls):
    """A board that hands its readings to the engine directly; its lock travels by the clock
    the readings are taken at."""

    def reading(self, now: float) -> BoardReading:
        simulated = self.config.simulated
        assert simulated is not None
        self.settle_lock(now)
        return BoardReading(
            at=now,
            evse_temperature_c=self.evse_temperature_c,
            plug_temperature_c=self.plug_temperature_c,
            rcd_error=self.rcd_error,
            cp_state=self.cp_state,
            emergency_stop=self.emergency_stop,
            contactor_closed=self.contactor_closed,
            fault=self.fault,
            max_current_a=simulated.max_current_a,
            max_discharge_current_a=simulated.max_discharge_current_a,
            phases=simulated.phases,
            lock=self.lock_state,
        )

    @property
    def period_s(self) -> float:
        assert self.config.simulated is not None
        return self.config.simulated.period_s


SimulatedDevice = SimulatedModule | SimulatedImd | SimulatedBoard


def _checked_registry(config: Config, registry: ProfileRegistry | None) -> ProfileRegistry | None:
    """The registry, once every simulated module on the wire is known to be simulatable
    (ConfigError naming each that is not)."""
    if any(m.can is not None and m.simulated is not None for e in config.evse for m in e.module):
        registry = registry or ProfileRegistry(extra=config.station.profile_dirs)
        problems = wire_simulation_problems(config, registry)
        if problems:
            raise ConfigError("config", problems)
    return registry


@dataclass(slots=True)
class SimulatedDevices:
    """Every device of the configuration that has a [simulated] table: without `can` it hands
    readings to the engine; with `can` it speaks the profile's wire protocol on that bus."""

    sink: ReadingSink
    clock: Clock
    modules: dict[tuple[str, str], SimulatedModule | SimulatedCanModule] = field(
        default_factory=dict
    )
    imds: dict[str, SimulatedImd | SimulatedCanImd] = field(default_factory=dict)
    boards: dict[str, SimulatedBoard | SimulatedCanBoard] = field(default_factory=dict)
    wire_buses: dict[str, SimulatedCanBus] = field(default_factory=dict)
    matrices: dict[str, SimulatedContactorMatrix] = field(default_factory=dict)
    """Per pool (by name): its contactor matrix board simulated on its bus."""
    pooled: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    """A shared pool's module as each other EVSE of its pool names it -> its key in `modules`
    (its pool's first EVSE's), so any of the pool's EVSEs can silence it."""
    _timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    """Per reading-level board (by evse_id): the timer that reports its lock at its end."""

    @classmethod
    def from_config(
        cls,
        config: Config,
        sink: ReadingSink,
        clock: Clock,
        registry: ProfileRegistry | None = None,
    ) -> SimulatedDevices:
        devices = cls(sink, clock)
        buses = {bus.name: bus for bus in config.bus}
        registry = _checked_registry(config, registry)
        # A shared pool's modules report as its first EVSE's (the engine shares them).
        stacks = [(evse.evse_id, evse.module) for evse in config.evse]
        stacks += [(pool.evse_ids[0], pool.module) for pool in config.pool]
        devices.pooled = {
            (evse_id, module.name): (pool.evse_ids[0], module.name)
            for pool in config.pool
            for evse_id in pool.evse_ids[1:]
            for module in pool.module
        }
        for evse_id, modules in stacks:
            for module in modules:
                if module.simulated is None:
                    continue
                key = (evse_id, module.name)
                if module.can is None:
                    devices.modules[key] = SimulatedModule(
                        evse_id=evse_id,
                        config=module,
                        temperature_c=module.simulated.temperature_c,
                    )
                else:
                    registry = registry or ProfileRegistry(extra=config.station.profile_dirs)
                    wire = build_wire_module(
                        evse_id,
                        module,
                        buses[module.can.bus],
                        registry,
                        clock,
                        kind=module_kind(module.can.profile),
                    )
                    wire_bus_for(devices.wire_buses, buses, module.can.bus).modules.append(wire)
                    devices.modules[key] = wire
        devices.add_wire_matrices(config, clock)
        for evse in config.evse:
            imd = evse.imd
            if imd is not None and imd.simulated is not None:
                if imd.can is None:
                    devices.imds[evse.evse_id] = SimulatedImd(
                        evse.evse_id, imd, resistance_ohm=imd.simulated.resistance_ohm
                    )
                else:
                    registry = registry or ProfileRegistry(extra=config.station.profile_dirs)
                    wire_imd = build_wire_imd(evse.evse_id, imd, registry, clock)
                    wire_bus_for(devices.wire_buses, buses, imd.can.bus).imds.append(wire_imd)
                    devices.imds[evse.evse_id] = wire_imd
            board = evse.board
            if board is not None and board.simulated is not None:
                if board.can is None:
                    devices.boards[evse.evse_id] = SimulatedBoard(
                        evse_id=evse.evse_id,
                        config=board,
                        evse_temperature_c=board.simulated.evse_temperature_c,
                        plug_temperature_c=board.simulated.plug_temperature_c,
                    )
                else:
                    registry = registry or ProfileRegistry(extra=config.station.profile_dirs)
                    wire_board = build_wire_board(evse, registry, clock)
                    wire_bus_for(devices.wire_buses, buses, board.can.bus).boards.append(wire_board)
                    devices.boards[evse.evse_id] = wire_board
        return devices

    def add_wire_matrices(self, config: Config, clock: Clock) -> None:
        """Each pool's simulated contactor matrix board on its bus."""
        buses = {bus.name: bus for bus in config.bus}
        for pool in config.pool:
            board = pool.board
            if board is None or board.bus is None or board.simulated is None:
                continue
            layout = load_matrix_layout(board_layout_path(board))
            matrix = SimulatedContactorMatrix(
                ContactorMatrixCodec(layout), delay_s=board.simulated.delay_s, clock=clock
            )
            wire_bus_for(self.wire_buses, buses, board.bus).matrices.append(matrix)
            self.matrices[pool.name] = matrix

    def reading_level(self) -> list[SimulatedDevice]:
        """The devices that hand readings over directly (no wire protocol)."""
        found: list[SimulatedDevice] = [
            b for b in self.boards.values() if isinstance(b, SimulatedBoard)
        ]
        found += [m for m in self.modules.values() if isinstance(m, SimulatedModule)]
        found += [i for i in self.imds.values() if isinstance(i, SimulatedImd)]
        return found

    def apply(self, evse_id: str, command: dict[str, Any]) -> str | None:
        """A person's action on the simulated station; why not, or None when done.

        The EV's pilot: `plug_in` (B), `ev_ready` (C: the EV closed S2; only when plugged in),
        `ev_pause` (back to B; only from C), `unplug` (A). A module: `silence_module`,
        `restore_module` (with `module`)."""
        action = command.get("action")
        if action in PILOT_ACTIONS:
            board = self.boards.get(evse_id)
            if board is None:
                return f"{evse_id} has no simulated board to plug into"
            refused = _pilot(board, action)
            if refused is not None:
                return f"{evse_id}: {refused}"
            self.emit(board)
            return None
        if action not in MODULE_ACTIONS:
            return f"no simulated action {action!r}"
        name = command.get("module")
        key = (evse_id, str(name))
        module = self.modules.get(self.pooled.get(key, key))
        if module is None:
            return f"{evse_id} has no simulated module {name!r}"
        module.silent = action == "silence_module"
        self.emit(module)
        return None

    def command_lock(self, board: SimulatedBoard | SimulatedCanBoard, *, locked: bool) -> None:
        """Drive a simulated board's connector lock (as its BOARD_Command would): it reports
        MOVING at once and its end when the travel is over."""
        clock = board.clock if isinstance(board, SimulatedCanBoard) else self.clock
        if not board.command_lock(locked, clock()):
            return
        self.emit(board)
        self.follow(board)

    def follow(self, board: SimulatedBoard | SimulatedCanBoard) -> None:
        """Report the board's next change (its lock at its end) when it happens, on the running
        event loop; without one the next reading shows it (readings settle by the clock)."""
        if isinstance(board, SimulatedCanBoard):
            if board.can_bus is not None:
                self.wire_buses[board.can_bus].follow(board)
            return
        timer = self._timers.pop(board.evse_id, None)
        if timer is not None:
            timer.cancel()
        due = board.lock_due()
        if due is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timers[board.evse_id] = loop.call_later(
            max(0.0, due - self.clock()), self._settle, board
        )

    def _settle(self, board: SimulatedBoard) -> None:
        self._timers.pop(board.evse_id, None)
        self.emit(board)  # the reading settles the lock by the clock
        self.follow(board)  # early by a clock tick, or jammed: look again when due

    def count(self) -> int:
        return len(self.modules) + len(self.imds) + len(self.boards) + len(self.matrices)

    def emit(
        self, device: SimulatedDevice | SimulatedCanModule | SimulatedCanImd | SimulatedCanBoard
    ) -> None:
        """Report now (unless silent), as the device does on its period (a wire board: its
        status frame). A wire module only answers polls, so it has nothing to say unasked."""
        if isinstance(device, SimulatedCanModule):
            return
        if isinstance(device, SimulatedCanImd | SimulatedCanBoard):
            if device.can_bus is not None:
                self.wire_buses[device.can_bus].emit(device)
            return
        if not device.silent:
            self.sink(device.evse_id, device.reading(self.clock()))

    async def run(self) -> None:
        """Every device reports on its own period (or answers on its bus); until cancelled."""
        devices = self.reading_level()
        if not devices and not self.wire_buses:
            return
        try:
            async with asyncio.TaskGroup() as tasks:
                for device in devices:
                    tasks.create_task(self._report(device))
                for bus in self.wire_buses.values():
                    tasks.create_task(bus.run(), name=f"sim-bus-{bus.config.name}")
        finally:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()

    async def _report(self, device: SimulatedDevice) -> None:
        while True:
            self.emit(device)
            await asyncio.sleep(device.period_s)


def _pilot(board: SimulatedBoard | SimulatedCanBoard, action: str) -> str | None:
    """Play the EV's side of the pilot; why not, or None when done."""
    state = board.cp_state
    if action == "ev_ready":
        if state not in PLUGGED_IN:
            return f"ev_ready needs the EV plugged in (CP state B), not in {state}: plug_in first"
        if state not in EV_READY:
            board.cp_state = CpState.C
    elif action == "ev_pause":
        if state not in EV_READY:
            return f"ev_pause needs the EV ready (CP state C), not in {state}"
        board.cp_state = CpState.B
    else:
        board.cp_state = CpState.B if action == "plug_in" else CpState.A
    log.info(
        "event=sim_pilot evse=%s action=%s cp=%s->%s", board.evse_id, action, state, board.cp_state
    )
    return None
