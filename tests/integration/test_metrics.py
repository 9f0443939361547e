"""The Prometheus endpoint, scraped over HTTP: counts by label, histograms, link and EVSE state,
each EVSE's session."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import aiomqtt
import prometheus_client
import pytest
import pytest_asyncio
from prometheus_client.metrics_core import Metric

from csbridge.config import Config, MetricsConfig
from csbridge.service.metrics import MetricsServer, serve_metrics, start_metrics, station_registry
from csbridge.service.station import Station
from csbridge.session.machine import State
from csbridge.sources.readings import CpState
from csbridge.testing.harness import wait_until
from csbridge.tools.emulator import JosevEmulator
from tests.support import labelled, parse, ready_to_charge, value

DC = "DE*CSB*E0001"
AC = "DE*CSB*E0002"
STOPS_TOTAL = "csbridge_session_stops_total"


async def scrape(port: int) -> list[Metric]:
    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body: bytes = response.read()
        return body.decode()

    return parse(await asyncio.to_thread(get))


def listening(config: Config, listen: str | None) -> Config:
    return config.model_copy(update={"metrics": MetricsConfig(listen=listen)})


def free_port() -> int:
    """A port nobody listens on now ([metrics] listen takes no port 0); another process could
    take it before we bind, which on a test machine does not happen."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest_asyncio.fixture
async def metrics(station: Station) -> AsyncIterator[MetricsServer]:
    """The station's endpoint on a port the OS picks, so parallel runs never clash."""
    server = serve_metrics(station_registry(station), "127.0.0.1", 0)
    yield server
    await asyncio.to_thread(server.close)


# -- a running station, scraped over HTTP --------------------------------------------------


async def test_boot_and_garbage_are_counted_and_timed(
    station: Station,
    josev: JosevEmulator,
    config: Config,
    raw_client: aiomqtt.Client,
    metrics: MetricsServer,
) -> None:
    await josev.boot(timeout=5)
    await raw_client.publish(config.mqtt.request_topic, b"{not json", qos=1)
    await wait_until(
        lambda: station.bridge.counters.get("inbound_rejected", "not_json") == 1,
        5,
        "the garbage counted",
    )

    families = await scrape(metrics.port)

    assert metrics.port != 0
    assert value(families, "csbridge_messages_received_total") == 3
    assert value(families, "csbridge_inbound_rejected_total", reason="not_json") == 1
    assert value(families, "csbridge_inbound_rejected_total", reason="schema") == 0
    accepted = {s["name"] for s in labelled(families, "csbridge_messages_in_total")}
    assert accepted == {"cs_parameters", "cs_status_and_limits"}
    assert value(families, "csbridge_messages_in_total", name="cs_parameters") == 1
    timed = "csbridge_inbound_handling_seconds_count"
    assert value(families, timed, outcome="accepted") == 2
    assert value(families, timed, outcome="rejected") == 1
    out = "csbridge_messages_out_total"
    assert value(families, out, name="cs_parameters", type="response") == 1
    sent = "csbridge_outbound_handling_seconds_count"
    assert value(families, sent, name="cs_parameters", type="response") == 1
    assert value(families, "csbridge_mqtt_connected") == 1
    assert value(families, "csbridge_mqtt_connects_total") == 1
    assert value(families, "csbridge_mqtt_connection_losses_total") == 0


async def test_each_evse_shows_what_its_report_says(
    station: Station, metrics: MetricsServer
) -> None:
    families = await scrape(metrics.port)
    dc = station.engine.reports.get(DC)
    ac = station.engine.reports.get(AC)

    limit = "csbridge_evse_limit"
    assert value(families, limit, evse_id=DC, quantity="max_current", phase="") == 240.0
    assert dc["limits"]["dc"]["max_current"] == 240.0
    assert value(families, limit, evse_id=DC, quantity="max_power", phase="") == 120000
    assert (
        value(families, limit, evse_id=AC, quantity="max_current", phase="l2")
        == (ac["limits"]["ac"]["max_current"]["l2"])
    )
    binding = labelled(families, "csbridge_evse_binding_source")
    assert {"evse_id": DC, "quantity": "max_current", "source": dc["binding"]["max_current"]} in (
        binding
    )
    assert len(binding) == len(dc["binding"]) + len(ac["binding"]), "one source per limit"
    assert value(families, "csbridge_evse_status", evse_id=DC, status="evse_ready") == 1
    assert value(families, "csbridge_evse_isolation", evse_id=DC, status="valid") == 1
    assert value(families, "csbridge_modules_online", evse_id=DC) == 3
    assert value(families, "csbridge_modules_configured", evse_id=DC) == 3
    assert value(families, "csbridge_module_state", evse_id=DC, module="m2", state="healthy") == 1
    assert value(families, "csbridge_source_state", evse_id=DC, source="imd", state="fresh") == 1
    assert value(families, "csbridge_external_limit_active", evse_id=AC) == 0
    assert value(families, "csbridge_operator_enabled", evse_id=AC) == 1


