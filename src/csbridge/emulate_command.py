"""`csbridge emulate`: the Josev emulator against a live station, printing what comes back."""

from __future__ import annotations

import asyncio
import contextlib

import aiomqtt
from rich.console import Console

from csbridge.emulator import EmulatorError, Exchange, JosevEmulator
from csbridge.live_view import describe_exchange


async def emulate_session(
    broker: str,
    *,
    duration_s: float | None,
    timeout_s: float,
    request_topic: str,
    response_topic: str,
    console: Console,
) -> int:
    """Boot, print responses, then updates until the duration ends; 0 only if all was valid."""

    def show(exchange: Exchange) -> None:
        console.print(describe_exchange(exchange), soft_wrap=True)
        if not exchange.outgoing and exchange.problem is None:
            console.print_json(data=exchange.data)

    try:
        async with JosevEmulator.connect(
            broker, request_topic=request_topic, response_topic=response_topic, on_exchange=show
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
