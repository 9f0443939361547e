"""`csbridge collect-logs`: what a service technician (or the back office, through Josev's
upload_logs) needs to see what a station did, in one `.tar.gz`:

- `journal.txt`: csbridge's journal (`journalctl -u <journal_unit>`, between the request's
  oldest and latest timestamps when given) where journalctl is, and `csbridge.log`, the
  configured [station.maintenance] log_file (its last LOG_FILE_BYTES), where one is;
- `config.json`: the effective configuration, every secret removed;
- `versions.json`: csbridge, Python, the platform and the packages csbridge leans on;
- `limits-reports.json`: each EVSE's last limits report (csbridge/<evse_id>/limits), from the
  snapshot the running station hands the command (`--snapshot`);
- `manifest.json`: the request, what is in the archive and what could not be gathered.

With a remote location it uploads the archive (tools.log_upload) and prints Josev's logs_status
words on stdout, one a line: `uploading`, then `uploaded` or `upload_failure` (or
`not_supported_operation` for sftp). Without one it writes the archive to a file.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from csbridge.config import Config, ConfigError, load_config, redacted, redacted_config
from csbridge.messages import josev_date_time, parse_josev_date_time
from csbridge.tools.log_upload import NotSupportedError, UploadError, target_of, upload

LOG_FILE_BYTES = 32 * 1024 * 1024
"""At most this much of the end of a log file, and of the journal's output."""
JOURNAL_TIMEOUT_S = 120.0
JOURNAL_LINES = 200_000
"""Without an oldest timestamp: the journal's last this many lines."""
PACKAGES = (
    "aiomqtt",
    "paho-mqtt",
    "pydantic",
    "python-can",
    "jsonschema",
    "jsonschema-rs",
    "orjson",
    "typer",
)
"""The packages whose versions say most about how csbridge behaves."""

EXIT_FAILED = 1
EXIT_NOT_SUPPORTED = 3


@dataclass(slots=True)
class Request:
    """What Josev asked for (all optional: a technician may run the command by hand)."""

    request_id: int | None = None
    log_type: str = "diagnostics_log"
    remote_location: str | None = None
    retries: int = 0
    retry_interval_s: float = 30.0
    oldest: datetime | None = None
    latest: datetime | None = None
    filename: str | None = None
    http_method: str = "PUT"


@dataclass(slots=True)
class Archive:
    files: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def read_moment(text: str | None, option: str) -> datetime | None:
    """A Josev date-time (no offset: UTC); ValueError naming the option when it is none."""
    if text is None:
        return None
    moment = parse_josev_date_time(text)
    if moment is None:
        raise ValueError(f"{option}: {text!r} is not a date-time like 2026-12-01T10:00:00Z")
    return moment


def default_filename(request: Request, now: datetime) -> str:
    number = "" if request.request_id is None else f"-{request.request_id}"
    return f"csbridge-{request.log_type}{number}-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.tar.gz"


# -- gathering ---------------------------------------------------------------------------------


def _json(document: Any) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def versions() -> dict[str, Any]:
    packages: dict[str, str | None] = {}
    for name in ("csbridge", *PACKAGES):
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "packages": packages,
        "python": sys.version,
        "platform": platform.platform(),
        "machine": platform.machine(),
    }


