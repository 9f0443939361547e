"""Keeps tests/unit pure: a test here that opens a network connection or starts a process fails
saying where it belongs, instead of quietly needing a broker or a slow subprocess."""

from __future__ import annotations

import socket
import subprocess
from typing import NoReturn

import pytest

ELSEWHERE = (
    "tests/unit is pure: a test that needs {what} belongs in tests/integration (a broker, a "
    "station in this process) or tests/system (subprocesses, the CLI)"
)


@pytest.fixture(autouse=True)
def _nothing_beyond_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(what: str) -> object:
        def refused(*_: object, **__: object) -> NoReturn:
            raise AssertionError(ELSEWHERE.format(what=what))

        return refused

    # The event loop's own socketpair stays allowed: it never leaves the process.
    monkeypatch.setattr(socket.socket, "connect", refuse("a network connection"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("a network connection"))
    monkeypatch.setattr(socket, "create_connection", refuse("a network connection"))
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("a subprocess"))
