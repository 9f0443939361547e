"""A shared pool's hardware as the power path sees it: each pooled EVSE's module drivers are a
view of the pool's drivers that holds only the modules connected to that EVSE now (so its
setpoint is split over those, and its "all off" touches no module of another EVSE), and the
contactor matrix board that connects each module to one EVSE's bus."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from csbridge.power.drivers import ModuleDriver


class PoolModules(Mapping[str, ModuleDriver]):
    """The drivers of the pool modules one EVSE drives now (`serving`, set as the switching
    sequencer confirms a module connected to it alone); `every` holds them all."""

    def __init__(self, every: Mapping[str, ModuleDriver]) -> None:
        self.every: Mapping[str, ModuleDriver] = dict(every)
        self.serving: frozenset[str] = frozenset()

    def __getitem__(self, name: str) -> ModuleDriver:
        if name not in self.serving:
            raise KeyError(name)
        return self.every[name]

    def __iter__(self) -> Iterator[str]:
        return (name for name in self.every if name in self.serving)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class MatrixDriver(Protocol):
    """A contactor matrix board: one contactor per (bank, EVSE), each commanded and read back
    by its feedback. A bank is what one contactor switches: a module in a full matrix, or a
    `[[pool.group]]` of modules (named by the group)."""

    def command(self, bank: str, evse_id: str, closed: bool) -> None:
        """The contactor from `bank` to `evse_id`'s bus to close (or open)."""
        ...

    def feedback(self) -> Mapping[str, frozenset[str]] | None:
        """Per bank, the EVSEs whose contactor reads closed now; None: no feedback heard yet
        (every contactor then agrees with no command)."""
        ...


def closed_by_bank(
    closed: Iterable[tuple[int, int]], by_feedback: Mapping[tuple[int, int], tuple[str, str]]
) -> dict[str, frozenset[str]]:
    """A board's closed contacts (module index, bus index) as the EVSEs each of the pool's
    banks is closed to; a contact no contactor of the pool names is no bank's."""
    found: dict[str, set[str]] = {}
    for contact in closed:
        pair = by_feedback.get(contact)
        if pair is not None:
            found.setdefault(pair[0], set()).add(pair[1])
    return {module: frozenset(evses) for module, evses in found.items()}
