"""`csbridge status`: a live view of what the bridge reports, built only from its retained topics.

`<prefix>/<evse_id>/limits` says what Josev was told about each EVSE, which source binds each
limit, how every source is doing and (from a bridge with session state machines) where the
EVSE's session stands; `<status_topic>` says whether the bridge is online. The rendering
functions below take a report dict (and, to say how long ago something was, the wall-clock time
of now) and return text or a rich renderable, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

import aiomqtt
import orjson
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from csbridge.config import broker_address
from csbridge.messages import SchemaRegistry, parse_josev_date_time
from csbridge.mqtt import CALL_TIMEOUT_S, BrokerLogin
from csbridge.protocol import SCHEMA_OF, Leaf

Report = Mapping[str, Any]

QOS = 1
REFRESH_PER_S = 4
MAX_WARNINGS = 5
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_SHOWN_PAYLOAD = 40
STATUS_STYLES = {"evse_ready": "green", "evse_not_ready": "yellow"}
GOOD_STATES = {"healthy", "fresh", "enabled", "inactive", "active"}
SESSION_STYLES = {
    "charging": "green",
    "faulted": "bold red",
    "unavailable": "yellow",
    "stopping": "yellow",
    "finishing": "yellow",
}
"""How the rich view colours a session state; others are plain."""
WILDCARDS = ("+", "#")


class LimitField(NamedTuple):
    block: str
    """Where in the reported entry: dc, dc_bpt, ac or ac_bpt."""
    key: str
    """The field in that block, which is also its key in `binding`."""
    unit: str


LIMIT_FIELDS = (
    LimitField("dc", "max_current", "A"),
    LimitField("dc", "min_current", "A"),
    LimitField("dc", "max_power", "W"),
    LimitField("dc", "max_voltage", "V"),
    LimitField("dc", "min_voltage", "V"),
    LimitField("dc_bpt", "evse_max_discharge_current", "A"),
    LimitField("dc_bpt", "evse_max_discharge_power", "W"),
    LimitField("ac", "max_current", "A"),
    LimitField("ac_bpt", "evse_max_discharge_power", "W"),
)


class LimitRow(NamedTuple):
    name: str
    value: str
    bound_by: str


class SourceRow(NamedTuple):
    source: str
    state: str
    age: str = ""
    voltage: str = ""
    current: str = ""
    max_current: str = ""
    max_power: str = ""
    temperature: str = ""
    detail: str = ""


SOURCE_COLUMNS = ("source", "state", "age", "V", "A", "max A", "max W", "temperature", "detail")


class SessionRow(NamedTuple):
    """The report's `session` block as text; a field the block leaves out is ""."""

    state: str
    since: str
    held_for: str
    """How long the state has held, when the time of now is known."""
    authorization: str
    connector: str
    lock: str = ""
    last_stop: str = ""
    last_stop_at: str = ""
    last_stop_ago: str = ""
    meter_public_key: str = ""


SESSION_COLUMNS = ("session", "since", "for", "authorization", "connector", "lock", "last stop")

# -- numbers -------------------------------------------------------------------------------


def number(value: Any) -> str:
    """As short as exact allows: 80000, 159.5, 0.25."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


def quantity(value: Any, unit: str) -> str:
    """A value with its unit; per-phase values as l1 / l2 / l3; nothing when unknown."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        phases = " / ".join(number(value.get(phase, "?")) for phase in ("l1", "l2", "l3"))
        return f"{phases} {unit} (l1/l2/l3)"
    return f"{number(value)} {unit}"


def seconds(value: Any) -> str:
    return "" if not isinstance(value, int | float) else f"{value:.1f} s"


def elapsed(since: Any, wall_now: datetime | None) -> str:
    """How long from `since` (a date-time as the report writes it) to `wall_now`, in the two
    largest units: 42 s, 3 min 5 s, 2 h 7 min, 4 d 3 h; "" when either is unknown."""
    if wall_now is None or not isinstance(since, str):
        return ""
    moment = parse_josev_date_time(since)
    if moment is None:
        return ""
    total = max(0, int((wall_now - moment).total_seconds()))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def ohms(value: Any) -> str:
    if not isinstance(value, int | float):
        return ""
    for scale, prefix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{number(round(value / scale, 3))} {prefix}Ohm"
    return f"{number(value)} Ohm"


# -- what a report says, as rows -----------------------------------------------------------


