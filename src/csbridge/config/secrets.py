"""The broker password and the files that hold secrets."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from csbridge.config.base import ConfigError
from csbridge.config.mqtt import MqttConfig

PASSWORD_ENV = "CSBRIDGE_MQTT_PASSWORD"  # noqa: S105 - the variable's name, not a secret


def read_password(config: MqttConfig, environ: Mapping[str, str] = os.environ) -> str | None:
    """The broker password: from `password_file`, else from $CSBRIDGE_MQTT_PASSWORD (systemd's
    EnvironmentFile= or LoadCredential= feed either). Never logged, never in an error message."""
    if config.password_file is not None:
        try:
            return config.password_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            why = f"cannot read {config.password_file}: {error.__class__.__name__}"
            raise ConfigError("mqtt.password_file", [why]) from None
    if config.username is not None:
        return environ.get(PASSWORD_ENV)
    return None


def exposed_secret_files(config: MqttConfig) -> list[Path]:
    """Secret files that users other than the owner may read: worth a warning at start-up."""
    exposed = []
    for path in (config.password_file, config.key_file):
        if path is None:
            continue
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            exposed.append(path)
    return exposed
