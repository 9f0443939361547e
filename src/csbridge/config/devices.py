"""Where a source comes from: CAN buses and devices, EVerest API devices, simulated devices."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from csbridge.config.base import NonNegative, Positive, Strict


class SimulatedModuleConfig(Strict):
    """What a simulated module reports as its capability."""

    max_voltage_v: Positive
    min_voltage_v: NonNegative = 0.0
    max_current_a: Positive
    min_current_a: NonNegative = 0.0
    max_power_w: Positive
    max_import_current_a: NonNegative | None = None
    max_import_power_w: NonNegative | None = None
    temperature_c: float = 35.0


BusOption = str | int | float | bool | list[str | int | float | bool]
"""A value of an interface's own option, as TOML gives it."""

OWN_KEYS = {
    "interface": "interface",
    "bustype": "interface",
    "channel": "channel",
    "bitrate": "bitrate",
    "can_filters": "",
}
"""Options that are not the interface's own: set by a key of [[bus]] itself, or by csbridge."""

BITRATE_SET_ELSEWHERE = frozenset({"socketcan", "virtual", "socketcand", "udp_multicast"})
"""Interfaces whose bit rate is not python-can's to set: by the OS (`ip link`), a remote daemon,
or none at all. Every other one is opened at `bitrate`, or at its driver's default."""


def python_can_interfaces() -> frozenset[str]:
    """Every interface name python-can knows here: its own and those of installed plugins."""
    from can.interfaces import BACKENDS  # noqa: PLC0415 - python-can only where a bus is

    return frozenset(BACKENDS)


class BusConfig(Strict):
    """A CAN bus the station's devices talk on, through any interface python-can knows."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    interface: Annotated[str, Field(min_length=1)] = "socketcan"
    """python-can's name of the interface: socketcan, virtual, pcan, kvaser, slcan, gs_usb, ...
    (can.interfaces.VALID_INTERFACES, plugins included)."""
    channel: str | None = None
    """The interface's channel; default the bus name (can0)."""
    bitrate: Annotated[int, Field(gt=0)] | None = None
    """Checked against each profile's bitrate. SocketCAN's link is set up by the OS; an adapter
    that python-can drives itself (pcan, kvaser, slcan, ...) is opened at this rate."""
    options: dict[str, BusOption] = Field(default_factory=dict)
    """The interface's own keyword arguments to python-can's can.Bus, as `[bus.options]`
    (tty_baudrate, fd, data_bitrate, serial, receive_own_messages, ...)."""
    controller_address: Annotated[int, Field(ge=0, le=255)] = 0xF0
    asc_channel: Annotated[int, Field(ge=1)] | None = None
    """Vector ASC logs number channels from 1: the one that is this bus (default: its position)."""

    @field_validator("interface")
    @classmethod
    def _known_to_python_can(cls, interface: str) -> str:
        known = python_can_interfaces()
        if interface in known:
            return interface
        close = difflib.get_close_matches(interface, sorted(known), n=3, cutoff=0.5)
        every = ", ".join(sorted(known))
        hint = f"did you mean {', '.join(close)}?" if close else f"one of {every}"
        raise ValueError(f"not an interface python-can knows: {hint}")

    @field_validator("options")
    @classmethod
    def _the_interface_s_own(cls, options: dict[str, BusOption]) -> dict[str, BusOption]:
        for key in options:
            if key in OWN_KEYS:
                instead = OWN_KEYS[key]
                where = f"set `{instead}` in [[bus]] itself" if instead else "csbridge sets it"
                raise ValueError(f"{key}: not an interface option: {where}")
        return options

    @property
    def interface_channel(self) -> str:
        return self.channel or self.name

    @property
    def sets_bitrate(self) -> bool:
        """Whether python-can opens this interface at a bit rate (`bitrate`, or its default)."""
        return self.interface not in BITRATE_SET_ELSEWHERE

    def bus_arguments(self) -> dict[str, Any]:
        """Keyword arguments for can.Bus: channel, interface, the bit rate where python-can sets
        it, and the interface's own options."""
        arguments: dict[str, Any] = {
            "channel": self.interface_channel,
            "interface": self.interface,
        }
        if self.bitrate is not None and self.sets_bitrate:
            arguments["bitrate"] = self.bitrate
        arguments.update(self.options)
        return arguments


class CanDevice(Strict):
    """Where a device talks: a profile in hal/ on a configured bus."""

    profile: Annotated[str, Field(min_length=1)]
    bus: Annotated[str, Field(min_length=1)]


EverestApiRevision = Literal["2026.02", "2025.10"]
"""EVerest's API revision a device speaks: 2026.02 renamed the isolation monitor's commands
(e2m/receive_start -> e2m/start, ...; everest-core commit f367eecda); 2025.10 keeps the old
names for devices written against EVerest 2025.10 to 2025.12."""