def limit_rows(report: Report) -> list[LimitRow]:
    """Every reported limit with the source that binds it; bindings without a limit come last."""
    limits = report["limits"]
    binding: Mapping[str, str] = report["binding"]
    rows: list[LimitRow] = []
    shown: set[str] = set()
    for limit in LIMIT_FIELDS:
        block = limits.get(limit.block)
        if isinstance(block, Mapping) and limit.key in block:
            value = quantity(block[limit.key], limit.unit)
            rows.append(LimitRow(limit.key, value, binding.get(limit.key, "-")))
            shown.add(limit.key)
    rows.extend(LimitRow(key, "-", source) for key, source in binding.items() if key not in shown)
    return rows


def isolation(report: Report) -> str:
    """What Josev was told about isolation, else what the IMD says, else '-'."""
    dc = report["limits"].get("dc") or {}
    imd = report["sources"].get("imd") or {}
    return str(dc.get("isolation_status") or imd.get("isolation") or "-")


def _flags(entry: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    return [name.replace("_", " ") for name in names if entry.get(name) is True]


def module_row(name: str, module: Mapping[str, Any]) -> SourceRow:
    return SourceRow(
        source=f"module {name} @{module.get('address', '?')}",
        state=str(module["state"]),
        age=seconds(module.get("age_s")),
        voltage=quantity(module.get("output_voltage"), "V"),
        current=quantity(module.get("output_current"), "A"),
        max_current=quantity(module.get("max_current"), "A"),
        max_power=quantity(module.get("max_power"), "W"),
        temperature=quantity(module.get("temperature_c"), "degC"),
        detail=", ".join(_flags(module, ("fault", "derating"))),
    )


def imd_row(imd: Mapping[str, Any]) -> SourceRow:
    detail = [ohms(imd.get("resistance_ohm")), f"isolation {imd.get('isolation', '-')}"]
    detail.append(str(imd.get("rule", "")))
    return SourceRow(
        source="imd",
        state=str(imd["state"]),
        age=seconds(imd.get("age_s")),
        detail=", ".join(part for part in detail if part),
    )


def board_row(board: Mapping[str, Any]) -> SourceRow:
    temperatures = [
        f"{label} {quantity(board[key], 'degC')}"
        for label, key in (("evse", "evse_temperature_c"), ("plug", "plug_temperature_c"))
        if key in board
    ]
    detail = [f"cp {board['cp_state']}"] if "cp_state" in board else []
    if "contactor_closed" in board:
        detail.append("contactor closed" if board["contactor_closed"] else "contactor open")
    detail += [flag.upper() for flag in _flags(board, ("emergency_stop", "rcd_error"))]
    return SourceRow(
        source="board",
        state=str(board["state"]),
        age=seconds(board.get("age_s")),
        temperature=", ".join(temperatures),
        detail=", ".join(detail),
    )


def external_row(external: Mapping[str, Any]) -> SourceRow:
    active = bool(external.get("active"))
    if not active:
        detail = "configured default" if {"max_current", "max_power"} & external.keys() else ""
    elif "expires_in_s" in external:
        detail = f"expires in {seconds(external['expires_in_s'])}"
    else:
        detail = "until replaced"
    return SourceRow(
        source="external limit",
        state="active" if active else "inactive",
        max_current=quantity(external.get("max_current"), "A"),
        max_power=quantity(external.get("max_power"), "W"),
        detail=detail,
    )


def operator_row(operator: Mapping[str, Any]) -> SourceRow:
    return SourceRow(
        source="operator",
        state="enabled" if operator.get("enabled") else "disabled",
        detail=str(operator.get("reason", "")),
    )


def session_row(report: Report, wall_now: datetime | None = None) -> SessionRow | None:
    """The EVSE's session, or None for a report without one (a bridge from before sessions)."""
    session = report.get("session")
    if not isinstance(session, Mapping):
        return None
    authorization = session.get("authorization") or {}
    status = str(authorization.get("status", "-"))
    token_type = authorization.get("token_type")
    connector = str(session.get("connector_status", "-"))
    if "charging_status" in session:
        connector = f"{connector} ({session['charging_status']})"
    last_stop = session.get("last_stop") or {}
    return SessionRow(
        state=str(session.get("state", "-")),
        since=str(session.get("since", "")),
        held_for=elapsed(session.get("since"), wall_now),
        authorization=f"{status} ({token_type})" if token_type else status,
        connector=connector,
        lock=str(session.get("lock", "")),
        last_stop=str(last_stop.get("reason", "")),
        last_stop_at=str(last_stop.get("at", "")),
        last_stop_ago=elapsed(last_stop.get("at"), wall_now),
        meter_public_key=str(session.get("meter_public_key", "")),
    )


def josev_line(report: Report) -> str | None:
    """What Josev says of itself (its services, OCPP boot and websocket, clock) in one line,
    or None for a report without it (a bridge from before it asked) or with nothing in it."""
    josev = report.get("josev")
    if not isinstance(josev, Mapping):
        return None
    services = josev.get("services") or {}
    parts = [f"{name} {entry.get('status', '-')}" for name, entry in sorted(services.items())]
    for kind, label in (("boot_status", "boot"), ("websocket_status", "websocket")):
        notice = josev.get(kind)
        if isinstance(notice, Mapping):
            status = (notice.get("data") or {}).get("status")
            parts.append(f"{label} {status[:64] if isinstance(status, str) else 'received'}")
    offset = josev.get("clock_offset_s")
    if isinstance(offset, int | float):
        parts.append(f"clock {offset:+.1f} s")
    return "josev  " + "  ".join(parts) if parts else None


def pool_line(report: Report) -> str | None:
    """A pooled EVSE's allocation in one line: its pool, its share and why, and each module
    that serves it or moves to or from it (name, phase, `>` the EVSE it goes to); None for an
    EVSE fed by no pool."""
    pool = report.get("pool")
    if not isinstance(pool, Mapping):
        return None
    settled = "settled" if pool.get("settled") else "moving"
    parts = [
        f"pool {pool.get('name')} ({pool.get('policy')})",
        f"share {quantity(pool.get('share_w'), 'W')} ({pool.get('why')})",
        f"decision {pool.get('decision')} {settled}",
    ]
    told = pool.get("told")
    if isinstance(told, Mapping) and isinstance(told.get("s"), int | float):
        # How long the EVSE's update of that decision took to be sent to Josev, from the
        # decision (a lowered limit) or from its modules delivering (a raise).
        parts.append(
            f"told decision {told.get('decision')} +{told['s'] * 1000:.0f} ms"
            f" after {told.get('after')}"
        )
    modules = []
    for module in pool.get("modules") or []:
        if not isinstance(module, Mapping):
            continue
        text = str(module.get("name"))
        if module.get("serving"):
            text += " serving"
        else:
            target = module.get("target")
            text += f" {module.get('phase')}" + (f">{target}" if target else "")
        modules.append(text)
    parts.append("modules " + (", ".join(modules) if modules else "none"))
    return "  ".join(parts)


def source_rows(report: Report) -> list[SourceRow]:
    sources = report["sources"]
    rows = [module_row(name, module) for name, module in sources.get("modules", {}).items()]
    if "imd" in sources:
        rows.append(imd_row(sources["imd"]))
    if "board" in sources:
        rows.append(board_row(sources["board"]))
    rows.append(external_row(sources["external"]))
    rows.append(operator_row(sources["operator"]))
    return rows


# -- plain text ----------------------------------------------------------------------------


def evse_title(evse_id: str, report: Report) -> str:
    status = report["limits"]["status_code"]
    return f"{evse_id}  {status}  isolation {isolation(report)}"


def _source_line(row: SourceRow) -> str:
    parts = [row.source, row.state]
    if row.age:
        parts.append(f"age {row.age}")
    parts += [part for part in (row.voltage, row.current) if part]
    parts += [f"max {part}" for part in (row.max_current, row.max_power) if part]
    parts += [part for part in (row.temperature, row.detail) if part]
    return "  ".join(parts)


def session_lines(row: SessionRow) -> list[str]:
    """The session as one line, and the last stop as another when there was one."""
    since = f"since {row.since}" + (f" ({row.held_for})" if row.held_for else "")
    parts = [f"session {row.state}", since, f"authorization {row.authorization}"]
    parts.append(f"connector {row.connector}")
    if row.lock:
        parts.append(f"lock {row.lock}")
    lines = ["  ".join(parts)]
    if row.last_stop or row.last_stop_at:
        ago = f" ({row.last_stop_ago} ago)" if row.last_stop_ago else ""
        lines.append(f"last stop {row.last_stop}  at {row.last_stop_at}{ago}")
    if row.meter_public_key:
        lines.append(f"meter public key {row.meter_public_key}")
    return lines


def evse_text(evse_id: str, report: Report, wall_now: datetime | None = None) -> str:
    """One EVSE as a compact block of plain lines: its session (when the report has one),
    limits with what binds them, then sources. `wall_now` adds how long ago things were."""
    limits = limit_rows(report)
    name_width = max((len(row.name) for row in limits), default=0)
    value_width = max((len(row.value) for row in limits), default=0)
    lines = [evse_title(evse_id, report)]
    session = session_row(report, wall_now)
    if session is not None:
        lines += [f"  {line}" for line in session_lines(session)]
    josev = josev_line(report)
    if josev is not None:
        lines.append(f"  {josev}")
    pool = pool_line(report)
    if pool is not None:
        lines.append(f"  {pool}")
    lines += [
        f"  {row.name:<{name_width}}  {row.value:<{value_width}}  bound by {row.bound_by}"
        for row in limits
    ]
    lines += [f"  {_source_line(row)}" for row in source_rows(report)]
    return "\n".join(lines)


# -- what has arrived ----------------------------------------------------------------------


class Arrival(NamedTuple):
    kind: Literal["report", "cleared", "status", "warning", "ignored"]
    evse_id: str = ""
    text: str = ""


@dataclass(slots=True)
class StatusBoard:
    """The latest of everything the bridge retains, keyed by EVSE id from the topic."""

    broker: str
    prefix: str = "csbridge"
    status_topic: str = "csbridge/status"
    bridge: str | None = None
    reports: dict[str, Report] = field(default_factory=dict)
    received_at: dict[str, float] = field(default_factory=dict)
    last_report_at: float | None = None
    warnings: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_WARNINGS))

    @property
    def limits_filter(self) -> str:
        return f"{self.prefix}/+/{Leaf.LIMITS.value}"

    def evse_of(self, topic: str) -> str | None:
        head = f"{self.prefix}/"
        tail = f"/{Leaf.LIMITS.value}"
        if not topic.startswith(head) or not topic.endswith(tail):
            return None
        evse_id = topic[len(head) : len(topic) - len(tail)]
        return evse_id if evse_id and "/" not in evse_id else None

    def take(self, topic: str, payload: bytes, now: float, registry: SchemaRegistry) -> Arrival:
        if topic == self.status_topic:
            self.bridge = payload.decode(errors="replace")[:MAX_SHOWN_PAYLOAD] or None
            return Arrival("status", text=self.bridge or "unknown")
        evse_id = self.evse_of(topic)
        if evse_id is None:
            return Arrival("ignored")
        if not payload:  # the retained report was deleted
            self.reports.pop(evse_id, None)
            self.received_at.pop(evse_id, None)
            return Arrival("cleared", evse_id)
        parsed = parse_report(evse_id, payload, registry)
        if isinstance(parsed, str):
            warning = f"{topic}: {parsed}"
            self.warnings.append(warning)
            return Arrival("warning", evse_id, warning)
        self.reports[evse_id] = parsed
        self.received_at[evse_id] = self.last_report_at = now
        return Arrival("report", evse_id)


