"""What check-config warns of in the profiles a configuration uses: a profile of the search path
that replaces a shipped one, and a deadline no longer than the period of a message it waits
for (the values only that message carries go stale between two frames, and the device counts
as gone or failing for good: a module with `poll_period_s = 0.1`, so a 0.3 s deadline, whose
capability comes every second).

Staleness is per value, so each message is judged alone: a fast status frame does not keep the
values of a slow capability frame fresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from csbridge.config import Config, ConfigError
from csbridge.sources.can.codec import DbcCodec
from csbridge.sources.can.profile import MessageSpec, Profile, ProfileRegistry


@dataclass(frozen=True, slots=True)
class MessagePeriod:
    message: str
    period_s: float
    source: str
    """Where the period comes from: `period_s`, `GenMsgCycleTime` or `poll_period_s`."""
    fields: tuple[str, ...]
    """The reading fields only this message's frames keep fresh."""


def _fields(spec: MessageSpec) -> tuple[str, ...]:
    names = [v.field for v in spec.values] + [f.field for f in spec.flags]
    names += [s.field for s in spec.signals]
    return tuple(dict.fromkeys(names))


def message_periods(profile: Profile, registry: ProfileRegistry) -> list[MessagePeriod]:
    """How often each message that carries readings arrives, where the profile says: its own
    `period_s`; a dbc message's GenMsgCycleTime; for a profile that polls, the poll period
    (every reply answers a poll). Messages of unknown period are left out."""
    polls = any(spec.poll for spec in profile.message)
    database: Any = None
    if profile.header.family == "dbc":
        try:
            database = DbcCodec(profile, registry.dbc_path(profile)).database
        except Exception:  # a broken DBC is check-config's error, not a warning
            database = None
    found: list[MessagePeriod] = []
    for spec in profile.message:
        fields = _fields(spec)
        if not fields or spec.error_reply:
            continue
        if spec.period_s is not None:
            found.append(MessagePeriod(spec.name, spec.period_s, "period_s", fields))
        elif database is not None and _cycle_ms(database, spec.name):
            cycle = _cycle_ms(database, spec.name) / 1000
            found.append(MessagePeriod(spec.name, cycle, "GenMsgCycleTime", fields))
        elif polls:
            period = profile.header.poll_period_s
            found.append(MessagePeriod(spec.name, period, "poll_period_s", fields))
    return found


def _cycle_ms(database: Any, name: str) -> float:
    try:
        cycle = database.get_message_by_name(name).cycle_time
    except KeyError:
        return 0.0
    return float(cycle or 0)


def _profile(registry: ProfileRegistry, name: str) -> Profile | None:
    try:
        return registry.get(name)
    except (KeyError, ConfigError):
        return None  # check-config refuses it on its own


def _late(
    where: str, deadline_s: float, why: str, profile: Profile, registry: ProfileRegistry
) -> list[str]:
    return [
        f"{where}: its deadline of {deadline_s:g} s ({why}) is not longer than the "
        f"{period.period_s:g} s period ({period.source}) of {profile.name}'s {period.message} "
        f"message: {', '.join(period.fields)} go stale between two frames; make the deadline "
        f"longer than {period.period_s:g} s (two periods or more ride out one lost frame)"
        for period in message_periods(profile, registry)
        if deadline_s <= period.period_s
    ]


def deadline_warnings(config: Config, registry: ProfileRegistry) -> list[str]:
    """Each CAN device whose deadline is not longer than a period of its profile's messages."""
    warnings: list[str] = []
    for index, evse in enumerate(config.evse):
        for m_index, module in enumerate(evse.module):
            profile = _profile(registry, module.can.profile) if module.can is not None else None
            if profile is not None:
                why = (
                    "deadline_s"
                    if module.deadline_s is not None
                    else f"3 x poll_period_s {module.poll_period_s:g} s"
                )
                where = f"evse[{index}].module[{m_index}] ({module.name})"
                warnings += _late(where, module.freshness_deadline_s, why, profile, registry)
        imd, board = evse.imd, evse.board
        if imd is not None and imd.can is not None:
            profile = _profile(registry, imd.can.profile)
            if profile is not None:
                where = f"evse[{index}].imd"
                warnings += _late(where, imd.deadline_s, "deadline_s", profile, registry)
        if board is not None and board.can is not None:
            profile = _profile(registry, board.can.profile)
            if profile is not None:
                where = f"evse[{index}].board"
                warnings += _late(where, board.deadline_s, "deadline_s", profile, registry)
    return warnings


def profile_warnings(config: Config, registry: ProfileRegistry | None = None) -> list[str]:
    """check-config's warnings about profiles: shipped ones replaced, deadlines too short."""
    try:
        registry = registry or ProfileRegistry(extra=config.station.profile_dirs)
    except ConfigError:
        return []  # a name found twice: check-config has refused the configuration already
    warnings = [
        f"profile {name!r}: {own} replaces the shipped {shipped}"
        for name, (own, shipped) in sorted(registry.shadowed.items())
    ]
    return warnings + deadline_warnings(config, registry)
