"""The station's state file: what is put survives into the next run; a missing file is the
defaults; a damaged one is the defaults and one error line; a folder that cannot be written
keeps the state in memory with one error line; nothing raises. And `[station] state_dir`."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from csbridge.config import ConfigError, parse_config
from csbridge.service.state_file import FILE_NAME, MAX_BYTES, StateFile
from tests.support import small_station

AVAILABILITY = {"DE*CSB*E0001": "inoperative", "DE*CSB*E0002": "operative"}


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_missing_file_is_the_defaults(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = StateFile(tmp_path / "never-written")
    assert state.load() == {}
    assert state.get("availability", {}) == {}
    assert _errors(caplog) == []
    assert state.counters.total("state_file_failed") == 0
    assert not (tmp_path / "never-written").exists(), "reading creates nothing"


def test_what_is_put_is_there_at_the_next_start(tmp_path: Path) -> None:
    state = StateFile(tmp_path)
    state.load()
    assert state.put("availability", AVAILABILITY) is True
    assert state.update({"station": "operative", "availability": {"DE*CSB*E0001": "operative"}})
    again = StateFile(tmp_path)
    assert again.load() == {"availability": {"DE*CSB*E0001": "operative"}, "station": "operative"}
    assert orjson.loads((tmp_path / FILE_NAME).read_bytes()) == again.values()
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME], "no temporary file left"


def test_a_write_cut_short_by_a_crash_leaves_the_old_state(tmp_path: Path) -> None:
    StateFile(tmp_path).put("availability", AVAILABILITY)
    # What a crash between writing the temporary file and the rename leaves behind.
    (tmp_path / f".{FILE_NAME}.k2j3h4.tmp").write_bytes(b'{"availability": {"DE*CSB*E00')
    assert StateFile(tmp_path).load() == {"availability": AVAILABILITY}


def test_values_handed_out_and_taken_in_are_copies(tmp_path: Path) -> None:
    state = StateFile(tmp_path)
    given = {"DE*CSB*E0001": "inoperative"}
    state.put("availability", given)
    given["DE*CSB*E0001"] = "operative"
    handed = state.get("availability")
    handed["DE*CSB*E0002"] = "inoperative"
    assert state.get("availability") == {"DE*CSB*E0001": "inoperative"}


def test_a_value_json_cannot_hold_changes_nothing(tmp_path: Path) -> None:
    state = StateFile(tmp_path)
    state.put("availability", AVAILABILITY)
    before = (tmp_path / FILE_NAME).read_bytes()
    with pytest.raises(TypeError):
        state.put("when", object())
    assert state.values() == {"availability": AVAILABILITY}
    assert (tmp_path / FILE_NAME).read_bytes() == before


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"availability": {"DE*CSB*E0001": "inop', "not JSON"),
        (b"\x00\xff garbage", "not JSON"),
        (b"", "not JSON"),
        (b'["availability"]', "a JSON list, not an object"),
        (b"null", "a JSON NoneType, not an object"),
        (b" " * (MAX_BYTES + 1), "byte limit"),
    ],
)
def test_a_damaged_file_is_the_defaults_and_one_error_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, why: str
) -> None:
    (tmp_path / FILE_NAME).write_bytes(content)
    state = StateFile(tmp_path)
    assert state.load() == {}
    (line,) = _errors(caplog)
    assert line.startswith("event=state_file_unreadable ")
    assert f"path={tmp_path / FILE_NAME}" in line
    assert why in line
    assert state.counters.get("state_file_failed", "unreadable") == 1
    # The next change writes a good file over the damaged one.
    assert state.put("availability", AVAILABILITY) is True
    assert StateFile(tmp_path).load() == {"availability": AVAILABILITY}


def test_a_folder_that_cannot_be_made_keeps_the_state_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    state = StateFile(blocker / "state")  # even root cannot make a folder inside a file
    assert state.load() == {}
    assert state.put("availability", AVAILABILITY) is False
    assert state.put("station", "inoperative") is False
    assert state.persisted is False
    assert state.values() == {"availability": AVAILABILITY, "station": "inoperative"}
    unreadable, unwritable = _errors(caplog)  # one line each, though it failed twice
    assert unreadable.startswith("event=state_file_unreadable ")
    assert unwritable.startswith("event=state_file_unwritable ")
    assert "kept in memory" in unwritable
    assert state.counters.get("state_file_failed", "unwritable") == 2


def test_a_failed_rename_leaves_no_temporary_file_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="csbridge")
    target = tmp_path / FILE_NAME
    target.mkdir()  # the rename over it fails; so does reading it
    (target / "occupied").write_text("x")
    state = StateFile(tmp_path)
    assert state.load() == {}
    assert state.put("availability", AVAILABILITY) is False
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]
    assert [line.split()[0] for line in _errors(caplog)] == [
        "event=state_file_unreadable",
        "event=state_file_unwritable",
    ]
    (target / "occupied").unlink()
    target.rmdir()
    assert state.put("station", "operative") is True
    assert state.persisted is True
    assert StateFile(tmp_path).load() == {"availability": AVAILABILITY, "station": "operative"}
    assert any("event=state_file_written" in r.getMessage() for r in caplog.records)


# -- [station] state_dir -----------------------------------------------------------------------


def _station(extra: str) -> str:
    return small_station(("DE*CSB*E0001", ""), station=extra)


def test_the_state_dir_defaults_to_var_lib_and_may_point_anywhere(tmp_path: Path) -> None:
    assert parse_config(_station("")).station.state_dir == Path("/var/lib/csbridge")
    chosen = parse_config(_station(f'state_dir = "{tmp_path}"'))
    assert chosen.station.state_dir == tmp_path


def test_a_relative_state_dir_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"station\.state_dir: must be an absolute path"):
        parse_config(_station('state_dir = "var/lib/csbridge"'), "station.toml")
