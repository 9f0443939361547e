"""A pool's contactor matrix board in the configuration and in check-config (issue 18): on a
`[[bus]]` (`bus`), simulated in the process, or simulated on a bus; its bus must exist and run
at the layout's bit rate; a pool whose banks are switched cannot run without one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from csbridge.config import Config, load_config
from csbridge.power import pool_layout, pool_problems
from csbridge.resources import example_config
from csbridge.sources.simulated import load_matrix_layout

EVSE1 = "DE*CSB*E0001"
EVSE2 = "DE*CSB*E0002"


def _raw() -> dict[str, Any]:
    raw: dict[str, Any] = load_config(example_config("shared-pool.toml")).model_dump(
        mode="json", exclude_none=True
    )
    return raw


def _with_board(board: dict[str, Any] | None, bitrate: int | None = 250000) -> dict[str, Any]:
    raw = _raw()
    bus: dict[str, Any] = {"name": "can0", "interface": "virtual"}
    if bitrate is not None:
        bus["bitrate"] = bitrate
    raw["bus"] = [bus]
    if board is None:
        del raw["pool"][0]["board"]
    else:
        raw["pool"][0]["board"] = board
    return raw


def test_a_board_on_a_bus_at_the_layouts_bit_rate_passes_without_warning() -> None:
    config = Config.model_validate(_with_board({"bus": "can0"}))
    assert config.pool[0].board is not None
    assert config.pool[0].board.bus == "can0"
    assert pool_problems(config) == []
    unstated = Config.model_validate(_with_board({"bus": "can0"}, bitrate=None))
    assert pool_problems(unstated) == []


def test_a_board_on_a_bus_of_another_bit_rate_is_refused() -> None:
    config = Config.model_validate(_with_board({"bus": "can0"}, bitrate=500000))
    problems = pool_problems(config)
    assert problems == [
        "pool cabinet.board.bus: bus can0 runs at 500000 bit/s; contactor-matrix: 250000"
    ]


def test_a_board_on_no_configured_bus_is_refused() -> None:
    with pytest.raises(ValueError, match=r"pool\[0\]\.board\.bus: no \[\[bus\]\] named 'can1'"):
        Config.model_validate(_with_board({"bus": "can1"}))


@pytest.mark.parametrize(
    ("board", "why"),
    [
        ({"layout": "hal/switching/contactor-matrix.toml"}, "a board is on a `bus`"),
        ({"simulated": {}, "deadline_s": 0.2}, "deadline_s is for a board on a bus"),
        ({"bus": "can0", "deadline_s": 0}, "greater than 0"),
    ],
)
def test_a_board_nothing_can_reach_is_refused(board: dict[str, Any], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Config.model_validate(_with_board(board))


def test_a_switched_pool_without_a_board_is_refused() -> None:
    config = Config.model_validate(_with_board(None))
    problems = pool_problems(config)
    assert len(problems) == 1
    assert problems[0].startswith("pool cabinet.board: a pool whose banks are switched")


def test_a_pool_wired_throughout_needs_no_board() -> None:
    """It runs without one (tests/integration/test_pool_banks.py)."""
    raw = _with_board(None)
    pool = raw["pool"][0]
    pool["contactor"] = []
    pool["group"] = [
        {"name": "left", "modules": ["m1", "m2", "m3"], "wired_to": EVSE1},
        {"name": "right", "modules": ["m4", "m5", "m6"], "wired_to": EVSE2},
    ]
    config = Config.model_validate(raw)
    assert not config.pool[0].switched
    assert pool_problems(config) == []


def test_a_layout_of_its_own_is_read_beside_the_configuration_file(tmp_path: Path) -> None:
    shipped = load_matrix_layout()
    folder = tmp_path / "boards"
    folder.mkdir()
    (folder / "mine.toml").write_text(
        shipped.path.read_text(encoding="utf-8").replace(
            'dbc = "../contactor-matrix.dbc"', f'dbc = "{shipped.dbc}"'
        ),
        encoding="utf-8",
    )
    raw = _with_board({"layout": "boards/mine.toml", "bus": "can0"})
    config = Config.model_validate(raw, context={"config_dir": tmp_path})
    layout = pool_layout(config.pool[0])  # wherever csbridge starts
    assert layout.path == folder / "mine.toml"
    assert layout.dbc == shipped.dbc
    assert pool_problems(config) == []
