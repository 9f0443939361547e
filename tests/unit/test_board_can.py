"""The generic charger board on CAN (hal/generic-charger-board.dbc, a protocol of our own).

Frames are packed by hand with struct from the layout the DBC's comments document, never with
cantools or the codec's own encoder, so a DBC or profile that disagrees with its documentation
fails here. The simulated board's frames and commands, without a bus (on the bus, against a
whole station: tests/integration/test_board_can_station.py).
"""

from __future__ import annotations

import math
import struct
import tomllib
from typing import Any

import can
import cantools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csbridge.config import Config, ConfigError, load_config, parse_config
from csbridge.limits.compose import EvseComposer, EvseInputs
from csbridge.sources.can.codec import (
    BoardCommand,
    DbcCodec,
    Decoded,
    Outcome,
    PowerReason,
    board_command,
    read_board_command,
)
from csbridge.sources.can.profile import (
    BOARD_FLAGS,
    BOARD_VALUES,
    QUANTITY_OF,
    DeviceKind,
    Profile,
    ProfileRegistry,
)
from csbridge.sources.can.router import DeviceRouter
from csbridge.sources.can.state import BoardState, cp_state_of, lock_state_of
from csbridge.sources.readings import BoardReading, CpState, LockState, cp_status
from csbridge.sources.simulated.can_devices import SimulatedCanBoard, build_wire_board
from csbridge.support.resources import example_config
from tests.support import FIXTURES, examples

REGISTRY = ProfileRegistry()
PROFILE = REGISTRY.get("generic-charger-board")
CODEC = DbcCodec(PROFILE, REGISTRY.dbc_path(PROFILE))
STATUS_ID = 0x310
CAPABILITIES_ID = 0x311
COMMAND_ID = 0x300
DC = "DE*CSB*E0001"

# byte 0 of BOARD_Status
PWM_ON = 1 << 3
CONTACTOR = 1 << 4
ESTOP = 1 << 5
RCD = 1 << 6
FAULT = 1 << 7


def std(identifier: int, data: bytes) -> can.Message:
    return can.Message(arbitration_id=identifier, is_extended_id=False, data=data)


PP_OPEN = 0x3FFF
"""PP_RESISTANCE's 14 bits all set: no cable."""


def status(
    byte0: int = 0,
    *,
    pp_a: int = 0,
    evse_c: float = 25.0,
    plug_c: float = 25.0,
    pp_ohm: int = PP_OPEN,
    lock: int = 0,
) -> can.Message:
    """BOARD_Status by hand: flags byte, PP ampacity, two signed 0.1 degC words, and the last
    word: PP ohms in bits 0-13, the lock state in bits 14-15."""
    last = pp_ohm | lock << 14
    data = struct.pack("<BBhhH", byte0, pp_a, round(evse_c * 10), round(plug_c * 10), last)
    return std(STATUS_ID, data)


def capabilities(max_a: float, discharge_a: float, phases: int, reserved: int = 0) -> can.Message:
    """BOARD_Capabilities by hand: two unsigned 0.1 A words, phases in bits 0-1 of byte 4."""
    data = struct.pack("<HHB", round(max_a * 10), round(discharge_a * 10), phases | reserved)
    return std(CAPABILITIES_ID, data)


def decoded(frame: can.Message) -> Decoded:
    outcome, result = CODEC.decode(frame)
    assert outcome is Outcome.DECODED, outcome
    assert result is not None
    return result


def refused(frame: can.Message) -> Outcome:
    outcome, result = CODEC.decode(frame)
    assert result is None
    return outcome


def reading_of(*frames: can.Message, at: float = 0.0) -> BoardReading:
    state = BoardState()
    reading = None
    for frame in frames:
        reading = state.apply(decoded(frame), at)
    assert reading is not None
    return reading


# --- the profile --------------------------------------------------------------------------------


def test_the_profile_is_a_dbc_board_profile_mapping_reading_fields() -> None:
    assert PROFILE.header.kind is DeviceKind.BOARD
    assert PROFILE.header.family == "dbc"
    assert PROFILE.header.bitrate == 250000
    mapped = {signal.field for message in PROFILE.message for signal in message.signals}
    assert mapped == BOARD_VALUES | BOARD_FLAGS
    assert [message.name for message in PROFILE.message] == ["BOARD_Status", "BOARD_Capabilities"]


def test_a_board_profile_may_not_map_module_fields() -> None:
    text = (REGISTRY.directory / "generic-charger-board.toml").read_text(encoding="utf-8")
    raw: dict[str, Any] = tomllib.loads(text.replace('"cp_state"', '"output_voltage"'))
    with pytest.raises(ValueError, match="output_voltage"):
        Profile.model_validate(raw)


