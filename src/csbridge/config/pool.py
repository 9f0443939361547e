"""A shared module pool ([[pool]]): power modules that several DC EVSEs share, the contactors
that switch them onto each EVSE's DC bus, and the policy that shares them.

The switching topology is declarative. A *bank* is what switches as one: a module of its own
(a full matrix: one contactor per module and EVSE) or a `[[pool.group]]` of modules behind
shared contactors. Every check here refuses a wiring that could put two EVSEs' buses on one
bank at once; the allocation (csbridge.limits) then only ever moves whole banks.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from csbridge.config.base import NonNegative, Positive, Strict
from csbridge.config.devices import BusConfig, ModuleConfig
from csbridge.config.evse import EvseConfig, Kind

Name = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
Signal = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
"""A signal of the board's DBC (a DBC signal name is a C identifier)."""


class Policy(enum.StrEnum):
    """How a pool shares its modules among the EVSEs in session."""

    EQUAL_SHARE = "equal_share"
    """Each EVSE in session the same power, within one module."""
    FIRST_COME = "first_come"
    """The earliest session takes what it can use; the next one the rest."""
    PRIORITY = "priority"
    """Shares in proportion to each EVSE's `weight`."""


class PoolEvseConfig(Strict):
    """An EVSE the pool feeds, and its terms."""

    evse_id: Annotated[str, Field(min_length=1)]
    minimum_power_w: NonNegative = 0.0
    """Guaranteed while it has a session (as far as its EV asks for it and the pool has it)."""
    weight: Positive = 1.0
    """Its share's weight under `priority`."""


class PoolGroupConfig(Strict):
    """A bank of modules switched together by the same contactors."""

    name: Name
    modules: Annotated[list[Name], Field(min_length=1)]
    wired_to: Annotated[str, Field(min_length=1)] | None = None
    """An EVSE whose bus the bank feeds directly, without a contactor: it can then have none."""


class PoolContactorConfig(Strict):
    """One contactor: the output of a module (`module`) or a bank (`group`) to one EVSE's bus,
    with the board's signal that commands it and the one that reports it closed."""

    evse: Annotated[str, Field(min_length=1)]
    module: Name | None = None
    group: Name | None = None
    command: Signal
    feedback: Signal

    @model_validator(mode="after")
    def _one_bank(self) -> Self:
        if (self.module is None) == (self.group is None):
            raise ValueError("a contactor switches one `module` or one `group`: name exactly one")
        if self.command == self.feedback:
            raise ValueError(f"command and feedback are both {self.command!r}")
        return self

    @property
    def bank(self) -> str:
        return self.module if self.module is not None else str(self.group)


@dataclass(frozen=True, slots=True)
class BankTopology:
    """What switches as one, and the EVSEs it can feed."""

    name: str
    modules: tuple[str, ...]
    evse_ids: frozenset[str]
    wired: bool
    """Fed to its one EVSE without a contactor."""


class SimulatedMatrixConfig(Strict):
    delay_s: Annotated[float, Field(ge=0, le=5)] = 0.02
    """How long a simulated contactor takes to follow its command."""


class PoolBoardConfig(Strict):
    """The contactor matrix board whose DBC signals the pool's contactors name: on a `[[bus]]`
    (`bus`), simulated in the process (`simulated` alone), or simulated on that bus (both)."""

    layout: str | None = None
    """The matrix layout file (hal/switching/*.toml), relative to the configuration file;
    none: csbridge's own contactor matrix."""
    bus: Annotated[str, Field(min_length=1)] | None = None
    """The `[[bus]]` the board is on: its commands go out there, its feedback is read there."""
    deadline_s: Annotated[float, Field(gt=0, le=10)] | None = None
    """A board on a bus unheard this long is silent: every contact it reports is unknown.
    Default: three of its layout's feedback cycles."""
    simulated: SimulatedMatrixConfig | None = None
    """A simulated board: in the process, or with `bus` answering on that bus's wire."""

    @field_validator("layout")
    @classmethod
    def _beside_the_file(cls, layout: str | None, info: ValidationInfo) -> str | None:
        # Relative to the configuration file (parse_config's `config_dir`), as `run` and
        # check-config must read the same layout wherever csbridge starts.
        base = (info.context or {}).get("config_dir")
        if layout is None or not isinstance(base, Path) or Path(layout).is_absolute():
            return layout
        return str(base / layout)

    @model_validator(mode="after")
    def _reachable(self) -> Self:
        if self.bus is None and self.simulated is None:
            raise ValueError(
                "a board is on a `bus` (a [[bus]] name) or `simulated`: name one (or both, "
                "for a simulated board on the wire)"
            )
        if self.bus is None and self.deadline_s is not None:
            raise ValueError("deadline_s is for a board on a bus: set `bus` too")
        return self


