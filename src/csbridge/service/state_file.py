"""What the station must remember across a restart (each EVSE's availability, say), as one
small JSON object in `[station] state_dir`.

Written atomically: a temporary file in the same folder, flushed and fsynced, then renamed over
the old one (and the folder fsynced, so the rename itself survives a power cut), so a reader
finds the old state or the new one, never half of one. Nothing here may stop the station:

- no file yet: the defaults;
- a file that is not a JSON object (cut short, garbage, too large, unreadable): the defaults,
  one error line and a count; the next change writes a good one over it;
- a folder that cannot be written: one error line per run of failures and a count each time;
  the state is kept in memory and written with the next change that succeeds.

The writes are synchronous, on the caller's thread: the file is a few hundred bytes, written
only when an operator or Josev changes something, and an fsync of that costs milliseconds.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from csbridge.support import Counted, Counters

FILE_NAME = "state.json"
MAX_BYTES = 1024 * 1024
"""Far above any real state; a larger file is not ours (or is damaged) and is not parsed."""

log = logging.getLogger("csbridge.state")


class StateFile:
    """A JSON object of named values, read once at start and rewritten on every change."""

    def __init__(
        self, directory: Path, counters: Counters | None = None, name: str = FILE_NAME
    ) -> None:
        self.path = directory / name
        self.counters = counters or Counters()
        self._values: dict[str, Any] = {}
        self._failing = False
        """A write failed and was logged; the next failure is only counted."""
        self.persisted = True
        """Whether the file holds what memory holds (False after a failed write)."""

    def load(self) -> dict[str, Any]:
        """Read the file (at start): its values, or none when it is missing or unusable."""
        self._values = self._read()
        return self.values()

    def values(self) -> dict[str, Any]:
        """A copy of every value."""
        return copy.deepcopy(self._values)

    def get(self, key: str, default: Any = None) -> Any:
        """A copy of one value, or `default` when the state has none."""
        return copy.deepcopy(self._values[key]) if key in self._values else default

    def put(self, key: str, value: Any) -> bool:
        """`update({key: value})`."""
        return self.update({key: value})

    def update(self, changes: Mapping[str, Any]) -> bool:
        """Take the changes and write the whole state; True when it is on disk, False when
        it is kept in memory only. TypeError (and nothing changed) for a value JSON cannot
        hold."""
        values = {**self._values, **changes}
        document = orjson.dumps(values, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        self._values = orjson.loads(document)  # a copy of its own, as JSON gives it back
        self.persisted = self._write(document + b"\n")
        return self.persisted

    def _read(self) -> dict[str, Any]:
        try:
            size = self.path.stat().st_size
            if size > MAX_BYTES:
                return self._unusable(f"{size} bytes is above the {MAX_BYTES} byte limit")
            document = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            log.info("event=state_file_absent path=%s -- starting from the defaults", self.path)
            return {}
        except OSError as error:
            return self._unusable(f"cannot read it: {error}")
        except orjson.JSONDecodeError as error:
            return self._unusable(f"not JSON: {error}")
        if not isinstance(document, dict):
            return self._unusable(f"a JSON {type(document).__name__}, not an object")
        return document

    def _unusable(self, why: str) -> dict[str, Any]:
        self.counters.add(Counted.STATE_FILE_FAILED, "unreadable")
        log.error(
            "event=state_file_unreadable path=%s why=%s -- starting from the defaults; the next "
            "change writes it anew",
            self.path,
            why,
        )
        return {}

    def _write(self, document: bytes) -> bool:
        directory = self.path.parent
        temporary: str | None = None
        try:
            directory.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=directory
            )
            with os.fdopen(handle, "wb") as file:
                file.write(document)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
            temporary = None
        except OSError as error:
            self._write_failed(error)
            return False
        finally:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
        _sync_directory(directory)
        if self._failing:
            self._failing = False
            log.info("event=state_file_written path=%s -- writing works again", self.path)
        return True

    def _write_failed(self, error: OSError) -> None:
        self.counters.add(Counted.STATE_FILE_FAILED, "unwritable")
        if self._failing:
            return
        self._failing = True
        log.error(
            "event=state_file_unwritable path=%s why=%s -- the state is kept in memory only "
            "(lost at a restart) until a write succeeds",
            self.path,
            error,
        )


def _sync_directory(directory: Path) -> None:
    """Make the rename durable. The new file is complete either way: a folder that cannot be
    opened or synced (some file systems refuse) only weakens that to the system's next flush."""
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
