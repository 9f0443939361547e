"""Shared helpers for the tests: fixture files by name and per-test station configs."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import io
import json
import logging
import os
import random
import socket
import subprocess
import uuid
from collections import Counter, OrderedDict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from hypothesis import settings
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from csbridge.config import Config
from csbridge.engine.engine import LimitsEngine
from csbridge.messages.envelope import (
    EnvelopeCodec,
    InboundRejected,
    Message,
    MessageType,
    RejectReason,
    decode_local,
)
from csbridge.messages.registry import Direction, SchemaRegistry, load_schema_files
from csbridge.protocol.local_topics import SCHEMA_OF, Leaf, LocalTopics
from csbridge.session.machine import Pilot, State
from csbridge.sources.readings import (
    BoardReading,
    Capability,
    CpState,
    ImdReading,
    ModuleReading,
)
from csbridge.support.resources import schema_dir
from csbridge.testing.harness import isolated_config, wait_until
from tests.mutations import _containers

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

    from csbridge.service.station import Station
    from csbridge.tools.emulator import JosevEmulator

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


DEV_EXAMPLES = 100
CI_EXAMPLES = 2_000
"""max_examples of hypothesis's `dev` profile (the default) and `ci` profile (the thorough run,
`--hypothesis-profile=ci`), registered in tests/conftest.py."""


def examples(at_ci: int) -> int:
    """A property test's max_examples: `at_ci` under the ci profile, and the same share of the
    loaded profile's count under another (a twentieth under dev), so each test keeps its weight
    against the others. Read as the test module is imported, after pytest loaded the profile."""
    return max(1, round(at_ci * settings().max_examples / CI_EXAMPLES))


def load_fixture(name: str, folder: str = "messages") -> dict[str, Any]:
    """A message from fixtures/<folder>/<name>.json."""
    document: dict[str, Any] = orjson.loads((FIXTURES / folder / f"{name}.json").read_bytes())
    return document


def fixture_names(folder: str) -> list[str]:
    return sorted(path.stem for path in (FIXTURES / folder).glob("*.json"))


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def station_config(broker_url: str, prefix: str, *, scenario: str | None = None) -> Config:
    """The tests' station (fixtures/configs/reading-station.toml, no scenario unless asked), on
    its own topics and client id so tests never collide."""
    return isolated_config(
        FIXTURES / "configs" / "reading-station.toml", broker_url, prefix, scenario=scenario
    )


def wire_station_config(broker_url: str, prefix: str) -> Config:
    """examples/sim-station.toml (modules and IMD on virtual CAN buses), on channels and topics
    of this test's own: python-can's virtual buses are shared by everything in the process.
    Increases settle in 0.2 s: the stack fills up module by module."""
    return isolated_config(None, broker_url, prefix, settle_s=0.2)


def run_clean(command: list[str], cwd: Path | None = None) -> str:
    """The command's output; its output in the failure when it fails. Outside this checkout
    and its venv: no PYTHONPATH, no VIRTUAL_ENV, so nothing of theirs leaks into a fresh one."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        command,
        cwd=cwd or Path("/"),
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{command} failed:\n{output}"
    return result.stdout


def walk(value: Any, path: str = "$") -> list[tuple[str, Any]]:
    """Every (path, leaf) in a JSON document."""
    if isinstance(value, dict):
        return [item for key, child in value.items() for item in walk(child, f"{path}.{key}")]
    if isinstance(value, list):
        return [
            item for index, child in enumerate(value) for item in walk(child, f"{path}[{index}]")
        ]
    return [(path, value)]


# -- jsonschema as the oracle of the differential tests ---------------------------------------


@functools.cache
def schema_oracle() -> dict[str, Draft202012Validator]:
    """jsonschema's own validator of every schema file, by title, built as the reference backend
    builds its own (Draft 2020-12, the files as one registry for their $refs). The differential
    tests ask it `is_valid`: the same verdict as the backend's `violation(...) is None`, without
    the backend's search of every error for the best one to report, which was most of their
    time."""
    from jsonschema import Draft202012Validator  # noqa: PLC0415 - only these tests need it
    from referencing import Registry, Resource  # noqa: PLC0415

    schemas = load_schema_files(schema_dir())
    resources = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas.values()
    )
    return {
        title: Draft202012Validator(schema, registry=resources) for title, schema in schemas.items()
    }