# --- BOARD_Status, every signal -----------------------------------------------------------------


def test_status_decodes_every_mapped_signal() -> None:
    frame = status(
        2 | PWM_ON | CONTACTOR | ESTOP | RCD | FAULT,
        pp_a=32,
        evse_c=41.3,
        plug_c=-12.5,
        pp_ohm=220,
        lock=1,
    )
    result = decoded(frame)
    assert result.message == "BOARD_Status"
    assert result.address == 0
    assert dict(result.values) == pytest.approx(
        {
            "cp_state": 2.0,
            "evse_temperature_c": 41.3,
            "plug_temperature_c": -12.5,
            "cable_max_current_a": 32.0,
            "lock_state": 1.0,
        }
    )
    assert dict(result.flags) == {
        "pwm_on": True,
        "contactor_closed": True,
        "emergency_stop": True,
        "rcd_error": True,
        "fault": True,
    }
    reading = BoardState().apply(result, 7.0)
    assert reading.at == 7.0
    assert reading.cp_state is CpState.C
    assert reading.evse_temperature_c == pytest.approx(41.3)
    assert reading.plug_temperature_c == pytest.approx(-12.5)
    assert reading.contactor_closed is True
    assert reading.emergency_stop is True
    assert reading.rcd_error is True
    assert reading.fault is True
    assert reading.cable_max_current_a == 32.0
    assert reading.lock is LockState.LOCKED


@pytest.mark.parametrize("bit", [PWM_ON, CONTACTOR, ESTOP, RCD, FAULT])
def test_each_status_bit_sets_only_its_own_flag(bit: int) -> None:
    names = {PWM_ON: "pwm_on", CONTACTOR: "contactor_closed", ESTOP: "emergency_stop"}
    names |= {RCD: "rcd_error", FAULT: "fault"}
    flags = decoded(status(1 | bit)).flags
    assert {name for name, state in flags.items() if state} == {names[bit]}
    assert decoded(status(1)).flags == dict.fromkeys(names.values(), False)


def test_the_pp_ampacity_is_the_plugged_cables_rating() -> None:
    """PP_AMPACITY becomes the cable's rating; 0 (no cable coded) bounds nothing. The PP
    resistance is not read: the ampacity already says it."""
    assert reading_of(status(1, pp_a=63, pp_ohm=100)).cable_max_current_a == 63.0
    assert reading_of(status(1, pp_a=0)).cable_max_current_a is None
    plain = decoded(status(1, pp_a=32, pp_ohm=PP_OPEN))
    other_resistance = decoded(status(1, pp_a=32, pp_ohm=100))
    assert plain.values == other_resistance.values


def test_a_thin_cable_binds_the_ac_current_as_cable() -> None:
    config = load_config(FIXTURES / "configs" / "reading-station.toml")
    ac = next(evse for evse in config.evse if evse.kind.value == "ac")
    composer = EvseComposer(ac)
    board = BoardReading(
        at=0.0, cp_state=CpState.C, cable_max_current_a=16.0, max_current_a=32.0, phases=3
    )
    composition = composer.compose(EvseInputs(board=board), now=0.0)
    assert composition.snapshot.ac is not None
    assert composition.snapshot.ac.max_current.l1 == 16.0
    assert composition.binding["max_current"] == "cable"


@pytest.mark.parametrize(
    ("code", "state"),
    [
        (0, CpState.A),
        (1, CpState.B),
        (2, CpState.C),
        (3, CpState.D),
        (4, CpState.E),
        (5, CpState.F),
        (6, None),
        (7, None),
    ],
)
def test_cp_state_codes(code: int, state: CpState | None) -> None:
    result = decoded(status(code))
    assert result.values["cp_state"] == code
    assert reading_of(status(code)).cp_state is state


def test_cp_status_tells_the_pwm_apart() -> None:
    assert cp_status(CpState.B, pwm_on=False) == "B1"
    assert cp_status(CpState.B, pwm_on=True) == "B2"
    assert cp_status(CpState.C, pwm_on=True) == "C2"
    assert cp_status(CpState.A, pwm_on=True) == "A2"
    assert cp_status(CpState.A, pwm_on=False) == "A1"
    assert cp_status(CpState.F, pwm_on=False) == "F"
    assert cp_status(None, pwm_on=True) is None
    assert cp_state_of(None) is None
    assert cp_state_of(2.5) is None
    assert cp_state_of(-1.0) is None
    state = BoardState()
    state.apply(decoded(status(1 | PWM_ON)), 0.0)
    assert state.pwm_on(0.0) is True
    assert state.pwm_on(10.0) is None  # stale