class PoolSwitchingConfig(Strict):
    """The thresholds and time limits of a move (power.switching.SwitchingSettings): every
    figure is the station's own choice for its contactors and modules."""

    current_threshold_a: Positive = 1.0
    """No contactor opens or closes while its module carries this much or more."""
    contactor_time_limit_s: Annotated[float, Field(gt=0, le=10)] = 0.3
    """Longest a contactor's feedback may disagree with its command: then a hardware fault."""
    ramp_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    """Longest the donor may take to bring a leaving module's current down: then its session
    is ended."""
    stop_timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    start_timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0


class PoolConfig(Strict):
    name: Name
    evse: Annotated[list[PoolEvseConfig], Field(min_length=1)]
    policy: Policy = Policy.EQUAL_SHARE
    module: Annotated[list[ModuleConfig], Field(min_length=1)]
    group: list[PoolGroupConfig] = []
    contactor: list[PoolContactorConfig] = []
    board: PoolBoardConfig | None = None
    demand_settle_s: Annotated[float, Field(ge=0, le=600)] = 5.0
    """How long an EV's demand must stay below its allocation before modules go back."""
    switching: PoolSwitchingConfig = PoolSwitchingConfig()

    @property
    def evse_ids(self) -> tuple[str, ...]:
        return tuple(evse.evse_id for evse in self.evse)

    @property
    def switched(self) -> bool:
        """Some bank is switched by contactors (not every one `wired_to` its EVSE): only a
        board's feedback can then tell where its modules are."""
        return any(not bank.wired for bank in self.banks())

    def banks(self) -> tuple[BankTopology, ...]:
        """Each group, then each module in no group, with the EVSEs its contactors reach."""
        reaches: dict[str, set[str]] = {}
        for contactor in self.contactor:
            reaches.setdefault(contactor.bank, set()).add(contactor.evse)
        grouped = {module for group in self.group for module in group.modules}
        banks = [
            BankTopology(
                group.name,
                tuple(group.modules),
                frozenset({group.wired_to} if group.wired_to else reaches.get(group.name, ())),
                group.wired_to is not None,
            )
            for group in self.group
        ]
        banks += [
            BankTopology(m.name, (m.name,), frozenset(reaches.get(m.name, ())), wired=False)
            for m in self.module
            if m.name not in grouped
        ]
        return tuple(banks)

    @model_validator(mode="after")
    def _no_bank_joins_two_buses(self) -> Self:
        problems = self._name_problems() + self._group_problems() + self._contactor_problems()
        if not problems:
            problems = self._reach_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _name_problems(self) -> list[str]:
        problems = []
        for what, names in (
            ("evse_id", self.evse_ids),
            ("module name", [m.name for m in self.module]),
            ("group name", [g.name for g in self.group]),
        ):
            repeated = _repeated(names)
            if repeated:
                problems.append(f"each {what} once in a pool, repeated: {', '.join(repeated)}")
        clash = sorted({g.name for g in self.group} & {m.name for m in self.module})
        if clash:
            problems.append(f"a group and a module share the name {', '.join(clash)}")
        return problems

    def _group_problems(self) -> list[str]:
        problems = []
        modules = {m.name for m in self.module}
        owner: dict[str, str] = {}
        for index, group in enumerate(self.group):
            where = f"group[{index}] {group.name}"
            for name in _repeated(group.modules):
                problems.append(f"{where}: module {name} listed twice")
            for name in dict.fromkeys(group.modules):
                if name not in modules:
                    problems.append(f"{where}: no module {name!r} in this pool")
                elif name in owner:
                    problems.append(
                        f"{where}: module {name} is also in group {owner[name]}: its two banks "
                        "could close to two EVSEs and join their buses"
                    )
                else:
                    owner[name] = group.name
            if group.wired_to is not None and group.wired_to not in self.evse_ids:
                problems.append(f"{where}.wired_to: {group.wired_to!r} is not an EVSE of the pool")
        return problems

    def _contactor_problems(self) -> list[str]:
        problems = []
        modules = {m.name for m in self.module}
        groups = {g.name: g for g in self.group}
        grouped = {module: g.name for g in self.group for module in g.modules}
        seen_pair: dict[tuple[str, str], int] = {}
        signals: dict[str, str] = {}
        for index, contactor in enumerate(self.contactor):
            where = f"contactor[{index}]"
            if contactor.evse not in self.evse_ids:
                problems.append(f"{where}.evse: {contactor.evse!r} is not an EVSE of the pool")
            if contactor.module is not None:
                if contactor.module not in modules:
                    problems.append(f"{where}.module: no module {contactor.module!r} in this pool")
                elif contactor.module in grouped:
                    problems.append(
                        f"{where}: module {contactor.module} switches with group "
                        f"{grouped[contactor.module]}: a contactor of its own could put it on "
                        "a second EVSE's bus"
                    )
            elif contactor.group not in groups:
                problems.append(f"{where}.group: no group {contactor.group!r} in this pool")
            elif groups[contactor.group].wired_to is not None:
                wired = groups[contactor.group].wired_to
                problems.append(
                    f"{where}: group {contactor.group} is wired to {wired} without a contactor: "
                    f"closing this one would join {wired}'s bus to {contactor.evse}'s"
                )
            pair = (contactor.bank, contactor.evse)
            if pair in seen_pair:
                problems.append(
                    f"{where}: {contactor.bank} to {contactor.evse} is listed twice "
                    f"(also contactor[{seen_pair[pair]}])"
                )
            seen_pair.setdefault(pair, index)
            problems += _signal_problems(where, contactor, signals)
        return problems

    def _reach_problems(self) -> list[str]:
        problems = []
        reached: set[str] = set()
        for bank in self.banks():
            if not bank.evse_ids:
                problems.append(f"{bank.name} has no contactor to any EVSE of the pool")
            reached |= bank.evse_ids
        problems += [
            f"EVSE {evse_id} is fed by no bank of the pool"
            for evse_id in self.evse_ids
            if evse_id not in reached
        ]
        return problems