# -- Prometheus text, shared by the metrics tests -----------------------------------------


def parse(text: str) -> list[Metric]:
    """Metric families from the Prometheus text format."""
    return list(text_string_to_metric_families(text))


def value(families: list[Metric], metric: str, /, **labels: str) -> float:
    """The one sample called `metric` with exactly these labels."""
    found = [
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == metric and sample.labels == labels
    ]
    assert len(found) == 1, f"{metric}{labels}: {len(found)} samples"
    return found[0]


def labelled(families: list[Metric], name: str) -> list[dict[str, str]]:
    return [
        sample.labels for family in families for sample in family.samples if sample.name == name
    ]


# -- `csbridge status` output, shared by the status tests ------------------------------------

STATUS_DC = "DE*CSB*E0001"
STATUS_MODULE_EXPORT = Capability(
    max_voltage=1000, min_voltage=150, max_current=80, max_power=40000
)


def status_engine() -> LimitsEngine:
    """A limits engine of the tests' station (reading-station.toml), fed by hand."""
    return LimitsEngine(station_config("mqtt://127.0.0.1:1", "unit"))


def dc_report(modules: tuple[str, ...]) -> dict[str, Any]:
    """The DC EVSE's report with only `modules` of m1/m2/m3 ever heard from."""
    engine = status_engine()
    for name in modules:
        reading = ModuleReading(
            name=name,
            address=int(name[1]),
            at=engine.clock(),
            output_voltage=400.0,
            output_current=12.5,
            export=STATUS_MODULE_EXPORT,
            temperature_c=41.0,
        )
        engine.ingest(STATUS_DC, reading)
    engine.ingest(STATUS_DC, ImdReading(at=engine.clock(), resistance_ohm=5_000_000.0))
    engine.ingest(
        STATUS_DC, BoardReading(at=engine.clock(), evse_temperature_c=30.0, plug_temperature_c=33.0)
    )
    return dict(engine.reports.get(STATUS_DC))


def line_of(text: str, start: str) -> str:
    """The one line of `text` that starts with `start` (after the indent)."""
    lines = [line for line in text.splitlines() if line.strip().startswith(start)]
    assert len(lines) == 1, f"{start!r} in:\n{text}"
    return lines[0]


def text_console(*, terminal: bool = False) -> tuple[Console, io.StringIO]:
    """A rich console 200 columns wide, without colour, writing into the returned buffer."""
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=200, force_terminal=terminal, color_system=None, highlight=False
    )
    return console, buffer


# -- systemd's side of sd_notify, shared by the service tests --------------------------------


async def notification(sock: socket.socket) -> str:
    """The next sd_notify message on `sock` (non-blocking, as the systemd_socket fixture makes
    it), awaited on the running loop."""
    return (await asyncio.get_running_loop().sock_recv(sock, 4096)).decode()


async def notifications_within(sock: socket.socket, seconds: float) -> list[str]:
    """Every sd_notify message that arrives on `sock` in the next `seconds`: the window is what
    the test measures (how many pings, or none)."""
    received: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                received.append(await notification(sock))
    return received


async def notifications_until(sock: socket.socket, wanted: str, timeout: float) -> list[str]:
    """The sd_notify messages on `sock` up to and including the first `wanted` one; an
    AssertionError listing them when `wanted` has not come within `timeout` seconds."""
    received: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while not received or received[-1] != wanted:
                received.append(await notification(sock))
    except TimeoutError:
        raise AssertionError(f"no {wanted} within {timeout} s; got {received}") from None
    return received


# -- seeded fuzzing, shared by the reliability tests -----------------------------------------

