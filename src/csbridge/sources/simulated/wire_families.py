"""What a module family does on the wire beyond answering each request with one frame: Huawei's
R4850 answers its one "all data" request with a frame per parameter, the last marked by bit 0 of
the identifier, and tells its output state unasked; UUGreen's replies carry the module's
production date and serial bits in the identifier; Infypower's BEG has an import and an export
mode. Infypower's REG and Winline need nothing more than SimulatedCanModule (one reply per
request, registers told apart by the payload).

The facts are in each profile's comments (hal/*.toml) with their public sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import can

from csbridge.sources.can import MessageSpec, reply_frame
from csbridge.sources.simulated.can_devices import SimulatedCanModule

HUAWEI_MORE_FRAMES_BIT = 0x1
"""Identifier bit 0 of a Huawei reply frame: 1 more frames follow, 0 the last."""
HUAWEI_STATUS_ID = 0x108111FE
"""Huawei's unsolicited status frame: byte 5 is 1 while the output is enabled."""
HUAWEI_STATUS_PERIOD_S = 0.377


@dataclass(slots=True, kw_only=True)
class HuaweiR4850Module(SimulatedCanModule):
    """An R4850: the "all data" request is answered with one frame per parameter the profile
    knows, in profile order, bit 0 set on all but the last; its status frame goes out every
    HUAWEI_STATUS_PERIOD_S."""

    def replies(self, spec: MessageSpec) -> list[can.Message]:
        values, flags = self.values(), self.flags()
        parameters = [
            message
            for message in self.codec.profile.message
            if message.match_data and not message.error_reply
        ]
        frames = [
            reply_frame(self.codec, message, self.config.address, values, flags)
            for message in parameters
        ]
        for frame in frames[:-1]:
            frame.arbitration_id |= HUAWEI_MORE_FRAMES_BIT
        for frame in frames[-1:]:
            frame.arbitration_id &= ~HUAWEI_MORE_FRAMES_BIT
        return frames

    def broadcasts(self) -> list[can.Message]:
        enabled = int(self.output_current > 0.0)
        return [
            can.Message(
                arbitration_id=HUAWEI_STATUS_ID,
                is_extended_id=True,
                data=bytes([0x00, 0x03, 0x00, 0x00, 0x00, enabled, 0x00, 0x00]),
            )
        ]

    @property
    def broadcast_period_s(self) -> float | None:
        return HUAWEI_STATUS_PERIOD_S


@dataclass(slots=True, kw_only=True)
class UUGreenModule(SimulatedCanModule):
    """A UR1000X0: its replies carry its production date and serial bits in the identifier
    fields the profile names `date` and `serial` (which the controller must not match on)."""

    production_date: int = 0x15
    serial_low: int = 0x1A5

    def replies(self, spec: MessageSpec) -> list[can.Message]:
        fields = self.codec.profile.frame.fields
        frames = SimulatedCanModule.replies(self, spec)
        for frame in frames:
            for name, number in (("date", self.production_date), ("serial", self.serial_low)):
                if name in fields:
                    low, width = fields[name]
                    frame.arbitration_id |= (number & ((1 << width) - 1)) << low
        return frames


@dataclass(slots=True, kw_only=True)
class InfypowerBegModule(SimulatedCanModule):
    """A BEG/BEC bidirectional module: the working mode (21 10) decides whether the current it
    is told is given to the EV (export) or taken from it (import); it reports the current as a
    magnitude either way, as the real one does. It reports the same capability for both
    directions (the registers 11 30-33). A mode change received with the output on is counted:
    csbridge must never make one (a real module would switch directions under load)."""

    import_mode: bool = False
    direction_changes: int = 0
    direction_changes_while_on: int = 0

    def _select_direction(self, import_: bool) -> None:
        if import_ != self.import_mode:
            self.direction_changes += 1
            if self.switched_on:
                self.direction_changes_while_on += 1
        self.import_mode = import_

    def values(self) -> dict[str, float]:
        values = SimulatedCanModule.values(self)
        for name in ("max_voltage", "min_voltage", "max_current", "max_power"):
            values[f"import.{name}"] = values[f"export.{name}"]
        return values


FAMILY_MODULES: dict[str, type[SimulatedCanModule]] = {
    "huawei-r4850": HuaweiR4850Module,
    "uugreen-ur1000x0": UUGreenModule,
    "infypower-beg": InfypowerBegModule,
}
"""Shipped profile -> its family's simulator; any other profile gets SimulatedCanModule."""


def module_kind(profile: str) -> type[SimulatedCanModule]:
    return FAMILY_MODULES.get(profile, SimulatedCanModule)
