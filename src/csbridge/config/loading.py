"""TOML text to a checked Config, every problem named by its key."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from csbridge.config.base import ConfigError, describe_validation_error
from csbridge.config.station import Config


def parse_config(text: str, source: str = "<config>", config_dir: Path | None = None) -> Config:
    """`config_dir`: what relative paths of the file are relative to (its folder)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(source, [f"not valid TOML: {error}"]) from None
    try:
        return Config.model_validate(raw, context={"config_dir": config_dir})
    except ValidationError as error:
        raise ConfigError(source, describe_validation_error(error)) from None


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(str(path), [f"cannot read: {error}"]) from None
    return parse_config(text, str(path), path.parent)
