"""[station.maintenance]: what Josev (for OCPP) may have the station do to itself: reset it, and
the commands that carry out update_firmware and upload_logs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator

from csbridge.config.base import Strict

Argv = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]


class MaintenanceConfig(Strict):
    """Josev's reset, and how update_firmware and upload_logs are carried out: each runs a
    command of the integrator's (an argv list, started without a shell), the request's fields
    appended as `--name=value` options; it prints Josev's status words on stdout, one a line."""

    allow_reset: bool = True
    """Josev's `reset` is answered `accepted` and carried out; false: answered `rejected`."""

    firmware_command: Argv | None = None
    """The firmware installer. Not set: every update_firmware is answered rejected (csbridge
    ships no installer: flashing a board is the integrator's job)."""
    logs_command: Argv | None = None
    """The log uploader. Not set: csbridge's own `csbridge collect-logs`."""
    firmware_time_limit_s: Annotated[float, Field(gt=0, le=86_400)] = 3600.0
    """A firmware command still running after this long is killed: installation_failed."""
    logs_time_limit_s: Annotated[float, Field(gt=0, le=86_400)] = 600.0
    """A logs command still running after this long is killed: upload_failure."""
    journal_unit: Annotated[str, Field(min_length=1)] = "csbridge"
    """The systemd unit whose journal `csbridge collect-logs` gathers (where journalctl is)."""
    log_file: Path | None = None
    """csbridge's log file, gathered instead of the journal where there is no journalctl."""

    @field_validator("log_file")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_absolute():
            raise ValueError("must be an absolute path")
        return path
