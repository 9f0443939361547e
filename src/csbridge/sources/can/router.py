"""Frames from each bus to the devices configured on it, and their readings to the engine."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import can

from csbridge.config import BusConfig, CanDevice, Config, ConfigError
from csbridge.sources.can.codec import DbcCodec, FrameCodec, IdFieldsCodec, Outcome
from csbridge.sources.can.profile import DeviceKind, Profile, ProfileRegistry
from csbridge.sources.can.state import BoardState, ImdState, ModuleState
from csbridge.sources.readings import SourceReading
from csbridge.support import Counted, Counters, RateLimitedLog

log = logging.getLogger("csbridge.can")

# When no codec on a bus decodes a frame, the most telling reason is the one counted.
_SPECIFICITY = [
    Outcome.REQUEST,
    Outcome.OUT_OF_RANGE,
    Outcome.WRONG_DLC,
    Outcome.UNKNOWN_ADDRESS,
    Outcome.ERROR_FRAME,
    Outcome.REMOTE_FRAME,
    Outcome.UNKNOWN_ID,
]


@dataclass(slots=True)
class Target:
    evse_id: str
    name: str
    state: ModuleState | ImdState | BoardState
    frames: int = 0


@dataclass(slots=True)
class ProfileOnBus:
    codec: FrameCodec
    targets: dict[int, Target] = field(default_factory=dict)


FrameListener = Callable[[can.Message, float], bool]
"""Takes a frame (with the time it was read) that a device of a higher layer decodes itself
(the contactor matrix board of a shared pool): True when it decoded it, False when it refused
it (not a data frame of its length). It produces no EVSE reading."""


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    """What it is, for the frame counts (`<bus>/<name>/decoded`)."""
    take: FrameListener


@dataclass(slots=True)
class BusRoute:
    bus: BusConfig
    profiles: list[ProfileOnBus] = field(default_factory=list)
    listeners: dict[int, Listener] = field(default_factory=dict)
    """By 11-bit identifier: frames handed to a listener instead of the profiles' codecs."""

    @property
    def in_use(self) -> bool:
        """Something on this bus is the station's to talk to: the bus is opened."""
        return bool(self.profiles or self.listeners)

    def kernel_filters(self) -> list[dict[str, int | bool]]:
        """Only what the bus's profiles and listeners decode passes the socket: Python never
        sees the rest."""
        filters = [f for on_bus in self.profiles for f in on_bus.codec.kernel_filters()]
        filters += [
            {"can_id": frame_id, "can_mask": 0x7FF, "extended": False}
            for frame_id in self.listeners
        ]
        return filters

    def poll_frames(self) -> list[tuple[float, list[can.Message]]]:
        """(period, frames) per device that must be asked for its values."""
        schedule = []
        for on_bus in self.profiles:
            period = on_bus.codec.profile.header.poll_period_s
            for address in on_bus.targets:
                frames = on_bus.codec.poll_requests(address)
                if frames:
                    schedule.append((period, frames))
        return schedule


def _codec(profile: Profile, bus: BusConfig, registry: ProfileRegistry) -> FrameCodec:
    if profile.header.family == "dbc":
        return DbcCodec(profile, registry.dbc_path(profile))
    return IdFieldsCodec(profile, bus.controller_address)


