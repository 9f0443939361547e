"""Schema validation per message: the fast path (jsonschema-rs) against jsonschema, on the same
messages, and the whole wire path (EnvelopeCodec.decode, EnvelopeCodec.encode) with either backend.

The messages are every valid example of fixtures/messages and fixtures/messages-session (Josev's
and the station's, requests, responses and updates). Each message is checked first: both
backends must pass all of them, or the comparison means nothing.

- validate: `check_document` (the envelope, then the kind's own schema): what each message
  costs in validation alone.
- EnvelopeCodec.decode: bytes as they arrive -> size bound, orjson, checks -> Message, for a
  codec that receives the message's direction.
- EnvelopeCodec.encode: Message -> orjson -> parsed back and checked (what goes out is what was
  checked), for a codec that sends the message's direction.

Each sample is a number of passes over all messages, long enough for the clock (autoranged
per variant); the variants take turns sample by sample. Goal: validate >= 50 x jsonschema.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from bench.common import summary_row
from bench.stats import percentile
from csbridge.messages.envelope import EnvelopeCodec, Message, MessageType, check_document
from csbridge.messages.registry import Backend, Direction, SchemaRegistry
from csbridge.support.resources import resource_dir

GOAL_RATIO = 50.0
FIXTURE_DIRS = ("messages", "messages-session")
MAX_PAYLOAD = 64 * 1024


@dataclass(frozen=True, slots=True)
class Fixture:
    name: str
    document: dict[str, Any]
    payload: bytes
    direction: Direction


def fixtures(registry: SchemaRegistry) -> list[Fixture]:
    found = []
    for folder in FIXTURE_DIRS:
        for path in sorted((resource_dir("fixtures") / folder).glob("*.json")):
            payload = path.read_bytes()
            document = orjson.loads(payload)
            kind = registry.kind(document["name"], document["type"])
            assert kind is not None, f"{path}: no schema for {document['name']}/{document['type']}"
            found.append(Fixture(path.stem, document, payload, kind.direction))
    return found


def _other(direction: Direction) -> Direction:
    return Direction.TO_JOSEV if direction is Direction.FROM_JOSEV else Direction.FROM_JOSEV


Pass = Callable[[], None]


def validate_pass(registry: SchemaRegistry, messages: Sequence[Fixture]) -> Pass:
    documents = [message.document for message in messages]

    def run() -> None:
        for document in documents:
            check_document(registry, document)

    return run


def decode_pass(registry: SchemaRegistry, messages: Sequence[Fixture]) -> Pass:
    codecs = {d: EnvelopeCodec(registry, d, MAX_PAYLOAD) for d in Direction}
    work = [(codecs[message.direction].decode, message.payload) for message in messages]

    def run() -> None:
        for decode, payload in work:
            decode(payload)

    return run


def encode_pass(registry: SchemaRegistry, messages: Sequence[Fixture]) -> Pass:
    # A codec that receives one direction sends the other.
    codecs = {d: EnvelopeCodec(registry, _other(d), MAX_PAYLOAD) for d in Direction}
    work = [
        (
            codecs[message.direction].encode,
            Message.from_data(
                message.document["name"],
                MessageType(message.document["type"]),
                message.document["data"],
                message.document["id"],
            ),
        )
        for message in messages
    ]

    def run() -> None:
        for encode, message in work:
            encode(message)

    return run


def _autorange(one_pass: Pass, target_s: float) -> int:
    """Passes per sample so that a sample lasts about `target_s`."""
    started = time.perf_counter()
    one_pass()
    elapsed = max(time.perf_counter() - started, 1e-7)
    return max(1, round(target_s / elapsed))


def measure(
    variants: dict[str, Pass], messages: int, samples: int, target_s: float
) -> dict[str, list[float]]:
    """Seconds per message of each sample, by variant; the variants take turns."""
    passes = {name: _autorange(run, target_s) for name, run in variants.items()}
    per_message: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(samples):
        for name, run in variants.items():
            gc.collect()
            started = time.perf_counter()
            for _ in range(passes[name]):
                run()
            per_message[name].append((time.perf_counter() - started) / passes[name] / messages)
    return per_message


PATHS = (("validate", validate_pass), ("decode", decode_pass), ("encode", encode_pass))


def run(quick: bool) -> dict[str, Any]:
    samples, target_s = (7, 0.02) if quick else (25, 0.05)
    registries = {backend: SchemaRegistry(backend=backend) for backend in Backend}
    messages = fixtures(registries[Backend.FAST])
    for registry in registries.values():
        for message in messages:
            check_document(registry, message.document)  # raises if any does not pass
    variants = {
        f"{path} {backend.value}": make(registries[backend], messages)
        for path, make in PATHS
        for backend in Backend
    }
    for one_pass in variants.values():
        one_pass()  # warm up: first-call costs out of the samples
    times = measure(variants, len(messages), samples, target_s)
    rows: dict[str, dict[str, float]] = {}
    for path, _ in PATHS:
        fast = percentile(times[f"{path} {Backend.FAST.value}"], 0.5)
        reference = percentile(times[f"{path} {Backend.REFERENCE.value}"], 0.5)
        rows[path] = {
            "fast_us": fast * 1e6,
            "fast_p99_us": percentile(times[f"{path} {Backend.FAST.value}"], 0.99) * 1e6,
            "reference_us": reference * 1e6,
            "reference_p99_us": percentile(times[f"{path} {Backend.REFERENCE.value}"], 0.99) * 1e6,
            "ratio": reference / fast,
        }
    validate = rows["validate"]
    return {
        "benchmark": "schema validation, microseconds per message: jsonschema-rs vs jsonschema",
        "messages": len(messages),
        "message_sources": [f"fixtures/{folder}/*.json" for folder in FIXTURE_DIRS],
        "samples": samples,
        "paths": rows,
        "goal_ratio": GOAL_RATIO,
        "goal_met": validate["ratio"] >= GOAL_RATIO,
        "summary": [
            summary_row(
                "validate us/message (vs jsonschema)",
                validate["fast_us"],
                validate["reference_us"],
                goal=f"ratio (jsonschema/fast) >= {GOAL_RATIO:g}",
                met=validate["ratio"] >= GOAL_RATIO,
                ratio=validate["ratio"],
            ),
            *(
                summary_row(
                    f"EnvelopeCodec.{path} us/message (vs the same on jsonschema)",
                    rows[path]["fast_us"],
                    rows[path]["reference_us"],
                    ratio=rows[path]["ratio"],
                )
                for path in ("decode", "encode")
            ),
        ],
    }


def print_table(result: dict[str, Any]) -> None:
    print(
        f"{result['benchmark']} ({result['messages']} messages, "
        f"{result['samples']} samples of each)"
    )
    print(
        f"{'':14}{'fast us':>10}{'p99 us':>10}{'jsonschema us':>15}{'p99 us':>10}{'x faster':>10}"
    )
    for path, row in result["paths"].items():
        name = "validate" if path == "validate" else f"EnvelopeCodec.{path}"
        print(
            f"{name:14}{row['fast_us']:10.2f}{row['fast_p99_us']:10.2f}"
            f"{row['reference_us']:15.2f}{row['reference_p99_us']:10.2f}{row['ratio']:10.1f}"
        )
