"""The contactor matrix board of a shared pool, reached through its own frames
(hal/contactor-matrix.dbc): each contactor a pool configures names a command and a feedback
signal of the board's layout; the driver sends MATRIX_Command with every commanded contact and
reads MATRIX_Feedback back. `SimulatedMatrixDriver` hands the frames to a simulated board in the
process (no bus), which obeys after its delay, as the real one does on CAN."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from csbridge.config import Config, ConfigError, PoolConfig
from csbridge.sources.simulated import (
    ContactorMatrixCodec,
    ContactorMatrixLayout,
    SimulatedContactorMatrix,
    load_matrix_layout,
)
from csbridge.support import Clock

Contact = tuple[int, int]


def _signal_contacts(layout: ContactorMatrixLayout, pattern: str) -> dict[str, Contact]:
    return {
        pattern.format(module=module, bus=bus): (module, bus) for module, bus in layout.contacts()
    }


def matrix_contacts(
    pool: PoolConfig, layout: ContactorMatrixLayout
) -> tuple[dict[tuple[str, str], Contact], dict[Contact, tuple[str, str]], list[str]]:
    """Each configured contactor's (module, EVSE) as the board's contact, by its command
    signal; the same by its feedback signal; and the problems (a signal not of the layout, a
    command and feedback naming different contacts, a group: a matrix board switches modules)."""
    commands = _signal_contacts(layout, layout.command_signal)
    feedbacks = _signal_contacts(layout, layout.feedback_signal)
    by_pair: dict[tuple[str, str], Contact] = {}
    by_feedback: dict[Contact, tuple[str, str]] = {}
    problems = []
    for index, contactor in enumerate(pool.contactor):
        where = f"pool {pool.name} contactor[{index}]"
        if contactor.module is None:
            problems.append(f"{where}: a contactor matrix board switches modules, not groups")
            continue
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
        by_pair[(contactor.module, contactor.evse)] = command
        by_feedback[feedback] = (contactor.module, contactor.evse)
    return by_pair, by_feedback, problems


def pool_layout(pool: PoolConfig, base: Path | None = None) -> ContactorMatrixLayout:
    """The pool board's layout: its `layout` file (relative to `base`), else csbridge's own."""
    board = pool.board
    if board is None or board.layout is None:
        return load_matrix_layout()
    path = Path(board.layout)
    if not path.is_absolute() and base is not None:
        path = base / path
    return load_matrix_layout(path)


def pool_problems(config: Config, base: Path | None = None) -> tuple[list[str], list[str]]:
    """(problems, warnings) of each pool's contactor matrix board, for check-config: a layout
    that cannot be read, a contactor whose signals are not the layout's or name two contacts;
    a pool with no board csbridge can reach yet (only a simulated one) runs no moves."""
    problems: list[str] = []
    warnings: list[str] = []
    for pool in config.pool:
        try:
            layout = pool_layout(pool, base)
        except ConfigError as error:
            problems += [f"pool {pool.name}.board.layout: {p}" for p in error.problems]
            continue
        problems += matrix_contacts(pool, layout)[2]
        if pool.board is None or pool.board.simulated is None:
            warnings.append(
                f"pool {pool.name}: csbridge drives only a simulated contactor matrix board so"
                " far: its modules stay off and its EVSEs not ready"
            )
    return problems, warnings


class SimulatedMatrixDriver:
    """Commands go to a simulated board as MATRIX_Command frames; its MATRIX_Feedback frames
    are read back."""

    def __init__(self, pool: PoolConfig, clock: Clock = time.monotonic) -> None:
        layout = pool_layout(pool)
        self.codec = ContactorMatrixCodec(layout)
        delay = pool.board.simulated.delay_s if pool.board and pool.board.simulated else 0.02
        self.board = SimulatedContactorMatrix(self.codec, delay_s=delay, clock=clock)
        self._contacts, self._by_feedback, problems = matrix_contacts(pool, layout)
        if problems:
            raise ConfigError(f"pool {pool.name}", problems)
        self._closed: set[Contact] = set()
        self._heard: Mapping[str, frozenset[str]] | None = None
        """The last feedback decoded; read again only when the board's contacts moved."""

    def contact(self, module: str, evse_id: str) -> Contact:
        return self._contacts[(module, evse_id)]

    def command(self, module: str, evse_id: str, closed: bool) -> None:
        contact = self._contacts.get((module, evse_id))
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
        found: dict[str, set[str]] = {}
        for contact in closed:
            pair = self._by_feedback.get(contact)
            if pair is not None:
                found.setdefault(pair[0], set()).add(pair[1])
        self._heard = {module: frozenset(evses) for module, evses in found.items()}
        return self._heard
