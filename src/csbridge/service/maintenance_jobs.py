"""One maintenance command as a child process: started without a shell in a process group of
its own, its stdout read line by line as it prints, its stderr's last lines kept for the log,
and a time limit after which it (and whatever it started) is terminated, then killed."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

GRACE_S = 2.0
"""After SIGTERM, how long a command has to tidy up before SIGKILL."""
STDERR_LINES = 5
"""The last lines of stderr kept for the log line that says why a command failed."""
LINE_LIMIT = 4096
"""A status line is a word; a longer line is read, cut and reported as no word."""


class JobEnd(enum.StrEnum):
    SUCCEEDED = "succeeded"
    """Exit status 0."""
    FAILED = "failed"
    """A non-zero exit status, or killed by a signal it was not sent by us."""
    TIMED_OUT = "timed_out"
    """Still running at its time limit: terminated, then killed."""


@dataclass(frozen=True, slots=True)
class JobResult:
    end: JobEnd
    exit_code: int | None
    """The exit status (negative: the signal that ended it), None if it never ended."""
    stderr_tail: tuple[str, ...]


class RunningCommand:
    """A started command. `start` raises OSError when it cannot be started (no such file, not
    executable); `finish` then waits for it within the time limit."""

    def __init__(self, process: asyncio.subprocess.Process, deadline: float) -> None:
        self._process = process
        self._deadline = deadline
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)

    @property
    def pid(self) -> int:
        return self._process.pid

    @classmethod
    async def start(
        cls, argv: Sequence[str], time_limit_s: float, env: Mapping[str, str] | None = None
    ) -> RunningCommand:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else None,
            limit=LINE_LIMIT,
            # Its own process group: a time limit or a stop ends what it started too.
            start_new_session=True,
        )
        return cls(process, asyncio.get_running_loop().time() + time_limit_s)

    async def finish(self, on_line: Callable[[str], Awaitable[None]]) -> JobResult:
        """Each line of stdout (stripped) to `on_line` as it comes, until the command ends or
        its time runs out. Cancelled (the station stops): the command is ended, then the
        cancellation goes on."""
        stderr = asyncio.create_task(self._keep_stderr(), name=f"maintenance-stderr-{self.pid}")
        try:
            async with asyncio.timeout_at(self._deadline):
                await self._read_lines(on_line)
                code = await self._process.wait()
        except TimeoutError:
            await self._end()
            return JobResult(JobEnd.TIMED_OUT, self._process.returncode, tuple(self._stderr))
        except asyncio.CancelledError:
            await self._end()
            raise
        finally:
            stderr.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stderr
        end = JobEnd.SUCCEEDED if code == 0 else JobEnd.FAILED
        return JobResult(end, code, tuple(self._stderr))

    async def _read_lines(self, on_line: Callable[[str], Awaitable[None]]) -> None:
        stdout = self._process.stdout
        assert stdout is not None  # started with stdout=PIPE
        while True:
            try:
                raw = await stdout.readline()
            except ValueError:
                # Longer than LINE_LIMIT: asyncio dropped it; pass on what says so.
                await on_line("<a line too long>")
                continue
            if not raw:
                return
            await on_line(raw.decode("utf-8", "replace").strip())

    async def _keep_stderr(self) -> None:
        stderr = self._process.stderr
        assert stderr is not None  # started with stderr=PIPE
        while True:
            try:
                raw = await stderr.readline()
            except ValueError:
                continue
            if not raw:
                return
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self._stderr.append(line[:200])

    async def _end(self) -> None:
        """SIGTERM to the command's process group, SIGKILL after GRACE_S; waits for its end."""
        self._signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(GRACE_S):
                await self._process.wait()
                return
        except TimeoutError:
            pass
        self._signal(signal.SIGKILL)
        await self._process.wait()

    def _signal(self, which: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, which)
