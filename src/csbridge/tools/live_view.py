"""The demo's screen: what Josev believes about each EVSE, and the latest exchanges."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from csbridge.engine import LimitsEngine
from csbridge.support import Counters
from csbridge.tools.emulator import Exchange, StationView

READY_STYLES = {"evse_ready": "green", "evse_not_ready": "yellow"}


def session_summary(report: dict[str, Any]) -> str:
    """The session as the bridge's limits report has it: state, authorization, last stop; ""
    for a report without one."""
    session = report.get("session")
    if not isinstance(session, dict):
        return ""
    lines = [str(session.get("state", "-"))]
    authorization = session.get("authorization") or {}
    token_type = authorization.get("token_type")
    status = str(authorization.get("status", "-"))
    lines.append(f"auth {status} ({token_type})" if token_type else f"auth {status}")
    last_stop = session.get("last_stop")
    if isinstance(last_stop, dict):
        lines.append(f"last stop: {last_stop.get('reason', '-')}")
    return "\n".join(lines)


def _limits_summary(entry: dict[str, Any]) -> str:
    parts = []
    if "dc" in entry:
        dc = entry["dc"]
        parts.append(
            f"DC {dc['min_voltage']}-{dc['max_voltage']} V, <= {dc['max_current']} A, "
            f"<= {dc['max_power'] / 1000:g} kW, iso {dc.get('isolation_status', '-')}"
        )
    if "dc_bpt" in entry:
        bpt = entry["dc_bpt"]
        parts.append(
            f"discharge <= {bpt['evse_max_discharge_current']} A, "
            f"<= {bpt['evse_max_discharge_power'] / 1000:g} kW"
        )
    if "ac" in entry:
        ac = entry["ac"]
        current = ac["max_current"]
        parts.append(
            f"AC {ac['nominal_voltage']} V, <= {current['l1']}/{current['l2']}/{current['l3']} A"
        )
    if "ac_bpt" in entry:
        power = entry["ac_bpt"]["evse_max_discharge_power"]
        parts.append(f"discharge <= {power['l1']}/{power['l2']}/{power['l3']} W")
    return "\n".join(parts)


def describe_exchange(exchange: Exchange) -> str:
    arrow = "josev -> cs" if exchange.outgoing else "cs -> josev"
    latency = f" {exchange.latency_s * 1000:.2f} ms" if exchange.latency_s is not None else ""
    evses = ""
    if exchange.name == "cs_status_and_limits" and "evses" in exchange.data:
        evses = " evses=" + ",".join(e["evse_id"] for e in exchange.data["evses"])
    problem = f" PROBLEM: {exchange.problem}" if exchange.problem else ""
    return f"{arrow} {exchange.name}/{exchange.type} id={exchange.id[:8]}{latency}{evses}{problem}"


LIMIT_BLOCKS = ("dc", "dc_bpt", "ac", "ac_bpt")
"""The blocks of an EVSE's entry whose fields are limits and present values."""


def entry_values(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An EVSE's entry in cs_status_and_limits as field -> value: status_code and the like as
    they are, each limit block's fields by their own name (the name `binding` uses)."""
    values: dict[str, Any] = {}
    for key, value in entry.items():
        if key in LIMIT_BLOCKS and isinstance(value, Mapping):
            values.update(value)
        elif key != "evse_id":
            values[key] = value
    return values


def _unit(field: str) -> str:
    for word, unit in (("current", " A"), ("power", " W"), ("voltage", " V"), ("ripple", " A")):
        if word in field:
            return unit
    return ""


def shown_value(field: str, value: Any) -> str:
    """80000 W, 32/32/32 A (per phase l1/l2/l3), evse_ready."""
    if isinstance(value, Mapping):
        return "/".join(f"{value.get(phase, '?'):g}" for phase in ("l1", "l2", "l3")) + _unit(field)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:g}{_unit(field)}"


def value_changes(
    previous: Mapping[str, Any] | None,
    current: Mapping[str, Any],
    binding: Mapping[str, str],
) -> list[str]:
    """What changed from `previous` to `current` (both as entry_values gives them), each with
    the source that binds it when the bridge names one: `max_current 160 A -> 240 A (bound by
    hardware)`; every value, without an arrow, when there was nothing before."""
    changes = []
    for field, value in current.items():
        before = None if previous is None else previous.get(field)
        if previous is not None and before == value:
            continue
        text = shown_value(field, value)
        if before is not None:
            text = f"{shown_value(field, before)} -> {text}"
        bound_by = f" (bound by {binding[field]})" if field in binding else ""
        changes.append(f"{field} {text}{bound_by}")
    if previous is not None:
        changes += [f"{field} gone" for field in previous if field not in current]
    return changes