@pytest.mark.parametrize(
    ("raw", "celsius"),
    [(0, 0.0), (1, 0.1), (-1, -0.1), (-600, -60.0), (2000, 200.0), (253, 25.3)],
)
def test_temperatures_are_signed_tenths_of_a_degree(raw: int, celsius: float) -> None:
    evse = decoded(std(STATUS_ID, struct.pack("<BBhhH", 0, 0, raw, 0, 0))).values
    plug = decoded(std(STATUS_ID, struct.pack("<BBhhH", 0, 0, 0, raw, 0))).values
    no_cable = {"cp_state": 0, "cable_max_current_a": 0, "lock_state": 0}
    assert evse == pytest.approx(
        {**no_cable, "evse_temperature_c": celsius, "plug_temperature_c": 0}
    )
    assert plug == pytest.approx(
        {**no_cable, "evse_temperature_c": 0, "plug_temperature_c": celsius}
    )


@pytest.mark.parametrize("raw", [2001, -601, 0x7FFF, -0x8000])
def test_an_implausible_temperature_refuses_the_whole_status(raw: int) -> None:
    evse_hot = std(STATUS_ID, struct.pack("<BBhhH", ESTOP, 0, raw, 250, 0))
    plug_hot = std(STATUS_ID, struct.pack("<BBhhH", ESTOP, 0, 250, raw, 0))
    assert refused(evse_hot) is Outcome.OUT_OF_RANGE
    assert refused(plug_hot) is Outcome.OUT_OF_RANGE


# --- BOARD_Capabilities -------------------------------------------------------------------------


def test_capabilities_decode_in_tenths_of_an_ampere() -> None:
    result = decoded(capabilities(32.0, 16.0, 3))
    assert result.message == "BOARD_Capabilities"
    assert dict(result.values) == pytest.approx(
        {"max_current_a": 32.0, "max_discharge_current_a": 16.0, "phases": 3.0}
    )
    assert result.flags == {}
    reading = reading_of(capabilities(63.5, 0.0, 1))
    assert reading.max_current_a == pytest.approx(63.5)
    assert (reading.max_discharge_current_a, reading.phases) == (0.0, 1)


def test_reserved_capability_bits_are_ignored() -> None:
    assert decoded(capabilities(16.0, 0.0, 3, reserved=0xFC)).values["phases"] == 3.0


def test_zero_phases_states_no_ac_capability() -> None:
    reading = reading_of(capabilities(32.0, 16.0, 0))
    assert (reading.max_current_a, reading.max_discharge_current_a, reading.phases) == (
        None,
        None,
        None,
    )


def test_a_capability_above_the_rated_range_is_refused() -> None:
    assert refused(capabilities(1000.1, 0.0, 3)) is Outcome.OUT_OF_RANGE
    assert refused(capabilities(32.0, 6553.5, 3)) is Outcome.OUT_OF_RANGE
    assert decoded(capabilities(1000.0, 1000.0, 3)).values["max_current_a"] == 1000.0


def test_status_and_capabilities_make_one_reading() -> None:
    state = BoardState()
    state.apply(decoded(capabilities(32.0, 16.0, 3)), 0.0)
    reading = state.apply(decoded(status(1 | CONTACTOR, evse_c=30.0, plug_c=31.0)), 0.05)
    assert reading == BoardReading(
        at=0.05,
        evse_temperature_c=30.0,
        plug_temperature_c=31.0,
        rcd_error=False,
        cp_state=CpState.B,
        emergency_stop=False,
        contactor_closed=True,
        fault=False,
        max_current_a=32.0,
        max_discharge_current_a=16.0,
        phases=3,
        lock=LockState.UNLOCKED,
    )


def test_before_any_status_the_contactor_and_cp_state_are_unknown() -> None:
    reading = reading_of(capabilities(32.0, 16.0, 3))
    assert reading.contactor_closed is None
    assert reading.cp_state is None
    assert reading.evse_temperature_c is None
    assert not reading.fault


def test_a_status_that_stops_while_capabilities_go_on_counts_as_a_fault() -> None:
    state = BoardState(deadline_s=3.0)
    state.apply(decoded(status(1 | CONTACTOR)), 0.0)
    state.apply(decoded(capabilities(32.0, 16.0, 3)), 0.0)
    assert not state.reading(3.0).fault
    late = state.apply(decoded(capabilities(32.0, 16.0, 3)), 3.5)
    assert late.fault
    assert late.contactor_closed is None
    assert late.cp_state is None
    assert late.plug_temperature_c is None
    assert late.max_current_a == 32.0
    assert not state.apply(decoded(status(1)), 3.6).fault  # talks again


