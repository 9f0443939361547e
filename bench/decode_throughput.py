"""CAN frames per second on one core: csbridge's decoding, and decoding plus limit composition,
against cantools decoding the same frames with a DBC of the same fields, in the same run.

The frame mix is what examples/infypower-dc.toml sees on its buses: three Infypower REG modules
answering commands 0x03, 0x04, 0x0A and 0x0C on can0 and a Bender iso165C's IMD_Info on can1,
built with struct.pack from the protocol facts (as fixtures/can/make_logs.py does), with values
that change from poll to poll. Frames are stamped at the pace of a saturated 500 kbit/s bus.

Variants, each over the same frames, in interleaved rounds so machine noise falls on all alike:

- decode: `DeviceRouter.route(bus, frame, t)`: identify, check, unpack, scale, range-check, and
  update the device's state into a reading.
- decode+compose: the same, then the EVSE's limits composed the way the station does it live:
  a bus's waiting frames are read in one callback, each reading stored and each EVSE they
  touched evaluated once per burst (`ingest.store`, then `ingest.evaluate`, as
  `BusLink.on_frames` does). A burst here is 1 ms of the goal's bus, 31 frames; under more load
  the bursts grow and the cost per frame falls.
- decode+compose per frame: every reading composed at once (`LimitsEngine.ingest`), as replay
  does to stay exact on the log's clock: the worst case, shown for comparison.
- cantools: `Database.decode_message` of a DBC describing the same reply fields (one database
  per bus, as the router has one route per bus). The Infypower DBC is written at run time: one
  message per command and module address (a DBC names whole 29-bit identifiers; it cannot
  wildcard the address field), big-endian (Motorola, @0) signals at the profile's positions,
  the f32 output current declared as an IEEE float with SIG_VALTYPE_, one 1-bit signal per
  mapped status bit. The Bender part is hal/bender-iso165c.dbc itself. cantools only decodes:
  it does no range checks and keeps no device state, so it is a floor, not a like-for-like.

Goal: decode+compose (per burst) >= 31,000 frames/s, 10 times a saturated 500 kbit/s bus
(about 3,100 frames/s of 8-byte extended frames).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import struct
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import can
import cantools

from bench.common import summary_row
from bench.stats import percentile
from csbridge.config import Config, load_config
from csbridge.engine.engine import LimitsEngine
from csbridge.sources.can.router import DeviceRouter
from csbridge.support.counters import Counters
from csbridge.support.resources import example_config, resource_dir

GOAL_FRAMES_PER_S = 31_000.0
SATURATED_BUS_FRAMES_PER_S = 3_100.0
CONTROLLER = 0xF0
MODULES = (1, 2, 3)
COMMANDS = (0x03, 0x04, 0x0A, 0x0C)
CYCLES = 100
"""Poll cycles of distinct values in the mix (13 frames each), repeated to fill a batch."""

# infypower-reg.toml's read_status flags: (byte, bit) of every mapped status bit.
STATUS_BITS = (
    (5, 0),
    (5, 1),
    (5, 2),
    (5, 3),
    (5, 5),
    (5, 6),
    (5, 7),
    (6, 0),
    (6, 1),
    (6, 2),
    (6, 4),
    (6, 5),
    (6, 7),
    (7, 0),
    (7, 4),
    (7, 5),
)


@dataclass(frozen=True, slots=True)
class Frame:
    bus: str
    message: can.Message


def infy_id(command: int, destination: int, source: int, device: int = 0x0A) -> int:
    # bits 28-26 error code, 25-22 device number, 21-16 command, 15-8 destination, 7-0 source
    return (device << 22) | (command << 16) | (destination << 8) | source


def _infy_reply(cycle: int, address: int, command: int) -> bytes:
    if command == 0x03:  # bytes 0-3 voltage (not mapped), 4-7 output current, f32
        current = 50.0 + 30.0 * ((cycle * 7 + address) % 11) / 10.0
        return struct.pack(">ff", 800.0 + cycle % 50, current)
    if command == 0x04:  # bytes 5-7 status bits: derating now and then, else all clear
        derating = 1 if (cycle + address) % 17 == 0 else 0
        return bytes(5) + bytes([derating, 0, 0])
    if command == 0x0A:  # max V, min V (1 V), max current (0.1 A), max power (10 W), u16
        return struct.pack(">HHHH", 1000, 150, 1000 - (cycle % 3) * 10, 3000)
    # 0x0C: bytes 0-1 after-diode voltage (0.1 V), 2-3 available current (not mapped)
    return struct.pack(">HHxxxx", 7000 + (cycle % 40) * 5, 1000)


def frame_mix() -> list[Frame]:
    """One IMD_Info and twelve module replies per poll cycle, CYCLES cycles of changing values."""
    frames: list[Frame] = []
    for cycle in range(CYCLES):
        # IMD_Info 0x37: R_ISO in kOhm (little-endian word), IMC status, VIFC status
        imd = struct.pack("<HHH", 5000 - cycle % 20, 0, 0)
        frames.append(
            Frame("can1", can.Message(arbitration_id=0x37, is_extended_id=False, data=imd))
        )
        for address in MODULES:
            for command in COMMANDS:
                message = can.Message(
                    arbitration_id=infy_id(command, CONTROLLER, address),
                    is_extended_id=True,
                    data=_infy_reply(cycle, address, command),
                )
                frames.append(Frame("can0", message))
    return frames


def _motorola_start(byte: int, bit: int) -> int:
    """DBC start bit of a big-endian signal whose most significant bit is `bit` of `byte`."""
    return byte * 8 + bit


def infypower_dbc() -> str:
    """The infypower-reg replies' mapped fields, as a DBC (one message per command and address)."""
    lines = [
        'VERSION "csbridge bench infypower-reg replies"',
        "",
        "NS_ :",
        "",
        "BS_:",
        "",
        "BU_: MODULE CSB",
        "",
    ]
    valtypes = []
    for address in MODULES:
        base = 0x80000000  # DBC marks a 29-bit identifier by its top bit
        lines += [
            f"BO_ {base | infy_id(0x03, CONTROLLER, address)} VOLTAGE_CURRENT_{address}: 8 MODULE",
            f' SG_ OUTPUT_CURRENT : {_motorola_start(4, 7)}|32@0- (1,0) [-10|250] "A" CSB',
            "",
            f"BO_ {base | infy_id(0x04, CONTROLLER, address)} STATUS_{address}: 8 MODULE",
            *(
                f' SG_ STATUS_{byte}_{bit} : {_motorola_start(byte, bit)}|1@0+ (1,0) [0|1] "" CSB'
                for byte, bit in STATUS_BITS
            ),
            "",
            f"BO_ {base | infy_id(0x0A, CONTROLLER, address)} CAPABILITY_{address}: 8 MODULE",
            f' SG_ MAX_VOLTAGE : {_motorola_start(0, 7)}|16@0+ (1,0) [0|1100] "V" CSB',
            f' SG_ MIN_VOLTAGE : {_motorola_start(2, 7)}|16@0+ (1,0) [0|1100] "V" CSB',
            f' SG_ MAX_CURRENT : {_motorola_start(4, 7)}|16@0+ (0.1,0) [0|250] "A" CSB',
            f' SG_ MAX_POWER : {_motorola_start(6, 7)}|16@0+ (10,0) [0|60000] "W" CSB',
            "",
            f"BO_ {base | infy_id(0x0C, CONTROLLER, address)} AFTER_DIODE_{address}: 8 MODULE",
            f' SG_ OUTPUT_VOLTAGE : {_motorola_start(0, 7)}|16@0+ (0.1,0) [0|1100] "V" CSB',
            "",
        ]
        valtypes.append(
            f"SIG_VALTYPE_ {base | infy_id(0x03, CONTROLLER, address)} OUTPUT_CURRENT : 1;"
        )
    return "\n".join([*lines, *valtypes, ""])