def parse_report(evse_id: str, payload: bytes, registry: SchemaRegistry) -> Report | str:
    """The report, or why it is not shown."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return f"ignored: {len(payload)} bytes, more than {MAX_PAYLOAD_BYTES}"
    try:
        document: Any = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        return f"ignored: not JSON: {error}"
    violation = registry.violation(SCHEMA_OF[Leaf.LIMITS], document)
    if violation is not None:
        return f"ignored: invalid {violation}"
    named = document["limits"]["evse_id"]
    if named != evse_id:
        return f"ignored: the report is for {named!r}, the topic for {evse_id!r}"
    report: Report = document
    return report


def _ago(at: float | None, now: float) -> str:
    return "none yet" if at is None else f"{max(0.0, now - at):.1f} s ago"


def header_text(board: StatusBoard, now: float) -> str:
    bridge = board.bridge or "unknown"
    return (
        f"csbridge status  broker {board.broker}  bridge {bridge}  "
        f"EVSEs {len(board.reports)}  last report {_ago(board.last_report_at, now)}"
    )


def plain_lines(
    board: StatusBoard, arrival: Arrival, now: float, wall_now: datetime | None = None
) -> list[str]:
    """What a pipe gets for one arrival: a snapshot of the EVSE whose report came in."""
    if arrival.kind == "report":
        report = board.reports[arrival.evse_id]
        text = evse_text(arrival.evse_id, report, wall_now)
        return [f"== {header_text(board, now)}", text, ""]
    if arrival.kind == "status":
        return [f"-- bridge {arrival.text} ({board.status_topic})"]
    if arrival.kind == "cleared":
        return [f"-- {arrival.evse_id}: retained limits report removed"]
    if arrival.kind == "warning":
        return [f"warning: {arrival.text}"]
    return []


# -- rich ----------------------------------------------------------------------------------


def _state_text(state: str) -> Text:
    return Text(state, style="green" if state in GOOD_STATES else "bold red")


def limits_table(report: Report) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="limits (as told to Josev)")
    for column in ("limit", "value", "bound by"):
        table.add_column(column)
    for row in limit_rows(report):
        table.add_row(Text(row.name), Text(row.value, justify="right"), Text(row.bound_by))
    return table


def sources_table(report: Report) -> Table:
    """Every source of the EVSE; columns no source fills are left out."""
    rows = source_rows(report)
    used = [i for i in range(len(SOURCE_COLUMNS)) if i < 2 or any(row[i] for row in rows)]
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="sources")
    for i in used:
        table.add_column(SOURCE_COLUMNS[i])
    for row in rows:
        table.add_row(*(_state_text(row[i]) if i == 1 else Text(row[i]) for i in used))
    return table


def session_table(row: SessionRow) -> Table:
    """The session in one row; the lock and last-stop columns only when the report has them."""
    last_stop = row.last_stop
    if row.last_stop_at:
        when = f"{row.last_stop_ago} ago" if row.last_stop_ago else row.last_stop_at
        last_stop = f"{last_stop} ({when})"
    cells = (
        Text(row.state, style=SESSION_STYLES.get(row.state, "")),
        Text(row.since),
        Text(row.held_for),
        Text(row.authorization),
        Text(row.connector),
        Text(row.lock),
        Text(last_stop),
    )
    used = [i for i, cell in enumerate(cells) if i < 2 or cell.plain]
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="session")
    for i in used:
        table.add_column(SESSION_COLUMNS[i])
    table.add_row(*(cells[i] for i in used))
    return table


def render_evse(
    evse_id: str, report: Report, received: str = "", wall_now: datetime | None = None
) -> Panel:
    """One EVSE: its status, its session (when the report has one), its limits with what binds
    each, and its sources."""
    status = str(report["limits"]["status_code"])
    title = Text(evse_title(evse_id, report), style=STATUS_STYLES.get(status, "bold red"))
    parts: list[RenderableType] = [limits_table(report), sources_table(report)]
    session = session_row(report, wall_now)
    if session is not None:
        parts.insert(0, session_table(session))
        if session.meter_public_key:  # whole: it is compared character by character
            parts.insert(1, Text(f"meter public key {session.meter_public_key}"))
    josev = josev_line(report)
    if josev is not None:
        parts.append(Text(josev))
    pool = pool_line(report)
    if pool is not None:
        parts.insert(0, Text(pool))
    return Panel(
        Group(*parts),
        title=title,
        title_align="left",
        subtitle=Text(received) if received else None,
        subtitle_align="right",
    )


def render_screen(
    board: StatusBoard, now: float, wall_now: datetime | None = None
) -> RenderableType:
    header = Text(header_text(board, now), style="bold")
    if board.bridge not in (None, "online"):
        header.append("\nthe bridge is not online: what follows is its last word", "bold red")
    parts: list[RenderableType] = [Panel(header)]
    if not board.reports:
        parts.append(Text(f"waiting for retained reports on {board.limits_filter}", "yellow"))
    for evse_id in sorted(board.reports):
        received = f"received {_ago(board.received_at.get(evse_id), now)}"
        parts.append(render_evse(evse_id, board.reports[evse_id], received, wall_now))
    if board.warnings:
        parts.append(Panel(Text("\n".join(board.warnings), "yellow"), title="warnings"))
    return Group(*parts)


# -- the watcher ---------------------------------------------------------------------------


def argument_problems(
    broker: str, prefix: str, status_topic: str, duration_s: float | None
) -> list[str]:
    """What is wrong with the command's arguments, each naming its option."""
    problems: list[str] = []
    try:
        broker_address(broker)
    except ValueError as error:
        problems.append(f"--broker: {error}")
    for option, topic in (("--prefix", prefix), ("--status-topic", status_topic)):
        if not topic or any(wildcard in topic for wildcard in WILDCARDS):
            problems.append(f"{option}: {topic!r} must be a topic without + or #")
    if duration_s is not None and duration_s <= 0:
        problems.append(f"--duration: {number(duration_s)} must be more than 0")
    return problems


