"""The station's own requests to Josev that wait for their response: matched by id, as Josev
matches the responses to its requests; any kind of request, any kind of response."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from csbridge.messages import Message, Payload


@dataclass(frozen=True, slots=True)
class _Waiting:
    name: str
    answer: asyncio.Future[Payload]


class PendingAsks:
    """Requests sent and not yet answered, by id."""

    def __init__(self) -> None:
        self._waiting: dict[str, _Waiting] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def open(self, request: Message) -> asyncio.Future[Payload]:
        """Wait for the response to `request` (call before sending it: Josev may answer before
        the publish call returns). Close it whatever becomes of the wait."""
        if request.id in self._waiting:
            raise ValueError(f"a request with id {request.id} is already waiting")
        answer: asyncio.Future[Payload] = asyncio.get_running_loop().create_future()
        self._waiting[request.id] = _Waiting(request.name, answer)
        return answer

    def close(self, request_id: str) -> None:
        waiting = self._waiting.pop(request_id, None)
        if waiting is not None and not waiting.answer.done():
            waiting.answer.cancel()

    def resolve(self, response: Message) -> str | None:
        """Hand `response` to the request it answers: None when taken, else why it answers
        nothing that waits (the request, if any, keeps waiting)."""
        waiting = self._waiting.get(response.id)
        if waiting is None:
            return "no request of the station's waits for this id (unknown, or its wait ended)"
        if waiting.name != response.name:
            return f"the request with this id is {waiting.name}, not {response.name}"
        if waiting.answer.done():
            return "the request with this id has had its answer already"
        waiting.answer.set_result(response.payload)
        return None