Decoder = Callable[[Sequence[Frame], float], None]


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _station() -> Config:
    return load_config(example_config("infypower-dc.toml"))


def decode_only() -> Decoder:
    router = DeviceRouter(_station())
    route = router.route

    def run(frames: Sequence[Frame], t0: float) -> None:
        step = 1.0 / SATURATED_BUS_FRAMES_PER_S
        t = t0
        for frame in frames:
            t += step
            route(frame.bus, frame.message, t)

    return run


def _composing_station() -> tuple[FakeClock, LimitsEngine, DeviceRouter]:
    """The engine and the router of one station, on one clock the decoder moves."""
    config = _station()
    clock = FakeClock()
    counters = Counters()
    engine = LimitsEngine(config, counters, clock=clock)
    return clock, engine, DeviceRouter(config, counters=counters, clock=clock)


def decode_and_compose() -> Decoder:
    clock, engine, router = _composing_station()
    route, ingest = router.route, engine.ingest

    def run(frames: Sequence[Frame], t0: float) -> None:
        step = 1.0 / SATURATED_BUS_FRAMES_PER_S
        t = t0
        for frame in frames:
            t += step
            clock.now = t
            routed = route(frame.bus, frame.message, t)
            if routed is not None:
                ingest(*routed)

    return run


BURST_FRAMES = 31
"""1 ms of a bus carrying the goal's 31,000 frames/s: what one drain of the socket brings."""