def _client(broker: str, login: BrokerLogin | None) -> aiomqtt.Client:
    options = (login or BrokerLogin()).client_options(broker)
    return aiomqtt.Client(**options, clean_session=True, timeout=CALL_TIMEOUT_S)


def _payload(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


async def _watch_plain(
    client: aiomqtt.Client, board: StatusBoard, registry: SchemaRegistry, console: Console
) -> None:
    async for message in client.messages:
        now = time.monotonic()
        arrival = board.take(message.topic.value, _payload(message), now, registry)
        for line in plain_lines(board, arrival, now, datetime.now(UTC)):
            console.print(line, markup=False, highlight=False, soft_wrap=True)


async def _repaint(live: Live, board: StatusBoard) -> None:
    while True:
        live.update(render_screen(board, time.monotonic(), datetime.now(UTC)), refresh=True)
        await asyncio.sleep(1 / REFRESH_PER_S)


async def _watch_live(
    client: aiomqtt.Client, board: StatusBoard, registry: SchemaRegistry, console: Console
) -> None:
    first = render_screen(board, time.monotonic(), datetime.now(UTC))
    with Live(first, console=console, auto_refresh=False) as live:
        repaint = asyncio.create_task(_repaint(live, board), name="status-repaint")
        try:
            async for message in client.messages:
                board.take(message.topic.value, _payload(message), time.monotonic(), registry)
        finally:
            repaint.cancel()
            await asyncio.gather(repaint, return_exceptions=True)
            live.update(render_screen(board, time.monotonic(), datetime.now(UTC)))


Watch = Callable[[aiomqtt.Client, StatusBoard, SchemaRegistry, Console], Awaitable[None]]


def _json_watch(mode: Literal["once", "changes"], write: Callable[[dict[str, Any]], None]) -> Watch:
    from csbridge.tools import status_json  # noqa: PLC0415 - only --json needs it

    take = status_json.write_once if mode == "once" else status_json.write_changes

    async def watch(
        client: aiomqtt.Client, board: StatusBoard, registry: SchemaRegistry, _: Console
    ) -> None:
        await take(_arriving(client), board, registry, write, time.monotonic)

    return watch


async def _arriving(client: aiomqtt.Client) -> AsyncIterator[_Arrived]:
    async for message in client.messages:
        yield _Arrived(message.topic.value, _payload(message), bool(message.retain))


class _Arrived(NamedTuple):
    topic: str
    payload: bytes
    retain: bool


async def watch_status(
    broker: str,
    *,
    prefix: str = "csbridge",
    status_topic: str = "csbridge/status",
    duration_s: float | None,
    console: Console,
    login: BrokerLogin | None = None,
    json_mode: Literal["once", "changes"] | None = None,
    write_json: Callable[[dict[str, Any]], None] | None = None,
    errors: Console | None = None,
) -> int:
    """Show the bridge's retained reports until the duration ends (or Ctrl-C); 0, or 1 when the
    broker cannot be reached or is lost (said on `errors`, default `console`). A bad broker URL
    raises ValueError. With `json_mode` JSON objects go to `write_json` instead (status_json:
    once, or one per change)."""
    board = StatusBoard(broker, prefix, status_topic)
    registry = SchemaRegistry()
    client = _client(broker, login)
    connected = False
    watch: Watch = _watch_live if console.is_terminal else _watch_plain
    if json_mode is not None and write_json is not None:
        watch = _json_watch(json_mode, write_json)
    try:
        async with client:
            connected = True
            await client.subscribe(status_topic, qos=QOS)
            await client.subscribe(board.limits_filter, qos=QOS)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(duration_s):
                    await watch(client, board, registry, console)
    except aiomqtt.MqttError as error:
        what = "lost the connection to" if connected else "could not connect to"
        (errors or console).print(
            f"FAILED: {what} broker {broker}: {error}", markup=False, style="red"
        )
        return 1
    if not board.reports and not console.is_terminal and json_mode is None:
        console.print(f"no limits report arrived on {board.limits_filter}", markup=False)
    return 0
