"""`csbridge emulate`: the Josev emulator against a live station, printing what comes back."""

from __future__ import annotations

import asyncio
import contextlib

import aiomqtt
from rich.console import Console

from csbridge.mqtt import BrokerLogin
from csbridge.tools.emulator import EmulatorError, Exchange, JosevEmulator
from csbridge.tools.live_view import describe_exchange


async def run_dc_session(
    broker: str,
    request_topic: str,
    response_topic: str,
    local_prefix: str,
    console: Console,
    *,
    login: BrokerLogin | None = None,
) -> int:
    """The dc-session scenario; 0 only when every step passed."""
    from rich.table import Table  # noqa: PLC0415

    from csbridge.tools.scenarios.dc_session import DcSession  # noqa: PLC0415

    try:
        async with JosevEmulator.connect(
            broker, request_topic=request_topic, response_topic=response_topic, login=login
        ) as josev:
            results = await DcSession(josev, local_prefix).run()
            problems = josev.problems
    except aiomqtt.MqttError as error:
        console.print(f"[red]FAILED[/red] broker {broker}: {error}")
        return 1
    table = Table(title="dc-session")
    for column in ("step", "result", "ms", "detail"):
        table.add_column(column)
    for result in results:
        verdict = "[green]pass[/green]" if result.passed else "[red]FAIL[/red]"
        table.add_row(result.name, verdict, f"{result.seconds * 1000:.0f}", result.detail)
    console.print(table)
    for problem in problems:
        console.print(f"[red]PROBLEM[/red] {problem}")
    passed = len(results) == 14 and all(r.passed for r in results) and not problems
    console.print(
        f"{'OK' if passed else 'FAILED'}: {sum(r.passed for r in results)} of 11 steps passed"
    )
    return 0 if passed else 1


async def emulate_session(
    broker: str,
    *,
    duration_s: float | None,
    timeout_s: float,
    request_topic: str,
    response_topic: str,
    console: Console,
    login: BrokerLogin | None = None,
) -> int:
    """Boot, print responses, then updates until the duration ends; 0 only if all was valid."""

    def show(exchange: Exchange) -> None:
        console.print(describe_exchange(exchange), soft_wrap=True)
        if not exchange.outgoing and exchange.problem is None:
            console.print_json(data=exchange.data)

    try:
        async with JosevEmulator.connect(
            broker,
            request_topic=request_topic,
            response_topic=response_topic,
            on_exchange=show,
            login=login,
        ) as josev:
            try:
                await josev.boot(timeout=timeout_s)
            except EmulatorError as error:
                console.print(f"[red]FAILED[/red] {error}")
                return 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(duration_s):
                    await asyncio.Event().wait()
            problems = josev.problems
    except aiomqtt.MqttError as error:
        console.print(f"[red]FAILED[/red] broker {broker}: {error}")
        return 1
    for problem in problems:
        console.print(f"[red]PROBLEM[/red] {problem}")
    console.print(
        f"{'OK' if not problems else 'FAILED'}: {len(josev.responses)} responses, "
        f"{len(josev.updates)} updates, {len(problems)} problems"
    )
    return 0 if not problems else 1
