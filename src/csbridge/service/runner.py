"""`csbridge run`: the station until stopped, as a systemd service or in a terminal.

SIGTERM (systemctl stop) and SIGINT (Ctrl-C) stop it gracefully: modules off, a final update
with every EVSE at evse_shutdown, `offline` on the status topic, exit 0, all within 2 s. Josev's
station `reset` stops it the same way, then exits EXIT_RESET (75), which the packaged unit
restarts. Under systemd it says READY=1 once its first full state is published and feeds the
watchdog.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from csbridge.config import Config, exposed_secret_files, read_password
from csbridge.service.sd_notify import SystemdNotifier
from csbridge.service.station import Station
from csbridge.service.watchdog import feed_watchdog
from csbridge.session import EXIT_RESET

if TYPE_CHECKING:
    from csbridge.service.metrics import MetricsServer
    from csbridge.service.steps import Step

log = logging.getLogger("csbridge.run")

GOODBYE_S = 1.0
"""For the final state to be handed to the broker; the rest of the 2 s is for closing down."""


def _log_step(step: Step) -> None:
    log.info("event=scenario_step what=%r", step.description)


def warn_about_secrets(config: Config) -> None:
    """A readable password or key file is a finding on a board others can log in to."""
    for path in exposed_secret_files(config.mqtt):
        log.warning(
            "event=secret_file_exposed path=%s why=readable by group or others -- chmod 600 it",
            path,
        )


async def run_station(
    config: Config,
    replay_logs: Sequence[Path] = (),
    notifier: SystemdNotifier | None = None,
) -> int:
    """Serve Josev from the configured sources until SIGTERM or SIGINT (then say goodbye:
    exit code 0), Josev's station reset (the same goodbye: EXIT_RESET), or until a part fails
    for good (then raise, and systemd restarts us)."""
    # The stop is taken from the first moment on: a SIGTERM while the station is built or
    # connects stops it as cleanly as one later (Python's default would end the process).
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    try:
        return await _serve_until_stopped(config, replay_logs, notifier, stop_requested)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def _serve_until_stopped(
    config: Config,
    replay_logs: Sequence[Path],
    notifier: SystemdNotifier | None,
    stop_requested: asyncio.Event,
) -> int:
    # An unreadable password file is a configuration error (exit 2); read off the loop, as
    # at every connect.
    await asyncio.to_thread(read_password, config.mqtt)
    warn_about_secrets(config)
    notifier = notifier or SystemdNotifier.from_environment()
    station = Station(config, on_step=_log_step, replay_logs=replay_logs)
    log.info(
        "event=start broker=%s evses=%s simulated_devices=%d scenario=%s systemd=%s",
        config.mqtt.broker,
        ",".join(station.engine.evse_ids),
        station.simulated_count(),
        config.station.scenario or "none",
        "yes" if notifier.enabled else "no",
    )
    metrics = _start_metrics(config, station)
    why = "signal"

    def reset_requested() -> None:
        nonlocal why
        why = "reset"
        stop_requested.set()

    station.resets.on_station_reset = reset_requested
    serving = asyncio.create_task(station.run(), name="station")
    helpers = [asyncio.create_task(_ready_then_watchdog(station, notifier), name="systemd")]
    stopping = asyncio.create_task(stop_requested.wait(), name="stop-signal")
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.done():
            await _say_goodbye(station, notifier, why)
    finally:
        for task in (serving, stopping, *helpers):
            task.cancel()
        await asyncio.gather(serving, stopping, *helpers, return_exceptions=True)
        if metrics is not None:
            await asyncio.to_thread(metrics.close)
    if not stopping.cancelled() and stopping.done():
        log.info("event=stopped why=%s", why)
        return EXIT_RESET if why == "reset" else 0
    serving.result()  # a part that failed for good: raise, exit non-zero
    return 0


def _start_metrics(config: Config, station: Station) -> MetricsServer | None:
    """A port already taken costs the metrics, never the charging: log it and serve on."""
    if config.metrics.listen is None:
        return None  # and prometheus_client is never imported: less memory on the board
    from csbridge.service.metrics import start_metrics  # noqa: PLC0415

    try:
        server = start_metrics(config, station)
    except OSError as error:
        log.error("event=metrics_unavailable listen=%s why=%s", config.metrics.listen, error)
        return None
    if server is not None:
        log.info("event=metrics_listening listen=%s port=%d", config.metrics.listen, server.port)
    return server


async def _ready_then_watchdog(station: Station, notifier: SystemdNotifier) -> None:
    """Start-up is complete once Josev can see the whole state; the watchdog runs from then."""
    await station.bridge.state_published.wait()
    notifier.notify("READY=1")
    notifier.notify("STATUS=serving Josev")
    log.info("event=ready")
    await feed_watchdog(notifier, station.watched(), station.engine.counters)


async def _say_goodbye(station: Station, notifier: SystemdNotifier, why: str) -> None:
    notifier.notify("STOPPING=1")
    log.info("event=stopping why=%s", why)
    try:
        async with asyncio.timeout(GOODBYE_S):
            await station.shut_down("csbridge stops")
    except TimeoutError:
        log.error("event=goodbye_incomplete why=the final state took longer than %.1f s", GOODBYE_S)
