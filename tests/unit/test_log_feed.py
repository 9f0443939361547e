"""CAN logs as frames on named buses: a bad line is named, counted and skipped; a log that
cannot be read at all is refused before the first frame; channels and files find their bus."""

from __future__ import annotations

import io
import time
from pathlib import Path

import can
import pytest

from csbridge.config import BusConfig, load_config
from csbridge.sources.can import BadLine, LogError, LogFeed, check_sources, parse_bus_map
from csbridge.support import Counted, Counters
from csbridge.support.resources import example_config
from csbridge.tools.replay import ReplayRun
from tests.support import FIXTURES

LOG = FIXTURES / "can" / "infypower-three-modules.log"
BUSES = [BusConfig(name="can0"), BusConfig(name="can1")]


def _feed(*sources: str | Path, **options: object) -> tuple[LogFeed, list[BadLine]]:
    bad: list[BadLine] = []
    feed = LogFeed(list(sources), BUSES, on_bad_line=bad.append, **options)  # type: ignore[arg-type]
    return feed, bad


def test_bad_lines_are_named_counted_and_skipped(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text(
        "(1.0) can0 123#01\n"
        "  can0  1A2   [8]  01 02 03 04 05 06 07 08 junk\n"
        "\n"
        "(arbag) can0 123#00\n"
        "(2.0) can1 456#02\n"
    )
    counters = Counters()
    feed, bad = _feed(log, counters=counters)
    frames = list(feed.frames())
    assert [(t, bus, f.arbitration_id) for t, bus, f in frames] == [
        (1.0, "can0", 0x123),
        (2.0, "can1", 0x456),
    ]
    assert [(b.line, b.why) for b in bad] == [
        (2, "unexpected 'junk' after the data"),
        (4, "timestamp 'arbag' is not a number"),
    ]
    assert (
        str(bad[1])
        == f"{log}:4: cannot parse '(arbag) can0 123#00': timestamp 'arbag' is not a number"
    )
    assert feed.stats.bad_lines[str(log)] == 2
    assert counters.get(Counted.CAN_LOG_LINES_REFUSED, str(log)) == 2


def test_bytes_that_are_no_text_are_bad_lines(tmp_path: Path) -> None:
    log = tmp_path / "binary.log"
    log.write_bytes(b"(1.0) can0 123#01\n\xff\xfe\x00garbage\n(2.0) can0 123#02\n")
    feed, bad = _feed(log)
    assert len(list(feed.frames())) == 2
    assert [b.line for b in bad] == [2]


def test_stdin_is_read_as_candump_lines() -> None:
    lines = io.StringIO("(1.0) vcan0 123#01\n(1.5) vcan0 20000080#0000000000000000\n")
    feed, bad = _feed("-", stdin=lines, bus_map={"vcan0": "can0"})
    frames = list(feed.frames())
    assert [bus for _, bus, _ in frames] == ["can0", "can0"]
    assert feed.stats.error_frames == {"can0": 1}
    assert feed.stats.log_buses == {"vcan0": "can0"}
    assert feed.sources == ["stdin"]
    assert bad == []


def test_untimed_lines_take_the_last_time_given_or_the_time_read() -> None:
    lines = io.StringIO("  can0  123   [1]  01\n(5.0) can0 123#02\n  can0  123   [1]  03\n")
    feed, _ = _feed("-", stdin=lines, wall_clock=lambda: 1.0)
    assert [t for t, _, _ in feed.frames()] == [1.0, 5.0, 5.0]
    assert feed.stats.untimed == ["stdin"]


def test_zero_based_screen_timestamps_end_that_log_only(tmp_path: Path) -> None:
    relative = tmp_path / "relative.log"
    relative.write_text(" (000.000000)  can0  123   [1]  01\n (000.100000)  can0  123   [1]  02\n")
    feed, bad = _feed(relative, LOG)
    frames = list(feed.frames())
    assert len(frames) == 460  # the other log, whole
    assert len(bad) == 1
    assert "candump -L" in feed.stats.refused[str(relative)]


def test_a_numbered_channel_is_the_bus_at_that_position_or_named_after_its_format(
    tmp_path: Path,
) -> None:
    log = tmp_path / "three.trc"
    with can.TRCWriter(str(log)) as writer:
        for channel in (0, 1, 2):
            writer.on_message_received(
                can.Message(timestamp=1.0 + channel, arbitration_id=0x100, channel=channel)
            )
    feed, _ = _feed(log)
    assert [bus for _, bus, _ in feed.frames()] == ["can0", "can1", "trc3"]
    swapped = [BusConfig(name="can0", asc_channel=2), BusConfig(name="can1", asc_channel=1)]
    feed = LogFeed([log], swapped)
    assert [bus for _, bus, _ in feed.frames()] == ["can1", "can0", "trc3"]


def test_a_csv_log_is_on_the_bus_its_file_is_named_after(tmp_path: Path) -> None:
    log = tmp_path / "can1.csv"
    with can.CSVWriter(str(log)) as writer:
        writer.on_message_received(can.Message(timestamp=1.0, arbitration_id=0x37, data=b"\x01"))
    feed, _ = _feed(log)
    assert [bus for _, bus, _ in feed.frames()] == ["can1"]


def test_a_python_can_reader_error_names_the_line_and_keeps_what_came_before(
    tmp_path: Path,
) -> None:
    log = tmp_path / "can0.csv"
    with can.CSVWriter(str(log)) as writer:
        for t in (1.0, 2.0):
            writer.on_message_received(can.Message(timestamp=t, arbitration_id=0x37))
    log.write_text(log.read_text() + "not,a,frame\n")
    feed, bad = _feed(log)
    assert [t for t, _, _ in feed.frames()] == [1.0, 2.0]
    (line,) = bad
    assert line.line == 4
    assert line.text == "not,a,frame"
    assert "the rest of the file is not read" in line.why


@pytest.mark.parametrize(
    ("sources", "why"),
    [
        (["frames.xyz"], "unknown log format '.xyz'"),
        (["missing.log"], "missing.log: no such file"),
        (["-", "-"], "standard input can be read once"),
    ],
)
def test_what_cannot_be_read_at_all_is_refused_first(sources: list[str], why: str) -> None:
    with pytest.raises(LogError) as raised:
        check_sources(sources)
    assert why in str(raised.value)


@pytest.mark.parametrize(
    ("pairs", "why"),
    [
        (["vcan0"], "expected LOGNAME=BUS"),
        (["vcan0="], "expected LOGNAME=BUS"),
        (["vcan0=can9"], "no bus 'can9' in the configuration (have can0, can1)"),
        (["vcan0=can0", "vcan0=can1"], "vcan0 is already mapped to can0"),
    ],
)
def test_a_bus_map_names_configured_buses(pairs: list[str], why: str) -> None:
    with pytest.raises(LogError) as raised:
        parse_bus_map(pairs, BUSES)
    assert why in str(raised.value)
    assert parse_bus_map(["vcan0=can0", "vcan1 = can1"], BUSES) == {
        "vcan0": "can0",
        "vcan1": "can1",
    }


def test_a_day_between_two_logs_costs_a_minute_of_ticks(tmp_path: Path) -> None:
    later = tmp_path / "later.log"
    later.write_text(LOG.read_text().replace("(17000", "(17001"))  # 100 000 s later
    run = ReplayRun(load_config(example_config("infypower-dc.toml")))
    started = time.monotonic()
    publications = run.publications([LOG, later])
    assert time.monotonic() - started < 30  # a tick per 0.1 s would be a million evaluations
    currents = [
        p.payload["data"]["evses"][0]["dc"]["max_current"]
        for p in publications
        if p.topic == "cs/josev"
    ]
    assert currents.count(300.0) == 2  # the second log brings all three modules back
    assert currents[-1] == 200.0


def test_a_log_with_no_frame_is_refused_after_its_lines_were_shown(tmp_path: Path) -> None:
    log = tmp_path / "bad.log"
    log.write_text("(1700000000.0) can0 ZZZ#00\n")
    bad: list[BadLine] = []
    run = ReplayRun(load_config(example_config("infypower-dc.toml")), on_bad_line=bad.append)
    with pytest.raises(LogError) as raised:
        run.publications([log])
    assert str(raised.value) == f"{log}: no frame could be read (1 line not read)"
    assert len(bad) == 1