class DemoView:
    """Renders on every refresh from the emulator's view; prints plain lines when not a terminal."""

    def __init__(
        self, broker: str, console: Console, counters: Counters, engine: LimitsEngine
    ) -> None:
        self.broker = broker
        self.engine = engine
        self.console = console
        self.counters = counters
        self.started = time.perf_counter()  # the clock Exchange.at is read from
        self.station_view: StationView | None = None
        self.exchanges: deque[Exchange] = deque(maxlen=12)
        self.events: deque[str] = deque(maxlen=5)
        self.problems = 0
        self.reported: dict[str, dict[str, Any]] = {}
        """Each EVSE's values as the station last sent them (entry_values)."""
        self._engine_ids = set(engine.evse_ids)

    @property
    def plain(self) -> bool:
        return not self.console.is_terminal

    def exchange(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)
        if exchange.problem:
            self.problems += 1
        changes = self._changes(exchange)
        if self.plain:
            line = describe_exchange(exchange)
            if changes:
                line = f"{line}  {changes}"
            self.console.print(line, highlight=False, soft_wrap=True, markup=False)

    def _changes(self, exchange: Exchange) -> str:
        """For the station's cs_status_and_limits: what each EVSE's values became (remembered
        for the next one); for an update, the changed values and what binds them as text."""
        if exchange.outgoing or exchange.name != "cs_status_and_limits" or exchange.problem:
            return ""
        parts = []
        for entry in exchange.data.get("evses", []):
            evse_id = str(entry.get("evse_id"))
            values = entry_values(entry)
            previous = self.reported.get(evse_id)
            self.reported[evse_id] = values
            if exchange.type != "update":
                continue
            binding = self.engine.reported_binding(evse_id) if evse_id in self._engine_ids else {}
            changes = value_changes(previous, values, binding)
            parts.append(f"{evse_id}: {', '.join(changes) if changes else 'no change'}")
        return "; ".join(parts)

    def event(self, text: str) -> None:
        stamped = f"{time.perf_counter() - self.started:6.1f} s  {text}"
        self.events.append(stamped)
        if self.plain:
            self.console.print(f"-- {text}", highlight=False)

    def print_final_view(self) -> None:
        self.console.print(self._evse_table())

    def __rich__(self) -> RenderableType:
        header = Text.assemble(
            ("csbridge demo", "bold"),
            f"  broker {self.broker} (embedded)  up {time.perf_counter() - self.started:.0f} s  ",
            (f"sent {self.counters.total('outbound_published')}", "cyan"),
            f"  rejected {self.counters.total('inbound_rejected')}  ",
            ("Ctrl-C to stop", "dim"),
        )
        events = Text("\n".join(self.events) or "waiting for the first event", style="magenta")
        return Group(
            Panel(header),
            self._evse_table(),
            Panel(events, title="what happens"),
            self._exchange_table(),
        )

    def _evse_table(self) -> Table:
        table = Table(title="What Josev knows (from responses and updates)", expand=True)
        table.add_column("EVSE")
        table.add_column("status")
        table.add_column("limits")
        table.add_column("bound by (bridge)")
        table.add_column("session (bridge)")
        evses = self.station_view.evses if self.station_view else {}
        reports = self.engine.reports
        for evse_id, entry in evses.items():
            status = entry["status_code"]
            binding = self.engine.reported_binding(evse_id)
            bound_by = "\n".join(
                f"{key}: {source}"
                for key, source in binding.items()
                if key.startswith(("max_current", "max_power", "evse_max"))
            )
            table.add_row(
                evse_id,
                Text(status, style=READY_STYLES.get(status, "red")),
                _limits_summary(entry),
                bound_by,
                session_summary(dict(reports.get(evse_id))) if evse_id in reports.evse_ids else "",
            )
        return table

    def _exchange_table(self) -> Table:
        table = Table(title="MQTT exchanges (josev/cs <-> cs/josev)", expand=True)
        for column in ("t", "direction", "message", "id", "latency"):
            table.add_column(column)
        for exchange in self.exchanges:
            table.add_row(
                f"{max(0.0, exchange.at - self.started):5.1f}",
                "josev -> cs" if exchange.outgoing else "cs -> josev",
                Text(f"{exchange.name}/{exchange.type}", style="red" if exchange.problem else ""),
                exchange.id[:8],
                f"{exchange.latency_s * 1000:.2f} ms" if exchange.latency_s is not None else "",
            )
        return table