ODD_JSON_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    -0.0,
    0.5,
    1e308,
    -1e308,
    2**63,
    2**64,  # beyond orjson: serialised by the standard library instead
    float("nan"),
    float("inf"),
    "",
    "200",
    "x" * 300,
    "evse_ready",
    "EVSE_Ready",
    "DE*CSB*E0001",
    "DE*CSB*E9999",
    "79ac862e-d0a7-4eef-98b5-c827be3bd669\n",
    "79AC862E-D0A7-4EEF-98B5-C827BE3BD669",
    "2026-13-45T99:99:99Z",
    "\u0000\ud7ff\ue000",
    [],
    {},
    [1, [2, [3, [4]]]],
    {"l1": 1, "l2": 2, "l3": 3},
    {"l1": -1, "l2": "2", "l3": None},
    [{"evse_id": "A", "status_code": "evse_ready"}],
)
"""Values that sit just outside what the schemas allow: wrong types, signs, bounds, formats."""

ADDED_KEYS = ("extra", "evse_id", "dc", "ac", "ac_bpt", "dc_bpt", "l4", "id", "name", "data")


def fixture_corpus(*folders: str) -> list[dict[str, Any]]:
    """Every fixture document of the given folders."""
    return [load_fixture(name, folder) for folder in folders for name in fixture_names(folder)]


def seeded_mutation(rng: random.Random, document: Any) -> Any:
    """The operations of tests/mutations.py (one to three deletions, replacements or additions
    anywhere in a copy of `document`, odd values from ODD_JSON_VALUES), drawn from `rng`: fast
    enough for a hundred thousand messages, which hypothesis's strategies are not."""
    document = copy.deepcopy(document)
    for _ in range(rng.randint(1, 3)):
        if not isinstance(document, dict | list):
            break
        target = rng.choice(_containers(document))
        operation = rng.choice(("delete", "replace", "add"))
        odd = copy.deepcopy(rng.choice(ODD_JSON_VALUES))
        if isinstance(target, dict):
            keys = sorted(target)
            if operation == "add" or not keys:
                target[rng.choice(ADDED_KEYS)] = odd
            elif operation == "delete":
                del target[rng.choice(keys)]
            else:
                target[rng.choice(keys)] = odd
        elif target:
            index = rng.randrange(len(target))
            if operation == "delete":
                del target[index]
            elif operation == "replace":
                target[index] = odd
            else:
                target.append(copy.deepcopy(target[index]))
    return document


def random_json(rng: random.Random, depth: int = 3) -> Any:
    """Any JSON value, nested up to `depth`, odd values included."""
    roll = rng.random()
    if depth <= 0 or roll < 0.4:
        return copy.deepcopy(rng.choice(ODD_JSON_VALUES))
    if roll < 0.7:
        return [random_json(rng, depth - 1) for _ in range(rng.randint(0, 4))]
    keys = ("id", "name", "type", "data", "evses", "evse_id", "max_power", "enabled", "action")
    return {rng.choice(keys): random_json(rng, depth - 1) for _ in range(rng.randint(0, 5))}


def to_payload(rng: random.Random, document: Any) -> bytes:
    """orjson as Josev would write it; now and then (or where orjson cannot: integers beyond
    64 bits) the standard library, whose NaN and Infinity are no JSON at all."""
    if rng.random() < 0.9:
        with contextlib.suppress(orjson.JSONEncodeError):
            return orjson.dumps(document)
    return json.dumps(document, allow_nan=True).encode()


def seeded_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _damaged(rng: random.Random, payload: bytes) -> bytes:
    """Byte-level damage to a valid payload: cut short, a byte flipped, inserted or doubled."""
    data = bytearray(payload)
    for _ in range(rng.randint(1, 3)):
        if not data:
            break
        index = rng.randrange(len(data))
        operation = rng.randrange(4)
        if operation == 0:
            del data[index:]
        elif operation == 1:
            data[index] ^= 1 << rng.randrange(8)
        elif operation == 2:
            data.insert(index, rng.randrange(256))
        else:
            data[index:index] = data[index : index + rng.randint(1, 16)]
    return bytes(data)


def _decodes(codec: EnvelopeCodec, document: dict[str, Any]) -> bool:
    try:
        codec.decode(orjson.dumps(document))
    except InboundRejected:
        return False
    return True


