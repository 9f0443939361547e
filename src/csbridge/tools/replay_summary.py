"""What `csbridge replay` found in its logs, for a person (lines on stderr) or a program
(`--json`): frames per bus, outcomes, unknown ids, error frames, lines not read, the devices
never seen and the bus names no configuration has, and each EVSE's limits as last reported.
`--strict` turns the last three into a failure."""

from __future__ import annotations

import re
from typing import Any

from csbridge.tools.replay import ReplayRun

SHOWN_UNKNOWN_IDS = 20


def never_seen(run: ReplayRun) -> list[str]:
    return [f"{t.evse_id}/{t.name}" for t in run.router.targets() if not t.frames]


def unknown_buses(run: ReplayRun) -> list[str]:
    """Buses frames were put on that the configuration does not have."""
    configured = {bus.name for bus in run.config.bus}
    return sorted(set(run.stats.frames) - configured)


def bus_hint(run: ReplayRun, bus: str) -> str:
    """The --bus-map that most likely puts `bus` on a configured bus: one whose name ends it
    (vcan1: can1), else one with the same number, else the first no frame reached."""
    names = [b.name for b in run.config.bus]
    if not names:
        return "the configuration has no [[bus]]"
    number = re.search(r"(\d+)$", bus)
    quiet = [name for name in names if not run.stats.frames[name]]
    candidates = (
        [name for name in names if bus.endswith(name)]
        + [name for name in names if number and name.endswith(number[1])]
        + quiet
        + names
    )
    return f"--bus-map {bus}={candidates[0]}"


def strict_problems(run: ReplayRun) -> list[str]:
    """Why `--strict` fails: a configured device never seen, a bus the configuration lacks, a
    line not read."""
    problems = [f"device {name} was never seen" for name in never_seen(run)]
    problems += [
        f"bus {bus} is not configured ({bus_hint(run, bus)})" for bus in unknown_buses(run)
    ]
    problems += [
        f"{source}: {count} line{'s' if count > 1 else ''} not read"
        for source, count in sorted(run.stats.bad_lines.items())
    ]
    return problems


def summary_lines(run: ReplayRun, published: int) -> list[str]:
    lines = [f"frames: {run.frames}"]
    for (profile, outcome), count in sorted(run.router.outcomes.items()):
        lines.append(f"  {profile}: {outcome} {count}")
    for target in run.router.targets():
        seen = "seen" if target.frames else "NOT SEEN"
        lines.append(
            f"device {target.evse_id}/{target.name}: {seen}, {target.frames} frames decoded"
        )
    renamed = {name: bus for name, bus in run.stats.log_buses.items() if name != bus}
    seen_names = ", ".join(
        f"{name} (as {renamed[name]})" if name in renamed else name
        for name in sorted(run.stats.log_buses)
    )
    lines.append(f"buses in the logs: {seen_names or 'none'}")
    configured = [bus.name for bus in run.config.bus]
    for bus in unknown_buses(run):
        lines.append(
            f"bus {bus}: {run.stats.frames[bus]} frames on a bus the configuration lacks "
            f"(it has {', '.join(configured) or 'none'}): map it with {bus_hint(run, bus)}"
        )
    for bus, count in sorted(run.stats.error_frames.items()):
        lines.append(f"error frames: {bus} {count}")
    # on a bus the configuration lacks every id is unknown: named once above, not per id
    known_bus = {bus: count for bus, count in run.unknown_ids.items() if bus[0] in configured}
    for (bus, identifier), count in sorted(known_bus.items())[:SHOWN_UNKNOWN_IDS]:
        lines.append(f"unknown id: {bus} 0x{identifier:X} {count}")
    if len(known_bus) > SHOWN_UNKNOWN_IDS:
        lines.append(f"unknown ids: {len(known_bus)} in all (--json lists each)")
    for source, count in sorted(run.stats.bad_lines.items()):
        lines.append(f"{source}: {count} line{'s' if count > 1 else ''} not read")
    for source in run.stats.untimed:
        lines.append(
            f"{source}: no timestamps (plain candump): frames timed as they were read; "
            "candump -L keeps the recorded clock"
        )
    missing = never_seen(run)
    if missing:
        lines.append(f"never seen: {', '.join(missing)}")
    for name, allocation in run.allocations().items():
        lines.append(f"pool {name} ({allocation.policy.value}), no session: each EVSE would get")
        for evse_id, share in allocation.would_get.items():
            modules = ", ".join(share.modules) or "none"
            lines.append(f"  {evse_id}: {share.max_power_w:g} W from {modules}")
    lines.append(f"published: {published} messages")
    return lines


def summary_document(run: ReplayRun, published: int) -> dict[str, Any]:
    """The summary as one JSON object (`replay --json`)."""
    outcomes: dict[str, dict[str, int]] = {}
    for (profile, outcome), count in sorted(run.router.outcomes.items()):
        outcomes.setdefault(profile, {})[outcome] = count
    configured = {bus.name for bus in run.config.bus}
    buses = {
        bus: {
            "frames": run.stats.frames[bus],
            "error_frames": run.stats.error_frames[bus],
            "configured": bus in configured,
            "log_names": sorted(n for n, b in run.stats.log_buses.items() if b == bus),
        }
        for bus in sorted(set(run.stats.frames) | configured)
    }
    return {
        "frames": run.frames,
        "buses": buses,
        "outcomes": outcomes,
        "unknown_ids": [
            {"bus": bus, "id": f"0x{identifier:X}", "frames": count}
            for (bus, identifier), count in sorted(run.unknown_ids.items())
        ],
        "error_frames": dict(sorted(run.stats.error_frames.items())),
        "unknown_buses": unknown_buses(run),
        "devices": [
            {"evse_id": t.evse_id, "name": t.name, "frames": t.frames, "seen": t.frames > 0}
            for t in run.router.targets()
        ],
        "never_seen": never_seen(run),
        "lines_not_read": dict(sorted(run.stats.bad_lines.items())),
        "untimed": list(run.stats.untimed),
        "published": published,
        "limits": dict(sorted(run.reported.items())),
        "pools": {
            name: {
                "policy": allocation.policy.value,
                "would_get": {
                    evse_id: {"max_power_w": share.max_power_w, "modules": list(share.modules)}
                    for evse_id, share in allocation.would_get.items()
                },
            }
            for name, allocation in run.allocations().items()
        },
        "problems": strict_problems(run),
    }
