"""Schema registry: every file in schemas/ compiled once, looked up by message name and type.

Two interchangeable backends give the same verdicts (a differential test holds them to it):
jsonschema-rs is the fast path; jsonschema is the fallback where no wheel exists and the oracle.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from csbridge.support import CsbridgeError, schema_dir

ENVELOPE = "Envelope"


class Direction(enum.StrEnum):
    """Which way a message kind travels between Josev and the station."""

    FROM_JOSEV = "from_josev"
    """Josev publishes it on the request topic (josev/cs)."""
    TO_JOSEV = "to_josev"
    """The station publishes it on the response topic (cs/josev)."""


class SchemaViolation(CsbridgeError):  # noqa: N818 - a verdict, not a crash: the name says what it holds
    """A message broke its schema: which schema, where in the message, which rule, and why (the
    reason)."""

    def __init__(self, schema: str, path: str, rule: str, reason: str) -> None:
        super().__init__(reason, f"{schema}: {path}: {rule}: {reason}")
        self.schema = schema
        self.path = path
        self.rule = rule


def json_path(parts: Iterable[str | int]) -> str:
    """Render an instance path the way a reader searches for it: `$.data.evses[0].dc`."""
    rendered = ["$"]
    for part in parts:
        rendered.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(rendered)


def schema_title(name: str, message_type: str) -> str:
    """`cs_status_and_limits` + `response` -> `CsStatusAndLimitsResponse`."""
    return "".join(word.capitalize() for word in f"{name}_{message_type}".split("_"))


class CompiledSchema(Protocol):
    def first_violation(self, instance: Any) -> SchemaViolation | None: ...


class Backend(enum.StrEnum):
    FAST = "jsonschema-rs"
    REFERENCE = "jsonschema"


def fast_backend_available() -> bool:
    try:
        import jsonschema_rs  # noqa: F401, PLC0415 - optional wheel, probed on demand
    except ImportError:
        return False
    return True


class _RustSchema:
    def __init__(self, title: str, schema: Mapping[str, Any], registry: Any) -> None:
        import jsonschema_rs  # noqa: PLC0415 - optional wheel

        self._title = title
        self._validator = jsonschema_rs.validator_for(
            dict(schema), registry=registry, validate_formats=False
        )

    def first_violation(self, instance: Any) -> SchemaViolation | None:
        if self._validator.is_valid(instance):
            return None
        for error in self._validator.iter_errors(instance):
            rule = next((p for p in reversed(error.schema_path) if isinstance(p, str)), "schema")
            return SchemaViolation(self._title, json_path(error.instance_path), rule, error.message)
        # is_valid said no but no error came out: only non-JSON values (NaN) get here.
        return SchemaViolation(self._title, "$", "json", "value cannot be represented in JSON")


class _ReferenceSchema:
    def __init__(self, title: str, schema: Mapping[str, Any], registry: Any) -> None:
        import jsonschema  # noqa: PLC0415 - heavy import, only when this backend is chosen

        self._title = title
        self._validator = jsonschema.Draft202012Validator(schema, registry=registry)
        self._best_match = jsonschema.exceptions.best_match

    def first_violation(self, instance: Any) -> SchemaViolation | None:
        error = self._best_match(self._validator.iter_errors(instance))
        if error is None:
            return None
        return SchemaViolation(
            self._title, json_path(error.absolute_path), str(error.validator), error.message
        )


@dataclass(frozen=True, slots=True)
class MessageKind:
    name: str
    type: str
    title: str
    direction: Direction


def load_schema_files(directory: Path) -> dict[str, dict[str, Any]]:
    """Read every schema file, keyed by title; the title must match the file name."""
    schemas: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        schema = orjson.loads(path.read_bytes())
        if schema.get("title") != path.stem:
            msg = f"{path}: title {schema.get('title')!r} must equal the file name {path.stem!r}"
            raise ValueError(msg)
        schemas[path.stem] = schema
    return schemas


def _message_kind(title: str, schema: Mapping[str, Any]) -> MessageKind | None:
    direction = schema.get("x-direction")
    if direction is None:
        return None
    properties = schema["properties"]
    kind = MessageKind(
        name=properties["name"]["const"],
        type=properties["type"]["const"],
        title=title,
        direction=Direction(direction),
    )
    if schema_title(kind.name, kind.type) != title:
        msg = f"schema {title} describes {kind.name}/{kind.type}; name it accordingly"
        raise ValueError(msg)
    return kind


def check_pairs(kinds: Mapping[tuple[str, str], MessageKind]) -> None:
    """Every response answers a request of its name and goes back the way that request came:
    most answers travel to Josev, but Josev answers the station's own requests (authorization),
    so a response's direction is its request's, reversed, never assumed. ValueError otherwise."""
    for (name, message_type), kind in kinds.items():
        if message_type != "response":
            continue
        request = kinds.get((name, "request"))
        if request is None:
            msg = f"schema {kind.title} answers no request: add {schema_title(name, 'request')}"
            raise ValueError(msg)
        if request.direction is kind.direction:
            msg = f"{kind.title} travels {kind.direction} like its request; it must go back"
            raise ValueError(msg)


class SchemaRegistry:
    """Compiles each schema once; answers "does this instance pass schema X, and if not why"."""

    def __init__(self, directory: Path | None = None, backend: Backend | None = None) -> None:
        self.backend = backend or (Backend.FAST if fast_backend_available() else Backend.REFERENCE)
        self.raw = load_schema_files(directory or schema_dir())
        self.kinds: dict[tuple[str, str], MessageKind] = {}
        for title, schema in self.raw.items():
            kind = _message_kind(title, schema)
            if kind is not None:
                self.kinds[(kind.name, kind.type)] = kind
        check_pairs(self.kinds)
        self._resources = self._build_registry()
        self._compile_one = _RustSchema if self.backend is Backend.FAST else _ReferenceSchema
        self._compiled: dict[str, CompiledSchema] = {}
        """Compiled on first use: a station needs a fraction of the schemas (no EVerest, a few
        message kinds), and each compiled one costs memory on a small board."""

    def _build_registry(self) -> Any:
        resources = [(schema["$id"], schema) for schema in self.raw.values()]
        if self.backend is Backend.FAST:
            import jsonschema_rs  # noqa: PLC0415 - optional wheel

            return jsonschema_rs.Registry(resources)
        from referencing import Registry, Resource  # noqa: PLC0415

        return Registry().with_resources(
            (uri, Resource.from_contents(schema)) for uri, schema in resources
        )

    def _schema(self, title: str) -> CompiledSchema:
        compiled = self._compiled.get(title)
        if compiled is None:
            compiled = self._compile_one(title, self.raw[title], self._resources)
            self._compiled[title] = compiled
        return compiled

    def compile_all(self) -> None:
        """Compile every schema now (a check that each one compiles)."""
        for title in self.raw:
            self._schema(title)

    def kind(self, name: str, message_type: str) -> MessageKind | None:
        return self.kinds.get((name, message_type))

    def titles(self) -> Sequence[str]:
        return tuple(self.raw)

    def violation(self, title: str, instance: Any) -> SchemaViolation | None:
        return self._schema(title).first_violation(instance)

    def check(self, title: str, instance: Any) -> None:
        """Raise SchemaViolation unless `instance` passes schema `title`."""
        violation = self._schema(title).first_violation(instance)
        if violation is not None:
            raise violation