def _journal_time(moment: datetime) -> str:
    # journalctl reads "YYYY-MM-DD HH:MM:SS UTC" as UTC whatever the local zone.
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def journal(unit: str, request: Request) -> tuple[bytes | None, str]:
    """journalctl's output for the unit (None where there is no journalctl), and a note."""
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        return None, "no journalctl on this system"
    command = [journalctl, "-u", unit, "--no-pager", "-o", "short-iso-precise", "--utc"]
    if request.oldest is not None:
        command.append(f"--since={_journal_time(request.oldest)}")
    else:
        command.append(f"--lines={JOURNAL_LINES}")
    if request.latest is not None:
        command.append(f"--until={_journal_time(request.latest)}")
    try:
        done = subprocess.run(command, capture_output=True, timeout=JOURNAL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"journalctl failed: {error}"
    note = f"journalctl -u {unit}: exit status {done.returncode}"
    said = done.stderr.decode("utf-8", "replace").strip()
    if said:  # e.g. the hint that a user outside systemd-journal sees only its own entries
        note += f" ({said[:300]})"
    return done.stdout[-LOG_FILE_BYTES:], note


def log_file_tail(path: Path) -> tuple[bytes | None, str]:
    try:
        with path.open("rb") as file:
            file.seek(0, 2)
            size = file.tell()
            file.seek(max(0, size - LOG_FILE_BYTES))
            content = file.read()
    except OSError as error:
        return None, f"log file {path}: {error.strerror or error}"
    cut = " (its end)" if size > LOG_FILE_BYTES else ""
    return content, f"log file {path}: {len(content)} bytes{cut}; not filtered by time"


def gather(
    request: Request,
    config: dict[str, Any] | None,
    reports: dict[str, Any] | None,
    now: datetime,
) -> Archive:
    """Everything that goes in the archive; what could not be had is a note, never an error."""
    archive = Archive()
    maintenance = ((config or {}).get("station") or {}).get("maintenance") or {}
    unit = maintenance.get("journal_unit") or "csbridge"
    log_file = maintenance.get("log_file")
    content, note = journal(unit, request)
    archive.notes.append(note)
    if content is not None:
        archive.files["journal.txt"] = content
    if log_file:
        content, note = log_file_tail(Path(log_file))
        archive.notes.append(note)
        if content is not None:
            archive.files["csbridge.log"] = content
    else:
        archive.notes.append("no log file configured ([station.maintenance] log_file)")
    if config is not None:
        archive.files["config.json"] = _json(config)
    else:
        archive.notes.append("no configuration: give --config or --snapshot")
    if reports is not None:
        archive.files["limits-reports.json"] = _json(reports)
    else:
        archive.notes.append("no limits reports: only the running station has them (--snapshot)")
    archive.files["versions.json"] = _json(versions())
    manifest = {
        "created_at": josev_date_time(now),
        "request_id": request.request_id,
        "log_type": request.log_type,
        "oldest_timestamp": josev_date_time(request.oldest) if request.oldest else None,
        "latest_timestamp": josev_date_time(request.latest) if request.latest else None,
        "files": sorted(archive.files),
        "notes": archive.notes,
    }
    archive.files["manifest.json"] = _json(manifest)
    return archive


def tar_gz(archive: Archive, folder: str, now: datetime) -> bytes:
    """The files under one folder (the archive's name without .tar.gz)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in sorted(archive.files.items()):
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(content)
            info.mtime = int(now.timestamp())
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def load_sources(
    config_path: Path | None, snapshot_path: Path | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the configuration without secrets, the limits reports) from the snapshot the station
    wrote, else from the configuration file. ConfigError when a given file cannot be used."""
    config: dict[str, Any] | None = None
    reports: dict[str, Any] | None = None
    if snapshot_path is not None:
        try:
            snapshot = orjson.loads(snapshot_path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as error:
            raise ConfigError("--snapshot", [f"cannot read {snapshot_path}: {error}"]) from None
        if isinstance(snapshot, dict):
            # Redacted again: the snapshot is the station's, but what leaves is decided here.
            found = snapshot.get("config")
            config = redacted(found) if isinstance(found, dict) else None
            found = snapshot.get("limits_reports")
            reports = found if isinstance(found, dict) else None
    if config is None and config_path is not None:
        config = redacted_config(_loaded(config_path))
    return config, reports


def _loaded(path: Path) -> Config:
    return load_config(path)


# -- uploading ---------------------------------------------------------------------------------


def send(
    content: bytes,
    request: Request,
    filename: str,
    *,
    say: Callable[[str], None],
    complain: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Upload with the request's retries, saying each logs_status word; the exit status."""
    assert request.remote_location is not None  # the caller checked
    attempts = 1 + max(0, request.retries)
    try:
        target_of(request.remote_location, filename)
    except NotSupportedError as error:
        complain(f"not supported: {error}")
        say("not_supported_operation")
        return EXIT_NOT_SUPPORTED
    except UploadError as error:
        complain(str(error))
        say("upload_failure")
        return EXIT_FAILED
    say("uploading")
    for attempt in range(1, attempts + 1):
        try:
            where = upload(
                content, request.remote_location, filename, http_method=request.http_method
            )
        except UploadError as error:
            complain(f"attempt {attempt} of {attempts}: {error}")
            if attempt < attempts:
                sleep(request.retry_interval_s)
            continue
        complain(f"uploaded {len(content)} bytes to {where}")
        say("uploaded")
        return 0
    say("upload_failure")
    return EXIT_FAILED


def write_archive(content: bytes, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    partial.write_bytes(content)
    partial.replace(output)
    with contextlib.suppress(OSError):
        output.chmod(0o600)


def run_collect_logs(
    *,
    config: Path | None,
    snapshot: Path | None,
    remote_location: str | None,
    output: Path | None,
    request_id: int | None,
    log_type: str,
    retries: float,
    retry_interval: float,
    oldest_timestamp: str | None,
    latest_timestamp: str | None,
    filename: str | None,
    http_method: str,
    complain: Callable[[str], None],
) -> int:
    """The command: 0 when the archive was uploaded (or written), else EXIT_FAILED,
    EXIT_NOT_SUPPORTED (sftp) or 2 for options it cannot use (a logs_status word said so)."""
    now = datetime.now(UTC)

    def say(word: str) -> None:
        print(word, flush=True)  # the station reads each word as it comes

    try:
        request = Request(
            request_id=request_id,
            log_type=log_type,
            remote_location=remote_location,
            retries=int(retries),
            retry_interval_s=max(0.0, retry_interval),
            oldest=read_moment(oldest_timestamp, "--oldest-timestamp"),
            latest=read_moment(latest_timestamp, "--latest-timestamp"),
            filename=filename,
            http_method=http_method.upper(),
        )
        if request.http_method not in ("PUT", "POST"):
            raise ValueError(f"--http-method: {http_method!r} is neither PUT nor POST")
        if filename is not None and ("/" in filename or filename in ("", ".", "..")):
            raise ValueError(f"--filename: {filename!r} is not a file name")
        config_document, reports = load_sources(config, snapshot)
    except ValueError as error:
        complain(str(error))
        say("bad_message")
        return EXIT_BAD_OPTIONS
    except ConfigError as error:
        for problem in error.problems:
            complain(f"{error.source}: {problem}")
        say("bad_message")
        return EXIT_BAD_OPTIONS
    name = filename or default_filename(request, now)
    archive = gather(request, config_document, reports, now)
    content = tar_gz(archive, name.removesuffix(".tar.gz").removesuffix(".tgz"), now)
    if remote_location is None:
        target = output or Path(name)
        try:
            write_archive(content, target)
        except OSError as error:
            complain(f"cannot write {target}: {error.strerror or error}")
            return EXIT_FAILED
        complain(f"wrote {target} ({len(content)} bytes)")
        return 0
    return send(content, request, name, say=say, complain=complain)


EXIT_BAD_OPTIONS = 2
