"""CAN log files as frames on named buses: candump -L text and Vector ASC, via python-can.

A candump line names its interface (can0), which is the configured bus of that name. Vector ASC
numbers channels from 1; a bus takes the channel given as `asc_channel`, else its position.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from pathlib import Path

import can

from csbridge.config import BusConfig

SUPPORTED_SUFFIXES = (".log", ".asc")


class LogError(Exception):
    """A log that cannot be read: which file and why."""


def _bus_name(frame: can.Message, buses: Sequence[BusConfig]) -> str:
    channel = frame.channel
    if isinstance(channel, int):  # ASC: python-can counts from 0
        for position, bus in enumerate(buses):
            if (bus.asc_channel or position + 1) == channel + 1:
                return bus.name
        return f"asc{channel + 1}"
    return str(channel)


def _frames(
    path: Path, buses: Sequence[BusConfig]
) -> Iterator[tuple[float, int, str, can.Message]]:
    if path.suffix not in SUPPORTED_SUFFIXES:
        raise LogError(
            f"{path}: unknown log format {path.suffix!r} (have {', '.join(SUPPORTED_SUFFIXES)})"
        )
    try:
        reader = can.LogReader(str(path))
        for index, frame in enumerate(reader):
            yield frame.timestamp, index, _bus_name(frame, buses), frame
    except (OSError, ValueError, IndexError) as error:
        raise LogError(f"{path}: {error}") from None


def merged_frames(
    paths: Sequence[Path], buses: Sequence[BusConfig]
) -> Iterator[tuple[float, str, can.Message]]:
    """Frames of every log in time order, each with the bus it belongs to."""
    for path in paths:
        if not path.is_file():
            raise LogError(f"{path}: no such file")
    streams = [_frames(path, buses) for path in paths]
    for timestamp, _, bus, frame in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        yield timestamp, bus, frame
