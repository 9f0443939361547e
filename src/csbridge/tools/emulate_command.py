"""`csbridge emulate`: the Josev emulator against a live station, printing what comes back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import aiomqtt
from rich.console import Console
from rich.table import Table

from csbridge.mqtt import BrokerLogin
from csbridge.tools.emulator import EmulatorError, Exchange, JosevEmulator
from csbridge.tools.live_view import describe_exchange
from csbridge.tools.scenarios.common import StepResult
from csbridge.tools.scenarios.registry import SCENARIOS, Scenario
from csbridge.tools.scenarios.watch import OutputWatch

__all__ = [
    "SCENARIOS",
    "emulate_session",
    "exchange_document",
    "print_steps",
    "run_scenario",
    "scenario_document",
]
"""SCENARIOS (the registry's) is what `--scenario` takes."""

WriteJson = Callable[[dict[str, Any]], None]
"""Where `--json` output goes: one object, one line of stdout."""


async def run_scenario(
    scenario: str,
    broker: str,
    console: Console,
    *,
    request_topic: str,
    response_topic: str,
    local_prefix: str,
    login: BrokerLogin | None = None,
    write_json: WriteJson | None = None,
    errors: Console | None = None,
) -> int:
    """One of SCENARIOS, its steps as a table (with `write_json`: as one JSON object); 0 only
    when every step passed and the emulator found nothing wrong with what the station sent. A
    broker that cannot be reached is said on `errors` (default `console`)."""
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
        if write_json is not None:
            write_json(scenario_document(scenario, [], 0, [], error=f"broker {broker}: {error}"))
        else:
            (errors or console).print(f"[red]FAILED[/red] broker {broker}: {error}")
        return 1
    document = scenario_document(played.name, results, planned, problems)
    if write_json is not None:
        write_json(document)
    else:
        print_steps(console, played.name, results)
        for problem in problems:
            console.print(f"[red]PROBLEM[/red] {problem}")
        console.print(
            f"{'OK' if document['ok'] else 'FAILED'}: {document['passed']} of {planned} "
            "steps passed"
        )
    return 0 if document["ok"] else 1


def scenario_document(
    scenario: str,
    results: list[StepResult],
    planned: int,
    problems: list[str],
    *,
    error: str | None = None,
) -> dict[str, Any]:
    """The scenario's table as JSON: each step with pass/fail, ms and detail, then the overall
    result (ok only when every planned step ran and passed, and nothing else went wrong)."""
    passed = sum(result.passed for result in results)
    ok = error is None and len(results) == planned and passed == planned and not problems
    document: dict[str, Any] = {
        "scenario": scenario,
        "steps": [
            {
                "step": result.name,
                "result": "pass" if result.passed else "fail",
                "ms": round(result.seconds * 1000, 1),
                "detail": result.detail,
            }
            for result in results
        ],
        "problems": problems,
        "passed": passed,
        "planned": planned,
        "result": "ok" if ok else "failed",
        "ok": ok,
    }
    if error is not None:
        document["error"] = error
    return document


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
    write_json: WriteJson | None = None,
    errors: Console | None = None,
) -> int:
    """Boot, print responses, then updates until the duration ends; 0 only if all was valid.
    With `write_json`: each exchange as a JSON object, then the result as one. A failed boot or
    broker is said on `errors` (default `console`)."""

    def show(exchange: Exchange) -> None:
        if write_json is not None:
            write_json(exchange_document(exchange))
            return
        console.print(describe_exchange(exchange), soft_wrap=True)
        if not exchange.outgoing and exchange.problem is None:
            console.print_json(data=exchange.data)

    def failed(why: str) -> int:
        if write_json is not None:
            write_json({"result": "failed", "ok": False, "error": why})
        else:
            (errors or console).print(f"[red]FAILED[/red] {why}")
        return 1

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
                return failed(str(error))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(duration_s):
                    await asyncio.Event().wait()
            problems = josev.problems
    except aiomqtt.MqttError as error:
        return failed(f"broker {broker}: {error}")
    ok = not problems
    if write_json is not None:
        write_json(
            {
                "result": "ok" if ok else "failed",
                "ok": ok,
                "responses": len(josev.responses),
                "updates": len(josev.updates),
                "problems": list(problems),
            }
        )
        return 0 if ok else 1
    for problem in problems:
        console.print(f"[red]PROBLEM[/red] {problem}")
    console.print(
        f"{'OK' if ok else 'FAILED'}: {len(josev.responses)} responses, "
        f"{len(josev.updates)} updates, {len(problems)} problems"
    )
    return 0 if ok else 1


def exchange_document(exchange: Exchange) -> dict[str, Any]:
    """One message the emulator sent or received, with what it found wrong (None: nothing)."""
    return {
        "direction": "josev -> cs" if exchange.outgoing else "cs -> josev",
        "name": exchange.name,
        "type": exchange.type,
        "id": exchange.id,
        "latency_ms": None if exchange.latency_s is None else round(exchange.latency_s * 1000, 2),
        "problem": exchange.problem,
        "data": exchange.data,
    }
