"""Simulated devices that speak the real wire protocols on a CAN bus (python-can's virtual bus
in the demo and the tests, or a vcan): modules answer the controller's polls as the real ones
do and switch themselves off when the controller's commands stop, the IMD sends its cyclic
frame, the control board its status and capabilities and it obeys BOARD_Command (contactor,
PWM, connector lock). The station under test runs its real codecs against them.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from contextlib import suppress
from dataclasses import dataclass, field

import can

from csbridge.config import (
    BoardConfig,
    BusConfig,
    Config,
    EvseConfig,
    ImdConfig,
    Kind,
    ModuleConfig,
)
from csbridge.sources.can import (
    FORMAT_CHAR,
    BoardCommand,
    CommandSpec,
    DbcCodec,
    IdFieldsCodec,
    MessageSpec,
    Profile,
    ProfileRegistry,
    command_id,
    read_board_command,
    reply_frame,
)
from csbridge.sources.readings import CpState, LockState
from csbridge.sources.simulated.contactor_matrix import SimulatedContactorMatrix
from csbridge.support import Clock

log = logging.getLogger("csbridge.sim")

OVER_TEMPERATURE_TRIP_C = 100.0
MODULE_COMMAND_TIMEOUT_S = 10.0
"""How long a simulated module holds its output without a command when its profile states no
`watchdog_s`: real modules switch themselves off after their own CAN timeout (Infypower: 10 s;
the same default as the power path's DEFAULT_WATCHDOG_S)."""


@dataclass(slots=True, kw_only=True)
class ModuleControls:
    """What a person or a scenario changes on a simulated module, however it reports it; and the
    module's own command timeout: once commanded, it switches its output off when no command
    follows for `command_timeout_s` (output a scenario set directly, never commanded, stays)."""

    evse_id: str
    config: ModuleConfig
    silent: bool = False
    fault: bool = False
    input_lost: bool = False
    temperature_c: float = 35.0
    output_voltage: float = 0.0
    output_current: float = 0.0
    command_timeout_s: float = MODULE_COMMAND_TIMEOUT_S
    last_command_at: float | None = None
    """When the module last received a command (None: never, or since it timed out)."""

    @property
    def over_temperature(self) -> bool:
        return self.temperature_c >= OVER_TEMPERATURE_TRIP_C

    def expire(self, now: float) -> bool:
        """Switch the output off if the last command is `command_timeout_s` old; whether it just
        did."""
        if self.last_command_at is None or now - self.last_command_at < self.command_timeout_s:
            return False
        log.info(
            "event=sim_module_timed_out evse=%s module=%s silent_for_s=%.1f -- output off",
            self.evse_id,
            self.config.name,
            now - self.last_command_at,
        )
        self.last_command_at = None
        self.output_voltage = 0.0
        self.output_current = 0.0
        return True


@dataclass(slots=True, kw_only=True)
class SimulatedCanModule(ModuleControls):
    """An id-fields power module: answers each poll request addressed to it (told apart by its
    identifier and payload, as a module that multiplexes registers in the data does), unless
    silent, and obeys the profile's commands (told apart by their identifier and fixed bytes).
    Its command timeout is its profile's `watchdog_s` (else MODULE_COMMAND_TIMEOUT_S), counted
    from the last command frame it received; polls do not count.

    A profile with a high and a low voltage mode (`high_mode_above_v`): the module starts in its
    low mode, where its output stops at that voltage whatever it is told; a setpoint above it
    received in the low mode, or a mode change received with the output on, is counted (a real
    module would not follow it)."""

    codec: IdFieldsCodec
    clock: Clock = field(default=time.monotonic)
    commanded_voltage: float = 0.0
    commanded_current: float = 0.0
    _requests: dict[tuple[int, bytes], MessageSpec] = field(default_factory=dict)
    _commands: dict[int, list[CommandSpec]] = field(default_factory=dict)
    switched_on: bool = False
    high_mode: bool = False
    setpoints_above_low_mode: int = 0
    """Setpoints above `high_mode_above_v` received while in the low mode."""
    mode_changes_while_on: int = 0

    def __post_init__(self) -> None:
        watchdog = self.codec.profile.header.watchdog_s
        self.command_timeout_s = MODULE_COMMAND_TIMEOUT_S if watchdog is None else watchdog
        for spec in self.codec.profile.message:
            if spec.poll:
                key = (self.codec.request_id(spec, self.config.address), _data(spec.request_data))
                self._requests[key] = spec
        for command in self.codec.profile.command:
            identifier = command_id(self.codec, command, self.config.address)
            self._commands.setdefault(identifier, []).append(command)

    def _obey(self, frame: can.Message) -> bool:
        """A command to this module: its output follows, as the real module's would. Whether
        the frame was one of its commands."""
        data = bytes(frame.data)
        obeyed = False
        for command in self._commands.get(frame.arbitration_id, ()):
            if not _is_command(command, data):
                continue
            obeyed = True
            if command.name in ("set_output", "set_import"):
                self._set(command, data)
            elif command.name in ("switch_on", "switch_off"):
                self.switched_on = command.name == "switch_on"
            elif command.name in ("select_high_mode", "select_low_mode"):
                self._select_mode(command.name == "select_high_mode")
            else:
                self._select_direction(command.name == "select_import_mode")
        if not obeyed:
            return False  # a request on a command's identifier (Winline reads and sets share it)
        on = (self.switched_on or not self._has_switch()) and not self.fault
        self.output_voltage = min(self.commanded_voltage, self._voltage_top()) if on else 0.0
        self.output_current = self.commanded_current if on else 0.0
        return True

    def _set(self, command: CommandSpec, data: bytes) -> None:
        for value in command.values:
            order = ">" if value.order == "big" else "<"
            raw = struct.unpack_from(order + FORMAT_CHAR[value.type], data, value.at)[0]
            physical = float(raw) * value.scale
            if value.quantity == "voltage":
                self.commanded_voltage = physical
                if physical > self._voltage_top():
                    self.setpoints_above_low_mode += 1
            else:
                self.commanded_current = physical

    def _select_mode(self, high: bool) -> None:
        if self.switched_on and high != self.high_mode:
            self.mode_changes_while_on += 1
        self.high_mode = high

    def _select_direction(self, import_: bool) -> None:
        """A bidirectional family's working mode (wire_families.py); others have none."""

    def _has_switch(self) -> bool:
        """Whether the profile switches the output; without, the module follows its setpoint
        (0 A is off)."""
        return bool(self.codec.profile.commands("switch_on"))

    def _voltage_top(self) -> float:
        """What the output can reach in the present mode."""
        threshold = self.codec.profile.header.high_mode_above_v
        return threshold if threshold is not None and not self.high_mode else float("inf")

    def values(self) -> dict[str, float]:
        rated = self.config.simulated
        assert rated is not None
        values = {
            "output_voltage": self.output_voltage,
            "output_current": self.output_current,
            "temperature_c": self.temperature_c,
            "export.max_voltage": rated.max_voltage_v,
            "export.min_voltage": rated.min_voltage_v,
            "export.max_current": rated.max_current_a,
            "export.max_power": rated.max_power_w,
        }
        if rated.max_import_current_a is not None:
            values["import.max_current"] = rated.max_import_current_a
            values["import.max_power"] = rated.max_import_power_w or 0.0
        return values

    def flags(self) -> dict[str, bool]:
        return {
            "fault": self.fault,
            "input_lost": self.input_lost,
            "over_temperature": self.over_temperature,
        }

    def expire(self, now: float) -> bool:
        if not ModuleControls.expire(self, now):
            return False
        self.switched_on = False
        return True

    def replies(self, spec: MessageSpec) -> list[can.Message]:
        """The module's answer to the request of `spec` (a family may answer with several
        frames)."""
        return [reply_frame(self.codec, spec, self.config.address, self.values(), self.flags())]

    def answer_all(self, frame: can.Message) -> list[can.Message]:
        """What the module sends back for one frame on the bus: nothing for a command, another
        module's frame or while silent."""
        now = self.clock()
        self.expire(now)  # time passes for a silent module too
        if self.silent or frame.is_error_frame:
            return []
        if frame.arbitration_id in self._commands and self._obey(frame):
            self.last_command_at = now
            return []
        spec = self._requests.get((frame.arbitration_id, bytes(frame.data)))
        return [] if spec is None else self.replies(spec)

    def answer(self, frame: can.Message) -> can.Message | None:
        """The first frame of answer_all (a module that answers a request with one frame)."""
        replies = self.answer_all(frame)
        return replies[0] if replies else None

    def broadcasts(self) -> list[can.Message]:
        """Frames the module sends by itself every `broadcast_period_s` (none by default)."""
        return []

    def cyclic_messages(self) -> dict[float, list[MessageSpec]]:
        """The profile's messages the module sends unasked (those with `period_s`), by period:
        a broadcasting module, which nobody polls, tells its values so."""
        by_period: dict[float, list[MessageSpec]] = {}
        for spec in self.codec.profile.message:
            if spec.period_s is not None and not spec.error_reply:
                by_period.setdefault(spec.period_s, []).append(spec)
        return by_period

    def cyclic_frames(self, specs: list[MessageSpec]) -> list[can.Message]:
        """The frames of `specs` with the module's values now (none while silent)."""
        self.expire(self.clock())  # nothing may ever command it: its own timeout runs here
        if self.silent:
            return []
        values, flags = self.values(), self.flags()
        return [reply_frame(self.codec, spec, self.config.address, values, flags) for spec in specs]

    @property
    def broadcast_period_s(self) -> float | None:
        return None


def _data(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text)


def _is_command(command: CommandSpec, data: bytes) -> bool:
    """Whether `data` is this command: its length, and every byte no value fills as given."""
    fixed = command.payload
    if len(data) != len(fixed):
        return False
    filled = {
        at
        for value in command.values
        for at in range(value.at, value.at + struct.calcsize(">" + FORMAT_CHAR[value.type]))
    }
    return all(data[at] == fixed[at] for at in range(len(fixed)) if at not in filled)


@dataclass(slots=True)
class SimulatedCanImd:
    """A dbc-family IMD: its cyclic frame, with resistance and status bits."""

    evse_id: str
    config: ImdConfig
    codec: DbcCodec
    resistance_ohm: float = 5_000_000.0
    silent: bool = False
    device_fault: bool = False
    chassis_fault: bool = False
    """IMC_CHASSIS_FAULT: the IMD found a fault to the chassis (ground)."""
    self_test_until: float = 0.0
    clock: Clock = field(default=lambda: 0.0)

    def start_self_test(self, now: float) -> None:
        assert self.config.simulated is not None
        self.self_test_until = now + self.config.simulated.self_test_s

    @property
    def can_bus(self) -> str | None:
        return self.config.can.bus if self.config.can is not None else None

    def frame(self) -> can.Message:
        testing = self.clock() < self.self_test_until
        return self.codec.encode(
            "IMD_Info",
            {
                "R_ISO": min(65535, round(self.resistance_ohm / 1000)),
                "IMC_ISO_FAILURE": 0,
                "IMC_CHASSIS_FAULT": int(self.chassis_fault),
                "IMC_SYSTEM_FAILURE": int(self.device_fault),
                "IMC_CALIBRATION_RUNNING": 0,
                "IMC_SELF_TEST_RUNNING": int(testing),
                "IMC_ISO_WARNING": 0,
                "VIFC_MEASUREMENT_DEACTIVATED": 0,
                "VIFC_IMC_CONNECTION_ERROR": 0,
                "VIFC_IMC_ALIVE_ERROR": 0,
                "VIFC_COMMAND_ERROR": 0,
                "VIFC_R_ISO_OUTDATED": int(testing),
                "VIFC_SELF_TEST_OVERALL_NOT_EXECUTED": 0,
                "VIFC_SELF_TEST_PARAMETER_NOT_EXECUTED": 0,
            },
        )

    @property
    def period_s(self) -> float:
        assert self.config.simulated is not None
        return self.config.simulated.period_s


BOARD_STATUS_PERIOD_S = 0.1
BOARD_CAPABILITIES_PERIOD_S = 1.0
PP_OPEN_OHM = 0x3FFF
"""BOARD_Status's PP_RESISTANCE for no cable: all 14 bits set."""
CP_CODE = {state: code for code, state in enumerate(CpState)}
"""BOARD_Status's CP_STATE: A..F as 0..5."""
LOCK_CODE = {
    LockState.UNLOCKED: 0,
    LockState.LOCKED: 1,
    LockState.MOVING: 2,
    LockState.FAULT: 3,
}
"""BOARD_Status's LOCK_STATE."""
LOCK_TRAVEL_S = 0.2
"""How long the simulated lock actuator takes from one end to the other."""
LOCK_JAM_FAULT_S = 1.5
"""How long a jammed lock reports MOVING before it gives up with FAULT: longer than the 1 s in
which the station expects a lock confirmed, so both the missing confirmation and the board's
own fault can be tested."""


@dataclass(slots=True, kw_only=True)
class BoardControls:
    """What a person or a scenario changes on a simulated board, however it reports it."""

    evse_id: str
    config: BoardConfig
    evse_temperature_c: float = 30.0
    plug_temperature_c: float = 30.0
    emergency_stop: bool = False
    rcd_error: bool = False
    fault: bool = False
    silent: bool = False
    cp_state: CpState = CpState.A
    contactor_closed: bool = False
    pwm_on: bool = False
    pwm_duty_percent: float = 0.0
    lock_state: LockState = LockState.UNLOCKED
    """What the lock's feedback says now (MOVING while the actuator travels)."""
    lock_jammed: bool = False
    """Scripted: the actuator sticks; a lock or unlock command then stays MOVING for
    `lock_jam_fault_s` and ends in FAULT."""
    lock_travel_s: float = LOCK_TRAVEL_S
    lock_jam_fault_s: float = LOCK_JAM_FAULT_S
    lock_commanded: LockState = LockState.UNLOCKED
    """The end the lock was last told to go to (UNLOCKED or LOCKED)."""
    lock_moving_since: float | None = None
    """When the current travel started (None: at rest, or faulted)."""
    discharge_allowed_w: float = 0.0
    """AC BPT: the total discharge the last accepted setpoint allows the EV's inverter."""

    def command_lock(self, locked: bool, now: float) -> bool:
        """Drive the lock to one end; whether it started moving. A command to the end it is at,
        travelling to, or faulted on the way to changes nothing (a faulted lock is retried by
        commanding the other end first)."""
        target = LockState.LOCKED if locked else LockState.UNLOCKED
        if target is self.lock_commanded:
            return False
        self.lock_commanded = target
        self.lock_state = LockState.MOVING
        self.lock_moving_since = now
        return True

    def lock_due(self) -> float | None:
        """When the lock's travel ends (at its end, or in FAULT if jammed); None: not moving."""
        since = self.lock_moving_since
        if since is None:
            return None
        return since + (self.lock_jam_fault_s if self.lock_jammed else self.lock_travel_s)

    def settle_lock(self, now: float) -> bool:
        """End the lock's travel if it is due; whether the lock state just changed."""
        due = self.lock_due()
        if due is None or now < due:
            return False
        self.lock_moving_since = None
        self.lock_state = LockState.FAULT if self.lock_jammed else self.lock_commanded
        return True


@dataclass(slots=True, kw_only=True)
class SimulatedCanBoard(BoardControls):
    """A control board on the generic board's DBC: BOARD_Status every 100 ms, BOARD_Capabilities
    every second, and BOARD_Command obeyed: power allowed for any reason but PowerOff closes the
    contactor after `switch_delay_s` (the contactor's pull-in), PowerOff or power refused opens
    it at once; the PWM is taken as commanded and reported as driven (CP_PWM_ON); the connector
    lock travels to the commanded end in `lock_travel_s`, reporting MOVING on the way.
    Scriptable like SimulatedBoard (same attribute names): the status frame reports whatever the
    attributes say."""

    codec: DbcCodec
    pp_ampacity_a: int = 0
    pp_resistance_ohm: int = PP_OPEN_OHM
    max_current_a: float = 0.0
    max_discharge_current_a: float = 0.0
    phases: int = 0
    """0: no AC capability stated (a DC EVSE's board)."""
    switch_delay_s: float = 0.1
    clock: Clock = field(default=time.monotonic)
    last_command: BoardCommand | None = None
    pending_close_at: float | None = None
    """When a commanded close takes effect (None: no close pending)."""

    @property
    def can_bus(self) -> str | None:
        return self.config.can.bus if self.config.can is not None else None

    def receive(self, frame: can.Message) -> BoardCommand | None:
        """Obey a BOARD_Command (any other frame is not for the board): None if it was none."""
        command = read_board_command(self.codec, frame)
        if command is None:
            return None
        self.last_command = command
        self.pwm_on = command.pwm_on
        self.pwm_duty_percent = command.duty_percent
        self.command_lock(command.lock, self.clock())
        if not command.closes_contactor:
            self.pending_close_at = None
            self.contactor_closed = False
        elif not self.contactor_closed and self.pending_close_at is None:
            self.pending_close_at = self.clock() + self.switch_delay_s
        return command

    def settle(self) -> bool:
        """Close the contactor if a commanded close is due, end the lock's travel if it is due;
        whether either just changed."""
        now = self.clock()
        lock_changed = self.settle_lock(now)
        due = self.pending_close_at
        if due is None or now < due:
            return lock_changed
        self.pending_close_at = None
        self.contactor_closed = True
        return True

    def next_due(self) -> float | None:
        """When the next commanded change takes effect (contactor or lock); None: none pending."""
        pending = [t for t in (self.pending_close_at, self.lock_due()) if t is not None]
        return min(pending, default=None)

    def status_frame(self) -> can.Message:
        return self.codec.encode(
            "BOARD_Status",
            {
                "CP_STATE": CP_CODE[self.cp_state],
                "CP_PWM_ON": int(self.pwm_on),
                "CONTACTOR_CLOSED": int(self.contactor_closed),
                "EMERGENCY_STOP": int(self.emergency_stop),
                "RCD_ERROR": int(self.rcd_error),
                "BOARD_FAULT": int(self.fault),
                "PP_AMPACITY": self.pp_ampacity_a,
                "EVSE_TEMPERATURE": _fit(self.evse_temperature_c, -3276.8, 3276.7),
                "PLUG_TEMPERATURE": _fit(self.plug_temperature_c, -3276.8, 3276.7),
                "PP_RESISTANCE": self.pp_resistance_ohm,
                "LOCK_STATE": LOCK_CODE[self.lock_state],
            },
        )

    def capabilities_frame(self) -> can.Message:
        return self.codec.encode(
            "BOARD_Capabilities",
            {
                "MAX_CURRENT": _fit(self.max_current_a, 0.0, 6553.5),
                "MAX_DISCHARGE_CURRENT": _fit(self.max_discharge_current_a, 0.0, 6553.5),
                "PHASES": self.phases,
            },
        )


def _fit(value: float, low: float, high: float) -> float:
    """A number a scripted simulator was given, inside what its signal can carry (the receiver
    then judges it: beyond the rated range the frame is refused, as from a real board)."""
    return min(max(value, low), high)


@dataclass(slots=True)
class SimulatedCanBus:
    """The simulators' own end of one bus."""

    config: BusConfig
    modules: list[SimulatedCanModule] = field(default_factory=list)
    imds: list[SimulatedCanImd] = field(default_factory=list)
    boards: list[SimulatedCanBoard] = field(default_factory=list)
    matrices: list[SimulatedContactorMatrix] = field(default_factory=list)
    """Contactor matrix boards of shared pools (contactor_matrix.py) on this bus."""
    bus: can.BusABC | None = None
    loop: asyncio.AbstractEventLoop | None = None
    _matrix_woken: dict[int, asyncio.Event] = field(default_factory=dict)
    """Per matrix (by id): set when a frame arrived for it to read."""
    _timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    """Per board (by evse_id): the one timer that settles its next commanded change."""

    def send(self, frame: can.Message) -> None:
        if self.bus is None:
            return
        try:
            self.bus.send(frame)
        except can.CanError:
            log.debug("event=sim_send_failed bus=%s", self.config.name)

    def on_frame(self, frame: can.Message) -> None:
        for module in self.modules:
            for reply in module.answer_all(frame):
                self.send(reply)
        for board in self.boards:
            self._command(board, frame)
        if self.matrices and self.loop is not None:
            # The notifier may call from its reader thread: the boards change on the loop only
            # (a loop already closed, as the simulation stops, has nobody left to answer).
            with suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._matrix_heard, frame)

    def _matrix_heard(self, frame: can.Message) -> None:
        for matrix in self.matrices:
            matrix.receive(frame)
            self._matrix_woken.setdefault(id(matrix), asyncio.Event()).set()

    def _command(self, board: SimulatedCanBoard, frame: can.Message) -> None:
        before = (board.contactor_closed, board.lock_state)
        if board.receive(frame) is None:
            return
        if (board.contactor_closed, board.lock_state) != before:
            self.emit(board)  # opened, or the lock started moving: the board tells at once
        self.follow(board)

    def follow(self, board: SimulatedCanBoard) -> None:
        """Tell the board's next commanded change (the contactor pulled in, the lock at its end)
        as soon as it happens, not at the next cycle."""
        timer = self._timers.pop(board.evse_id, None)
        if timer is not None:
            timer.cancel()
        due = board.next_due()
        if due is not None and self.loop is not None:
            delay = max(0.0, due - board.clock())
            self._timers[board.evse_id] = self.loop.call_later(delay, self._settle, board)

    def _settle(self, board: SimulatedCanBoard) -> None:
        self._timers.pop(board.evse_id, None)
        if board.settle():
            self.emit(board)
        # the loop may run a timer a clock tick early, or more is pending: look again when due
        self.follow(board)

    def emit(self, device: SimulatedCanImd | SimulatedCanBoard) -> None:
        """The device's cyclic frame now (a board's status), unless it is silent."""
        if isinstance(device, SimulatedCanBoard):
            device.settle()
            if not device.silent:
                self.send(device.status_frame())
            return
        if not device.silent:
            self.send(device.frame())

    async def run(self) -> None:
        self.bus = can.Bus(channel=self.config.interface_channel, interface=self.config.interface)
        self.loop = asyncio.get_running_loop()
        # A short read timeout: a stop waits that long at most for the notifier's thread.
        notifier = can.Notifier(self.bus, [self.on_frame], timeout=0.05, loop=self.loop)
        try:
            async with asyncio.TaskGroup() as tasks:
                for imd in self.imds:
                    tasks.create_task(self._cyclic(imd))
                for board in self.boards:
                    tasks.create_task(self._board_status(board))
                    tasks.create_task(self._board_capabilities(board))
                broadcasting = [m for m in self.modules if m.broadcast_period_s is not None]
                for module in broadcasting:
                    tasks.create_task(self._module_broadcasts(module))
                cyclic = [(m, p, s) for m in self.modules for p, s in m.cyclic_messages().items()]
                for module, period, specs in cyclic:
                    tasks.create_task(self._module_cyclic(module, period, specs))
                for matrix in self.matrices:
                    tasks.create_task(self._matrix(matrix))
                if (
                    not self.imds
                    and not self.boards
                    and not broadcasting
                    and not cyclic
                    and not self.matrices
                ):
                    await asyncio.Event().wait()
        finally:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            await _stop_notifier(notifier, self.bus)
            self.bus.shutdown()
            self.bus = None
            self.loop = None

    async def _cyclic(self, imd: SimulatedCanImd) -> None:
        while True:
            self.emit(imd)
            await asyncio.sleep(imd.period_s)

    async def _module_broadcasts(self, module: SimulatedCanModule) -> None:
        period = module.broadcast_period_s
        assert period is not None
        while True:
            if not module.silent:
                for frame in module.broadcasts():
                    self.send(frame)
            await asyncio.sleep(period)

    async def _module_cyclic(
        self, module: SimulatedCanModule, period_s: float, specs: list[MessageSpec]
    ) -> None:
        while True:
            for frame in module.cyclic_frames(specs):
                self.send(frame)
            await asyncio.sleep(period_s)

    async def _matrix(self, matrix: SimulatedContactorMatrix) -> None:
        """The board's feedback on change and every cycle; a command wakes it at once."""
        woken = self._matrix_woken.setdefault(id(matrix), asyncio.Event())
        while True:
            if self.bus is not None:
                matrix.tell(self.bus)
            woken.clear()
            wait = max(0.0, matrix.next_due() - matrix.clock())
            with suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), wait)

    async def _board_status(self, board: SimulatedCanBoard) -> None:
        while True:
            self.emit(board)
            await asyncio.sleep(BOARD_STATUS_PERIOD_S)

    async def _board_capabilities(self, board: SimulatedCanBoard) -> None:
        while True:
            if not board.silent:
                self.send(board.capabilities_frame())
            await asyncio.sleep(BOARD_CAPABILITIES_PERIOD_S)


