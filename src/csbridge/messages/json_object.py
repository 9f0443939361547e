"""Typed JSON objects: frozen dataclasses whose fields are a schema's properties, written to JSON
in field order, an optional property left out while it holds ABSENT.

They check nothing: a message is decoded into them only after it passed its schema, and what the
station builds from them is checked as bytes on the way out (outbound.py).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Self, TypeVar, Union


class Absent(enum.Enum):
    """The value of an optional property the message does not carry. Not None: where a schema
    admits null (an untyped property), None is the JSON null, a value like any other."""

    ABSENT = "absent"

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = Absent.ABSENT

T = TypeVar("T")
D = TypeVar("D")


def value_or(value: T | Absent, default: D) -> T | D:
    """`value`, or `default` when the property is absent."""
    return default if value is ABSENT else value


class MessageType(enum.StrEnum):
    REQUEST = "request"
    RESPONSE = "response"
    UPDATE = "update"


@dataclass(frozen=True, slots=True)
class _Property:
    """How one field travels: as it is, or through a nested JsonObject (one, or a sequence of
    them)."""

    name: str
    nested: type[JsonObject] | None
    many: bool
    mapping: bool
    """An open object (no properties in its schema): copied into a plain dict on the way out."""


_PLANS: dict[type[JsonObject], tuple[_Property, ...]] = {}


def _nested_in(hint: Any) -> tuple[type[JsonObject] | None, bool, bool]:
    """(the JsonObject a type hint holds, whether a sequence of them, whether an open mapping)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        for argument in typing.get_args(hint):
            if argument is not Absent:
                found = _nested_in(argument)
                if found != (None, False, False):
                    return found
        return None, False, False
    if isinstance(hint, type) and issubclass(hint, JsonObject):
        return hint, False, False
    if origin in (Sequence, list, tuple):
        (item, *_) = typing.get_args(hint)
        if isinstance(item, type) and issubclass(item, JsonObject):
            return item, True, False
    return None, False, origin is Mapping


def _plan(cls: type[JsonObject]) -> tuple[_Property, ...]:
    """Worked out once per class, from its type hints."""
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = tuple(
            _Property(field.name, *_nested_in(hints[field.name]))
            for field in dataclasses.fields(cls)  # type: ignore[arg-type] # every subclass is one
        )
        _PLANS[cls] = plan
    return plan


class JsonObject:
    """A JSON object with a schema: subclasses are frozen, slotted, keyword-only dataclasses
    whose fields are its property names, in the order they are written."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        """The object as JSON-ready dicts and lists; absent properties left out."""
        document: dict[str, Any] = {}
        for item in _plan(type(self)):
            value = getattr(self, item.name)
            if value is ABSENT:
                continue
            if item.nested is not None:
                value = [each.to_json() for each in value] if item.many else value.to_json()
            elif item.mapping:
                value = dict(value)
            document[item.name] = value
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Self:
        """Built from JSON that passed this object's schema (properties it does not name, which
        an open schema lets through, are left behind)."""
        values: dict[str, Any] = {}
        for item in _plan(cls):
            if item.name not in document:
                continue
            value = document[item.name]
            if item.nested is not None:
                nested = item.nested
                value = (
                    tuple(nested.from_json(each) for each in value)
                    if item.many
                    else nested.from_json(value)
                )
            values[item.name] = value
        return cls(**values)


class Payload(JsonObject):
    """The data of one kind of Josev message: its name and type say which."""

    __slots__ = ()

    NAME: ClassVar[str]
    TYPE: ClassVar[MessageType]
