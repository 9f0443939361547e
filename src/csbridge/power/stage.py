"""The EVSE's power modules as something to command: setpoints and on/off, over CAN through the
profiles' [[command]] tables, or straight into simulated modules that have no wire protocol."""

from __future__ import annotations

import contextlib
import logging

import can

from csbridge.config import Config, ModuleConfig
from csbridge.limits import Setpoint, watchdog_or_default
from csbridge.sources.can import (
    BoardCommand,
    CanBuses,
    CommandMissingError,
    DbcCodec,
    DeviceRouter,
    IdFieldsCodec,
    PowerReason,
    board_command,
    setpoint_frames,
    switch_frames,
)
from csbridge.sources.everest import EverestSources
from csbridge.sources.simulated import SimulatedDevices, SimulatedModule

log = logging.getLogger("csbridge.power")

BENDER_SELF_TEST = {"REQ_COMMAND": 0x21, "REQ_DATA_WORD_1": 1, "REQ_DATA_WORD_2": 0}
"""iso165C IMD_Request: command 0x21 runs the self-test, data word 1 = 1 the overall test."""


class PowerStage:
    def __init__(
        self,
        config: Config,
        router: DeviceRouter,
        buses: CanBuses,
        devices: SimulatedDevices,
        everest: EverestSources | None = None,
    ) -> None:
        self._everest = everest
        self._modules = {evse.evse_id: evse.module for evse in config.evse}
        self._imds = {evse.evse_id: evse.imd for evse in config.evse}
        self._boards = {evse.evse_id: evse.board for evse in config.evse}
        self._board_state: dict[str, BoardCommand] = {}
        self._router = router
        self._buses = buses
        self._devices = devices

    def _codec(self, bus: str, profile: str) -> IdFieldsCodec | DbcCodec | None:
        route = self._router.routes.get(bus)
        if route is None:
            return None
        for on_bus in route.profiles:
            if on_bus.codec.profile.name == profile and isinstance(
                on_bus.codec, IdFieldsCodec | DbcCodec
            ):
                return on_bus.codec
        return None

    def watchdogs(self, evse_id: str) -> dict[str, float]:
        watchdogs = {}
        for module in self._modules[evse_id]:
            profile = None
            if module.can is not None:
                codec = self._codec(module.can.bus, module.can.profile)
                profile = codec.profile.header.watchdog_s if codec is not None else None
            watchdogs[module.name] = watchdog_or_default(profile)
        return watchdogs

    def _send(self, module: ModuleConfig, frames: list[can.Message]) -> None:
        assert module.can is not None
        link = self._buses.links.get(module.can.bus)
        if link is not None and link.bus is None:
            # Closed (stopping) or being opened again: its failure is logged by the bus itself,
            # and the module's own watchdog ends its output when our commands stop.
            log.debug("event=command_not_sent module=%s bus=%s why=closed", module.name, link.name)
            return
        for frame in frames:
            if link is None or not link.send(frame):
                log.warning("event=command_not_sent module=%s bus=%s", module.name, module.can.bus)

    def command(self, evse_id: str, setpoint: Setpoint) -> None:
        by_name = {module.name: module for module in self._modules[evse_id]}
        phase = "PreCharge" if setpoint.precharge else "Charging"
        for target in setpoint.modules:
            module = by_name[target.name]
            simulated = self._devices.modules.get((evse_id, module.name))
            if module.everest is not None and self._everest is not None:
                self._everest.command(evse_id, module.name, target.voltage, target.current, phase)
                continue
            if module.can is None:
                if isinstance(simulated, SimulatedModule):
                    simulated.output_voltage = target.voltage
                    simulated.output_current = target.current
                continue
            codec = self._codec(module.can.bus, module.can.profile)
            if not isinstance(codec, IdFieldsCodec):
                continue
            try:
                frames = setpoint_frames(codec, module.address, target.voltage, target.current)
                frames += switch_frames(codec, module.address, on=True)
            except (ValueError, CommandMissingError) as error:
                # Never leave a module on an older, possibly larger, setpoint: off it goes.
                log.error(
                    "event=setpoint_not_encodable module=%s why=%s -- off", module.name, error
                )
                with contextlib.suppress(CommandMissingError):
                    self._send(module, switch_frames(codec, module.address, on=False))
                continue
            self._send(module, frames)

    def switch_off(self, evse_id: str) -> None:
        """Every module of the EVSE off (a module without an off command: 0 A)."""
        for module in self._modules[evse_id]:
            simulated = self._devices.modules.get((evse_id, module.name))
            if module.everest is not None and self._everest is not None:
                self._everest.switch_off(evse_id, module.name)
                continue
            if module.can is None:
                if isinstance(simulated, SimulatedModule):
                    simulated.output_current = 0.0
                    simulated.output_voltage = 0.0
                continue
            codec = self._codec(module.can.bus, module.can.profile)
            if not isinstance(codec, IdFieldsCodec):
                continue
            try:
                frames = switch_frames(codec, module.address, on=False)
            except CommandMissingError:
                frames = setpoint_frames(codec, module.address, 0.0, 0.0)
            self._send(module, frames)

    def board(
        self,
        evse_id: str,
        *,
        reason: PowerReason | None = None,
        pwm_on: bool | None = None,
        duty_percent: float | None = None,
    ) -> bool:
        """Tell a CAN board to close (any reason but PowerOff) or open its contactors, and how
        to drive the PWM; what is not given stays as last commanded. False: no CAN board."""
        board = self._boards.get(evse_id)
        if board is None or board.can is None:
            return False
        codec = self._codec(board.can.bus, board.can.profile)
        link = self._buses.links.get(board.can.bus)
        if not isinstance(codec, DbcCodec) or link is None:
            return False
        last = self._board_state.get(evse_id, BoardCommand(False, PowerReason.POWER_OFF))
        reason = last.reason if reason is None else reason
        command = BoardCommand(
            allow_power_on=reason is not PowerReason.POWER_OFF,
            reason=reason,
            pwm_on=last.pwm_on if pwm_on is None else pwm_on,
            duty_percent=last.duty_percent if duty_percent is None else duty_percent,
        )
        self._board_state[evse_id] = command
        link.send(
            board_command(
                codec,
                allow_power_on=command.allow_power_on,
                reason=command.reason,
                pwm_on=command.pwm_on,
                duty_percent=command.duty_percent,
            )
        )
        return True

    def start_imd_self_test(self, evse_id: str) -> None:
        imd = self._imds.get(evse_id)
        if imd is not None and imd.everest is not None and self._everest is not None:
            self._everest.start_self_test(evse_id)
            return
        if imd is None or imd.can is None:
            return
        codec = self._codec(imd.can.bus, imd.can.profile)
        link = self._buses.links.get(imd.can.bus)
        if isinstance(codec, DbcCodec) and link is not None:
            try:
                link.send(codec.encode("IMD_Request", BENDER_SELF_TEST))
            except KeyError:
                log.warning("event=imd_self_test_unsupported profile=%s", imd.can.profile)
