"""The contactor matrix board of a shared pool, reached through its own frames
(hal/contactor-matrix.dbc): each contactor a pool configures names a command and a feedback
signal of the board's layout; the driver sends MATRIX_Command with every commanded contact and
reads MATRIX_Feedback back. `SimulatedMatrixDriver` hands the frames to a simulated board in the
process (no bus), which obeys after its delay, as the real one does on CAN; a board on a bus is
power/matrix_can.py's `CanMatrixDriver`, which `matrix_driver` picks by the pool's `board`."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

from csbridge.config import Config, ConfigError, PoolConfig
from csbridge.power.matrix_can import CanMatrixDriver
from csbridge.power.pool import MatrixDriver, closed_by_bank
from csbridge.sources.can import (
    ContactorMatrixCodec,
    ContactorMatrixLayout,
    DeviceRouter,
    board_layout_path,
    load_matrix_layout,
)
from csbridge.support import Clock, Counters

log = logging.getLogger(__name__)

Contact = tuple[int, int]


def _signal_contacts(layout: ContactorMatrixLayout, pattern: str) -> dict[str, Contact]:
    return {
        pattern.format(module=module, bus=bus): (module, bus) for module, bus in layout.contacts()
    }


def matrix_contacts(
    pool: PoolConfig, layout: ContactorMatrixLayout
) -> tuple[dict[tuple[str, str], Contact], dict[Contact, tuple[str, str]], list[str]]:
    """Each configured contactor's (bank, EVSE) as the board's contact, by its command signal
    (a bank: a module, or a `[[pool.group]]` switched as one); the same by its feedback signal;
    and the problems (a signal not of the layout, a command and feedback naming different
    contacts)."""
    commands = _signal_contacts(layout, layout.command_signal)
    feedbacks = _signal_contacts(layout, layout.feedback_signal)
    by_pair: dict[tuple[str, str], Contact] = {}
    by_feedback: dict[Contact, tuple[str, str]] = {}
    problems = []
    for index, contactor in enumerate(pool.contactor):
        where = f"pool {pool.name} contactor[{index}]"
        command = commands.get(contactor.command)
        feedback = feedbacks.get(contactor.feedback)
        if command is None:
            problems.append(f"{where}.command: {contactor.command} is no signal of {layout.name}")
        if feedback is None:
            problems.append(f"{where}.feedback: {contactor.feedback} is no signal of {layout.name}")
        if command is None or feedback is None:
            continue
        if command != feedback:
            problems.append(
                f"{where}: {contactor.command} and {contactor.feedback} are different contacts"
            )
            continue
        by_pair[(contactor.bank, contactor.evse)] = command
        by_feedback[feedback] = (contactor.bank, contactor.evse)
    return by_pair, by_feedback, problems


def pool_layout(pool: PoolConfig, base: Path | None = None) -> ContactorMatrixLayout:
    """The pool board's layout: its `layout` file (relative to `base`), else csbridge's own."""
    return load_matrix_layout(board_layout_path(pool.board, base))


def pool_problems(config: Config, base: Path | None = None) -> list[str]:
    """The problems of each pool's contactor matrix board, for check-config: a layout
    that cannot be read, a contactor whose signals are not the layout's or name two contacts,
    a board on a bus that does not exist or runs at another bit rate than the layout's; a pool
    with contactors and no board (nothing could tell where its modules are)."""
    problems: list[str] = []
    buses = {bus.name: bus for bus in config.bus}
    for pool in config.pool:
        board = pool.board
        if board is None:
            if pool.switched:
                problems.append(
                    f"pool {pool.name}.board: a pool whose banks are switched by contactors needs"
                    " its contactor matrix board (`board = { bus = ... }`, or `simulated`): "
                    "without one no contactor's state can be known"
                )
            continue
        try:
            layout = pool_layout(pool, base)
        except ConfigError as error:
            problems += [f"pool {pool.name}.board.layout: {p}" for p in error.problems]
            continue
        problems += matrix_contacts(pool, layout)[2]
        if board.bus is None:
            continue
        bus = buses.get(board.bus)
        if bus is None:
            problems.append(f"pool {pool.name}.board.bus: no [[bus]] named {board.bus!r}")
        elif bus.bitrate is not None and bus.bitrate != layout.bitrate:
            problems.append(
                f"pool {pool.name}.board.bus: bus {bus.name} runs at {bus.bitrate} bit/s;"
                f" {layout.name}: {layout.bitrate}"
            )
    return problems


class SimulatedMatrixDriver:
    """Commands go to a simulated board as MATRIX_Command frames; its MATRIX_Feedback frames
    are read back."""

    def __init__(self, pool: PoolConfig, clock: Clock = time.monotonic) -> None:
        layout = pool_layout(pool)
        self.codec = ContactorMatrixCodec(layout)
        delay = pool.board.simulated.delay_s if pool.board and pool.board.simulated else 0.02
        from csbridge.sources.simulated import SimulatedContactorMatrix  # noqa: PLC0415

        self.board = SimulatedContactorMatrix(self.codec, delay_s=delay, clock=clock)
        self._contacts, self._by_feedback, problems = matrix_contacts(pool, layout)
        if problems:
            raise ConfigError(f"pool {pool.name}", problems)
        self._closed: set[Contact] = set()
        self._heard: Mapping[str, frozenset[str]] | None = None
        """The last feedback decoded; read again only when the board's contacts moved."""

    def contact(self, bank: str, evse_id: str) -> Contact:
        return self._contacts[(bank, evse_id)]

    def command(self, bank: str, evse_id: str, closed: bool) -> None:
        contact = self._contacts.get((bank, evse_id))
        if contact is None:
            return  # no contactor there: nothing to switch (the topology has none)
        (self._closed.add if closed else self._closed.discard)(contact)
        self.board.receive(self.codec.command_frame(self._closed))

    def feedback(self) -> Mapping[str, frozenset[str]] | None:
        if not self.board.advance() and self._heard is not None:
            return self._heard
        closed = self.codec.decode_feedback(self.board.feedback_frame())
        if closed is None:
            return None
        self._heard = closed_by_bank(closed, self._by_feedback)
        return self._heard