async def test_a_silent_module_is_no_longer_online(
    station: Station, metrics: MetricsServer
) -> None:
    station.devices.modules[(DC, "m2")].silent = True

    async def two_online() -> bool:
        return value(await scrape(metrics.port), "csbridge_modules_online", evse_id=DC) == 2

    await wait_until(two_online, 10, "two modules online on the endpoint", every=0.05)

    families = await scrape(metrics.port)
    assert value(families, "csbridge_module_state", evse_id=DC, module="m2", state="stale") == 1
    assert value(families, "csbridge_modules_configured", evse_id=DC) == 3


async def test_metrics_are_off_unless_configured(station: Station, config: Config) -> None:
    assert start_metrics(listening(config, None), station) is None


async def test_the_configured_address_serves_the_station(station: Station, config: Config) -> None:
    port = free_port()
    server = start_metrics(listening(config, f"127.0.0.1:{port}"), station)
    assert server is not None
    try:
        assert server.port == port
        families = await scrape(port)
        assert value(families, "csbridge_evse_status", evse_id=DC, status="evse_ready") == 1
    finally:
        await asyncio.to_thread(server.close)


async def test_stations_keep_out_of_the_global_registry(metrics: MetricsServer) -> None:
    await scrape(metrics.port)
    global_names = {family.name for family in prometheus_client.REGISTRY.collect()}
    assert not {name for name in global_names if name.startswith("csbridge")}


async def test_closing_frees_the_endpoint(station: Station) -> None:
    server = serve_metrics(station_registry(station), "127.0.0.1", 0)
    await scrape(server.port)

    await asyncio.to_thread(server.close)

    with pytest.raises(urllib.error.URLError):
        await scrape(server.port)


async def test_a_session_shows_its_state_authorization_and_stop(
    station: Station, josev: JosevEmulator, metrics: MetricsServer
) -> None:
    await josev.boot(timeout=5)
    families = await scrape(metrics.port)
    assert value(families, "csbridge_session_state", evse_id=DC, state="available") == 1
    assert value(families, "csbridge_session_authorization", evse_id=DC, status="none") == 1
    assert value(families, STOPS_TOTAL, evse_id=DC, reason="stop_charging") == 0

    await ready_to_charge(station, josev, DC)
    families = await scrape(metrics.port)
    assert value(families, "csbridge_session_state", evse_id=DC, state="cable_check") == 1
    assert value(families, "csbridge_session_state", evse_id=DC, state="available") == 0
    assert value(families, "csbridge_session_authorization", evse_id=DC, status="accepted") == 1
    assert value(families, "csbridge_session_state_seconds", evse_id=DC) >= 0

    stopped = await josev.request("stop_charging", {"evse_id": DC}, timeout=5)
    assert stopped.data["status"] == "accepted"
    board = station.devices.boards[DC]
    board.cp_state = CpState.A
    station.devices.emit(board)
    await wait_until(
        lambda: station.session.sessions[DC].state is State.AVAILABLE, 5, "the EVSE available"
    )

    families = await scrape(metrics.port)
    assert value(families, STOPS_TOTAL, evse_id=DC, reason="stop_charging") == 1
    assert value(families, STOPS_TOTAL, evse_id=DC, reason="unplugged") == 0, "no energy then"
    assert value(families, STOPS_TOTAL, evse_id=AC, reason="stop_charging") == 0
    assert value(families, "csbridge_session_state", evse_id=DC, state="available") == 1
    assert value(families, "csbridge_session_state", evse_id=AC, state="available") == 1
