"""The power path over CAN: modules through their profiles' [[command]] tables, the generic
board's BOARD_Command (contactors, PWM, connector lock), the iso165C IMD's self-test request."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import can

from csbridge.config import BoardConfig, CanDevice, ImdConfig, ModuleConfig
from csbridge.limits import watchdog_or_default
from csbridge.power.direction import DirectionSwitch
from csbridge.power.drivers import DEFAULT_MIN_CURRENT_A, NoModuleDriver, PowerOnReason
from csbridge.power.voltage_mode import VoltageModeSwitch
from csbridge.sources.can import (
    BoardCommand,
    CanBuses,
    CommandMissingError,
    DbcCodec,
    DeviceRouter,
    IdFieldsCodec,
    PowerReason,
    board_command,
    direction_frames,
    mode_frames,
    setpoint_frames,
    switch_frames,
)
from csbridge.support import Clock

log = logging.getLogger("csbridge.power")

BENDER_SELF_TEST = {"REQ_COMMAND": 0x21, "REQ_DATA_WORD_1": 1, "REQ_DATA_WORD_2": 0}
"""iso165C IMD_Request: command 0x21 runs the self-test, data word 1 = 1 the overall test."""


class CanLink(Protocol):
    """One bus as the drivers see it (sources.can's BusLink)."""

    @property
    def name(self) -> str: ...

    @property
    def bus(self) -> object | None:
        """None while the bus is closed (stopping) or being opened again."""
        ...

    def send(self, frame: can.Message) -> bool: ...


def min_current_or_default(min_current_a: float | None) -> float:
    """A profile's `min_regulated_current_a`, or the default when it states none."""
    return DEFAULT_MIN_CURRENT_A if min_current_a is None else min_current_a


@dataclass(slots=True)
class OutputMemory:
    """What the module was last told: on (a setpoint), off, or nothing yet (None)."""

    on: bool | None = None


@dataclass(frozen=True, slots=True)
class CanModule:
    """An id-fields module: a setpoint is its set_output frames then switch_on, in profile
    order; off is switch_off, or a 0 V 0 A setpoint for a profile without it. A module with a
    high and a low voltage mode (`mode`) gets a setpoint only once it is in the mode that
    setpoint needs (power/voltage_mode.py)."""

    name: str
    address: int
    bus: str
    codec: IdFieldsCodec
    link: CanLink | None
    mode: VoltageModeSwitch | None = None
    output: OutputMemory = field(default_factory=OutputMemory)
    direction: DirectionSwitch | None = None
    """A bidirectional module's import/export mode (power/direction.py); None: export only."""

    @property
    def watchdog_s(self) -> float:
        return watchdog_or_default(self.codec.profile.header.watchdog_s)

    @property
    def min_current_a(self) -> float:
        return min_current_or_default(self.codec.profile.header.min_regulated_current_a)

    def command(self, voltage: float, current: float, *, precharge: bool) -> None:
        self._setpoint(voltage, current, import_=False)

    def command_import(self, voltage: float, current: float) -> None:
        """Take at most `current` from the EV: the module in import mode first (off while it
        changes), then the profile's set_import frames and on. A module that cannot import is
        switched off."""
        if self.direction is None:
            log.error(
                "event=import_not_possible module=%s why=export-only profile -- off", self.name
            )
            self.switch_off()
            return
        self._setpoint(voltage, current, import_=True)

    def _setpoint(self, voltage: float, current: float, *, import_: bool) -> None:
        try:
            frames = setpoint_frames(self.codec, self.address, voltage, current, import_=import_)
            if self.codec.profile.commands("switch_on"):
                # without an on command the output follows the setpoint (Huawei's R4850)
                frames += switch_frames(self.codec, self.address, on=True)
        except (ValueError, CommandMissingError) as error:
            # Never leave a module on an older, possibly larger, setpoint: off it goes.
            log.error("event=setpoint_not_encodable module=%s why=%s -- off", self.name, error)
            with contextlib.suppress(CommandMissingError):
                self._send(switch_frames(self.codec, self.address, on=False))
                self.output.on = False
            return
        if self.mode is not None and not self.mode.ready(
            voltage,
            output_off=self.output.on is False,
            switch_off=self.switch_off,
            select=self._select_mode,
        ):
            return
        if self.direction is not None and not self.direction.ready(
            import_,
            output_off=self.output.on is False,
            switch_off=self.switch_off,
            select=self._select_direction,
        ):
            return
        self._send(frames)
        self.output.on = True

    def switch_off(self) -> None:
        try:
            frames = switch_frames(self.codec, self.address, on=False)
        except CommandMissingError:
            frames = setpoint_frames(self.codec, self.address, 0.0, 0.0)
        self._send(frames)
        self.output.on = False

    def _select_mode(self, high: bool) -> None:
        self._send(mode_frames(self.codec, self.address, high))

    def _select_direction(self, import_: bool) -> None:
        self._send(direction_frames(self.codec, self.address, import_))

    def _send(self, frames: list[can.Message]) -> None:
        link = self.link
        if link is not None and link.bus is None:
            # Closed (stopping) or being opened again: its failure is logged by the bus itself,
            # and the module's own watchdog ends its output when our commands stop.
            log.debug("event=command_not_sent module=%s bus=%s why=closed", self.name, link.name)
            return
        for frame in frames:
            if link is None or not link.send(frame):
                log.warning("event=command_not_sent module=%s bus=%s", self.name, self.bus)


@dataclass(slots=True)
class CanBoard:
    """A board on the generic board's DBC: every command is one BOARD_Command carrying the
    contactors, the PWM and the lock together, what is not being changed as last commanded."""

    codec: DbcCodec
    link: CanLink
    last: BoardCommand = field(default_factory=lambda: BoardCommand(False, PowerReason.POWER_OFF))

    def close_contactors(self, reason: PowerOnReason) -> None:
        self._send(reason=PowerReason.from_everest(reason.value))

    def open_contactors(self) -> None:
        self._send(reason=PowerReason.POWER_OFF)

    def drive_pwm(self, on: bool, duty_percent: float) -> bool:
        self._send(pwm_on=on, duty_percent=duty_percent)
        return True

    def lock(self) -> bool:
        self._send(lock=True)
        return True

    def unlock(self) -> bool:
        self._send(lock=False)
        return True

    def _send(
        self,
        *,
        reason: PowerReason | None = None,
        pwm_on: bool | None = None,
        duty_percent: float | None = None,
        lock: bool | None = None,
    ) -> None:
        last = self.last
        reason = last.reason if reason is None else reason
        self.last = BoardCommand(
            allow_power_on=reason is not PowerReason.POWER_OFF,
            reason=reason,
            pwm_on=last.pwm_on if pwm_on is None else pwm_on,
            duty_percent=last.duty_percent if duty_percent is None else duty_percent,
            lock=last.lock if lock is None else lock,
        )
        self.link.send(
            board_command(
                self.codec,
                allow_power_on=self.last.allow_power_on,
                reason=self.last.reason,
                pwm_on=self.last.pwm_on,
                duty_percent=self.last.duty_percent,
                lock=self.last.lock,
            )
        )


@dataclass(frozen=True, slots=True)
class CanImd:
    """A dbc-family IMD told to test itself with the iso165C's IMD_Request."""

    codec: DbcCodec
    link: CanLink

    def start_self_test(self, ev_max_voltage: float | None = None) -> None:
        # The iso165C's self-test request carries no voltage.
        try:
            self.link.send(self.codec.encode("IMD_Request", BENDER_SELF_TEST))
        except KeyError:
            log.warning("event=imd_self_test_unsupported profile=%s", self.codec.profile.name)


def voltage_mode_of(name: str, codec: IdFieldsCodec, clock: Clock) -> VoltageModeSwitch | None:
    """The mode switch of a module whose profile has a high and a low voltage mode, else None."""
    header = codec.profile.header
    if header.high_mode_above_v is None:
        return None
    return VoltageModeSwitch(name, header.high_mode_above_v, header.mode_switch_settle_s, clock)


@dataclass(frozen=True, slots=True)
class CanTransport:
    """The station's buses, where the CAN drivers find their device's codec and link."""

    router: DeviceRouter
    buses: CanBuses
    clock: Clock = time.monotonic

    def _codec(self, device: CanDevice) -> IdFieldsCodec | DbcCodec | None:
        route = self.router.routes.get(device.bus)
        if route is None:
            return None
        for on_bus in route.profiles:
            if on_bus.codec.profile.name == device.profile and isinstance(
                on_bus.codec, IdFieldsCodec | DbcCodec
            ):
                return on_bus.codec
        return None

    def module(self, module: ModuleConfig) -> CanModule | NoModuleDriver:
        """A module on CAN; one whose profile cannot command it keeps its profile's watchdog
        and minimum current."""
        assert module.can is not None
        codec = self._codec(module.can)
        if isinstance(codec, IdFieldsCodec):
            link = self.buses.links.get(module.can.bus)
            mode = voltage_mode_of(module.name, codec, self.clock)
            direction = None
            if codec.profile.bidirectional and module.bidirectional:
                settle = codec.profile.header.mode_switch_settle_s
                direction = DirectionSwitch(module.name, settle, self.clock)
            return CanModule(
                module.name, module.address, module.can.bus, codec, link, mode, direction=direction
            )
        if codec is None:
            return NoModuleDriver()
        header = codec.profile.header
        return NoModuleDriver(
            watchdog_or_default(header.watchdog_s),
            min_current_or_default(header.min_regulated_current_a),
        )

    def board(self, board: BoardConfig) -> CanBoard | None:
        """The board's CAN driver; None for a board not on CAN, or whose bus holds no DBC codec
        for its profile."""
        if board.can is None:
            return None
        codec = self._codec(board.can)
        link = self.buses.links.get(board.can.bus)
        if not isinstance(codec, DbcCodec) or link is None:
            return None
        return CanBoard(codec, link)

    def imd(self, imd: ImdConfig) -> CanImd | None:
        """The IMD's CAN driver; None for an IMD not on CAN, or whose bus holds no DBC codec for
        its profile."""
        if imd.can is None:
            return None
        codec = self._codec(imd.can)
        link = self.buses.links.get(imd.can.bus)
        if not isinstance(codec, DbcCodec) or link is None:
            return None
        return CanImd(codec, link)
