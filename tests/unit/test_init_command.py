"""`csbridge init` (tools/init_command.py): a starter configuration for every shipped profile,
alone and together, passes the same checks as `check-config`; mistakes are named."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from csbridge.config import ConfigError
from csbridge.tools.cli import checked_config
from csbridge.tools.init_command import (
    ShippedProfile,
    plan,
    shipped_profiles,
    starter_config,
    write_starter,
)

SHIPPED = shipped_profiles()


def _checked(tmp_path: Path, names: list[str]) -> str:
    text = starter_config(names, "9.9.9")
    path = tmp_path / "station.toml"
    write_starter(path, text, force=True)
    checked_config(path)  # raises ConfigError naming every problem
    return text


def test_every_profile_shipped_in_hal_is_offered() -> None:
    from csbridge.support import resource_dir  # noqa: PLC0415

    hal = resource_dir("hal")
    on_disk = {path.stem for path in [*hal.glob("*.toml"), *(hal / "meters").glob("*.toml")]}
    assert set(SHIPPED) == on_disk
    roles = {profile.role for profile in SHIPPED.values()}
    assert roles == {"power_module", "imd", "board", "can_meter", "modbus_meter"}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_starter_for_each_shipped_profile_passes_check_config(name: str, tmp_path: Path) -> None:
    text = _checked(tmp_path, [name])
    assert f'"{name}"' in text
    assert "CHANGE ME" in text


def test_the_issues_example_puts_each_device_on_a_bus_of_its_bit_rate(tmp_path: Path) -> None:
    text = _checked(tmp_path, ["huawei-r4850", "bender-iso165c", "generic-charger-board"])
    document = tomllib.loads(text)
    assert [(bus["name"], bus["bitrate"]) for bus in document["bus"]] == [
        ("can0", 125000),
        ("can1", 250000),
    ]
    (evse,) = document["evse"]
    assert evse["module"] == [
        {"name": "m1", "address": 0, "can": {"profile": "huawei-r4850", "bus": "can0"}}
    ]
    assert evse["imd"]["can"] == {"profile": "bender-iso165c", "bus": "can1"}
    assert evse["board"]["can"] == {"profile": "generic-charger-board", "bus": "can1"}
    assert document["station"]["sw_version"] == "csbridge 9.9.9"


def test_every_shipped_profile_at_once_where_an_evse_takes_one_of_each(tmp_path: Path) -> None:
    modules = [name for name, p in SHIPPED.items() if p.role == "power_module"]
    one_each = [
        next(name for name, p in SHIPPED.items() if p.role == role)
        for role in ("imd", "board", "can_meter", "modbus_meter")
    ]
    document = tomllib.loads(_checked(tmp_path, [*modules, *one_each]))
    dc, ac = document["evse"]
    addresses = [m["address"] for m in dc["module"] if m["address"] != 0]
    assert len(addresses) == len(set(addresses)), "addressed modules never share an address"
    assert (dc["kind"], ac["kind"], ac["meter"]["kind"]) == ("dc", "ac", "modbus")


def test_unknown_repeated_and_conflicting_profiles_are_named() -> None:
    imds = [name for name, p in SHIPPED.items() if p.role == "imd"]
    boards = [name for name, p in SHIPPED.items() if p.role == "board"]
    with pytest.raises(ConfigError) as caught:
        starter_config(["bender-iso999", boards[0], boards[0], imds[0]], "1")
    problems = caught.value.problems
    assert problems[0].startswith("no shipped profile 'bender-iso999' (have ")
    assert problems[1] == f"{boards[0]} is named 2 times; name each profile once"
    assert len(problems) == 2


def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text("mine\n", encoding="utf-8")
    with pytest.raises(FileExistsError):
        write_starter(path, "new\n", force=False)
    assert path.read_text(encoding="utf-8") == "mine\n"
    write_starter(path, "new\n", force=True)
    assert path.read_text(encoding="utf-8") == "new\n"


def test_two_devices_of_a_kind_an_evse_has_once_are_refused() -> None:
    two_imds = {
        "imd-a": ShippedProfile("imd-a", "imd", "A", 250000),
        "imd-b": ShippedProfile("imd-b", "imd", "B", 500000),
    }
    with pytest.raises(ConfigError) as caught:
        plan(["imd-a", "imd-b"], two_imds)
    assert caught.value.problems == ["imd-a, imd-b: an EVSE has one imd"]
