"""Josev's update_firmware and upload_logs, carried out by commands the integrator configures
([station.maintenance] firmware_command, logs_command).

A request is answered `accepted` once its command has started, `rejected` when there is no
firmware_command, when another job of the same kind still runs (csbridge cancels nothing: a
firmware install killed half-way can leave a board that does not boot) or when the command
cannot be started. The command gets the request's fields as arguments, one `--field-name=value`
each (the `=` form, so a value that starts with `-`, a PEM certificate, stays a value):

    firmware_command --request-id=N --location=URL --retrieve-datetime=T
                     [--install-datetime=T] [--retries=N] [--retry-interval=S]
                     [--signing-certificate=PEM] [--signature=SIG]
    logs_command     --request-id=N --log-type=diagnostics_log|security_log
                     --remote-location=URL [--retries=N] [--retry-interval=S]
                     [--oldest-timestamp=T] [--latest-timestamp=T]
                     --filename=NAME --snapshot=FILE

Date-times are passed in UTC with milliseconds and `Z` (Josev's without an offset are UTC);
numbers as written, an integral one without a fraction. `--filename` is the name the archive
should have where it lands (it is in the response); `--snapshot` is a JSON file the station
writes for the command (its effective configuration without secrets, each EVSE's last limits
report), removed when the command ends.

The command prints Josev's status words on stdout, one a line (firmware_status or logs_status
values); each valid word goes to Josev as an update with the request's id, anything else is
logged and counted, never sent. A command that exits non-zero gives `installation_failed` /
`upload_failure` (unless the last word it printed already was a failure), one that runs past
its time limit is terminated and gives the same. Stopping the station ends a running command.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import orjson

from csbridge.config import MaintenanceConfig, without_url_password
from csbridge.messages import (
    FirmwareStatus,
    FirmwareStatusUpdate,
    HandlerTable,
    LogsStatus,
    LogsStatusUpdate,
    Message,
    Payload,
    UpdateFirmwareRequest,
    UpdateFirmwareResponse,
    UploadLogsRequest,
    UploadLogsResponse,
    handles,
    josev_date_time,
    parse_josev_date_time,
)
from csbridge.service.maintenance_jobs import JobEnd, JobResult, RunningCommand
from csbridge.support import Clock, Counted, Counters, RateLimitedLog

log = logging.getLogger("csbridge.maintenance")

DEFAULT_LOGS_COMMAND: tuple[str, ...] = (sys.executable, "-m", "csbridge", "collect-logs")
"""`csbridge collect-logs` with the interpreter csbridge runs on (no PATH lookup)."""


class JobKind(enum.StrEnum):
    FIRMWARE = "firmware"
    LOGS = "logs"


@dataclass(frozen=True, slots=True)
class _KindRules:
    words: frozenset[str]
    failure: str
    """Sent when the command fails or times out."""
    failures: frozenset[str]
    """Words that already tell Josev the job failed."""
    update: Callable[[int, Any], Payload]


RULES: Mapping[JobKind, _KindRules] = {
    JobKind.FIRMWARE: _KindRules(
        words=frozenset(get_args(FirmwareStatus)),
        failure="installation_failed",
        failures=frozenset(
            {
                "download_failed",
                "installation_failed",
                "install_verification_failed",
                "invalid_signature",
            }
        ),
        update=lambda request_id, word: FirmwareStatusUpdate(request_id=request_id, status=word),
    ),
    JobKind.LOGS: _KindRules(
        words=frozenset(get_args(LogsStatus)),
        failure="upload_failure",
        failures=frozenset(
            {"upload_failure", "permission_denied", "bad_message", "not_supported_operation"}
        ),
        update=lambda request_id, word: LogsStatusUpdate(request_id=request_id, status=word),
    ),
}


def command_arguments(fields: Mapping[str, Any]) -> list[str]:
    """The request's fields as `--field-name=value` arguments, in the request's order; date-time
    fields in UTC (see the module's docstring)."""
    arguments = []
    for name, value in fields.items():
        arguments.append(f"--{name.replace('_', '-')}={_argument(name, value)}")
    return arguments


def _argument(name: str, value: Any) -> str:
    if isinstance(value, bool):  # not in any maintenance field; never `True` as a number
        return str(value).lower()
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = str(value)
    if name.endswith(("_datetime", "_timestamp")):
        moment = parse_josev_date_time(text)
        return josev_date_time(moment) if moment is not None else text
    return text


def archive_name(log_type: str, request_id: int, now: datetime) -> str:
    """`csbridge-diagnostics_log-7-20261201T101500Z.tar.gz`: the kind, the request, the time.
    Josev's rule does not bound request_id: its first 32 digits keep the name within the
    response's 255 characters."""
    number = str(request_id)[:32]
    return f"csbridge-{log_type}-{number}-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.tar.gz"


class Maintenance:
    """The handlers of update_firmware and upload_logs, and the jobs they start. `send` (the
    bridge's) publishes each status update; `run` holds the jobs and ends them when stopped."""

    def __init__(
        self,
        commands: MaintenanceConfig,
        counters: Counters,
        clock: Clock,
        *,
        snapshot: Callable[[], dict[str, Any]] | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.commands = commands
        self.counters = counters
        self.snapshot = snapshot
        """What the logs command's --snapshot file holds (the station's config and reports)."""
        self.send: Callable[[Message], Awaitable[bool]] | None = None
        """The bridge's send: validates each update and publishes it."""
        self._wall_clock = wall_clock
        self._environment = environment
        """The commands' environment (None: csbridge's own)."""
        self._jobs: dict[JobKind, asyncio.Task[None] | None] = {}
        """The kind's running job; None while its command is being started."""
        self._faults = RateLimitedLog(log, clock)

    def handlers(self) -> HandlerTable:
        return HandlerTable.of(self)

    def running(self, kind: JobKind) -> bool:
        return kind in self._jobs

    @contextlib.contextmanager
    def _claimed(self, kind: JobKind) -> Iterator[None]:
        """The kind taken while its command is started; free again unless a job now runs."""
        self._jobs[kind] = None
        try:
            yield
        finally:
            if kind in self._jobs and self._jobs[kind] is None:
                del self._jobs[kind]

    # -- the requests ----------------------------------------------------------------------

    @handles(UpdateFirmwareRequest)
    async def _update_firmware(self, request: UpdateFirmwareRequest) -> UpdateFirmwareResponse:
        # Checked and claimed before the first await: a second request, handled in a task of
        # its own, finds the kind taken.
        argv = self.commands.firmware_command
        if argv is None:
            self._refuse(
                JobKind.FIRMWARE, request.request_id, "not_configured", "no firmware_command"
            )
            return UpdateFirmwareResponse(status="rejected")
        if self.running(JobKind.FIRMWARE):
            self._refuse(JobKind.FIRMWARE, request.request_id, "busy", "an update still runs")
            return UpdateFirmwareResponse(status="rejected")
        with self._claimed(JobKind.FIRMWARE):
            log.info(
                "event=maintenance_requested kind=firmware request_id=%d location=%s",
                request.request_id,
                without_url_password(request.location),
            )
            argv = [*argv, *command_arguments(request.to_json())]
            started = await self._start(JobKind.FIRMWARE, request.request_id, argv, None)
        return UpdateFirmwareResponse(status="accepted" if started else "rejected")

    @handles(UploadLogsRequest)
    async def _upload_logs(self, request: UploadLogsRequest) -> UploadLogsResponse:
        if self.running(JobKind.LOGS):
            self._refuse(JobKind.LOGS, request.request_id, "busy", "an upload still runs")
            return UploadLogsResponse(status="rejected")
        with self._claimed(JobKind.LOGS):
            log.info(
                "event=maintenance_requested kind=logs request_id=%d log_type=%s "
                "remote_location=%s",
                request.request_id,
                request.log_type,
                without_url_password(request.remote_location),
            )
            filename = archive_name(request.log_type, request.request_id, self._wall_clock())
            argv = list(self.commands.logs_command or DEFAULT_LOGS_COMMAND)
            argv += [*command_arguments(request.to_json()), f"--filename={filename}"]
            folder = await asyncio.to_thread(_write_snapshot, self._snapshot_document())
            if folder is not None:
                argv.append(f"--snapshot={folder / SNAPSHOT_NAME}")
            started = await self._start(JobKind.LOGS, request.request_id, argv, folder)
        if not started:
            return UploadLogsResponse(status="rejected")
        return UploadLogsResponse(status="accepted", filename=filename)

    def _refuse(self, kind: JobKind, request_id: int, reason: str, why: str) -> None:
        """`reason` from a closed set (the log's rate limit is keyed by it); `why` in words."""
        self.counters.add(Counted.MAINTENANCE_JOBS, f"{kind}/rejected")
        self._faults.warning(
            ("maintenance_rejected", kind, reason),
            "event=maintenance_rejected kind=%s request_id=%d reason=%s why=%s",
            kind,
            request_id,
            reason,
            why,
        )

    # -- the jobs --------------------------------------------------------------------------

    async def _start(
        self, kind: JobKind, request_id: int, argv: Sequence[str], folder: Path | None
    ) -> bool:
        """Start the command and the task that follows it (the kind's job from now on); False
        when it cannot start."""
        limit = (
            self.commands.firmware_time_limit_s
            if kind is JobKind.FIRMWARE
            else self.commands.logs_time_limit_s
        )
        try:
            command = await RunningCommand.start(argv, limit, self._environment)
        except (OSError, ValueError) as error:  # ValueError: a NUL in an argument
            _remove(folder)
            why = f"cannot start {argv[0]}: {getattr(error, 'strerror', None) or error}"
            self._refuse(kind, request_id, "cannot_start", why)
            return False
        except BaseException:
            _remove(folder)
            raise
        self.counters.add(Counted.MAINTENANCE_JOBS, f"{kind}/started")
        log.info(
            "event=maintenance_started kind=%s request_id=%d pid=%d command=%s time_limit_s=%g",
            kind,
            request_id,
            command.pid,
            argv[0],
            limit,
        )
        # The response goes out before this task first runs: the bridge publishes it as soon
        # as this coroutine returns, in the same step of the loop.
        task = asyncio.get_running_loop().create_task(
            self._follow(kind, request_id, command, folder), name=f"maintenance-{kind}"
        )
        self._jobs[kind] = task
        return True

    async def _follow(
        self, kind: JobKind, request_id: int, command: RunningCommand, folder: Path | None
    ) -> None:
        rules = RULES[kind]
        said: list[str] = []

        async def word(line: str) -> None:
            if not line:
                return
            if line not in rules.words:
                self.counters.add(Counted.MAINTENANCE_WORDS_IGNORED, kind)
                self._faults.warning(
                    ("maintenance_word_ignored", kind),
                    "event=maintenance_word_ignored kind=%s request_id=%d line=%r why=%s",
                    kind,
                    request_id,
                    line[:80],
                    "not a status word of this kind; not sent",
                )
                return
            said.append(line)
            await self._tell(kind, request_id, line)

        try:
            result = await command.finish(word)
            self._finished(kind, request_id, result)
            if result.end is JobEnd.TIMED_OUT or (
                result.end is JobEnd.FAILED and not (said and said[-1] in rules.failures)
            ):
                await self._tell(kind, request_id, rules.failure)
        except Exception:
            # A bug must not leave the kind taken for good: logged, and the kind freed below.
            self._faults.exception(
                ("maintenance_failed", kind),
                "event=maintenance_failed kind=%s request_id=%d",
                kind,
                request_id,
            )
        finally:
            self._jobs.pop(kind, None)
            await asyncio.to_thread(_remove, folder)

    def _finished(self, kind: JobKind, request_id: int, result: JobResult) -> None:
        self.counters.add(Counted.MAINTENANCE_JOBS, f"{kind}/{result.end}")
        if result.end is JobEnd.SUCCEEDED:
            log.info(
                "event=maintenance_finished kind=%s request_id=%d outcome=%s",
                kind,
                request_id,
                result.end,
            )
            return
        why = (
            "still running at its time limit: terminated"
            if result.end is JobEnd.TIMED_OUT
            else f"exit status {result.exit_code}"
        )
        log.warning(
            "event=maintenance_finished kind=%s request_id=%d outcome=%s why=%s stderr=%r",
            kind,
            request_id,
            result.end,
            why,
            " | ".join(result.stderr_tail),
        )

    async def _tell(self, kind: JobKind, request_id: int, word: str) -> None:
        if self.send is None:
            return
        await self.send(Message(RULES[kind].update(request_id, word)))

    def _snapshot_document(self) -> dict[str, Any] | None:
        """Taken on the loop, where the station's state is consistent; None when there is
        none or it cannot be had (logged: the upload goes on without it)."""
        if self.snapshot is None:
            return None
        try:
            return self.snapshot()
        except Exception:
            self._faults.exception(
                ("maintenance_snapshot_failed",), "event=maintenance_snapshot_failed"
            )
            return None

    async def run(self) -> None:
        """Until cancelled; then every running command is ended (SIGTERM, then SIGKILL)."""
        try:
            await asyncio.Event().wait()
        finally:
            tasks = [task for task in self._jobs.values() if task is not None]
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)


SNAPSHOT_NAME = "snapshot.json"


def _write_snapshot(document: dict[str, Any] | None) -> Path | None:
    """A private folder holding the snapshot file (for a worker thread); None (and logged) when
    it cannot be written: the command runs without it."""
    if document is None:
        return None
    folder = None
    try:
        folder = Path(tempfile.mkdtemp(prefix="csbridge-logs-"))
        content = orjson.dumps(document, option=orjson.OPT_INDENT_2)
        fd = os.open(folder / SNAPSHOT_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(content)
    except (OSError, TypeError) as error:  # TypeError: orjson's, for a value JSON cannot hold
        _remove(folder)
        log.warning("event=maintenance_snapshot_failed why=%s: %s", type(error).__name__, error)
        return None
    return folder


def _remove(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
