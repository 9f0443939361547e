"""The maintenance runner with real child processes: a command that prints the status words
(each valid one becomes an update in order, anything else is counted and not sent), one that
fails, one that hangs past its time limit (terminated, then killed, with what it started),
one that cannot start; one job per kind; a stop ends the running command."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from csbridge.config import MaintenanceConfig
from csbridge.messages import (
    FirmwareStatusUpdate,
    LogsStatusUpdate,
    Message,
    Payload,
    UpdateFirmwareRequest,
    UpdateFirmwareResponse,
    UploadLogsRequest,
    UploadLogsResponse,
)
from csbridge.service.maintenance import JobKind, Maintenance
from csbridge.service.maintenance_jobs import GRACE_S
from csbridge.support import Counters
from csbridge.testing.harness import wait_until

PRINTS_WORDS = """
import sys, pathlib
pathlib.Path(sys.argv[1]).write_text("\\n".join(sys.argv[2:]))
for word in ["downloading", "not-a-word", "", "downloaded", "installing", "installed"]:
    print(word, flush=True)
"""
FAILS = """
import sys
print("downloading", flush=True)
print("cannot reach the server", file=sys.stderr)
sys.exit(4)
"""
FAILS_AFTER_SAYING_SO = """
import sys
print("download_failed", flush=True)
sys.exit(1)
"""
HANGS = """
import os, signal, subprocess, sys, time, pathlib
if "--deaf" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
pathlib.Path(sys.argv[1]).write_text(f"{os.getpid()} {child.pid}")
print("downloading", flush=True)
time.sleep(600)
"""
LOGS_WORDS = """
import sys, json, pathlib
snapshot = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--snapshot="))
content = json.loads(pathlib.Path(snapshot).read_text())
pathlib.Path(sys.argv[1]).write_text(json.dumps({"path": snapshot, "content": content}))
print("uploading", flush=True)
print("uploaded", flush=True)
"""
UPLOADS_WITHOUT_SNAPSHOT = """
import sys, pathlib
pathlib.Path(sys.argv[1]).write_text("\\n".join(sys.argv[2:]))
print("uploaded", flush=True)
"""


def _script(folder: Path, name: str, text: str, *arguments: str) -> list[str]:
    path = folder / f"{name}.py"
    path.write_text(text, encoding="utf-8")
    return [sys.executable, str(path), *arguments]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (not yet reaped by a parent that is gone) is no running command.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Runner:
    """A Maintenance with its updates kept in order, run as the station runs it."""

    def __init__(self, commands: MaintenanceConfig, snapshot: dict[str, Any] | None = None):
        self.counters = Counters()
        self.maintenance = Maintenance(
            commands,
            self.counters,
            time.monotonic,
            snapshot=(lambda: snapshot) if snapshot is not None else None,
        )
        self.sent: list[Payload] = []
        self.maintenance.send = self._send
        self.handlers = self.maintenance.handlers()

    async def _send(self, message: Message) -> bool:
        self.sent.append(message.payload)
        return True

    async def ask(self, request: Payload) -> Payload:
        handler = self.handlers.get(type(request))
        assert handler is not None
        answer = handler(request)
        if isinstance(answer, Awaitable):
            answer = await answer
        assert isinstance(answer, Payload)
        return answer

    def words(self) -> list[str]:
        return [payload.status for payload in self.sent]  # type: ignore[attr-defined]

    async def finished(self, kind: JobKind, timeout: float = 10) -> None:
        await wait_until(lambda: not self.maintenance.running(kind), timeout, f"{kind} finished")

    def count(self, label: str) -> int:
        return self.counters.get("maintenance_jobs", label)


Start = Callable[[Runner], None]


@pytest_asyncio.fixture
async def running() -> AsyncIterator[Start]:
    """Runs a test's runners as the station does, and stops them (as the station stops) when
    the test ends."""
    tasks: list[asyncio.Task[None]] = []
    yield lambda runner: tasks.append(asyncio.create_task(runner.maintenance.run()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _firmware(request_id: int = 7) -> UpdateFirmwareRequest:
    return UpdateFirmwareRequest(
        request_id=request_id,
        location="https://fw.example/image.bin",
        retrieve_datetime="2026-12-01T10:00:00",
        retries=2,
    )


def _logs(request_id: int = 8) -> UploadLogsRequest:
    return UploadLogsRequest(
        request_id=request_id, log_type="diagnostics_log", remote_location="http://x/in/"
    )


async def test_each_status_word_goes_out_in_order_and_the_rest_is_counted(
    tmp_path: Path, running: Start
) -> None:
    seen = tmp_path / "arguments.txt"
    runner = Runner(
        MaintenanceConfig(firmware_command=_script(tmp_path, "w", PRINTS_WORDS, str(seen)))
    )
    running(runner)
    assert await runner.ask(_firmware()) == UpdateFirmwareResponse(status="accepted")
    await runner.finished(JobKind.FIRMWARE)
    assert runner.sent == [
        FirmwareStatusUpdate(request_id=7, status=word)
        for word in ("downloading", "downloaded", "installing", "installed")
    ]
    assert runner.counters.get("maintenance_words_ignored", "firmware") == 1
    assert runner.count("firmware/started") == runner.count("firmware/succeeded") == 1
    assert seen.read_text().splitlines() == [
        "--request-id=7",
        "--location=https://fw.example/image.bin",
        "--retrieve-datetime=2026-12-01T10:00:00.000Z",
        "--retries=2",
    ]


async def test_a_failing_command_ends_in_installation_failed(
    tmp_path: Path, running: Start, caplog: pytest.LogCaptureFixture
) -> None:
    runner = Runner(MaintenanceConfig(firmware_command=_script(tmp_path, "f", FAILS)))
    running(runner)
    assert (await runner.ask(_firmware())).status == "accepted"  # type: ignore[attr-defined]
    await runner.finished(JobKind.FIRMWARE)
    assert runner.words() == ["downloading", "installation_failed"]
    assert runner.count("firmware/failed") == 1
    line = next(r.getMessage() for r in caplog.records if "maintenance_finished" in r.message)
    assert "outcome=failed" in line
    assert "exit status 4" in line
    assert "cannot reach the server" in line


async def test_a_failure_the_command_told_is_not_told_twice(tmp_path: Path, running: Start) -> None:
    runner = Runner(
        MaintenanceConfig(firmware_command=_script(tmp_path, "t", FAILS_AFTER_SAYING_SO))
    )
    running(runner)
    await runner.ask(_firmware())
    await runner.finished(JobKind.FIRMWARE)
    assert runner.words() == ["download_failed"]


@pytest.mark.parametrize("deaf", [False, True], ids=["terminated", "deaf-to-sigterm-killed"])
async def test_a_command_past_its_time_limit_is_killed_with_what_it_started(
    tmp_path: Path, running: Start, deaf: bool
) -> None:
    pids = tmp_path / "pids"
    argv = _script(tmp_path, "h", HANGS, str(pids), *(["--deaf"] if deaf else []))
    commands = MaintenanceConfig(firmware_command=argv, firmware_time_limit_s=1.0)
    runner = Runner(commands)
    running(runner)
    started = time.monotonic()
    await runner.ask(_firmware())
    await wait_until(pids.exists, 5, "the command started its child")
    command, grandchild = (int(pid) for pid in pids.read_text().split())
    await runner.finished(JobKind.FIRMWARE, timeout=10)
    took = time.monotonic() - started
    assert 1.0 + (GRACE_S if deaf else 0.0) <= took < 1.0 + GRACE_S + 5.0
    assert runner.words() == ["downloading", "installation_failed"]
    assert runner.count("firmware/timed_out") == 1
    await wait_until(lambda: not _alive(command) and not _alive(grandchild), 5, "both gone")


async def test_one_job_per_kind_and_no_command_no_firmware_update(
    tmp_path: Path, running: Start
) -> None:
    pids = tmp_path / "pids"
    runner = Runner(MaintenanceConfig(firmware_command=_script(tmp_path, "h", HANGS, str(pids))))
    running(runner)
    assert (await runner.ask(_firmware(1))).status == "accepted"  # type: ignore[attr-defined]
    assert (await runner.ask(_firmware(2))).status == "rejected"  # type: ignore[attr-defined]
    assert runner.count("firmware/rejected") == 1
    nothing = Runner(MaintenanceConfig())
    running(nothing)
    assert await nothing.ask(_firmware()) == UpdateFirmwareResponse(status="rejected")
    assert nothing.count("firmware/rejected") == 1
    assert nothing.sent == []


async def test_a_command_that_cannot_start_is_rejected_and_frees_its_kind(
    tmp_path: Path, running: Start
) -> None:
    runner = Runner(MaintenanceConfig(firmware_command=[str(tmp_path / "no-such-installer")]))
    running(runner)
    assert (await runner.ask(_firmware())).status == "rejected"  # type: ignore[attr-defined]
    assert not runner.maintenance.running(JobKind.FIRMWARE)
    assert runner.count("firmware/rejected") == 1
    assert runner.sent == []


async def test_a_nul_in_a_field_is_rejected_and_frees_its_kind(
    tmp_path: Path, running: Start
) -> None:
    seen = tmp_path / "arguments.txt"
    runner = Runner(
        MaintenanceConfig(firmware_command=_script(tmp_path, "w", PRINTS_WORDS, str(seen)))
    )
    running(runner)
    poisoned = UpdateFirmwareRequest(
        request_id=3, location="https://fw.example/a\x00b", retrieve_datetime="2026-12-01T10:00:00Z"
    )
    assert (await runner.ask(poisoned)).status == "rejected"  # type: ignore[attr-defined]
    assert not runner.maintenance.running(JobKind.FIRMWARE)
    assert (await runner.ask(_firmware())).status == "accepted"  # type: ignore[attr-defined]
    await runner.finished(JobKind.FIRMWARE)


async def test_stopping_ends_the_running_command(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    runner = Runner(MaintenanceConfig(firmware_command=_script(tmp_path, "h", HANGS, str(pids))))
    task = asyncio.create_task(runner.maintenance.run())
    await runner.ask(_firmware())
    await wait_until(pids.exists, 5, "the command started")
    command, grandchild = (int(pid) for pid in pids.read_text().split())
    assert _alive(command)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not _alive(command)
    await wait_until(lambda: not _alive(grandchild), 5, "what it started gone too")
    assert not runner.maintenance.running(JobKind.FIRMWARE)


async def test_the_logs_command_gets_its_file_name_and_the_station_snapshot(
    tmp_path: Path, running: Start
) -> None:
    copy = tmp_path / "snapshot-copy.json"
    snapshot = {"config": {"station": {}}, "limits_reports": {"E1": {"limits": {}}}}
    commands = MaintenanceConfig(logs_command=_script(tmp_path, "l", LOGS_WORDS, str(copy)))
    runner = Runner(commands, snapshot=snapshot)
    running(runner)
    answer = await runner.ask(_logs())
    assert isinstance(answer, UploadLogsResponse)
    assert answer.status == "accepted"
    assert isinstance(answer.filename, str)
    assert answer.filename.startswith("csbridge-diagnostics_log-8-")
    await runner.finished(JobKind.LOGS)
    assert runner.sent == [
        LogsStatusUpdate(request_id=8, status="uploading"),
        LogsStatusUpdate(request_id=8, status="uploaded"),
    ]
    seen = orjson.loads(copy.read_bytes())
    assert seen["content"] == snapshot
    gone = not await asyncio.to_thread(Path(seen["path"]).exists)
    assert gone, "the snapshot is removed when the command ends"


async def test_a_snapshot_that_cannot_be_had_leaves_the_upload_to_go_on(
    tmp_path: Path, running: Start, caplog: pytest.LogCaptureFixture
) -> None:
    seen = tmp_path / "arguments.txt"
    argv = _script(tmp_path, "s", UPLOADS_WITHOUT_SNAPSHOT, str(seen))
    runner = Runner(MaintenanceConfig(logs_command=argv))

    def broken() -> dict[str, Any]:
        raise KeyError("no such EVSE")

    runner.maintenance.snapshot = broken
    running(runner)
    assert (await runner.ask(_logs())).status == "accepted"  # type: ignore[attr-defined]
    await runner.finished(JobKind.LOGS)
    assert runner.words() == ["uploaded"]
    assert not any(a.startswith("--snapshot=") for a in seen.read_text().splitlines())
    assert any("event=maintenance_snapshot_failed" in r.getMessage() for r in caplog.records)
