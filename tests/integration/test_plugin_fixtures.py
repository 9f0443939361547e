"""csbridge's pytest plugin, its fixtures on the project's own station: Josev waits past its
mark and says where things stand, reports invalid messages, a station that cannot connect
times out saying so, and a CAN tap collects until it has what it waits for."""

from __future__ import annotations

import re
import time

import aiomqtt
import can
import pytest

from csbridge.config import Config
from csbridge.service.station import Station
from csbridge.testing import plugin
from csbridge.testing.brokers import Broker
from csbridge.testing.can_tap import CanTap, StationCan
from csbridge.testing.harness import start_station, wait_until
from csbridge.testing.josev import JosevClient
from csbridge.tools.emulator import EmulatorError

DC = "DE*CSB*E0001"


async def test_josev_waits_only_past_its_mark_and_says_where_things_stand(
    csbridge_station: Station, csbridge_josev: JosevClient
) -> None:
    """The project's own station (fixtures/configs/reading-station.toml, via conftest.py)."""
    first = await csbridge_josev.wait_for_update()  # the station's full state as it connects
    assert first.name == "cs_status_and_limits"
    entry = await csbridge_josev.wait_for_evse(DC, lambda e: e["status_code"] == "evse_ready")
    assert entry["evse_id"] == DC

    since = csbridge_josev.mark()
    with pytest.raises(EmulatorError, match=f"Josev's view: .*{re.escape(DC)}: evse_ready"):
        await csbridge_josev.wait_for_update(lambda message: message is first, 0.3, since=since)

    await csbridge_josev.boot()
    incoming = csbridge_josev.seen
    assert {seen.name for seen in incoming} >= {"cs_parameters", "cs_status_and_limits"}
    assert all(not seen.outgoing for seen in incoming)
    assert len(csbridge_josev.exchanges) == len(incoming) + 2  # and the two requests it sent
    csbridge_josev.assert_no_problems()


async def test_josev_reports_an_invalid_message_as_a_problem(
    csbridge_josev: JosevClient, raw_client: aiomqtt.Client
) -> None:
    await raw_client.publish(csbridge_josev.response_topic, b'{"not": "a message"}', qos=1)
    await wait_until(lambda: bool(csbridge_josev.problems), 5, "the problem recorded")
    assert csbridge_josev.seen[-1].problem is not None
    with pytest.raises(AssertionError, match="station sent an invalid message"):
        csbridge_josev.assert_no_problems()


async def test_simulate_needs_the_station_config(broker: Broker) -> None:
    async with JosevClient.connect(broker.url, request_topic="x/req", response_topic="x/resp") as c:
        with pytest.raises(EmulatorError, match="for_config"):
            await c.simulate(DC, "plug_in")


async def test_a_station_that_cannot_connect_times_out_saying_so(
    csbridge_config_factory: plugin.ConfigFactory,
) -> None:
    config = csbridge_config_factory().with_broker("mqtt://127.0.0.1:1")
    with pytest.raises(TimeoutError, match=r"no broker connection within 0\.5 s .*NOT connected"):
        await start_station(config, connect_timeout=0.5)


async def test_a_tap_stops_collecting_once_it_has_what_it_waits_for(wire_config: Config) -> None:
    """No station here: a second node on the bus sends, the tap collects."""
    taps = StationCan(wire_config)
    listening = taps.tap()  # hears the bus from here on
    sender = CanTap(wire_config.bus[0])
    try:
        for identifier in range(6):
            sender.send(can.Message(arbitration_id=identifier, data=b"", is_extended_id=False))
        started = time.monotonic()
        found = await listening.collect(
            5.0,
            lambda frame: frame.arbitration_id % 2 == 0,
            until=lambda frames: len(frames) >= 2,
        )
        took = time.monotonic() - started
    finally:
        sender.close()
        taps.close()
    assert [frame.arbitration_id for frame in found] == [0, 2]
    assert took < 1.0, "it returned once two even frames had come, not after 5 s"