def test_capabilities_that_stop_become_unknown() -> None:
    state = BoardState(deadline_s=3.0)
    state.apply(decoded(capabilities(32.0, 16.0, 3)), 0.0)
    reading = state.apply(decoded(status(1)), 4.0)
    assert (reading.max_current_a, reading.phases) == (None, None)
    assert not reading.fault


# --- what the codec refuses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identifier", "length"),
    [(STATUS_ID, 7), (STATUS_ID, 0), (CAPABILITIES_ID, 4), (CAPABILITIES_ID, 8)],
)
def test_wrong_dlc(identifier: int, length: int) -> None:
    assert refused(std(identifier, bytes(length))) is Outcome.WRONG_DLC


@pytest.mark.parametrize(
    "frame",
    [
        std(0x312, bytes(8)),
        std(0x37, bytes(6)),  # the IMD's, on the same bus
        std(COMMAND_ID, bytes(3)),  # the station's own command: not a reading
        can.Message(arbitration_id=STATUS_ID, is_extended_id=True, data=bytes(8)),
    ],
)
def test_unknown_ids(frame: can.Message) -> None:
    assert refused(frame) is Outcome.UNKNOWN_ID


def test_error_and_remote_frames_are_refused() -> None:
    error = can.Message(
        arbitration_id=STATUS_ID, is_extended_id=False, is_error_frame=True, data=bytes(8)
    )
    remote = can.Message(
        arbitration_id=STATUS_ID, is_extended_id=False, is_remote_frame=True, dlc=8
    )
    assert refused(error) is Outcome.ERROR_FRAME
    assert refused(remote) is Outcome.REMOTE_FRAME


def test_kernel_filters_pass_only_status_and_capabilities() -> None:
    assert sorted(f["can_id"] for f in CODEC.kernel_filters()) == [STATUS_ID, CAPABILITIES_ID]
    assert all(f["can_mask"] == 0x7FF and f["extended"] is False for f in CODEC.kernel_filters())


# --- arbitrary frames ---------------------------------------------------------------------------


def _frame(identifier: int, extended: bool, data: bytes) -> can.Message:
    return can.Message(arbitration_id=identifier, is_extended_id=extended, data=data)


FRAMES = st.lists(
    st.builds(
        _frame,
        st.sampled_from([STATUS_ID, CAPABILITIES_ID, COMMAND_ID, STATUS_ID ^ 1, 0x7FF]),
        st.booleans(),
        st.binary(max_size=8),
    )
    | st.builds(_frame, st.just(STATUS_ID), st.just(False), st.binary(min_size=8, max_size=8))
    | st.builds(
        _frame, st.just(CAPABILITIES_ID), st.just(False), st.binary(min_size=5, max_size=5)
    ),
    min_size=20,
    max_size=60,
)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=FRAMES)
def test_arbitrary_frames_decode_inside_the_rated_ranges(frames: list[can.Message]) -> None:
    state = BoardState()
    for index, frame in enumerate(frames):
        outcome, result = CODEC.decode(frame)
        assert isinstance(outcome, Outcome)
        if result is None:
            continue
        assert outcome is Outcome.DECODED
        for field, value in result.values.items():
            assert math.isfinite(value), (field, frame)
            quantity = QUANTITY_OF.get(field)
            if quantity is not None:
                low, high = getattr(PROFILE.rated, quantity)
                assert low <= value <= high, (field, value, frame)
        assert all(isinstance(flag, bool) for flag in result.flags.values())
        reading = state.apply(result, float(index))
        assert reading.phases in (None, 1, 2, 3)
        assert reading.cp_state is None or isinstance(reading.cp_state, CpState)


# --- the connector lock ------------------------------------------------------------------------

# BOARD_Status byte 7: PP resistance bits 8-13 (of 14), the lock state in bits 6-7.
LOCK_SHIFT = 6


@pytest.mark.parametrize(
    ("code", "state"),
    [(0, LockState.UNLOCKED), (1, LockState.LOCKED), (2, LockState.MOVING), (3, LockState.FAULT)],
)
def test_the_lock_state_is_the_top_two_bits_of_the_last_byte(code: int, state: LockState) -> None:
    data = bytearray(struct.pack("<BBhhH", 1, 0, 250, 250, 0))
    data[7] = code << LOCK_SHIFT
    result = decoded(std(STATUS_ID, bytes(data)))
    assert result.values["lock_state"] == code
    assert reading_of(std(STATUS_ID, bytes(data))).lock is state
    assert reading_of(status(1, lock=code, pp_ohm=PP_OPEN)).lock is state


