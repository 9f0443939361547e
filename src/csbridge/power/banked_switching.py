"""The switching sequencer over banks: a `[[pool.group]]` is switched by one contactor per EVSE,
so its modules move together, and each step of a move waits for all of them. Told and asked per
module, as the pool's coordinator thinks; the sequencer underneath moves banks.

A bank reads as the sum of its modules: its current is theirs added up (unknown when any one's
is: a module without a fresh reading counts as carrying current), and its contactor feedback is
the one its modules share (unknown when they disagree). It is on when any module is, so its
contactor moves only while the whole bank carries less than the threshold and no module of it is
on; but while it is being started (or taken back before it stopped) it is on only once every
module is, so a receiver's limit never takes in a module that did not start. A bank whose modules
are given different EVSEs stays where it is: one of them is held in place (silent, its current
unknown) and the contactor cannot move without it.

In a full matrix every bank is one module of the same name, and this is the sequencer itself.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping

from csbridge.config import BankTopology
from csbridge.power.switching import (
    UNKNOWN,
    EndSession,
    LimitEvse,
    ModuleFault,
    ModuleSense,
    Phase,
    ReclampSetpoint,
    SetContactor,
    SwitchingCommand,
    SwitchingInputs,
    SwitchingSequencer,
    SwitchingSettings,
    SwitchModule,
)

STARTED_WHEN_EVERY_MODULE_IS = frozenset({Phase.STARTING, Phase.LOWERING})
"""The phases in which the sequencer reads "on" as "started": a bank must then have every
module on (in every other phase "on" is what keeps its contactor from moving: any module)."""


class BankedSequencer:
    """`SwitchingSequencer`'s interface per module, moving whole banks."""

    def __init__(
        self,
        evses: Collection[str],
        banks: Iterable[BankTopology],
        allocation: Mapping[str, str | None],
        settings: SwitchingSettings,
        now: float,
    ) -> None:
        self._members: dict[str, tuple[str, ...]] = {bank.name: bank.modules for bank in banks}
        self._bank_of = {
            module: bank for bank, modules in self._members.items() for module in modules
        }
        self._inner = SwitchingSequencer(evses, self._by_bank(allocation, {}), settings, now)

    @property
    def settings(self) -> SwitchingSettings:
        return self._inner.settings

    def bank_of(self, module: str) -> str:
        """The bank the module switches with (in a full matrix: itself)."""
        return self._bank_of[module]

    def members(self, bank: str) -> tuple[str, ...]:
        return self._members[bank]

    # --- what it holds ---------------------------------------------------------------------

    @property
    def target(self) -> Mapping[str, str | None]:
        return self._per_module(self._inner.target)

    @property
    def faulted(self) -> frozenset[str]:
        return self._modules_of(self._inner.faulted)

    def phase(self, module: str) -> Phase:
        return self._inner.phase(self._bank_of[module])

    def since(self, module: str) -> float:
        return self._inner.since(self._bank_of[module])

    def bus(self, module: str) -> str | None:
        return self._inner.bus(self._bank_of[module])

    def reported(self, evse: str) -> frozenset[str]:
        return self._modules_of(self._inner.reported(evse))

    @property
    def settled(self) -> bool:
        return self._inner.settled

    def retarget(self, target: Mapping[str, str | None]) -> None:
        """Per module; every module of a bank should be given the same EVSE (else the bank
        stays where it is)."""
        unknown = set(target) - set(self._bank_of)
        if unknown:
            raise ValueError(f"modules not in the pool: {sorted(unknown)}")
        self._inner.retarget(self._by_bank(target, self._inner.target))

    # --- one tick --------------------------------------------------------------------------

    def step(self, inputs: SwitchingInputs) -> list[SwitchingCommand]:
        banks = {
            bank: _bank_sense(
                [inputs.modules.get(module, UNKNOWN) for module in modules],
                every_on=self._inner.phase(bank) in STARTED_WHEN_EVERY_MODULE_IS,
            )
            for bank, modules in self._members.items()
        }
        commands = self._inner.step(
            SwitchingInputs(inputs.now, banks, dict(inputs.setpoint_voltage))
        )
        return [each for command in commands for each in self._per_module_command(command)]

    def _per_module_command(self, command: SwitchingCommand) -> list[SwitchingCommand]:
        match command:
            case LimitEvse(evse, banks):
                return [LimitEvse(evse, self._modules_of(banks))]
            case SwitchModule(bank, on, voltage):
                return [SwitchModule(module, on, voltage) for module in self._members[bank]]
            case ModuleFault(bank, evse, reason, fault):
                return [ModuleFault(m, evse, reason, fault) for m in self._members[bank]]
            case SetContactor() | EndSession() | ReclampSetpoint():
                # A contactor is the bank's (the board's driver knows it by that name); a
                # session ended names what did not ramp down: the bank.
                return [command]
        raise AssertionError(f"unknown switching command {command!r}")  # pragma: no cover

    # --- per module and per bank ------------------------------------------------------------

    def _by_bank(
        self, per_module: Mapping[str, str | None], now: Mapping[str, str | None]
    ) -> dict[str, str | None]:
        by_bank: dict[str, str | None] = {}
        for bank, modules in self._members.items():
            wanted = {per_module.get(module) for module in modules}
            by_bank[bank] = wanted.pop() if len(wanted) == 1 else now.get(bank)
        return by_bank

    def _per_module(self, per_bank: Mapping[str, str | None]) -> dict[str, str | None]:
        members = self._members.items()
        return {module: per_bank.get(bank) for bank, modules in members for module in modules}

    def _modules_of(self, banks: Iterable[str]) -> frozenset[str]:
        return frozenset(module for bank in banks for module in self._members[bank])


def _bank_sense(modules: list[ModuleSense], every_on: bool) -> ModuleSense:
    feedbacks = {sense.closed_to for sense in modules}
    on = (sense.output_on for sense in modules)
    return ModuleSense(
        current_a=math.fsum(abs(sense.current_a) for sense in modules),
        output_on=all(on) if every_on else any(on),
        closed_to=feedbacks.pop() if len(feedbacks) == 1 else None,
    )