class DeviceRouter:
    """Every configured CAN device by bus name: decodes, counts, hands readings on."""

    def __init__(
        self,
        config: Config,
        registry: ProfileRegistry | None = None,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry or ProfileRegistry(extra=config.station.profile_dirs)
        self.counters = counters or Counters()
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self._clock = clock
        self._faults = RateLimitedLog(log, self._clock)
        self.routes: dict[str, BusRoute] = {bus.name: BusRoute(bus) for bus in config.bus}
        problems: list[str] = []
        for index, evse in enumerate(config.evse):
            for m_index, module in enumerate(evse.module):
                if module.can is not None:
                    where = f"evse[{index}].module[{m_index}].can"
                    state = ModuleState(module.name, module.address, module.freshness_deadline_s)
                    target = Target(evse.evse_id, module.name, state)
                    problems += self._attach(
                        where, module.can, DeviceKind.POWER_MODULE, module.address, target
                    )
                    problems += self._import_problems(where, module.can, module.bidirectional)
            if evse.imd is not None and evse.imd.can is not None:
                target = Target(evse.evse_id, "imd", ImdState())
                problems += self._attach(
                    f"evse[{index}].imd.can", evse.imd.can, DeviceKind.IMD, 0, target
                )
            if evse.board is not None and evse.board.can is not None:
                target = Target(evse.evse_id, "board", BoardState(evse.board.deadline_s))
                problems += self._attach(
                    f"evse[{index}].board.can", evse.board.can, DeviceKind.BOARD, 0, target
                )
        for index, pool in enumerate(config.pool):
            # A shared pool's module reports as its pool's first EVSE's (the engine shares it).
            for m_index, module in enumerate(pool.module):
                if module.can is not None:
                    where = f"pool[{index}].module[{m_index}].can"
                    state = ModuleState(module.name, module.address, module.freshness_deadline_s)
                    target = Target(pool.evse_ids[0], module.name, state)
                    problems += self._attach(
                        where, module.can, DeviceKind.POWER_MODULE, module.address, target
                    )
                    problems += self._import_problems(where, module.can, module.bidirectional)
        if problems:
            raise ConfigError("configuration", problems)

    def _import_problems(self, where: str, device: CanDevice, bidirectional: bool) -> list[str]:
        """A module marked `bidirectional` must have a profile that can import: otherwise the
        EVSE would advertise a discharge no command can carry."""
        if not bidirectional:
            return []
        try:
            profile = self.registry.get(device.profile)
        except (KeyError, ConfigError):
            return []  # named by _attach already
        if profile.header.kind is not DeviceKind.POWER_MODULE or profile.bidirectional:
            return []
        return [
            f"{where.removesuffix('.can')}.bidirectional: {profile.name} cannot import "
            "(no set_import / select_import_mode commands): set bidirectional = false, and "
            "bpt = false on its EVSE unless another module can import"
        ]

    def _attach(
        self, where: str, device: CanDevice, kind: DeviceKind, address: int, target: Target
    ) -> list[str]:
        route = self.routes[device.bus]
        try:
            profile = self.registry.get(device.profile)
        except KeyError as error:
            return [f"{where}.profile: {error.args[0]}"]
        except ConfigError as error:
            return [f"{where}.profile: {problem}" for problem in error.problems]
        if profile.header.kind is not kind:
            return [
                f"{where}.profile: {profile.name} describes a {profile.header.kind}, not a {kind}"
            ]
        bitrate = route.bus.bitrate
        if bitrate is not None and bitrate != profile.header.bitrate:
            needs = profile.header.bitrate
            return [
                f"{where}: bus {route.bus.name} runs at {bitrate} bit/s; {profile.name}: {needs}"
            ]
        on_bus = next((p for p in route.profiles if p.codec.profile.name == profile.name), None)
        if on_bus is None:
            on_bus = ProfileOnBus(_codec(profile, route.bus, self.registry))
            route.profiles.append(on_bus)
        if isinstance(on_bus.codec, IdFieldsCodec | DbcCodec):
            # Commands to an address the identifier cannot carry would fail (or reach another
            # module): refused here, before anything runs.
            problem = on_bus.codec.address_problem(address)
            if problem is not None:
                return [f"{where.removesuffix('.can')}.address: {address}: {problem}"]
        on_bus.targets[address] = target
        return []

    def listen(self, bus_name: str, frame_id: int, listener: Listener) -> None:
        """Hand the bus's standard frames of `frame_id` to `listener` (set before the buses
        are opened: a bus with nothing on it is never opened)."""
        route = self.routes.get(bus_name)
        if route is None:
            raise ConfigError("configuration", [f"{listener.name}: no [[bus]] named {bus_name!r}"])
        if frame_id in route.listeners:
            taken = route.listeners[frame_id].name
            raise ConfigError(
                "configuration",
                [f"{listener.name}: id 0x{frame_id:03X} on {bus_name} is already {taken}'s"],
            )
        route.listeners[frame_id] = listener

    def targets(self) -> list[Target]:
        return [
            t for route in self.routes.values() for p in route.profiles for t in p.targets.values()
        ]

    def route(
        self, bus_name: str, frame: can.Message, at: float
    ) -> tuple[str, SourceReading] | None:
        """Decode one frame of bus `bus_name`; the reading it produced, if any. Never raises."""
        route = self.routes.get(bus_name)
        if route is None:
            self._count(bus_name, "-", Outcome.UNKNOWN_ID, frame)
            return None
        listener = None if frame.is_extended_id else route.listeners.get(frame.arbitration_id)
        if listener is not None:
            try:
                taken = listener.take(frame, at)
            except Exception:  # a listener's bug must not take the bus down
                log.exception("event=listener_failed bus=%s listener=%s", bus_name, listener.name)
                taken = False
            # A refused frame is logged by the listener, which knows why: counted only here.
            self._tally(bus_name, listener.name, Outcome.DECODED if taken else Outcome.WRONG_DLC)
            return None
        best = Outcome.UNKNOWN_ID
        best_profile = "-"
        for on_bus in route.profiles:
            try:
                outcome, decoded = on_bus.codec.decode(frame)
            except Exception:  # a codec bug must not take the bus down
                log.exception(
                    "event=codec_failed bus=%s profile=%s", bus_name, on_bus.codec.profile.name
                )
                outcome, decoded = Outcome.OUT_OF_RANGE, None
            if decoded is not None:
                target = on_bus.targets.get(decoded.address)
                if target is None:
                    outcome = Outcome.UNKNOWN_ADDRESS
                else:
                    self._count(bus_name, on_bus.codec.profile.name, Outcome.DECODED, frame)
                    target.frames += 1
                    return target.evse_id, target.state.apply(decoded, at)
            if _SPECIFICITY.index(outcome) < _SPECIFICITY.index(best):
                best, best_profile = outcome, on_bus.codec.profile.name
        self._count(bus_name, best_profile, best, frame)
        return None

    def _tally(self, bus: str, profile: str, outcome: Outcome) -> None:
        self.outcomes[(profile, outcome.value)] += 1
        self.counters.add(Counted.CAN_FRAMES, f"{bus}/{profile}/{outcome.value}")

    def _count(self, bus: str, profile: str, outcome: Outcome, frame: can.Message) -> None:
        self._tally(bus, profile, outcome)
        if outcome in (Outcome.DECODED, Outcome.REQUEST):
            return
        self._faults.warning(
            (bus, outcome),
            "event=can_frame_ignored bus=%s profile=%s reason=%s id=0x%X dlc=%d",
            bus,
            profile,
            outcome,
            frame.arbitration_id,
            len(frame.data),
        )