def test_the_lock_leaves_every_other_status_signal_alone() -> None:
    """All lock codes over the same other bytes decode to the same values but the lock, and an
    open PP (all 14 bits) does not spill into it."""
    frames = [status(2 | CONTACTOR, pp_a=63, evse_c=40.0, lock=code) for code in range(4)]
    values = [dict(decoded(frame).values) for frame in frames]
    assert [v.pop("lock_state") for v in values] == [0, 1, 2, 3]
    assert all(v == values[0] for v in values)
    assert decoded(status(1, pp_ohm=PP_OPEN, lock=0)).values["lock_state"] == 0
    assert decoded(status(1, pp_ohm=0, lock=3)).values["lock_state"] == 3


def test_before_any_status_and_once_stale_the_lock_is_unknown() -> None:
    assert reading_of(capabilities(32.0, 16.0, 3)).lock is None
    state = BoardState(deadline_s=3.0)
    state.apply(decoded(status(1, lock=1)), 0.0)
    assert state.reading(3.0).lock is LockState.LOCKED
    assert state.reading(3.5).lock is None
    assert lock_state_of(None) is None
    assert lock_state_of(4.0) is None
    assert lock_state_of(1.5) is None


def test_a_board_profile_without_the_lock_reports_none() -> None:
    """A board without a lock actuator leaves LOCK_STATE out: whatever the bits say, no lock
    (never a false "unlocked")."""
    text = (REGISTRY.directory / "generic-charger-board.toml").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if '"LOCK_STATE"' not in line]
    profile = Profile.model_validate(tomllib.loads("\n".join(lines)))
    codec = DbcCodec(profile, REGISTRY.dbc_path(PROFILE))
    for code in range(4):
        outcome, result = codec.decode(status(1, lock=code))
        assert outcome is Outcome.DECODED
        assert result is not None
        assert "lock_state" not in result.values
        assert BoardState().apply(result, 0.0).lock is None


@pytest.mark.parametrize(
    ("lock", "pwm_on", "reason", "expected_byte0"),
    [
        # byte 0: allow (bit 0), reason (bits 1-2), PWM on (bit 3), lock (bit 4)
        (True, False, PowerReason.POWER_OFF, 0b1_0110),
        (True, True, PowerReason.FULL_POWER_CHARGING, 0b1_1101),
        (False, True, PowerReason.FULL_POWER_CHARGING, 0b0_1101),
    ],
)
def test_the_lock_command_is_bit_4_of_byte_0(
    lock: bool, pwm_on: bool, reason: PowerReason, expected_byte0: int
) -> None:
    allow = reason is not PowerReason.POWER_OFF
    frame = board_command(
        CODEC, allow_power_on=allow, reason=reason, pwm_on=pwm_on, duty_percent=5.0, lock=lock
    )
    assert struct.unpack("<BH", bytes(frame.data)) == (expected_byte0, 50)
    by_hand = std(COMMAND_ID, struct.pack("<BH", expected_byte0, 50))
    assert read_board_command(CODEC, by_hand) == BoardCommand(allow, reason, pwm_on, 5.0, lock)


def test_the_dbc_documents_the_lock() -> None:
    database: Any = cantools.database.load_file(str(REGISTRY.dbc_path(PROFILE)))
    status_message = database.get_message_by_name("BOARD_Status")
    lock = status_message.get_signal_by_name("LOCK_STATE")
    resistance = status_message.get_signal_by_name("PP_RESISTANCE")
    assert (lock.start, lock.length, lock.byte_order, lock.is_signed) == (
        62,
        2,
        "little_endian",
        False,
    )
    assert (resistance.start, resistance.length) == (48, 14)
    assert {int(k): str(v) for k, v in lock.choices.items()} == {
        0: "unlocked",
        1: "locked",
        2: "moving",
        3: "fault",
    }
    command = database.get_message_by_name("BOARD_Command").get_signal_by_name("CMD_LOCK")
    assert (command.start, command.length) == (4, 1)
    assert {int(k): str(v) for k, v in command.choices.items()} == {0: "unlock", 1: "lock"}
    assert lock.comment
    assert command.comment


# --- the DBC itself, read by cantools -----------------------------------------------------------


