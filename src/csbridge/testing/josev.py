"""The Josev emulator as a test drives it: the station's topics taken from its config, waits
for an update or an EVSE entry matching a predicate, and the station's simulate topic.

It is a JosevEmulator (every message it receives is checked against Josev's schemas, kept in
`exchanges`, and any fault lands in `problems`), so tests written against the emulator keep
working with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from csbridge.config import Config
from csbridge.messages import Message
from csbridge.protocol import Leaf, LocalTopics
from csbridge.tools.emulator import EmulatorError, Exchange, JosevEmulator

STATUS_AND_LIMITS = "cs_status_and_limits"

EntryPredicate = Callable[[dict[str, Any]], bool]


class JosevClient(JosevEmulator):
    """A connected Josev emulator on one station's topics. Open it with `for_config`."""

    local_prefix: str | None = None
    """The station's own per-EVSE topics (`<prefix>/<evse_id>/simulate`...)."""

    @classmethod
    @contextlib.asynccontextmanager
    async def for_config(
        cls, config: Config, *, client_id: str | None = None
    ) -> AsyncIterator[JosevClient]:
        """Connected and subscribed to the station's response topic on its broker."""
        async with cls.connect(
            config.mqtt.broker,
            request_topic=config.mqtt.request_topic,
            response_topic=config.mqtt.response_topic,
            client_id=client_id,
        ) as client:
            client.local_prefix = config.mqtt.local_prefix
            yield client

    @property
    def seen(self) -> list[Exchange]:
        """Every message received from the station, in order: responses, updates, and what
        failed validation (those with `problem` set)."""
        return [exchange for exchange in self.exchanges if not exchange.outgoing]

    def mark(self) -> int:
        """A position in `updates`: pass it as `since` to wait only for updates after now."""
        return len(self.updates)

    async def wait_for_update(
        self,
        predicate: Callable[[Message], bool] = lambda _: True,
        timeout: float = 10.0,
        *,
        name: str | None = STATUS_AND_LIMITS,
        since: int = 0,
    ) -> Message:
        """The first update named `name` (None: any) from index `since` of `updates` on that
        satisfies `predicate`: one already received, or the next to arrive. EmulatorError
        (with where each EVSE stands) when none comes within `timeout` seconds."""

        def matches(message: Message) -> bool:
            return (name is None or message.name == name) and predicate(message)

        try:
            return await self.wait_update(matches, timeout, since=since)
        except EmulatorError as error:
            raise EmulatorError(f"{error}; Josev's view: {self.describe()}") from None

    async def wait_for_evse(
        self, evse_id: str, predicate: EntryPredicate, timeout: float = 10.0, *, since: int = 0
    ) -> dict[str, Any]:
        """The first entry for `evse_id` in a cs_status_and_limits update (from `since` on)
        that satisfies `predicate`, e.g. `lambda e: e["dc"]["max_current"] == 160.0`."""

        def entry_of(message: Message) -> dict[str, Any] | None:
            for entry in message.data["evses"]:
                if entry["evse_id"] == evse_id:
                    found: dict[str, Any] = entry
                    return found
            return None

        def matches(message: Message) -> bool:
            entry = entry_of(message)
            return entry is not None and predicate(entry)

        update = await self.wait_for_update(matches, timeout, since=since)
        entry = entry_of(update)
        assert entry is not None  # matches() found it
        return entry

    def describe(self) -> str:
        """The latest entry per EVSE that Josev has seen, in short."""
        if not self.view.evses:
            return "no cs_status_and_limits seen yet"
        return "; ".join(
            f"{evse_id}: {entry['status_code']} {_limits(entry)}"
            for evse_id, entry in self.view.evses.items()
        )

    def local_topic(self, evse_id: str, leaf: Leaf | str) -> str:
        if self.local_prefix is None:
            raise EmulatorError("no station config given: open the client with for_config()")
        return LocalTopics(self.local_prefix).topic(evse_id, Leaf(leaf))

    async def simulate(self, evse_id: str, action: str, module: str | None = None) -> None:
        """What a person does to a simulated station, over MQTT as from outside the process:
        plug_in, unplug, silence_module or restore_module (these two name the module)."""
        command: dict[str, Any] = {"action": action}
        if module is not None:
            command["module"] = module
        await self.publish(self.local_topic(evse_id, Leaf.SIMULATE), command)

    def assert_no_problems(self) -> None:
        """AssertionError listing every problem: an invalid message from the station, a
        response nobody asked for, a request left unanswered, a lost connection."""
        assert not self.problems, "Josev saw problems:\n" + "\n".join(self.problems)


def _limits(entry: dict[str, Any]) -> str:
    block = entry.get("dc") or entry.get("ac") or {}
    shown = {key: block[key] for key in ("max_current", "max_power") if key in block}
    return str(shown) if shown else ""