class Fuzzer:
    """Endless (topic, payload) for a running station, on the request topic and on csbridge's
    inbound local topics: valid messages with fresh ids, schema-guided mutations of the corpus,
    damaged valid payloads, random JSON, random bytes, and now and then one above the size
    limit. `corpus` is fixture documents; those Josev sends are also re-sent valid."""

    LEAVES = ("external_limit", "operator", "simulate")
    ODD_EVSE_IDS = ("DE*CSB*E9999", "", "de*csb*e0001", "\u00e9vse", "x" * 40)

    def __init__(
        self, rng: random.Random, config: Config, corpus: Sequence[dict[str, Any]]
    ) -> None:
        self.rng = rng
        self.config = config
        self.corpus = list(corpus)
        josev = EnvelopeCodec(SchemaRegistry(), Direction.FROM_JOSEV, config.mqtt.max_payload_bytes)
        self.sendable = [d for d in corpus if _decodes(josev, d)]
        self.evse_ids = [evse.evse_id for evse in config.evse]
        self.modules = sorted({module.name for evse in config.evse for module in evse.module})

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        while True:
            yield self.next()

    def next(self) -> tuple[str, bytes]:
        rng = self.rng
        josev = self.config.mqtt.request_topic
        roll = rng.random()
        if roll < 0.0002:
            return josev, b'{"pad": "' + b"x" * (self.config.mqtt.max_payload_bytes + 1) + b'"}'
        if roll < 0.20:
            return josev, orjson.dumps(self.fresh(rng.choice(self.sendable)))
        if roll < 0.48:
            document = rng.choice(self.corpus)
            if rng.random() < 0.9:
                document = self.fresh(document)
            return josev, to_payload(rng, seeded_mutation(rng, document))
        if roll < 0.56:
            return josev, _damaged(rng, orjson.dumps(self.fresh(rng.choice(self.sendable))))
        if roll < 0.66:
            return josev, to_payload(rng, random_json(rng))
        if roll < 0.78:
            return josev, rng.randbytes(rng.randint(0, 256))
        return self.local()

    def fresh(self, document: dict[str, Any]) -> dict[str, Any]:
        """A copy with an id of its own and, where it names one, a configured EVSE."""
        copied: dict[str, Any] = orjson.loads(orjson.dumps(document))
        copied["id"] = seeded_uuid(self.rng)
        data = copied.get("data")
        if isinstance(data, dict) and "evse_id" in data:
            data["evse_id"] = self.rng.choice(self.evse_ids)
        return copied

    def local(self) -> tuple[str, bytes]:
        rng = self.rng
        leaf = rng.choice(self.LEAVES)
        evse_id = rng.choice(self.evse_ids if rng.random() < 0.85 else self.ODD_EVSE_IDS)
        topic = f"{self.config.mqtt.local_prefix}/{evse_id}/{leaf}"
        kind = rng.random()
        if kind < 0.5:
            return topic, orjson.dumps(self.local_document(leaf))
        if kind < 0.85:
            return topic, to_payload(rng, seeded_mutation(rng, self.local_document(leaf)))
        return topic, rng.randbytes(rng.randint(0, 64))

    def local_document(self, leaf: str) -> dict[str, Any]:
        """A valid external_limit, operator or simulate payload."""
        rng = self.rng
        document: dict[str, Any] = {}
        if leaf == "external_limit":
            if rng.random() < 0.6:
                document["max_power"] = round(rng.uniform(0, 250_000), 1)
            if rng.random() < 0.5:
                document["max_current"] = round(rng.uniform(0, 300), 2)
            if rng.random() < 0.5:
                document["valid_for"] = round(rng.uniform(0.5, 600), 1)
        elif leaf == "operator":
            document["enabled"] = rng.random() < 0.7
            if rng.random() < 0.5:
                document["reason"] = rng.choice(("maintenance", "", "x" * 200))
        else:
            document["action"] = rng.choice(
                ("plug_in", "unplug", "silence_module", "restore_module")
            )
            if document["action"].endswith("_module") or rng.random() < 0.2:
                document["module"] = rng.choice([*self.modules, "m9"])
        return document