def _signal_problems(
    where: str, contactor: PoolContactorConfig, signals: dict[str, str]
) -> list[str]:
    """Each signal names one contactor: a command shared by two contactors would close both
    (one to each EVSE), a feedback shared would confirm one by the other."""
    problems = []
    for role, signal in (("command", contactor.command), ("feedback", contactor.feedback)):
        mine = f"{where}.{role}"
        if signal in signals:
            problems.append(
                f"{mine}: signal {signal} is also {signals[signal]} (a contactor listed twice)"
            )
        else:
            signals[signal] = mine
    return problems


def _repeated(names: Iterable[str]) -> list[str]:
    return sorted(name for name, count in Counter(names).items() if count > 1)


def pools_fit_station(pools: list[PoolConfig], info: ValidationInfo) -> list[PoolConfig]:
    """Checks across the file (run on Config's `pool`, after its `bus` and `evse`): each pool
    feeds DC EVSEs of this station that no other pool feeds and that have no module stack of
    their own; a module is in one pool only; each contactor signal is used once."""
    problems = []
    repeated = _repeated(pool.name for pool in pools)
    if repeated:
        problems.append(f"pool names must be unique, repeated: {', '.join(repeated)}")
    evses = info.data.get("evse")
    if isinstance(evses, list):
        problems += _evse_problems(pools, [e for e in evses if isinstance(e, EvseConfig)])
    buses = info.data.get("bus")
    if isinstance(buses, list):
        names = [b.name for b in buses if isinstance(b, BusConfig)]
        problems += _module_problems(
            pools,
            names,
            [e for e in evses if isinstance(e, EvseConfig)] if isinstance(evses, list) else [],
        )
        problems += [
            f"pool[{index}].board.bus: no [[bus]] named {pool.board.bus!r}"
            for index, pool in enumerate(pools)
            if pool.board is not None and pool.board.bus is not None and pool.board.bus not in names
        ]
    problems += _shared_signal_problems(pools)
    if problems:
        raise ValueError("; ".join(problems))
    return pools


