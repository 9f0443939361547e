"""What the service takes from its environment: systemd's watchdog settings only when meant for
this process, and a warning for a password file others may read."""

from __future__ import annotations

import os
from pathlib import Path

from csbridge.service.sd_notify import SystemdNotifier


def test_watchdog_settings_are_taken_only_when_meant_for_this_process() -> None:
    mine = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert mine.watchdog_s == 10.0
    other = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}
    )
    assert other.watchdog_s is None
    outside = SystemdNotifier.from_environment({})
    assert not outside.enabled
    assert outside.notify("READY=1") is False


def test_a_password_file_readable_by_others_is_warned_about(tmp_path: Path) -> None:
    from csbridge.config import MqttConfig, exposed_secret_files  # noqa: PLC0415

    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    config = MqttConfig(username="csbridge", password_file=secret)
    assert exposed_secret_files(config) == [secret]
    secret.chmod(0o600)
    assert exposed_secret_files(config) == []