def decode_and_compose_per_burst() -> Decoder:
    clock, engine, router = _composing_station()
    route, store, evaluate = router.route, engine.ingest.store, engine.ingest.evaluate

    def run(frames: Sequence[Frame], t0: float) -> None:
        step = 1.0 / SATURATED_BUS_FRAMES_PER_S
        t = t0
        touched: dict[str, None] = {}
        for index, frame in enumerate(frames, start=1):
            t += step
            clock.now = t
            routed = route(frame.bus, frame.message, t)
            if routed is not None and store(*routed):
                touched[routed[0]] = None
            if index % BURST_FRAMES == 0:
                evaluate(touched)
                touched.clear()
        evaluate(touched)

    return run


def cantools_decode(workdir: Path) -> Decoder:
    infy = workdir / "infypower-reg-replies.dbc"
    infy.write_text(infypower_dbc(), encoding="utf-8")
    databases: dict[str, Any] = {
        "can0": cantools.database.load_file(str(infy)),
        "can1": cantools.database.load_file(str(resource_dir("hal") / "bender-iso165c.dbc")),
    }

    def run(frames: Sequence[Frame], t0: float) -> None:
        for frame in frames:
            message = frame.message
            databases[frame.bus].decode_message(
                message.arbitration_id, message.data, decode_choices=False
            )

    return run


def check_equivalent(workdir: Path, frames: Sequence[Frame]) -> None:
    """The DBC baseline reads the numbers csbridge reads, or the comparison means nothing."""
    infy = workdir / "infypower-reg-replies.dbc"
    if not infy.exists():
        infy.write_text(infypower_dbc(), encoding="utf-8")
    database: Any = cantools.database.load_file(str(infy))
    config = _station()
    router = DeviceRouter(config)
    by_name = {"VOLTAGE_CURRENT": "output_current", "AFTER_DIODE": "output_voltage"}
    for index, frame in enumerate(frames[:26]):
        routed = router.route(frame.bus, frame.message, 1.0 + index)
        assert routed is not None, f"frame {index} did not decode in csbridge"
        if frame.bus != "can0":
            continue
        message = frame.message
        signals = database.decode_message(message.arbitration_id, message.data)
        kind = database.get_message_by_frame_id(message.arbitration_id).name.rsplit("_", 1)[0]
        reading = routed[1]
        if kind in by_name:
            assert abs(signals[next(iter(signals))] - getattr(reading, by_name[kind])) < 1e-6
        elif kind == "CAPABILITY":
            export = getattr(reading, "export", None)
            assert export is not None
            assert abs(signals["MAX_CURRENT"] - export.max_current) < 1e-6
            assert abs(signals["MAX_POWER"] - export.max_power) < 1e-6
        elif kind == "STATUS":
            assert bool(any(signals.values())) == bool(getattr(reading, "derating", False))


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    decoder: Decoder