def test_the_dbc_loads_in_cantools_as_documented() -> None:
    database: Any = cantools.database.load_file(str(REGISTRY.dbc_path(PROFILE)))
    layout = {
        message.name: (message.frame_id, message.length, message.cycle_time, message.senders)
        for message in database.messages
    }
    assert layout == {
        "BOARD_Status": (STATUS_ID, 8, 100, ["BRD"]),
        "BOARD_Capabilities": (CAPABILITIES_ID, 5, 1000, ["BRD"]),
        "BOARD_Command": (COMMAND_ID, 3, None, ["CSB"]),
    }
    for message in database.messages:
        assert not message.is_extended_frame
        assert message.comment
        for signal in message.signals:
            assert signal.byte_order == "little_endian", signal.name
            assert signal.comment, signal.name
    temperature = database.get_message_by_name("BOARD_Status").get_signal_by_name(
        "EVSE_TEMPERATURE"
    )
    assert (temperature.is_signed, temperature.scale, temperature.offset) == (True, 0.1, 0)
    reasons = database.get_message_by_name("BOARD_Command").get_signal_by_name("CMD_POWER_REASON")
    assert {int(k): str(v) for k, v in reasons.choices.items()} == {
        0: "DCCableCheck",
        1: "DCPreCharge",
        2: "FullPowerCharging",
        3: "PowerOff",
    }


@pytest.mark.parametrize(
    ("allow", "reason", "pwm_on", "duty", "expected"),
    [
        # byte 0: allow (bit 0), reason (bits 1-2), PWM on (bit 3); bytes 1-2: duty in 0.1 %
        (True, PowerReason.FULL_POWER_CHARGING, True, 5.0, (0b1101, 50)),
        (True, PowerReason.DC_CABLE_CHECK, False, 0.0, (0b0001, 0)),
        (True, PowerReason.DC_PRE_CHARGE, True, 53.3, (0b1011, 533)),
        (False, PowerReason.POWER_OFF, False, 100.0, (0b0110, 1000)),
        (False, PowerReason.FULL_POWER_CHARGING, True, 16.7, (0b1100, 167)),
    ],
)
def test_board_command_encodes_as_documented(
    allow: bool, reason: PowerReason, pwm_on: bool, duty: float, expected: tuple[int, int]
) -> None:
    frame = board_command(
        CODEC, allow_power_on=allow, reason=reason, pwm_on=pwm_on, duty_percent=duty
    )
    assert (frame.arbitration_id, frame.is_extended_id, len(frame.data)) == (COMMAND_ID, False, 3)
    assert struct.unpack("<BH", bytes(frame.data)) == expected
    assert read_board_command(CODEC, frame) == BoardCommand(allow, reason, pwm_on, duty)


def test_board_command_refuses_what_it_cannot_say() -> None:
    for duty in (-0.1, 100.1, math.nan):
        with pytest.raises(ValueError, match="duty"):
            board_command(
                CODEC, allow_power_on=True, reason=PowerReason.DC_PRE_CHARGE, duty_percent=duty
            )
    with pytest.raises(ValueError, match="PowerOff"):
        board_command(CODEC, allow_power_on=True, reason=PowerReason.POWER_OFF)


def test_power_reasons_by_their_everest_names() -> None:
    assert PowerReason.from_everest("DCCableCheck") is PowerReason.DC_CABLE_CHECK
    assert PowerReason.from_everest("FullPowerCharging") is PowerReason.FULL_POWER_CHARGING
    assert PowerReason.from_everest("PowerOff") is PowerReason.POWER_OFF
    with pytest.raises(ValueError, match="Charging"):
        PowerReason.from_everest("Charging")


def test_read_board_command_ignores_other_frames() -> None:
    assert read_board_command(CODEC, std(COMMAND_ID, bytes(2))) is None
    assert read_board_command(CODEC, std(STATUS_ID, bytes(8))) is None
    extended = can.Message(arbitration_id=COMMAND_ID, is_extended_id=True, data=bytes(3))
    assert read_board_command(CODEC, extended) is None
    assert read_board_command(CODEC, std(COMMAND_ID, bytes([0x07, 0xFF, 0xFF]))) == BoardCommand(
        True, PowerReason.POWER_OFF, False, 100.0
    )


# --- the simulated board, without a bus ---------------------------------------------------------


def _sim_board(now: list[float]) -> SimulatedCanBoard:
    station = _board_config()
    board = station.evse[0].board
    assert board is not None
    return SimulatedCanBoard(evse_id=DC, config=board, codec=CODEC, clock=lambda: now[0])


