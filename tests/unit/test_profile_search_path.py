"""Where profiles are found: [station] profile_dirs (relative to the configuration file), then
--hal-dir, then $CSBRIDGE_HAL_PATH, then the shipped hal/; a name in two folders of the search
path is an error naming both files, a name that is also shipped replaces the shipped one."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from csbridge.config import ConfigError, load_config
from csbridge.sources.can import HAL_PATH_VARIABLE, ProfileRegistry, with_search_path
from csbridge.support.resources import example_config
from tests.support import FIXTURES

ACME = FIXTURES / "hal" / "acme-bc30.toml"


def _folder(root: Path, name: str, *profiles: str) -> Path:
    folder = root / name
    folder.mkdir()
    text = ACME.read_text(encoding="utf-8")
    for profile in profiles:
        (folder / f"{profile}.toml").write_text(
            text.replace('name = "acme-bc30"', f'name = "{profile}"'), encoding="utf-8"
        )
    return folder


def test_a_name_in_two_folders_is_an_error_naming_both_files(tmp_path: Path) -> None:
    first = _folder(tmp_path, "first", "acme-bc30")
    second = _folder(tmp_path, "second", "acme-bc30", "acme-other")
    with pytest.raises(ConfigError) as caught:
        ProfileRegistry(extra=[first, second])
    (problem,) = caught.value.problems
    assert "'acme-bc30' is found twice" in problem
    assert str(first / "acme-bc30.toml") in problem
    assert str(second / "acme-bc30.toml") in problem


def test_the_same_folder_named_twice_is_searched_once(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "own", "acme-bc30")
    registry = ProfileRegistry(extra=[folder, tmp_path / "own" / ".." / "own"])
    assert registry.path("acme-bc30") == folder / "acme-bc30.toml"


def test_the_search_path_comes_before_the_shipped_profiles(tmp_path: Path) -> None:
    shipped = ProfileRegistry()
    own = _folder(tmp_path, "own", "acme-bc30")
    copy = (shipped.directory / "winline-nxr.toml").read_text(encoding="utf-8")
    (own / "winline-nxr.toml").write_text(copy.replace("bitrate = 125000", "bitrate = 250000"))
    registry = ProfileRegistry(extra=[own])
    assert registry.directories == [own, shipped.directory]
    assert registry.get("winline-nxr").header.bitrate == 250000
    assert registry.shadowed == {
        "winline-nxr": (own / "winline-nxr.toml", shipped.directory / "winline-nxr.toml")
    }
    assert registry.get("acme-bc30").header.description.startswith("ACME BC30")
    assert registry.path("bender-iso165c") == shipped.directory / "bender-iso165c.toml"
    assert ProfileRegistry().shadowed == {}


def test_a_replaced_shipped_profile_is_logged_once_when_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shipped = ProfileRegistry().directory / "winline-nxr.toml"
    own = _folder(tmp_path, "own")
    (own / "winline-nxr.toml").write_text(shipped.read_text(encoding="utf-8"))
    caplog.set_level(logging.INFO, logger="csbridge.profiles")
    registry = ProfileRegistry(extra=[own])
    assert caplog.messages == []
    registry.get("winline-nxr")
    registry.get("winline-nxr")
    registry.get("infypower-reg")
    assert caplog.messages == [
        f"event=profile_replaces_shipped name=winline-nxr file={own / 'winline-nxr.toml'} "
        f"shipped={shipped}"
    ]


def test_hal_dirs_then_the_environment_follow_profile_dirs(tmp_path: Path) -> None:
    config = load_config(example_config("sim-station.toml"))
    configured = _folder(tmp_path, "configured")
    from_option = _folder(tmp_path, "option")
    first_env = _folder(tmp_path, "env1")
    second_env = _folder(tmp_path, "env2")
    config = config.model_copy(
        update={"station": config.station.model_copy(update={"profile_dirs": [configured]})}
    )
    environ = {HAL_PATH_VARIABLE: f"{first_env}{os.pathsep}{os.pathsep}{second_env}"}
    searched = with_search_path(config, [from_option], environ)
    assert searched.station.profile_dirs == [configured, from_option, first_env, second_env]
    assert with_search_path(config, (), {}) is config


def test_a_missing_folder_on_the_command_line_or_in_the_environment_is_named(
    tmp_path: Path,
) -> None:
    config = load_config(example_config("sim-station.toml"))
    environ = {HAL_PATH_VARIABLE: str(tmp_path / "nope-env")}
    with pytest.raises(ConfigError) as caught:
        with_search_path(config, [tmp_path / "nope-option"], environ)
    assert caught.value.problems == [
        f"--hal-dir: no such folder: {tmp_path / 'nope-option'}",
        f"${HAL_PATH_VARIABLE}: no such folder: {tmp_path / 'nope-env'}",
    ]


def test_profile_dirs_are_relative_to_the_configuration_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "etc"
    home.mkdir()
    vendor = _folder(home, "vendor", "acme-bc30")
    text = example_config("sim-station.toml").read_text(encoding="utf-8")
    path = home / "station.toml"
    path.write_text(text.replace("[station]\n", '[station]\nprofile_dirs = ["vendor"]\n', 1))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path)
    assert config.station.profile_dirs == [vendor]
    registry = ProfileRegistry(extra=config.station.profile_dirs)
    assert registry.path("acme-bc30") == vendor / "acme-bc30.toml"


def test_a_relative_profile_dir_missing_beside_the_configuration_is_refused(
    tmp_path: Path,
) -> None:
    text = example_config("sim-station.toml").read_text(encoding="utf-8")
    path = tmp_path / "station.toml"
    path.write_text(text.replace("[station]\n", '[station]\nprofile_dirs = ["vendor"]\n', 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any(
        "station.profile_dirs" in problem and str(tmp_path / "vendor") in problem
        for problem in caught.value.problems
    ), caught.value.problems
