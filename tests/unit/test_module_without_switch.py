"""A module whose profile has no on/off command (Huawei's R4850: its output follows its
setpoint) is commanded with its setpoint frames alone; before issue 20's wire simulators ran it,
every setpoint to it was refused for want of a switch_on command."""

from __future__ import annotations

from dataclasses import dataclass, field

import can
import pytest

from csbridge.power.can import CanModule
from csbridge.sources.can import IdFieldsCodec, ProfileRegistry

REGISTRY = ProfileRegistry()


@dataclass
class RecordingLink:
    name: str = "can0"
    bus: object | None = field(default_factory=object)
    sent: list[can.Message] = field(default_factory=list)

    def send(self, frame: can.Message) -> bool:
        self.sent.append(frame)
        return True


def test_a_huawei_setpoint_is_its_two_set_frames(caplog: pytest.LogCaptureFixture) -> None:
    link = RecordingLink()
    codec = IdFieldsCodec(REGISTRY.get("huawei-r4850"), 0xF0)
    CanModule("r4850", 0, "can0", codec, link).command(53.5, 20.0, precharge=False)
    # 0x108180FE: 0x00 online voltage, V x 1024 (0xD600); 0x03 online current, A x 20 (0x0190)
    assert [(frame.arbitration_id, bytes(frame.data).hex()) for frame in link.sent] == [
        (0x108180FE, "010000000000d600"),
        (0x108180FE, "0103000000000190"),
    ]
    assert "setpoint_not_encodable" not in caplog.text