BRIDGE_ANSWERS = ("cs_parameters", "cs_status_and_limits")
REMEMBERED = 1024
"""How many handled messages the bridge remembers to spot one received again (its minute
never runs out within a batch: a repeat in the fuzz comes within a second of the first)."""


@dataclass
class Expected:
    """What a station must make of a batch, worked out one payload at a time, without it."""

    decoded: Counter[str] = field(default_factory=Counter)
    """Josev's messages that pass the envelope and their schema, by name."""
    rejected: Counter[str] = field(default_factory=Counter)
    local_accepted: Counter[str] = field(default_factory=Counter)
    simulate_valid: int = 0
    """Schema-valid simulate commands: accepted, or refused (schema) by the simulated devices."""
    must_answer: Counter[str] = field(default_factory=Counter)
    """Request ids that need one response each (a configured EVSE, or none needed); a repeat
    is answered again, so it needs one more."""
    may_answer: Counter[str] = field(default_factory=Counter)
    """Every valid request's id: nothing else may be answered."""
    names: dict[str, str] = field(default_factory=dict)
    """Each valid request's name, by id (for a failure to say what went unanswered)."""


def needs_answer(message: Message, evse_ids: Collection[str]) -> bool:
    """A valid request the station must answer: the boot requests, and those naming one of
    `evse_ids` (or none where none is needed)."""
    if message.name in BRIDGE_ANSWERS:
        return True
    evse_id = message.data.get("evse_id")
    if message.name == "meter_values" and not evse_id:
        return True  # the station's meter
    return evse_id in evse_ids


class _Remembered:
    """The messages the bridge remembers having handled, by name and id, most recent last;
    the boot requests, answered afresh every time, are not among them."""

    def __init__(self) -> None:
        self._handled: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    def repeated(self, message: Message) -> bool:
        """Whether `message` (same name, id and data) was handled already; remembers it if not."""
        if message.name in BRIDGE_ANSWERS:
            return False
        key = (message.name, message.id)
        if self._handled.get(key) == message.data:
            return True
        self._handled.pop(key, None)
        self._handled[key] = message.data
        while len(self._handled) > REMEMBERED:
            self._handled.popitem(last=False)
        return False


def expected_outcomes(config: Config, messages: list[tuple[str, bytes]]) -> Expected:
    """What a station running `config` must make of `messages`, worked out without it."""
    registry = SchemaRegistry()
    codec = EnvelopeCodec(registry, Direction.FROM_JOSEV, config.mqtt.max_payload_bytes)
    local = LocalTopics(config.mqtt.local_prefix)
    evse_ids = {evse.evse_id for evse in config.evse}
    expected = Expected()
    remembered = _Remembered()
    for topic, payload in messages:
        try:
            if topic == config.mqtt.request_topic:
                message = codec.decode(payload)
                if message.type is MessageType.RESPONSE:
                    expected.rejected["unmatched_response"] += 1  # the fuzz asks Josev nothing
                    continue
                if remembered.repeated(message):
                    expected.rejected["duplicate"] += 1  # answered again, if it was answered
                else:
                    expected.decoded[message.name] += 1
                if message.type is MessageType.REQUEST:
                    expected.names[message.id] = message.name
                    expected.may_answer[message.id] += 1
                    if needs_answer(message, evse_ids):
                        expected.must_answer[message.id] += 1
                continue
            parsed = local.parse(topic)
            if parsed is None:
                raise InboundRejected(RejectReason.UNKNOWN_MESSAGE, "topic", topic)
            evse_id, leaf = parsed
            if evse_id not in evse_ids:
                raise InboundRejected(RejectReason.UNKNOWN_EVSE, "topic", evse_id)
            decode_local(registry, SCHEMA_OF[leaf], payload, config.mqtt.max_payload_bytes, leaf)
            if leaf is Leaf.SIMULATE:
                expected.simulate_valid += 1
            else:
                expected.local_accepted[leaf.value] += 1
        except InboundRejected as rejected:
            expected.rejected[rejected.reason.value] += 1
    return expected


