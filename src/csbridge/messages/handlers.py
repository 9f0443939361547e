"""Who handles which kind of Josev message: methods marked `@handles(Kind)`, collected into one
table from the objects that own them (the bridge's boot answers, the session's handlers), as
mobilityhouse/ocpp's `@on(Action)` routes. A request's handler returns the response's payload,
or None for no answer; the bridge sends it with the request's id. An update's returns None. A
handler that must wait for the hardware (a connector lock) returns an awaitable of its answer:
the bridge sends it when it resolves, meanwhile taking other messages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from csbridge.messages.json_object import Payload

Reply = Payload | None | Awaitable[Payload | None]
Handler = Callable[[Any], Reply]
"""A bound handler: takes the payload of the kind it was registered for."""

Owner = TypeVar("Owner")
Handled = TypeVar("Handled", bound=Payload)
Answer = TypeVar("Answer", bound=Reply)

_MARK = "_csbridge_handles"


def handles(
    kind: type[Handled],
) -> Callable[[Callable[[Owner, Handled], Answer]], Callable[[Owner, Handled], Answer]]:
    """Mark a method as the handler of messages of class `kind`."""

    def mark(method: Callable[[Owner, Handled], Answer]) -> Callable[[Owner, Handled], Answer]:
        setattr(method, _MARK, kind)
        return method

    return mark


class HandlerTable:
    """One handler per kind of message; a kind claimed twice is a bug, refused when the table
    is put together."""

    def __init__(self, handlers: Mapping[type[Payload], Handler] | None = None) -> None:
        self._handlers: dict[type[Payload], Handler] = dict(handlers or {})

    @classmethod
    def of(cls, *owners: object) -> HandlerTable:
        """Every method marked with `handles` on these objects, bound to them."""
        table = cls()
        for owner in owners:
            for attribute in dir(type(owner)):
                kind = getattr(getattr(type(owner), attribute, None), _MARK, None)
                if kind is not None:
                    table._add(kind, getattr(owner, attribute))
        return table

    def __or__(self, other: HandlerTable) -> HandlerTable:
        merged = HandlerTable(self._handlers)
        for kind, handler in other._handlers.items():
            merged._add(kind, handler)
        return merged

    def _add(self, kind: type[Payload], handler: Handler) -> None:
        if kind in self._handlers:
            msg = f"two handlers for {kind.__name__}"
            raise ValueError(msg)
        self._handlers[kind] = handler

    def get(self, kind: type[Payload]) -> Handler | None:
        return self._handlers.get(kind)

    def kinds(self) -> frozenset[type[Payload]]:
        return frozenset(self._handlers)
