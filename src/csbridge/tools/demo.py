"""`csbridge demo`: embedded broker, the bridge on the simulated station, and a Josev emulator."""

from __future__ import annotations

import asyncio
import contextlib
import time

from rich.console import Console
from rich.live import Live

from csbridge.config import load_config
from csbridge.mqtt import embedded_broker
from csbridge.protocol import Bridge
from csbridge.service import Station, Step
from csbridge.support import example_config
from csbridge.tools.emulator import EmulatorError, JosevEmulator
from csbridge.tools.live_view import DemoView

JOSEV_RESTART_EVERY_S = 12.0
CONNECT_TIMEOUT_S = 10.0


async def run_demo(duration_s: float | None, console: Console) -> int:
    """Run until `duration_s` ends (or forever); 0 when Josev saw nothing wrong, else 1."""
    config = load_config(example_config("sim-station.toml"))
    config = config.model_copy(
        update={"station": config.station.model_copy(update={"scenario": "demo"})}
    )
    async with embedded_broker() as broker:
        config = config.with_broker(broker)
        station = Station(config)
        bridge = station.bridge
        view = DemoView(broker, console, bridge.counters, station.engine)
        station.on_step = lambda step: _announce(view, step)
        background = [asyncio.create_task(station.run(), name="station")]
        live = Live(view, console=console, refresh_per_second=4) if not view.plain else None
        try:
            with live or contextlib.nullcontext():
                await _play_josev(broker, view, bridge, duration_s)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        if view.plain:
            view.print_final_view()
        return 0 if view.problems == 0 else 1


def _announce(view: DemoView, step: Step) -> None:
    view.event(f"station: {step.description}")


async def _play_josev(
    broker: str, view: DemoView, bridge: Bridge, duration_s: float | None
) -> None:
    deadline = None if duration_s is None else time.monotonic() + duration_s
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(None if deadline is None else _loop_time(deadline)):
            await asyncio.wait_for(bridge.link.connected.wait(), CONNECT_TIMEOUT_S)
            view.event("bridge: connected, pushed the full state")
            async with JosevEmulator.connect(
                broker, on_exchange=view.exchange, client_id="josev-emulator"
            ) as josev:
                view.station_view = josev.view
                while True:
                    view.event("josev: booting, asks cs_parameters and cs_status_and_limits")
                    try:
                        await josev.boot()
                    except EmulatorError as error:
                        view.problems += 1
                        view.event(f"josev: PROBLEM {error}")
                    await asyncio.sleep(JOSEV_RESTART_EVERY_S)
                    view.event("josev: restarting (the bridge must answer every boot)")


def _loop_time(monotonic_deadline: float) -> float:
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())
