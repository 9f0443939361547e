"""`csbridge emulate`: the Josev emulator against a live station, printing what comes back."""

from __future__ import annotations

import asyncio
import contextlib

import aiomqtt
from rich.console import Console
from rich.table import Table

from csbridge.mqtt import BrokerLogin
from csbridge.tools.emulator import EmulatorError, Exchange, JosevEmulator
from csbridge.tools.live_view import describe_exchange
from csbridge.tools.scenarios.common import StepResult
from csbridge.tools.scenarios.registry import SCENARIOS, Scenario
from csbridge.tools.scenarios.watch import OutputWatch

__all__ = ["SCENARIOS", "emulate_session", "print_steps", "run_scenario"]
"""SCENARIOS (the registry's) is what `--scenario` takes."""


async def run_scenario(
    scenario: str,
    broker: str,
    console: Console,
    *,
    request_topic: str,
    response_topic: str,
    local_prefix: str,
    login: BrokerLogin | None = None,
) -> int:
    """One of SCENARIOS, its steps as a table; 0 only when every step passed and the emulator
    found nothing wrong with what the station sent."""
    try:
        async with contextlib.AsyncExitStack() as stack:
            josev = await stack.enter_async_context(
                JosevEmulator.connect(
                    broker, request_topic=request_topic, response_topic=response_topic, login=login
                )
            )
            kind = SCENARIOS[scenario]
            watch = None
            if kind.watches:
                watch = await stack.enter_async_context(
                    OutputWatch.connect(broker, local_prefix, login=login)
                )
            played: Scenario = kind.build(josev, watch, local_prefix)
            planned = len(played.steps())
            results = await played.run()
            problems = list(josev.problems)
    except aiomqtt.MqttError as error:
        console.print(f"[red]FAILED[/red] broker {broker}: {error}")
        return 1
    print_steps(console, played.name, results)
    for problem in problems:
        console.print(f"[red]PROBLEM[/red] {problem}")
    passed = len(results) == planned and all(r.passed for r in results) and not problems
    console.print(
        f"{'OK' if passed else 'FAILED'}: {sum(r.passed for r in results)} of {planned} "
        "steps passed"
    )
    return 0 if passed else 1


def print_steps(console: Console, title: str, results: list[StepResult]) -> None:
    table = Table(title=title)
    for column in ("step", "result", "ms", "detail"):
        table.add_column(column)
    for result in results:
        verdict = "[green]pass[/green]" if result.passed else "[red]FAIL[/red]"
        table.add_row(result.name, verdict, f"{result.seconds * 1000:.0f}", result.detail)
    console.print(table)


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