class WiredOnly:
    """A pool without contactors: every bank is wired to its one EVSE, so no bank is ever
    switched and no feedback is read (the wiring says where each bank is)."""

    def command(self, bank: str, evse_id: str, closed: bool) -> None:
        log.error(
            "event=pool_contactor_missing bank=%s evse=%s closed=%s -- a wired pool has none",
            bank,
            evse_id,
            closed,
        )

    def feedback(self) -> Mapping[str, frozenset[str]] | None:
        return {}


def matrix_driver(
    pool: PoolConfig,
    router: DeviceRouter,
    counters: Counters,
    clock: Clock = time.monotonic,
    base: Path | None = None,
) -> MatrixDriver | None:
    """The pool's board as its `board` says: on a bus (`bus`, whether the board there is real
    or simulated on the wire), its feedback routed from that bus to the driver; simulated in
    the process (`simulated` alone); without a board, a pool whose every bank is wired to its
    EVSE has no contactor to drive (`WiredOnly`), and one with contactors None (it runs no
    moves). ConfigError names a layout or contactor the board cannot carry."""
    board = pool.board
    if board is None:
        return None if pool.switched else WiredOnly()
    if board.bus is None:
        return SimulatedMatrixDriver(pool, clock)
    layout = pool_layout(pool, base)
    by_pair, by_feedback, problems = matrix_contacts(pool, layout)
    if problems:
        raise ConfigError(f"pool {pool.name}", problems)
    driver = CanMatrixDriver(pool, layout, (by_pair, by_feedback), counters, clock)
    router.listen(board.bus, *driver.listener())
    return driver
