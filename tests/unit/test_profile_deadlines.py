"""check-config's warnings from the profiles: a deadline no longer than the period of a message
it waits for (period_s, a DBC's GenMsgCycleTime, or the poll period), a shipped profile
replaced; and the simulated modules that could never send a frame, refused by key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from csbridge.config import Config, ConfigError, load_config
from csbridge.sources.can import ProfileRegistry, message_periods, profile_warnings
from csbridge.sources.simulated import SimulatedDevices, wire_simulation_problems
from csbridge.support.resources import example_config
from tests.support import FIXTURES

OWN = FIXTURES / "hal"


def _config(change: Any = None, profile_dirs: tuple[Path, ...] = (OWN,)) -> Config:
    raw = load_config(example_config("sim-station.toml")).model_dump(mode="json", exclude_none=True)
    raw["station"]["profile_dirs"] = [str(folder) for folder in profile_dirs]
    dc = raw["evse"][0]
    dc["module"] = [
        {
            "name": "bc30",
            "address": 5,
            "can": {"profile": "acme-bc30", "bus": "sim-can1"},
            "simulated": {
                "max_voltage_v": 1000,
                "min_voltage_v": 150,
                "max_current_a": 100,
                "max_power_w": 30000,
            },
        }
    ]
    if change is not None:
        change(raw)
    return Config.model_validate(raw)


def _set(path: tuple[str | int, ...], value: object) -> Any:
    def change(raw: Any) -> None:
        node = raw
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return change


def test_the_made_up_modules_periods_come_from_its_profile() -> None:
    registry = ProfileRegistry(extra=[OWN])
    periods = message_periods(registry.get("acme-bc30"), registry)
    assert [(p.message, p.period_s, p.source) for p in periods] == [
        ("status", 0.1, "period_s"),
        ("capability", 1.0, "period_s"),
    ]
    assert periods[1].fields == (
        "export.max_voltage",
        "export.min_voltage",
        "export.max_current",
        "export.max_power",
    )


def test_dbc_cycle_times_and_poll_periods_are_periods_too() -> None:
    registry = ProfileRegistry()
    board = message_periods(registry.get("generic-charger-board"), registry)
    assert [(p.message, p.period_s, p.source) for p in board] == [
        ("BOARD_Status", 0.1, "GenMsgCycleTime"),
        ("BOARD_Capabilities", 1.0, "GenMsgCycleTime"),
    ]
    bender = message_periods(registry.get("bender-iso165c"), registry)
    assert [(p.message, p.period_s, p.source) for p in bender] == [("IMD_Info", 1.0, "period_s")]
    reg = message_periods(registry.get("infypower-reg"), registry)
    assert {(p.period_s, p.source) for p in reg} == {(1.0, "poll_period_s")}


def test_the_default_deadline_of_the_made_up_module_gives_no_warning() -> None:
    assert profile_warnings(_config()) == []


def test_a_short_poll_period_makes_the_capability_stale_forever() -> None:
    """The issue's case: poll_period_s = 0.1 gives a 0.3 s deadline; the capability comes every
    second, the status every 100 ms (fine)."""
    config = _config(_set(("evse", 0, "module", 0, "poll_period_s"), 0.1))
    (warning,) = profile_warnings(config)
    assert warning.startswith(
        "evse[0].module[0] (bc30): its deadline of 0.3 s (3 x poll_period_s 0.1 s) is not "
        "longer than the 1 s period (period_s) of acme-bc30's capability message: "
        "export.max_voltage, export.min_voltage, export.max_current, export.max_power go stale"
    )


def test_an_explicit_deadline_equal_to_the_status_period_warns_for_both() -> None:
    config = _config(_set(("evse", 0, "module", 0, "deadline_s"), 0.1))
    warnings = profile_warnings(config)
    assert len(warnings) == 2
    assert all("its deadline of 0.1 s (deadline_s)" in w for w in warnings)
    assert "of acme-bc30's status message" in warnings[0]


def test_a_polled_module_with_a_short_deadline_warns() -> None:
    def polled(raw: Any) -> None:
        raw["evse"][0]["module"][0]["can"]["profile"] = "infypower-reg"
        raw["evse"][0]["module"][0]["can"]["bus"] = "sim-can0"
        raw["evse"][0]["module"][0]["deadline_s"] = 0.5

    warnings = profile_warnings(_config(polled))
    assert warnings
    assert all("(poll_period_s) of infypower-reg's" in w for w in warnings)


def test_the_imd_and_the_board_are_judged_by_their_own_deadlines() -> None:
    def short(raw: Any) -> None:
        raw["evse"][0]["imd"]["deadline_s"] = 1.0
        raw["evse"][0]["board"]["can"] = {"profile": "generic-charger-board", "bus": "sim-can1"}
        raw["evse"][0]["board"]["deadline_s"] = 0.1

    warnings = profile_warnings(_config(short))
    assert [w.split(":")[0] for w in warnings] == ["evse[0].imd", "evse[0].board", "evse[0].board"]
    assert "bender-iso165c's IMD_Info message" in warnings[0]
    assert "(GenMsgCycleTime) of generic-charger-board's BOARD_Status" in warnings[1]
    assert "generic-charger-board's BOARD_Capabilities" in warnings[2]


def test_a_replaced_shipped_profile_is_warned_of(tmp_path: Path) -> None:
    shipped = ProfileRegistry().directory / "infypower-reg.toml"
    (tmp_path / "infypower-reg.toml").write_text(shipped.read_text(encoding="utf-8"))
    warnings = profile_warnings(_config(profile_dirs=(OWN, tmp_path)))
    assert warnings == [
        f"profile 'infypower-reg': {tmp_path / 'infypower-reg.toml'} replaces the shipped {shipped}"
    ]


def _ignore(evse_id: str, reading: Any) -> None:
    """Readings of the simulated devices (none is expected: they are refused first)."""


def test_a_module_that_could_never_send_is_refused_by_key(tmp_path: Path) -> None:
    text = (OWN / "acme-bc30.toml").read_text(encoding="utf-8")
    silent = text.replace("period_s = 0.1\n", "").replace("period_s = 1.0\n", "")
    (tmp_path / "acme-silent.toml").write_text(silent.replace('"acme-bc30"', '"acme-silent"'))
    config = _config(
        _set(("evse", 0, "module", 0, "can", "profile"), "acme-silent"), (OWN, tmp_path)
    )
    registry = ProfileRegistry(extra=config.station.profile_dirs)
    (problem,) = wire_simulation_problems(config, registry)
    assert problem.startswith(
        "evse[0].module[0].simulated: profile acme-silent neither polls a message nor gives "
        "any a period_s"
    )
    with pytest.raises(ConfigError) as caught:
        SimulatedDevices.from_config(config, _ignore, lambda: 0.0)
    assert caught.value.problems == [problem]
    assert wire_simulation_problems(_config(), ProfileRegistry(extra=[OWN])) == []


def test_a_dbc_module_simulated_on_the_wire_is_refused_by_key(tmp_path: Path) -> None:
    (tmp_path / "pm.dbc").write_text(
        'VERSION ""\n\nNS_ :\n\nBS_:\n\nBU_: PM CSB\n\nBO_ 1024 PM_Out: 2 PM\n'
        ' SG_ VOUT : 0|16@1+ (0.1,0) [0|6553.5] "V" CSB\n'
    )
    (tmp_path / "pm.toml").write_text(
        '[profile]\nname = "pm"\nkind = "power_module"\nfamily = "dbc"\nbitrate = 250000\n'
        'dbc = "pm.dbc"\n[[message]]\nname = "PM_Out"\nperiod_s = 0.1\n'
        'signals = [{ signal = "VOUT", field = "output_voltage" }]\n'
    )
    config = _config(_set(("evse", 0, "module", 0, "can", "profile"), "pm"), (tmp_path,))
    (problem,) = wire_simulation_problems(config, ProfileRegistry(extra=[tmp_path]))
    assert problem.startswith(
        "evse[0].module[0].simulated: profile pm is of the dbc family: a simulated module "
        "speaks id-fields profiles only"
    )