async def _stop_notifier(notifier: can.Notifier, bus: can.BusABC) -> None:
    """Stop the notifier without holding the loop: a socket's reader is removed here, on the
    loop it was added to; a reader thread (the virtual bus) is joined in a worker thread, as
    that join lasts up to the notifier's read timeout."""
    try:
        descriptor = bus.fileno()
    except NotImplementedError:
        descriptor = -1
    if descriptor >= 0:  # as can.Notifier chose: the loop's reader, no thread
        notifier.stop(timeout=0.0)
    else:
        await asyncio.to_thread(notifier.stop, 1.0)


def wire_bus_for(
    buses: dict[str, SimulatedCanBus], configs: dict[str, BusConfig], name: str
) -> SimulatedCanBus:
    if name not in buses:
        buses[name] = SimulatedCanBus(configs[name])
    return buses[name]


def wire_module_problem(profile: Profile) -> str | None:
    """Why a module of `profile` cannot be simulated on the wire, or None. The simulator
    speaks the id-fields family (a dbc module's frames have no address to answer at), and
    must have something to send: replies to polls, or the messages the profile says the
    module sends unasked (`period_s`); a module that does neither would never be heard, and
    its station never becomes ready."""
    if profile.header.family != "id-fields":
        return (
            f"profile {profile.name} is of the {profile.header.family} family: a simulated "
            "module speaks id-fields profiles only (leave `can` out to simulate it without "
            "the wire)"
        )
    if not any(spec.poll or spec.period_s is not None for spec in profile.message):
        return (
            f"profile {profile.name} neither polls a message nor gives any a period_s: the "
            "simulated module would never send a frame (give the messages it broadcasts "
            "their period_s)"
        )
    return None