def _board_config(bus: str = "can1") -> Config:
    return parse_config(
        f"""
[station]
sw_version = "t"
hw_version = "t"

[[bus]]
name = "can1"
bitrate = 250000

[[evse]]
evse_id = "{DC}"
kind = "dc"
network_interface = "eth0"
connectors = [{{ id = 1, connector_type = "DC_core" }}]
dc_limits = {{ max_current_a = 100, max_voltage_v = 500, max_power_w = 50000, \
peak_current_ripple_a = 1 }}
[evse.board]
can = {{ profile = "generic-charger-board", bus = "{bus}" }}
"""
    )


def test_the_wire_board_obeys_commands_after_its_pull_in_delay() -> None:
    now = [10.0]
    board = _sim_board(now)
    close = board_command(
        CODEC,
        allow_power_on=True,
        reason=PowerReason.FULL_POWER_CHARGING,
        pwm_on=True,
        duty_percent=5.0,
    )
    assert board.receive(std(STATUS_ID, bytes(8))) is None
    assert board.receive(close) == BoardCommand(True, PowerReason.FULL_POWER_CHARGING, True, 5.0)
    assert (board.pwm_on, board.pwm_duty_percent) == (True, 5.0)
    assert not board.settle()
    assert not board.contactor_closed
    now[0] += 0.1
    assert board.settle()
    assert board.contactor_closed
    assert struct.unpack("<BBhhH", bytes(board.status_frame().data))[0] == CONTACTOR | PWM_ON
    board.receive(board_command(CODEC, allow_power_on=False, reason=PowerReason.POWER_OFF))
    assert not board.contactor_closed  # opens at once
    assert not board.pwm_on


def test_power_off_cancels_a_pending_close() -> None:
    now = [0.0]
    board = _sim_board(now)
    board.receive(board_command(CODEC, allow_power_on=True, reason=PowerReason.DC_CABLE_CHECK))
    board.receive(board_command(CODEC, allow_power_on=False, reason=PowerReason.DC_PRE_CHARGE))
    now[0] += 1.0
    assert not board.settle()
    assert not board.contactor_closed


def _lock_code(frame: can.Message) -> int:
    return int(bytes(frame.data)[7] >> LOCK_SHIFT)


def test_the_wire_board_moves_its_lock_then_reports_it_at_its_end() -> None:
    now = [0.0]
    board = _sim_board(now)
    assert _lock_code(board.status_frame()) == 0
    lock = board_command(CODEC, allow_power_on=False, reason=PowerReason.POWER_OFF, lock=True)
    board.receive(lock)
    assert board.lock_state is LockState.MOVING
    assert _lock_code(board.status_frame()) == 2
    assert board.next_due() == pytest.approx(0.2)
    now[0] = 0.19
    assert not board.settle()
    assert _lock_code(board.status_frame()) == 2
    board.receive(lock)  # told again while moving: nothing new
    now[0] = 0.2
    assert board.settle()
    assert board.next_due() is None
    assert _lock_code(board.status_frame()) == 1
    assert reading_of(board.status_frame()).lock is LockState.LOCKED
    board.receive(board_command(CODEC, allow_power_on=False, reason=PowerReason.POWER_OFF))
    assert _lock_code(board.status_frame()) == 2
    now[0] = 0.5
    assert board.settle()
    assert reading_of(board.status_frame()).lock is LockState.UNLOCKED


def test_a_jammed_lock_stays_moving_then_faults() -> None:
    now = [0.0]
    board = _sim_board(now)
    board.lock_jammed = True
    lock = board_command(CODEC, allow_power_on=False, reason=PowerReason.POWER_OFF, lock=True)
    board.receive(lock)
    now[0] = 1.0  # past the travel time and past the station's 1 s to confirm: still moving
    assert not board.settle()
    assert reading_of(board.status_frame()).lock is LockState.MOVING
    now[0] = 1.5
    assert board.settle()
    assert reading_of(board.status_frame()).lock is LockState.FAULT
    board.receive(lock)  # the same command again does not retry
    assert board.lock_state is LockState.FAULT
    board.lock_jammed = False  # freed: the other end, then locking again works
    board.receive(board_command(CODEC, allow_power_on=False, reason=PowerReason.POWER_OFF))
    now[0] = 2.0
    board.settle()
    board.receive(lock)
    now[0] = 2.2
    board.settle()
    assert reading_of(board.status_frame()).lock is LockState.LOCKED


