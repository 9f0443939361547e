"""`csbridge replay` as a vendor runs it, on the cases issue 19 found: every format python-can
reads, candump lines on stdin, bad lines named by file and line, a log naming another bus,
error frames, `--json`, `--strict`, and the error paths of `replay` and `run --replay`."""

from __future__ import annotations

import gzip
import re
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import can
import orjson
import pytest

from csbridge.support.resources import example_config
from tests.support import FIXTURES

CSBRIDGE = [sys.executable, "-m", "csbridge"]
AS_AT_A_TERMINAL = [
    sys.executable,
    "-c",
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'csbridge'; runpy.run_module('csbridge', run_name='__main__')",
]
"""`csbridge` with Ctrl-C raising KeyboardInterrupt, as at a terminal, whatever this process
inherited: a CI runner that starts the suite as a background job has SIGINT ignored, Python then
keeps it ignored, and the SIGINT the live-pipe test sends never arrived (CI, twice)."""
LOG = FIXTURES / "can" / "infypower-three-modules.log"
CONFIG = example_config("infypower-dc.toml")
WRITERS: dict[str, type[can.io.generic.MessageWriter]] = {
    ".blf": can.BLFWriter,
    ".trc": can.TRCWriter,
    ".asc": can.ASCWriter,
}


def _csbridge(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = None
    if env:
        import os  # noqa: PLC0415

        environment = {**os.environ, **env}
    return subprocess.run(
        [*CSBRIDGE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        input=stdin,
        env=environment,
    )


def _replay(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return _csbridge("replay", "--config", str(CONFIG), *args, stdin=stdin)


def _summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()  # nothing else on stdout
    document: dict[str, Any] = orjson.loads(line)
    return document


def _report(result: subprocess.CompletedProcess[str]) -> list[tuple[float, str, Any]]:
    """The publications without their random message ids, times to the microsecond."""
    assert result.returncode == 0, result.stderr
    report = []
    for line in result.stdout.splitlines():
        publication = orjson.loads(line)
        payload = publication["payload"]
        payload.pop("id", None)
        report.append((round(publication["t"], 6), publication["topic"], payload))
    return report


def _frames() -> list[can.Message]:
    """The fixture's frames (built from the protocol facts by fixtures/can/make_logs.py), as
    python-can's own candump reader reads them."""
    return list(can.LogReader(str(LOG)))


def _channel_numbered(frame: can.Message) -> can.Message:
    frame.channel = 0 if frame.channel == "can0" else 1  # python-can counts channels from 0
    return frame


def _write(writer_type: type[can.io.generic.MessageWriter], log: Path) -> None:
    """The fixture's frames in another format, channels numbered as python-can numbers them."""
    with writer_type(str(log)) as writer:
        for frame in _frames():
            writer.on_message_received(_channel_numbered(frame))


@pytest.fixture(scope="module")
def from_candump() -> dict[str, Any]:
    return _summary(_replay(str(LOG), "--json"))


@pytest.fixture(scope="module")
def candump_report() -> list[tuple[float, str, Any]]:
    return _report(_replay(str(LOG)))


@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_a_log_written_by_python_can_replays_as_the_candump_log(
    tmp_path: Path,
    suffix: str,
    from_candump: dict[str, Any],
    candump_report: list[tuple[float, str, Any]],
) -> None:
    log = tmp_path / f"frames{suffix}"
    _write(WRITERS[suffix], log)
    assert _summary(_replay(str(log), "--json")) == from_candump
    assert _report(_replay(str(log))) == candump_report


def test_an_mf4_log_replays_as_the_candump_log(
    tmp_path: Path,
    from_candump: dict[str, Any],
    candump_report: list[tuple[float, str, Any]],
) -> None:
    """With python-can's mf4 extra (asammdf), which the dev install does not pull in."""
    pytest.importorskip("asammdf")
    log = tmp_path / "frames.mf4"
    _write(can.MF4Writer, log)
    assert _summary(_replay(str(log), "--json")) == from_candump
    assert _report(_replay(str(log))) == candump_report


def test_csv_logs_name_their_bus_by_file(
    tmp_path: Path, from_candump: dict[str, Any], candump_report: list[tuple[float, str, Any]]
) -> None:
    """python-can's CSV carries no bus: one file per bus, named after it."""
    for bus in ("can0", "can1"):
        with can.CSVWriter(str(tmp_path / f"{bus}.csv")) as writer:
            for frame in _frames():
                if frame.channel == bus:
                    writer.on_message_received(frame)
    logs = [str(tmp_path / "can0.csv"), str(tmp_path / "can1.csv")]
    assert _summary(_replay(*logs, "--json")) == from_candump
    assert _report(_replay(*logs)) == candump_report


@pytest.mark.parametrize("suffix", [".log", *sorted(WRITERS)])
def test_a_gzip_compressed_log_replays_as_the_candump_log(
    tmp_path: Path,
    suffix: str,
    from_candump: dict[str, Any],
    candump_report: list[tuple[float, str, Any]],
) -> None:
    """As logrotate or `candump -L | gzip` leave them, under a dated name (python-can's own
    LogReader refuses a name with more than two suffixes)."""
    log = tmp_path / f"can.2026-12-01{suffix}.gz"
    if suffix == ".log":
        log.write_bytes(gzip.compress(LOG.read_bytes()))
    else:
        plain = tmp_path / f"frames{suffix}"
        _write(WRITERS[suffix], plain)
        log.write_bytes(gzip.compress(plain.read_bytes()))
    assert _summary(_replay(str(log), "--json")) == from_candump
    assert _report(_replay(str(log))) == candump_report


def test_compressed_csv_logs_name_their_bus_without_the_suffixes(
    tmp_path: Path, from_candump: dict[str, Any]
) -> None:
    for bus in ("can0", "can1"):
        plain = tmp_path / f"{bus}.csv"
        with can.CSVWriter(str(plain)) as writer:
            for frame in _frames():
                if frame.channel == bus:
                    writer.on_message_received(frame)
        (tmp_path / f"{bus}.csv.gz").write_bytes(gzip.compress(plain.read_bytes()))
    logs = [str(tmp_path / "can0.csv.gz"), str(tmp_path / "can1.csv.gz")]
    assert _summary(_replay(*logs, "--json")) == from_candump


def test_a_truncated_gzip_log_replays_what_it_holds_and_names_where_it_broke(
    tmp_path: Path,
) -> None:
    whole = gzip.compress(LOG.read_bytes())
    log = tmp_path / "can0.log.gz"
    log.write_bytes(whole[: len(whole) // 2])
    result = _replay(str(log), "--json")
    summary = _summary(result)
    assert 0 < summary["frames"] < 460
    assert summary["lines_not_read"] == {str(log): 1}
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{log}: after frame {summary['frames']}: cannot read: EOFError")
    assert line.endswith("the rest of the file is not read")
    assert _replay(str(log), "--json", "--strict").returncode == 1
    not_gzip = tmp_path / "trace.blf.gz"
    not_gzip.write_bytes(b"no gzip here")
    refused = _replay(str(not_gzip))
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[-1] == (
        f"log error: {not_gzip}: no frame could be read: BadGzipFile: Not a gzipped file "
        "(b'no'); the rest of the file is not read"
    )


def test_candump_lines_on_stdin(
    from_candump: dict[str, Any], candump_report: list[tuple[float, str, Any]]
) -> None:
    """`candump -L can0 | csbridge replay -c X -`."""
    lines = LOG.read_text()
    from_stdin = _summary(_replay("-", "--json", stdin=lines))
    assert from_stdin["frames"] == from_candump["frames"]
    assert from_stdin["limits"] == from_candump["limits"]
    assert from_stdin["devices"] == from_candump["devices"]
    assert _report(_replay("-", stdin=lines)) == candump_report


def _screen_line(frame: can.Message, timestamp: str) -> str:
    """A frame as candump prints it on screen (lib.c snprintf_long_canframe): interface,
    id (3 or 8 hex digits), [len], the bytes; written here, not by csbridge."""
    width = 8 if frame.is_extended_id else 3
    data = " ".join(f"{byte:02X}" for byte in frame.data)
    return (
        f" {timestamp}  {frame.channel}  {frame.arbitration_id:0{width}X}   [{frame.dlc}]  {data}"
    )


def test_candump_screen_output_with_absolute_timestamps(
    from_candump: dict[str, Any], candump_report: list[tuple[float, str, Any]]
) -> None:
    """`candump -ta can0 can1`: the screen format with `(seconds.micros)` before each line."""
    lines = "".join(
        _screen_line(frame, f"({frame.timestamp:017.6f})") + "\n" for frame in _frames()
    )
    assert _summary(_replay("-", "--json", stdin=lines)) == from_candump
    assert _report(_replay("-", stdin=lines)) == candump_report


def test_candump_screen_output_without_timestamps_is_replayed_as_read() -> None:
    lines = "".join(_screen_line(frame, "") + "\n" for frame in _frames())
    result = _replay("-", "--json", stdin=lines)
    summary = _summary(result)
    assert summary["frames"] == len(_frames())
    assert summary["never_seen"] == []
    assert summary["untimed"] == ["stdin"]
    assert "stdin: no timestamps (plain candump)" not in result.stderr  # --json: summary only


def test_zero_based_screen_timestamps_are_refused_with_the_way_out() -> None:
    """`candump -tz` and `-td` print alike: no faithful clock can be read from them."""
    lines = "".join(
        _screen_line(frame, f"({frame.timestamp - 1_700_000_000:010.6f})") + "\n"
        for frame in _frames()
    )
    result = _replay("-", stdin=lines)
    assert result.returncode == 2
    assert "candump -L" in result.stderr
    assert result.stdout == ""


def test_bad_lines_are_named_by_file_and_line_and_the_rest_replayed(
    tmp_path: Path, from_candump: dict[str, Any]
) -> None:
    """The issue's two crashes: a plain-output line split into too many values, a garbage
    line whose timestamp is `arbag`."""
    lines = LOG.read_text().splitlines()
    lines.insert(16, "garbage line here")
    lines.insert(100, "(1700000001.9) can0 0283F001#00000000000000GG")
    log = tmp_path / "x.log"
    log.write_text("\n".join(lines) + "\n")
    result = _replay(str(log), "--json")
    summary = _summary(result)
    assert (
        f"{log}:17: cannot parse 'garbage line here': expected '(timestamp) interface id#data'"
        in (result.stderr)
    )
    assert f"{log}:101: cannot parse" in result.stderr
    assert "is not hex bytes" in result.stderr
    assert summary["lines_not_read"] == {str(log): 2}
    assert summary["frames"] == from_candump["frames"]
    assert summary["limits"] == from_candump["limits"]
    assert "Traceback" not in result.stderr
    strict = _replay(str(log), "--strict")
    assert strict.returncode == 1
    assert f"strict: {log}: 2 lines not read" in strict.stderr


def test_a_log_naming_another_bus_says_which_and_how_to_map_it(
    tmp_path: Path, from_candump: dict[str, Any]
) -> None:
    log = tmp_path / "vcan.log"
    log.write_text(LOG.read_text().replace(" can0 ", " vcan0 "))
    result = _replay(str(log))
    assert result.returncode == 0
    assert "buses in the logs: can1, vcan0" in result.stderr
    assert "bus vcan0: 440 frames on a bus the configuration lacks (it has can0, can1): " in (
        result.stderr
    )
    assert "map it with --bus-map vcan0=can0" in result.stderr
    assert "never seen: DE*CSB*E0001/infy1, DE*CSB*E0001/infy2, DE*CSB*E0001/infy3" in (
        result.stderr
    )
    strict = _replay(str(log), "--strict")
    assert strict.returncode == 1
    assert "strict: device DE*CSB*E0001/infy1 was never seen" in strict.stderr
    assert "strict: bus vcan0 is not configured (--bus-map vcan0=can0)" in strict.stderr
    mapped = _summary(_replay(str(log), "--bus-map", "vcan0=can0", "--strict", "--json"))
    assert mapped["buses"]["can0"]["log_names"] == ["vcan0"]
    assert mapped["limits"] == from_candump["limits"]
    assert mapped["never_seen"] == []


def test_a_bus_map_to_a_bus_the_configuration_lacks_exits_2() -> None:
    result = _replay(str(LOG), "--bus-map", "vcan0=can7")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "log error: --bus-map 'vcan0=can7': no bus 'can7' in the configuration (have can0, can1)"
    ]


def test_an_error_frame_is_counted_as_one(tmp_path: Path) -> None:
    """CAN_ERR_FLAG 0x20000000 with CAN_ERR_BUSERROR 0x80 (linux/can.h, linux/can/error.h)."""
    log = tmp_path / "errors.log"
    log.write_text(LOG.read_text() + "(1700000020.000000) can0 20000080#0000000000000000\n")
    summary = _summary(_replay(str(log), "--json"))
    assert summary["error_frames"] == {"can0": 1}
    assert summary["buses"]["can0"]["error_frames"] == 1
    assert summary["unknown_ids"] == []
    assert "None" not in summary["buses"]


def test_json_summary_holds_what_a_program_needs(from_candump: dict[str, Any]) -> None:
    assert from_candump["frames"] == 460
    assert from_candump["buses"]["can0"] == {
        "frames": 440,
        "error_frames": 0,
        "configured": True,
        "log_names": ["can0"],
    }
    assert from_candump["outcomes"]["infypower-reg"] == {"decoded": 200, "request": 240}
    assert from_candump["never_seen"] == []
    assert from_candump["unknown_buses"] == []
    limits = from_candump["limits"]["DE*CSB*E0001"]
    assert limits["dc"]["max_current"] == 200.0  # module 3 silent since 10 s
    assert limits["dc"]["max_power"] == 60000
    assert from_candump["problems"] == []


def test_mf4_without_its_extra_is_one_line_and_exit_2(tmp_path: Path) -> None:
    log = tmp_path / "frames.mf4"
    log.write_bytes(b"MDF     4.10    ")
    hidden = _hide(tmp_path, "asammdf")
    result = _csbridge("replay", "-c", str(CONFIG), str(log), PYTHONPATH=str(hidden))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"log error: {log}: reading .mf4 needs asammdf: pip install 'python-can[mf4]'"
    ]


def test_plot_without_matplotlib_says_which_extra_before_replaying(tmp_path: Path) -> None:
    hidden = _hide(tmp_path, "matplotlib")
    result = _csbridge(
        "replay",
        "-c",
        str(CONFIG),
        str(LOG),
        "--plot",
        str(tmp_path / "x.png"),
        PYTHONPATH=str(hidden),
    )
    assert result.returncode == 2
    assert result.stdout == ""  # nothing was replayed
    assert result.stderr.strip().splitlines() == [
        "install the plot extra: pip install 'csbridge[plot]'"
    ]


def _hide(tmp_path: Path, package: str) -> Path:
    """A folder that, first on PYTHONPATH, makes `import package` fail as if not installed."""
    folder = tmp_path / f"without-{package}"
    folder.mkdir()
    (folder / f"{package}.py").write_text(f'raise ImportError("No module named {package}")\n')
    return folder


@pytest.mark.parametrize(
    ("log", "line"),
    [
        ("nope.log", "log error --replay: {log}: No such file or directory"),
        ("-", "log error --replay: -: run replays files; stdin: csbridge replay -"),
        ("frames.xyz", "log error --replay: {log}: unknown log format '.xyz'"),
    ],
)
def test_run_with_a_log_it_cannot_read_is_one_line_and_exit_2(
    tmp_path: Path, log: str, line: str
) -> None:
    if log == "frames.xyz":
        (tmp_path / log).write_text("(1.0) can0 123#00\n")  # there, but no format csbridge reads
    path = log if log == "-" else str(tmp_path / log)
    result = _csbridge("run", "--config", str(CONFIG), "--replay", path)
    assert result.returncode == 2
    (shown,) = result.stderr.strip().splitlines()
    assert shown.startswith(line.format(log=path))


def test_the_documented_fixtures_replay_as_the_guide_says(
    from_candump: dict[str, Any], candump_report: list[tuple[float, str, Any]]
) -> None:
    """docs/mapping-a-device.md shows these three logs (fixtures/can/make_diagnosis_logs.py)."""
    screen = FIXTURES / "can" / "infypower-screen.log"
    assert _summary(_replay(str(screen), "--json")) == from_candump
    assert _report(_replay(str(screen))) == candump_report
    damaged = FIXTURES / "can" / "infypower-bad-lines.log"
    result = _replay(str(damaged), "--only-josev")
    assert result.returncode == 0
    shown = result.stderr.splitlines()
    assert shown[0].endswith(
        "infypower-bad-lines.log:17: cannot parse 'garbage': expected '(timestamp) interface "
        "id#data' (candump -L) or 'interface id [len] data' (candump)"
    )
    assert "error frames: can0 1" in shown
    assert shown[-2].endswith("infypower-bad-lines.log: 2 lines not read")
    vcan = FIXTURES / "can" / "infypower-vcan.log"
    unmapped = _replay(str(vcan), "--only-josev")
    assert "map it with --bus-map vcan1=can1" in unmapped.stderr
    mapped = _replay(
        str(vcan), "--bus-map", "vcan0=can0", "--bus-map", "vcan1=can1", "--strict", "--json"
    )
    assert _summary(mapped)["limits"] == from_candump["limits"]


def test_a_live_pipe_shows_each_publication_as_it_falls_due_and_ctrl_c_sums_up() -> None:
    """`candump -L can0 | csbridge replay -c X -`: the bus never ends, so output cannot wait for
    the end, and Ctrl-C ends it with the summary, not a traceback."""
    process = subprocess.Popen(
        [*AS_AT_A_TERMINAL, "replay", "--config", str(CONFIG), "-", "--only-josev"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write("".join(LOG.read_text().splitlines(keepends=True)[:40]))
        process.stdin.flush()  # and left open: more may come, as from candump
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "no publication while the pipe stays open"
        first = orjson.loads(process.stdout.readline())
        assert first["topic"] == "cs/josev"
        process.send_signal(signal.SIGINT)
        # Waited for with stdin still open: communicate() would close it, and a replay that
        # reads the end of its input before the signal ends as a whole log, not interrupted.
        process.wait(timeout=60)
        assert process.stderr is not None
        stderr = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "interrupted: the summary of what was read" in stderr
    frames = re.search(r"^frames: (\d+)$", stderr, re.MULTILINE)
    assert frames is not None, stderr
    assert 1 <= int(frames[1]) <= 40  # as far as it had read when interrupted