def wire_simulation_problems(config: Config, registry: ProfileRegistry) -> list[str]:
    """Each simulated module on the wire whose profile cannot be simulated, by key."""
    problems: list[str] = []
    for index, evse in enumerate(config.evse):
        for m_index, module in enumerate(evse.module):
            if module.can is None or module.simulated is None:
                continue
            try:
                profile = registry.get(module.can.profile)
            except KeyError:
                continue  # the router names a missing profile
            problem = wire_module_problem(profile)
            if problem is not None:
                problems.append(f"evse[{index}].module[{m_index}].simulated: {problem}")
    return problems


def build_wire_module(
    evse_id: str,
    module: ModuleConfig,
    bus: BusConfig,
    registry: ProfileRegistry,
    clock: Clock = time.monotonic,
    *,
    kind: type[SimulatedCanModule] = SimulatedCanModule,
) -> SimulatedCanModule:
    """A module of `kind` (a family's simulator, see wire_families.py) on its profile."""
    assert module.can is not None
    assert module.simulated is not None
    codec = IdFieldsCodec(registry.get(module.can.profile), bus.controller_address)
    return kind(
        evse_id=evse_id,
        config=module,
        codec=codec,
        clock=clock,
        temperature_c=module.simulated.temperature_c,
    )


def build_wire_imd(
    evse_id: str, imd: ImdConfig, registry: ProfileRegistry, clock: Clock
) -> SimulatedCanImd:
    assert imd.can is not None
    assert imd.simulated is not None
    profile = registry.get(imd.can.profile)
    codec = DbcCodec(profile, registry.dbc_path(profile))
    return SimulatedCanImd(
        evse_id, imd, codec, resistance_ohm=imd.simulated.resistance_ohm, clock=clock
    )