NO_CHECK_SILENCE_S = 5.0
"""Without EVerest's communication check, how long a device's silence is tolerated: EVerest's
default check period (power_supply_DC_API manifest), and a supply publishes voltage_current
at least every second (power_supply_DC interface)."""


class EverestApiDevice(Strict):
    """A device driven by a program written against EVerest's MQTT API (power_supply_DC or
    isolation_monitor), under everest_api/1/<interface>/<module_id>/."""

    module_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    communication_check_s: Annotated[float, Field(ge=-600, le=600)] = 5.0
    """Without a `true` on m2e/communication_check for this long the device counts as silent
    (EVerest's cfg_communication_check_to_s). 0 or below: no check, as in EVerest: any message
    makes the device present and keeps it fresh. A device that turns its check off is judged
    by its other messages, on the same deadline."""
    heartbeat_interval_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    """e2m/heartbeat period (EVerest's cfg_heartbeat_interval_ms); 0 sends none."""
    topic_prefix: Annotated[str, Field(min_length=1)] = "everest_api/1"
    api_revision: EverestApiRevision = "2026.02"
    """The EVerest API revision the device speaks (the isolation monitor's command names)."""

    @property
    def checks_communication(self) -> bool:
        return self.communication_check_s > 0

    @property
    def silence_deadline_s(self) -> float:
        """How long the device may be silent before it counts as gone."""
        return self.communication_check_s if self.checks_communication else NO_CHECK_SILENCE_S


class ModuleConfig(Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    address: Annotated[int, Field(ge=0, le=255)] = 0
    """The module's address on its bus (needed with `can`)."""
    can: CanDevice | None = None
    """The module's protocol and bus; or `everest` for a power supply behind EVerest's API; or
    `simulated` alone for a module without hardware."""
    everest: EverestApiDevice | None = None
    bidirectional: bool = False
    poll_period_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    deadline_s: Annotated[float, Field(gt=0, le=600)] | None = None
    """Silence longer than this takes the module out of the stack; default 3 poll periods."""
    simulated: SimulatedModuleConfig | None = None

    @model_validator(mode="after")
    def _one_way_to_reach_it(self) -> Self:
        if self.can is not None and self.everest is not None:
            raise ValueError("a module is reached over `can` or `everest`, not both")
        if self.everest is not None and self.simulated is not None:
            raise ValueError("an `everest` module is simulated by the EVerest API program itself")
        if self.can is not None and "address" not in self.model_fields_set:
            raise ValueError("a `can` module needs its `address` on the bus")
        if self.everest is not None and self.bidirectional:
            raise ValueError(
                "an `everest` module takes export setpoints only: it cannot be bidirectional"
            )
        return self

    @property
    def freshness_deadline_s(self) -> float:
        if self.deadline_s is not None:
            return self.deadline_s
        if self.everest is not None:
            return self.everest.silence_deadline_s
        return 3 * self.poll_period_s


class SimulatedImdConfig(Strict):
    resistance_ohm: NonNegative = 5_000_000.0
    period_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    self_test_s: Annotated[float, Field(ge=0, le=60)] = 3.0


class ImdConfig(Strict):
    can: CanDevice | None = None
    everest: EverestApiDevice | None = None
    """An IMD behind EVerest's isolation_monitor API; its communication check must also keep
    within `deadline_s`."""
    rule: Literal["iec61851-23:2023", "iec61851-23:2014"] = "iec61851-23:2023"
    deadline_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    rated_voltage_v: Positive | None = None
    """The 2014 rule's reference voltage; default the EVSE's rated maximum voltage."""
    simulated: SimulatedImdConfig | None = None

    @model_validator(mode="after")
    def _one_way_to_reach_it(self) -> Self:
        if self.can is not None and self.everest is not None:
            raise ValueError("an IMD is reached over `can` or `everest`, not both")
        if self.everest is not None and self.simulated is not None:
            raise ValueError("an `everest` IMD is simulated by the EVerest API program itself")
        return self


class SimulatedBoardConfig(Strict):
    evse_temperature_c: float = 30.0
    plug_temperature_c: float = 30.0
    period_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    max_current_a: Positive | None = None
    """AC: the board's hardware capability per phase."""
    max_discharge_current_a: NonNegative | None = None
    phases: Literal[1, 3] | None = None


class BoardConfig(Strict):
    can: CanDevice | None = None
    """The board's protocol and bus (a profile of kind board); with `simulated` as well, a
    simulated board speaks that protocol on the bus."""
    deadline_s: Annotated[float, Field(gt=0, le=60)] = 3.0
    simulated: SimulatedBoardConfig | None = None
