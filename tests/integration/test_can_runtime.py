"""The station on live CAN: python-can's virtual bus, simulators speaking the real protocols."""

from __future__ import annotations

import asyncio
from pathlib import Path

import can

from csbridge.config import Config, load_config
from csbridge.service.station import Station
from csbridge.support import Counted
from csbridge.support.resources import example_config
from csbridge.testing.brokers import Broker
from csbridge.testing.can_tap import CanTap
from csbridge.testing.harness import wait_until as _until
from tests.conftest import stop_bridge
from tests.support import FIXTURES, unique_prefix

DC = "DE*CSB*E0001"


def _dc(station: Station) -> dict[str, float | str]:
    entry = station.engine.entries.get(DC)
    return {**entry["dc"], "status_code": entry["status_code"]}


async def test_the_real_codecs_read_three_modules_and_the_imd_off_the_bus(
    wire_station: Station,
) -> None:
    dc = _dc(wire_station)
    assert dc["status_code"] == "evse_ready"
    assert dc["max_power"] == 120000
    assert dc["isolation_status"] == "valid"
    decoded = wire_station.engine.counters.get("can_frames", "sim-can0/infypower-reg/decoded")
    assert decoded > 0
    assert wire_station.engine.counters.get("can_frames", "sim-can1/bender-iso165c/decoded") > 0


async def test_a_module_that_stops_answering_leaves_the_stack(wire_station: Station) -> None:
    wire_station.devices.modules[(DC, "m2")].silent = True
    elapsed = await _until(lambda: _dc(wire_station)["max_current"] == 160.0)
    assert elapsed < 3.0 + 1.5  # its deadline is three 1 s poll periods
    assert wire_station.engine.reported_binding(DC)["max_current"] == "module_dropout"


async def test_low_insulation_on_the_wire_is_an_emergency_shutdown(wire_station: Station) -> None:
    imd = wire_station.devices.imds[DC]
    imd.resistance_ohm = 50_000.0
    wire_station.devices.emit(imd)
    await _until(lambda: _dc(wire_station)["status_code"] == "evse_emergency_shutdown")
    assert _dc(wire_station)["isolation_status"] == "fault"
    assert _dc(wire_station)["max_current"] == 0


async def test_the_station_polls_every_module_on_its_period(
    wire_station: Station, wire_config: Config
) -> None:
    expected = {
        (0x0A << 22) | (command << 16) | (address << 8) | 0xF0
        for address in (1, 2, 3)
        for command in (0x03, 0x04, 0x0A, 0x0C)
    }
    sniffer = CanTap(wire_config.bus[0])
    try:
        polls = await sniffer.collect(
            2.5,
            lambda frame: frame.arbitration_id & 0xFF == 0xF0,  # source: the controller
            until=lambda found: expected <= {frame.arbitration_id for frame in found},
        )
    finally:
        sniffer.close()
    seen = {frame.arbitration_id for frame in polls}
    assert expected <= seen


async def test_hostile_frames_on_the_bus_are_counted_and_change_nothing(
    wire_station: Station, wire_config: Config
) -> None:
    channel = wire_config.bus[0].interface_channel
    intruder = can.Bus(channel=channel, interface="virtual")
    counters = wire_station.engine.counters
    before = {k: v for k, v in counters.snapshot().items() if "sim-can0" in k}
    try:
        for frame in (
            can.Message(arbitration_id=0x0283F001, data=b"\x00" * 3, is_extended_id=True),  # short
            can.Message(arbitration_id=0x028AF009, data=bytes(8), is_extended_id=True),  # address 9
            can.Message(arbitration_id=0x7FF, data=b"\x01", is_extended_id=False),  # nobody's
            can.Message(  # a capability of 6553.5 A: far above the rated range
                arbitration_id=0x028AF001,
                data=bytes.fromhex("03E80096FFFF0BB8"),
                is_extended_id=True,
            ),
        ):
            intruder.send(frame)
    finally:
        intruder.shutdown()

    def grew(label: str) -> bool:
        key = f"can_frames{{sim-can0/{label}}}"
        return counters.snapshot().get(key, 0) > before.get(key, 0)

    # On SocketCAN the kernel filters drop nobody's identifier before Python; the virtual bus
    # has no kernel, so the router sees it, counts it and drops it.
    await _until(
        lambda: all(
            grew(label)
            for label in (
                "infypower-reg/wrong_dlc",
                "infypower-reg/unknown_address",
                "infypower-reg/out_of_range",
                "-/unknown_id",
            )
        )
    )
    assert _dc(wire_station)["max_current"] == 240.0


def _replaying(broker: Broker, log: Path) -> Station:
    """examples/infypower-dc.toml on topics of its own, replaying `log` as `run --replay` does."""
    config = load_config(example_config("infypower-dc.toml")).with_broker(broker.url)
    raw = config.model_dump(mode="json", exclude_none=True)
    prefix = unique_prefix()
    raw["mqtt"].update(
        client_id=prefix,
        request_topic=f"{prefix}/josev/cs",
        response_topic=f"{prefix}/cs/josev",
        status_topic=f"{prefix}/status",
        local_prefix=f"{prefix}/csbridge",
    )
    return Station(Config.model_validate(raw), replay_logs=[log])


async def test_run_with_replay_feeds_the_log_at_its_pace(broker: Broker) -> None:
    station = _replaying(broker, FIXTURES / "can" / "infypower-three-modules.log")
    task = asyncio.create_task(station.run())
    try:
        elapsed = await _until(lambda: _dc(station)["max_current"] == 300.0, timeout=8)
        assert elapsed >= 1.5, "the log's own pace: its third module answers after 2 s of increases"
    finally:
        await stop_bridge(task)


async def test_run_with_replay_counts_bad_lines_and_error_frames(
    broker: Broker, tmp_path: Path
) -> None:
    """`run --replay` reads a log as `csbridge replay` does: a line it cannot read is counted
    (and the rest replayed), an error frame is counted by class and never decoded."""
    log = tmp_path / "mixed.log"
    good = (FIXTURES / "can" / "infypower-three-modules.log").read_text().splitlines()
    log.write_text(
        "\n".join(
            [
                good[0],
                "(1700000000.001000) can0 garbage",
                "(1700000000.001500) can0 20000004#0004000000000000",
                *good[1:],
            ]
        )
        + "\n"
    )
    station = _replaying(broker, log)
    task = asyncio.create_task(station.run())
    try:
        await _until(lambda: _dc(station)["max_current"] == 300.0, timeout=8)
        counters = station.engine.counters
        assert counters.get(Counted.CAN_LOG_LINES_REFUSED, str(log)) == 1
        assert counters.get(Counted.CAN_ERROR_FRAMES, "can0/controller") == 1
        assert station.router.outcomes[("-", "unknown_id")] == 0
    finally:
        await stop_bridge(task)