def test_the_wire_board_reports_the_pwm_as_driven() -> None:
    board = _sim_board([0.0])
    board.receive(
        board_command(
            CODEC,
            allow_power_on=False,
            reason=PowerReason.POWER_OFF,
            pwm_on=True,
            duty_percent=53.3,
        )
    )
    assert decoded(board.status_frame()).flags["pwm_on"] is True
    board.receive(board_command(CODEC, allow_power_on=False, reason=PowerReason.POWER_OFF))
    assert decoded(board.status_frame()).flags["pwm_on"] is False


def test_the_wire_boards_frames_decode_to_its_state() -> None:
    board = _sim_board([0.0])
    board.cp_state = CpState.C
    board.emergency_stop = True
    board.plug_temperature_c = 80.0
    board.evse_temperature_c = -5.5
    reading = reading_of(board.status_frame(), board.capabilities_frame())
    assert reading.cp_state is CpState.C
    assert reading.emergency_stop
    assert reading.plug_temperature_c == pytest.approx(80.0)
    assert reading.evse_temperature_c == pytest.approx(-5.5)
    assert reading.phases is None  # a DC EVSE's board states no AC capability


def test_a_scripted_value_beyond_its_signal_is_sent_clamped_and_refused() -> None:
    board = _sim_board([0.0])
    board.plug_temperature_c = 5000.0
    board.max_current_a = 10_000.0
    assert refused(board.status_frame()) is Outcome.OUT_OF_RANGE
    assert refused(board.capabilities_frame()) is Outcome.OUT_OF_RANGE
    board.plug_temperature_c = -5000.0
    assert refused(board.status_frame()) is Outcome.OUT_OF_RANGE


def _ac_board(simulated: dict[str, Any]) -> SimulatedCanBoard:
    raw = load_config(example_config("sim-station.toml")).model_dump(mode="json", exclude_none=True)
    ac = next(evse for evse in raw["evse"] if evse["kind"] == "ac")
    ac["board"] = {
        "can": {"profile": "generic-charger-board", "bus": "sim-can1"},
        "simulated": simulated,
    }
    evse = next(e for e in Config.model_validate(raw).evse if e.kind == "ac")
    return build_wire_board(evse, REGISTRY, lambda: 0.0)


def test_an_ac_wire_board_states_its_table_or_else_the_nameplate() -> None:
    table = _ac_board({"max_current_a": 20, "max_discharge_current_a": 10, "phases": 1})
    reading = reading_of(table.capabilities_frame())
    assert (reading.max_current_a, reading.max_discharge_current_a, reading.phases) == (20, 10, 1)
    # the example's AC EVSE: 32 A, 3 phases, 3680 W discharge per phase at 230 V
    nameplate = reading_of(_ac_board({}).capabilities_frame())
    assert (nameplate.max_current_a, nameplate.max_discharge_current_a, nameplate.phases) == (
        32,
        16,
        3,
    )


# --- configuration and routing ------------------------------------------------------------------


def test_the_router_attaches_a_board_to_its_bus() -> None:
    router = DeviceRouter(_board_config(), REGISTRY)
    [target] = router.targets()
    assert (target.evse_id, target.name, type(target.state)) == (DC, "board", BoardState)
    routed = router.route("can1", status(1 | ESTOP), 1.0)
    assert routed is not None
    evse_id, reading = routed
    assert evse_id == DC
    assert isinstance(reading, BoardReading)
    assert reading.emergency_stop
    assert router.counters.get("can_frames", "can1/generic-charger-board/decoded") == 1


def test_a_board_needs_a_board_profile() -> None:
    config = _board_config().model_dump(mode="json", exclude_none=True)
    config["evse"][0]["board"]["can"]["profile"] = "bender-iso165c"
    with pytest.raises(ConfigError, match="describes a imd, not a board"):
        DeviceRouter(Config.model_validate(config), REGISTRY)


def test_a_module_cannot_use_the_board_profile() -> None:
    config = _board_config().model_dump(mode="json", exclude_none=True)
    config["evse"][0]["module"] = [
        {"name": "m1", "address": 1, "can": {"profile": "generic-charger-board", "bus": "can1"}}
    ]
    with pytest.raises(ConfigError, match="describes a board, not a power_module"):
        DeviceRouter(Config.model_validate(config), REGISTRY)


def test_a_board_on_an_unknown_bus_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"evse\[0\]\.board\.can\.bus: no \[\[bus\]\]"):
        _board_config(bus="can7")


def test_two_boards_on_one_bus_are_a_config_error() -> None:
    raw = _board_config().model_dump(mode="json", exclude_none=True)
    second = {**raw["evse"][0], "evse_id": "DE*CSB*E0009"}
    raw["evse"].append(second)
    with pytest.raises(ValueError, match="same bus, profile and address"):
        Config.model_validate(raw)