def _evse_problems(pools: list[PoolConfig], evses: list[EvseConfig]) -> list[str]:
    by_id = {evse.evse_id: evse for evse in evses}
    fed_by: dict[str, str] = {}
    problems = []
    for index, pool in enumerate(pools):
        for evse_id in pool.evse_ids:
            where = f"pool[{index}] {pool.name}"
            evse = by_id.get(evse_id)
            if evse is None:
                problems.append(f"{where}: no EVSE {evse_id!r}")
            elif evse.kind is not Kind.DC:
                problems.append(f"{where}: {evse_id} is an ac EVSE: a pool feeds dc EVSEs")
            elif evse.module:
                problems.append(
                    f"{where}: {evse_id} has [[evse.module]] of its own: a pooled EVSE takes "
                    "its modules from the pool (move them into [[pool.module]])"
                )
            if evse_id in fed_by:
                problems.append(f"{where}: {evse_id} is also fed by pool {fed_by[evse_id]}")
            fed_by.setdefault(evse_id, pool.name)
    return problems


def _module_problems(
    pools: list[PoolConfig], buses: list[str], evses: list[EvseConfig]
) -> list[str]:
    """A module in two pools (by name, or by the device it is: bus, profile and address, or
    EVerest module) would be allocated twice; so would one that is also an EVSE's own."""
    problems = []
    named: dict[str, str] = {}
    devices: dict[tuple[str, ...], str] = {}
    for index, evse in enumerate(evses):
        for m_index, module in enumerate(evse.module):
            for key in _device_keys(module):
                devices.setdefault(key, f"evse[{index}].module[{m_index}]")
    for index, pool in enumerate(pools):
        for m_index, module in enumerate(pool.module):
            where = f"pool[{index}].module[{m_index}]"
            if module.name in named:
                problems.append(f"{where}: module {module.name} is also in {named[module.name]}")
            named.setdefault(module.name, f"pool {pool.name}")
            if module.can is not None and module.can.bus not in buses:
                problems.append(f"{where}.can.bus: no [[bus]] named {module.can.bus!r}")
            for key in _device_keys(module):
                if key in devices:
                    problems.append(f"{where}: the same device as {devices[key]}")
                devices.setdefault(key, where)
    return problems


def _device_keys(module: ModuleConfig) -> list[tuple[str, ...]]:
    keys: list[tuple[str, ...]] = []
    if module.can is not None:
        keys.append(("can", module.can.bus, module.can.profile, str(module.address)))
    if module.everest is not None:
        keys.append(("everest", module.everest.topic_prefix, module.everest.module_id))
    return keys


def _shared_signal_problems(pools: list[PoolConfig]) -> list[str]:
    owner: dict[str, str] = {}
    problems = []
    for pool in pools:
        signals = {c.command for c in pool.contactor} | {c.feedback for c in pool.contactor}
        for signal in sorted(signals):
            if signal in owner:
                problems.append(f"pool {pool.name}: signal {signal} is also pool {owner[signal]}'s")
            owner.setdefault(signal, pool.name)
    return problems
