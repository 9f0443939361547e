"""systemd's notify protocol, spoken directly: one datagram per state change on $NOTIFY_SOCKET.

No python-systemd dependency: the protocol is a line of `KEY=value` sent to a unix datagram
socket (sd_notify(3)); a leading `@` names an abstract socket. Outside systemd (no
$NOTIFY_SOCKET) every call does nothing, so the same code runs in a terminal and in tests.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from csbridge.support import RateLimitedLog

log = logging.getLogger("csbridge.systemd")
_faults = RateLimitedLog(log)


class SystemdNotifier:
    def __init__(self, address: str | None, watchdog_s: float | None) -> None:
        self.address = address
        self.watchdog_s = watchdog_s
        """The unit's WatchdogSec when systemd asks for pings (and they are for this process)."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> SystemdNotifier:
        address = environ.get("NOTIFY_SOCKET") or None
        return cls(address, _watchdog_seconds(environ))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, state: str) -> bool:
        """Send e.g. `READY=1`; False (logged) if systemd's socket refuses it."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(state.encode(), target)
        except OSError as error:
            key = state.partition("=")[0]
            _faults.warning(key, "event=sd_notify_failed state=%s why=%s", key, error)
            return False
        return True


def _watchdog_seconds(environ: Mapping[str, str]) -> float | None:
    """WATCHDOG_USEC as seconds, if set and meant for us (WATCHDOG_PID, when given, is our pid)."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000
