"""A second MQTT client beside the emulator, as a test engineer's or a hostile client's: it reads
every EVSE's limits report (csbridge/<evse_id>/limits, retained) the moment the station
publishes it, and notes each module that measures output and each present current above what
an idle EVSE may show. It also does what no Josev does: publish a retained message, look at
what the broker keeps retained, and take a client id over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Self

import aiomqtt
import orjson

from csbridge.mqtt import QOS, BrokerLogin

OUTPUT_LIMIT_A = 1.0
"""More than this through a module, or as a present current, is output (a module's measurement
noise and the reports' rounding stay below it)."""


@dataclass(frozen=True, slots=True)
class Output:
    """One reading of output: when (perf_counter), of which EVSE, where it was read, how much."""

    at: float
    evse_id: str
    source: str
    amps: float


def outputs_in_entry(at: float, entry: dict[str, Any], source: str) -> list[Output]:
    """A cs_status_and_limits entry's present current, if it is output."""
    dc = entry.get("dc")
    present = dc.get("present_current") if isinstance(dc, dict) else None
    if isinstance(present, int | float) and abs(present) > OUTPUT_LIMIT_A:
        return [Output(at, str(entry.get("evse_id")), source, float(present))]
    return []


def outputs_in_report(at: float, evse_id: str, report: dict[str, Any]) -> list[Output]:
    """Each module of a limits report that measures output, and the present current told."""
    found = []
    sources = report.get("sources")
    modules = sources.get("modules") if isinstance(sources, dict) else None
    for name, module in (modules or {}).items():
        current = module.get("output_current") if isinstance(module, dict) else None
        if isinstance(current, int | float) and abs(current) > OUTPUT_LIMIT_A:
            found.append(Output(at, evse_id, f"module {name} (limits report)", float(current)))
    limits = report.get("limits")
    if isinstance(limits, dict):
        found += outputs_in_entry(at, {**limits, "evse_id": evse_id}, "present_current (report)")
    return found


class OutputWatch:
    """The limits reports of every EVSE under `local_prefix`, as they come."""

    def __init__(
        self, client: aiomqtt.Client, client_options: dict[str, Any], local_prefix: str
    ) -> None:
        self.client = client
        self._client_options = client_options
        self._local_prefix = local_prefix
        self.reports: dict[str, dict[str, Any]] = {}
        """The latest report of each EVSE."""
        self.report_count = 0
        self.outputs: list[Output] = []
        """Every reading of output seen, in order."""
        self._arrivals = asyncio.Condition()
        self._retained: dict[str, asyncio.Future[bytes]] = {}

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, broker: str, local_prefix: str, *, login: BrokerLogin | None = None
    ) -> AsyncIterator[Self]:
        options = (login or BrokerLogin()).client_options(broker)
        async with aiomqtt.Client(**options) as client:
            watch = cls(client, options, local_prefix)
            await client.subscribe(f"{local_prefix}/+/limits", qos=QOS)
            reader = asyncio.create_task(watch._read(), name="output-watch-reader")
            try:
                yield watch
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def _read(self) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in self.client.messages:
                topic = message.topic.value
                payload = message.payload
                raw = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
                waiting = self._retained.get(topic)
                if waiting is not None:
                    if message.retain and not waiting.done():
                        waiting.set_result(raw)
                    continue
                self._take(topic, raw)
                async with self._arrivals:
                    self._arrivals.notify_all()

    def _take(self, topic: str, raw: bytes) -> None:
        head, tail = f"{self._local_prefix}/", "/limits"
        if not (topic.startswith(head) and topic.endswith(tail)):
            return  # a late message of a topic looked at for what it keeps retained
        evse_id = topic.removeprefix(head).removesuffix(tail)
        try:
            report = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return  # a report cleared (empty and retained): nothing to read
        if not isinstance(report, dict):
            return
        self.reports[evse_id] = report
        self.report_count += 1
        self.outputs += outputs_in_report(time.perf_counter(), evse_id, report)

    async def wait_report(
        self, evse_id: str, check: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any] | None:
        """The EVSE's first report (the latest one included) that passes `check`; None if none
        does within `timeout`."""

        async def find() -> dict[str, Any]:
            async with self._arrivals:
                while True:
                    report = self.reports.get(evse_id)
                    if report is not None and check(report):
                        return report
                    await self._arrivals.wait()

        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            return None

    async def publish(self, topic: str, payload: bytes, *, retain: bool) -> None:
        await self.client.publish(topic, payload, qos=QOS, retain=retain)

    async def retained(self, topic: str, timeout: float = 2.0) -> bytes | None:
        """What the broker keeps retained on `topic` (what a new subscriber gets first), or
        None when it keeps nothing there."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._retained[topic] = future
        await self.client.subscribe(topic, qos=QOS)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            await self.client.unsubscribe(topic)
            self._retained.pop(topic, None)

    async def take_over(self, client_id: str) -> None:
        """Connect once under `client_id`: the broker drops the client that holds it (MQTT's
        session takeover), which then connects and subscribes again."""
        with contextlib.suppress(aiomqtt.MqttError):  # it may take the id back first
            async with aiomqtt.Client(**self._client_options, identifier=client_id):
                pass
