"""Where profiles are looked for: `[station] profile_dirs` (relative to the configuration file),
then each `--hal-dir` of the command line, then the folders of `$CSBRIDGE_HAL_PATH`
(os.pathsep-separated), and last the shipped hal/ (ProfileRegistry reads them in that order).

The command line and the environment are folded into the configuration once, where it is
loaded, so that everything built from it (the router, the simulators, the meters) searches the
same folders.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from csbridge.config import Config, ConfigError

HAL_PATH_VARIABLE = "CSBRIDGE_HAL_PATH"


def environment_folders(environ: Mapping[str, str]) -> list[Path]:
    """The folders `$CSBRIDGE_HAL_PATH` names, in order (empty entries skipped)."""
    return [Path(part) for part in environ.get(HAL_PATH_VARIABLE, "").split(os.pathsep) if part]


def with_search_path(
    config: Config, hal_dirs: Sequence[Path] = (), environ: Mapping[str, str] | None = None
) -> Config:
    """`config` whose `profile_dirs` go on with the `--hal-dir` folders, then those of
    `$CSBRIDGE_HAL_PATH`. ConfigError names each folder that is not one: a mistyped folder
    would quietly leave another profile of the same name in use."""
    from_environment = environment_folders(os.environ if environ is None else environ)
    problems = [
        f"{option}: no such folder: {folder}"
        for option, folders in (
            ("--hal-dir", hal_dirs),
            (f"${HAL_PATH_VARIABLE}", from_environment),
        )
        for folder in folders
        if not folder.is_dir()
    ]
    if problems:
        raise ConfigError("profile search path", problems)
    if not hal_dirs and not from_environment:
        return config
    folders = [*config.station.profile_dirs, *hal_dirs, *from_environment]
    station = config.station.model_copy(update={"profile_dirs": folders})
    return config.model_copy(update={"station": station})
