"""UUGreen's Hi/Lo mode through the CAN module driver: the frames that go out, read back by a
decoder written here from the public facts (EVerest/EVerest UUGreenPower_UR1000X0
can_driver_acdc: command 95 selects the mode, 1 High, 2 Low; 500 V is the low mode's top;
output off, 2 s, the mode, 2 s, on again), on a clock the test moves."""

from __future__ import annotations

from dataclasses import dataclass, field

import can
from hypothesis import given, settings
from hypothesis import strategies as st

from csbridge.power.can import CanModule, voltage_mode_of
from csbridge.sources.can import IdFieldsCodec, ProfileRegistry
from tests.support import examples

REGISTRY = ProfileRegistry()
ADDRESS = 5
SETTLE_S = 2.0
LOW_TOP_V = 500.0


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class RecordingLink:
    clock: Clock
    name: str = "can0"
    bus: object | None = field(default_factory=object)
    sent: list[tuple[float, can.Message]] = field(default_factory=list)

    def send(self, frame: can.Message) -> bool:
        self.sent.append((self.clock.now, frame))
        return True


@dataclass(frozen=True)
class Seen:
    """One UUGreen SetData frame, read from the facts: byte1 the command, bytes 4-7 the value."""

    at: float
    command: int
    value: int


def seen(sent: list[tuple[float, can.Message]]) -> list[Seen]:
    frames = []
    for at, frame in sent:
        data = bytes(frame.data)
        # bits 28-25 version 1, 24-21 monitor 1, 20-14 the module; byte0 SetData (0)
        assert frame.arbitration_id == (1 << 25) | (1 << 21) | (ADDRESS << 14)
        assert data[0] == 0x00
        frames.append(Seen(at, data[1], int.from_bytes(data[4:], "big")))
    return frames


def name(frame: Seen) -> str:
    """VoutReference (2) mV, IoutLimit (3) mA, ShutdownDCDC (4) 0 on / 1 off, mode (95)."""
    if frame.command == 2:
        return f"V{frame.value / 1000:g}"
    if frame.command == 3:
        return f"I{frame.value / 1000:g}"
    if frame.command == 4:
        return "off" if frame.value else "on"
    assert frame.command == 95
    return {1: "HIGH", 2: "LOW"}[frame.value]


def names(frames: list[Seen]) -> list[str]:
    return [name(frame) for frame in frames]


def rig() -> tuple[CanModule, RecordingLink, Clock]:
    clock = Clock()
    link = RecordingLink(clock)
    codec = IdFieldsCodec(REGISTRY.get("uugreen-ur1000x0"), 0xF0)
    module = CanModule("u1", ADDRESS, "can0", codec, link, voltage_mode_of("u1", codec, clock))
    return module, link, clock


def test_an_idle_module_is_put_in_low_mode_before_its_first_setpoint() -> None:
    module, link, clock = rig()
    module.switch_off()  # the power path holds an idle EVSE's modules off
    module.command(400.0, 10.0, precharge=True)
    assert names(seen(link.sent)) == ["off", "LOW"]  # known off: no first wait
    clock.now += SETTLE_S - 0.1
    module.command(400.0, 10.0, precharge=True)
    assert names(seen(link.sent))[2:] == ["off"]  # still settling: kept off, no setpoint
    clock.now += 0.1
    module.command(400.0, 10.0, precharge=True)
    assert names(seen(link.sent))[3:] == ["V400", "I10", "on"]
    module.command(450.0, 10.0, precharge=False)  # still low mode: goes straight out
    assert names(seen(link.sent))[6:] == ["V450", "I10", "on"]


def test_above_500_v_the_module_goes_off_then_high_then_on() -> None:
    module, link, clock = rig()
    module.switch_off()
    module.command(400.0, 10.0, precharge=True)
    clock.now += SETTLE_S
    module.command(400.0, 10.0, precharge=True)
    link.sent.clear()
    module.command(600.0, 20.0, precharge=False)
    assert names(seen(link.sent)) == ["off"]  # output off first, no mode yet
    clock.now += SETTLE_S
    module.command(600.0, 20.0, precharge=False)
    assert names(seen(link.sent))[1:] == ["off", "HIGH"]
    clock.now += SETTLE_S
    module.command(600.0, 20.0, precharge=False)
    assert names(seen(link.sent))[3:] == ["V600", "I20", "on"]
    # exactly 500 V is the low mode's: back down, the same way
    link.sent.clear()
    module.command(500.0, 20.0, precharge=False)
    clock.now += SETTLE_S
    module.command(500.0, 20.0, precharge=False)
    clock.now += SETTLE_S
    module.command(500.0, 20.0, precharge=False)
    assert names(seen(link.sent)) == ["off", "off", "LOW", "V500", "I20", "on"]


def test_a_module_never_told_anything_is_switched_off_before_its_mode() -> None:
    module, link, clock = rig()
    module.command(700.0, 5.0, precharge=True)  # on or off? unknown: off, then wait
    assert names(seen(link.sent)) == ["off"]
    clock.now += SETTLE_S
    module.command(700.0, 5.0, precharge=True)
    clock.now += SETTLE_S
    module.command(700.0, 5.0, precharge=True)
    assert names(seen(link.sent)) == ["off", "off", "HIGH", "V700", "I5", "on"]


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["command", "off"]),
            st.floats(min_value=150.0, max_value=1000.0),
            st.floats(min_value=0.0, max_value=3.0),
        ),
        max_size=40,
    )
)
def test_no_setpoint_ever_reaches_a_module_in_the_wrong_mode(
    steps: list[tuple[str, float, float]],
) -> None:
    module, link, clock = rig()
    for action, voltage, wait in steps:
        clock.now += wait
        if action == "command":
            module.command(voltage, 10.0, precharge=False)
        else:
            module.switch_off()
    mode: int | None = None
    selected_at = 0.0
    output_on = None
    for frame in seen(link.sent):
        if frame.command == 95:
            assert output_on is False, "a mode change with the output on"
            mode, selected_at = frame.value, frame.at
        elif frame.command == 4:
            output_on = frame.value == 0
        elif frame.command == 2:
            volts = frame.value / 1000
            assert mode == (1 if volts > LOW_TOP_V else 2), (volts, mode)
            assert frame.at - selected_at >= SETTLE_S