def build_wire_board(
    evse: EvseConfig, registry: ProfileRegistry, clock: Clock
) -> SimulatedCanBoard:
    """The EVSE's simulated board on its bus. It states the capability its [simulated] table
    gives; an AC EVSE's board states what the table leaves out as the EVSE's own nameplate
    (phases, ac_limits, the discharge power at nominal voltage), which binds as nothing does;
    a DC EVSE's board states no AC capability unless its table gives one."""
    board = evse.board
    assert board is not None
    assert board.can is not None
    assert board.simulated is not None
    simulated = board.simulated
    profile = registry.get(board.can.profile)
    wire = SimulatedCanBoard(
        evse_id=evse.evse_id,
        config=board,
        codec=DbcCodec(profile, registry.dbc_path(profile)),
        evse_temperature_c=simulated.evse_temperature_c,
        plug_temperature_c=simulated.plug_temperature_c,
        clock=clock,
    )
    stated = (
        simulated.phases is not None
        or simulated.max_current_a is not None
        or simulated.max_discharge_current_a is not None
    )
    if evse.kind is Kind.AC or stated:
        wire.phases = simulated.phases or evse.phases
        wire.max_current_a = _first(
            simulated.max_current_a,
            evse.ac_limits.max_current_a if evse.ac_limits is not None else None,
        )
        nameplate_discharge = None
        if evse.ac_bpt_limits is not None and evse.nominal_voltage:
            nameplate_discharge = evse.ac_bpt_limits.max_discharge_power_w / evse.nominal_voltage
        wire.max_discharge_current_a = _first(
            simulated.max_discharge_current_a, nameplate_discharge
        )
    return wire


def _first(*candidates: float | None) -> float:
    return next((value for value in candidates if value is not None), 0.0)