def measure(
    variants: Sequence[Variant], frames: Sequence[Frame], batches: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds per frame of each batch, by variant; the variants take turns batch by batch."""
    per_frame: dict[str, list[float]] = {variant.name: [] for variant in variants}
    batch_span = len(frames) / SATURATED_BUS_FRAMES_PER_S
    t0 = 2000.0
    for round_index in range(warmup + batches):
        for variant in variants:
            gc.collect()
            started = time.perf_counter_ns()
            variant.decoder(frames, t0)
            elapsed = time.perf_counter_ns() - started
            if round_index >= warmup:
                per_frame[variant.name].append(elapsed / 1e9 / len(frames))
        t0 += batch_span
    return per_frame


def _row(samples: Sequence[float], baseline_median: float) -> dict[str, float]:
    median = percentile(samples, 0.5)
    return {
        "median_us_per_frame": median * 1e6,
        "p99_us_per_frame": percentile(samples, 0.99) * 1e6,
        "frames_per_s": 1.0 / median,
        "vs_cantools": baseline_median / median,
    }


def run(quick: bool) -> dict[str, object]:
    batches, batch_frames, warmup = (10, 5_000, 1) if quick else (30, 10_000, 2)
    mix = frame_mix()
    frames = [mix[index % len(mix)] for index in range(batch_frames)]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        check_equivalent(workdir, mix)
        variants = [
            Variant("cantools", cantools_decode(workdir)),
            Variant("decode", decode_only()),
            Variant("decode+compose", decode_and_compose_per_burst()),
            Variant("decode+compose per frame", decode_and_compose()),
        ]
        samples = measure(variants, frames, batches, warmup)
    baseline = percentile(samples["cantools"], 0.5)
    rows = {name: _row(values, baseline) for name, values in samples.items()}
    composed = rows["decode+compose"]["frames_per_s"]
    return {
        "benchmark": "CAN frames decoded (and composed into limits) per second, one core",
        "frame_mix": (
            "examples/infypower-dc.toml: 3 infypower-reg modules x replies to 0x03/0x04/0x0A/0x0C"
            " on can0 + bender-iso165c IMD_Info on can1 (12:1), values changing per poll cycle"
        ),
        "frame_pace": f"time stamps 1/{SATURATED_BUS_FRAMES_PER_S:.0f} s apart (saturated bus)",
        "baseline": (
            "cantools decode_message, DBC of the same infypower-reg reply fields written at run"
            " time (29-bit ids, Motorola @0, f32 via SIG_VALTYPE_) + hal/bender-iso165c.dbc"
        ),
        "vs_cantools": "cantools median time per frame / this variant's (above 1: faster)",
        "batches": batches,
        "batch_frames": batch_frames,
        "variants": rows,
        "goal_frames_per_s": GOAL_FRAMES_PER_S,
        "goal_met": composed >= GOAL_FRAMES_PER_S,
        "summary": [
            summary_row(
                "decode+compose frames/s (vs cantools decode)",
                composed,
                rows["cantools"]["frames_per_s"],
                goal=f">= {GOAL_FRAMES_PER_S:,.0f} frames/s",
                met=composed >= GOAL_FRAMES_PER_S,
            ),
            summary_row(
                "decode frames/s (vs cantools decode)",
                rows["decode"]["frames_per_s"],
                rows["cantools"]["frames_per_s"],
            ),
        ],
    }


def print_table(result: dict[str, Any]) -> None:
    rows: dict[str, dict[str, float]] = result["variants"]
    print(
        f"{result['benchmark']} ({result['batches']} batches of "
        f"{result['batch_frames']} frames each)"
    )
    print(f"{'':26}{'median us':>11}{'p99 us':>10}{'frames/s':>11}{'x cantools':>12}")
    for name in ("cantools", "decode", "decode+compose", "decode+compose per frame"):
        row = rows[name]
        print(
            f"{name:26}{row['median_us_per_frame']:11.2f}{row['p99_us_per_frame']:10.2f}"
            f"{row['frames_per_s']:11,.0f}{row['vs_cantools']:12.2f}"
        )
    verdict = "met" if result["goal_met"] else "MISSED"
    print(
        f"decode+compose {rows['decode+compose']['frames_per_s']:,.0f} frames/s "
        f"(goal >= {result['goal_frames_per_s']:,.0f}: {verdict})"
    )


def profile_hot_path(frame_count: int = 20_000, top: int = 25) -> str:
    """cProfile of decode+compose over `frame_count` frames (after one warm-up pass)."""
    mix = frame_mix()
    frames = [mix[index % len(mix)] for index in range(frame_count)]
    decoder = decode_and_compose()
    decoder(frames, 2000.0)
    profiler = cProfile.Profile()
    profiler.enable()
    decoder(frames, 2000.0 + frame_count / SATURATED_BUS_FRAMES_PER_S)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.decode_throughput")
    parser.add_argument("--profile", action="store_true", help="cProfile decode+compose instead")
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    arguments = parser.parse_args()
    if arguments.profile:
        print(profile_hot_path())
    else:
        print_table(run(arguments.quick))