@contextlib.contextmanager
def csbridge_logs_to_devnull() -> Iterator[list[str]]:
    """csbridge's log lines are still formatted (as in production) but written to /dev/null
    instead of pytest's capture, which would keep every one of a hundred thousand warnings in
    memory; errors are kept in the yielded list for the test to show."""
    logger = logging.getLogger("csbridge")
    errors: list[str] = []

    class _Errors(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if len(errors) < 100:
                errors.append(self.format(record))

    with open(os.devnull, "w", encoding="utf-8") as devnull:
        handlers: list[logging.Handler] = [logging.StreamHandler(devnull), _Errors(logging.ERROR)]
        for handler in handlers:
            logger.addHandler(handler)
        saved = logger.propagate
        logger.propagate = False
        try:
            yield errors
        finally:
            logger.propagate = saved
            for handler in handlers:
                logger.removeHandler(handler)


async def ready_for_cable_check(station: Station, josev: JosevEmulator, evse_id: str) -> None:
    """What an EV and Josev do before a DC cable check: plug in (free vend authorizes), the HLC
    session comes up, the EV closes S2 (pilot C)."""
    board = station.devices.boards[evse_id]
    board.cp_state = CpState.B
    station.devices.emit(board)
    await josev.update("hlc_charging", {"evse_id": evse_id, "status": True})
    board.cp_state = CpState.C
    station.devices.emit(board)
    session = station.session.sessions[evse_id]
    await wait_until(
        lambda: session.state is State.AUTHORIZED and session.machine.facts.pilot is Pilot.CD,
        5,
        f"{evse_id} authorized at pilot C",
    )


async def ready_to_charge(
    station: Station, josev: JosevEmulator, evse_id: str, timeout: float = 15.0
) -> None:
    """ready_for_cable_check, then a cable check that passes: precharge and charging may go."""
    await ready_for_cable_check(station, josev, evse_id)
    started = await josev.request(
        "cable_check", {"evse_id": evse_id, "cable_check_action": "start"}, timeout=5
    )
    assert started.data["cable_check_status"] == "ongoing", started.data

    async def passed() -> bool:
        status = await josev.request(
            "cable_check", {"evse_id": evse_id, "cable_check_action": "status"}, timeout=5
        )
        finished = status.data["cable_check_status"] == "finished"
        assert not finished or status.data["isolation_level"] in ("valid", "warning"), status
        return bool(finished)

    await wait_until(passed, timeout, f"{evse_id}'s cable check passed", every=0.2)


async def precharge_then_charge(
    josev: JosevEmulator, evse_id: str, current_a: float, voltage_v: float = 400.0
) -> None:
    """Josev's setpoints at a DC session's start: 2 A in precharge, then `current_a`, both at
    `voltage_v` (the EV rated for 800 V); each must be accepted."""
    for precharge, current in ((True, 2.0), (False, current_a)):
        answer = await josev.request(
            "power_electronics_setpoint",
            {
                "evse_id": evse_id,
                "dc": {"voltage": voltage_v, "charge_current": current},
                "ev_limits": {"maximum_voltage": 800.0},
                "is_precharge": precharge,
            },
            timeout=5,
        )
        assert answer.data["status"] == "accepted", answer.data


def small_station(*evses: tuple[str, str], station: str = "") -> str:
    """A valid station TOML: `[station]` (plus `station`'s extra keys) and one small DC EVSE per
    (evse_id, extra tables) pair, for tests of one configuration table."""
    header = f'[station]\nsw_version = "1.0"\nhw_version = "rev-a"\n{station}\n'
    return header + "".join(
        f"""
[[evse]]
evse_id = "{evse_id}"
kind = "dc"
network_interface = "eth1"
connectors = [{{ id = 1, connector_type = "DC_extended" }}]

[evse.dc_limits]
max_current_a = 200
max_voltage_v = 1000
max_power_w = 150000
peak_current_ripple_a = 2
{tables}
"""
        for evse_id, tables in evses
    )
