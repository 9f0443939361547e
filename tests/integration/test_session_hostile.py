"""Issue 14's hostile cases, each against a real mosquitto and an in-process station: what Josev
hears and what the simulated hardware does when a client asks for energy out of sequence, when a
stale request is replayed by the broker, when a module falls silent or keeps delivering, and
when a limit drops in the middle of a charge.

The session's commands are watched where they leave it: `tap` puts a recorder in front of the
EVSE's real drivers (each command is recorded, then passed on unchanged), so a module switched
on and off again within one step is still seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiomqtt
import orjson
import pytest

from csbridge.config import Config, broker_address
from csbridge.mqtt import free_port
from csbridge.mqtt.link import TCP_NODELAY_OPTION
from csbridge.power import BoardDriver, EvsePower, ModuleDriver, PowerOnReason
from csbridge.protocol import Discard, Leaf
from csbridge.service.station import Station
from csbridge.session.machine import ENERGY_STATES, State
from csbridge.sources import ExternalLimit, OperatorCommand
from csbridge.sources.simulated import SimulatedModule
from csbridge.sources.simulated.can_devices import ModuleControls
from csbridge.testing.brokers import MosquittoBroker, find_mosquitto
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from tests.conftest import stop_bridge
from tests.support import ready_for_cable_check, ready_to_charge, station_config, unique_prefix

DC = "DE*CSB*E0001"
MODULES = ("m1", "m2", "m3")
EV_MAX_V = 800.0


# -- what the session commands, as the drivers receive it ----------------------------------


@dataclass
class Commanded:
    """Every command the session gave one EVSE's modules and contactors since `tap`, in order."""

    modules: list[tuple[str, float, float]] = field(default_factory=list)
    """(module, volts, amps); an off command is recorded as 0 V, 0 A."""
    contactors: list[bool] = field(default_factory=list)
    """True: close, False: open."""

    def energizing(self) -> list[tuple[str, float, float]]:
        return [command for command in self.modules if command[2] > 0.0]

    def closes(self) -> int:
        return sum(self.contactors)


@dataclass(frozen=True, slots=True)
class _TappedModule:
    inner: ModuleDriver
    name: str
    record: Commanded

    @property
    def watchdog_s(self) -> float:
        return self.inner.watchdog_s

    @property
    def min_current_a(self) -> float:
        return self.inner.min_current_a

    def command(self, voltage: float, current: float, *, precharge: bool) -> None:
        self.record.modules.append((self.name, voltage, current))
        self.inner.command(voltage, current, precharge=precharge)

    def switch_off(self) -> None:
        self.record.modules.append((self.name, 0.0, 0.0))
        self.inner.switch_off()


@dataclass(frozen=True, slots=True)
class _TappedBoard:
    inner: BoardDriver
    record: Commanded

    def close_contactors(self, reason: PowerOnReason) -> None:
        self.record.contactors.append(True)
        self.inner.close_contactors(reason)

    def open_contactors(self) -> None:
        self.record.contactors.append(False)
        self.inner.open_contactors()

    def drive_pwm(self, on: bool, duty_percent: float) -> bool:
        return self.inner.drive_pwm(on, duty_percent)

    def lock(self) -> bool:
        return self.inner.lock()

    def unlock(self) -> bool:
        return self.inner.unlock()


def _replace_drivers(
    station: Station,
    evse_id: str,
    modules: Callable[[str, ModuleDriver], ModuleDriver],
    board: Callable[[BoardDriver], BoardDriver] = lambda inner: inner,
) -> None:
    power = station.stage.evses[evse_id]
    evses = cast(dict[str, EvsePower], station.stage.evses)  # the stage keeps a plain dict
    evses[evse_id] = EvsePower(
        modules={name: modules(name, driver) for name, driver in power.modules.items()},
        board=board(power.board),
        imd=power.imd,
    )


def tap(station: Station, evse_id: str = DC) -> Commanded:
    """From now on, every module and contactor command the session gives `evse_id`, recorded
    on its way to the real driver."""
    record = Commanded()
    _replace_drivers(
        station,
        evse_id,
        lambda name, driver: _TappedModule(driver, name, record),
        lambda driver: _TappedBoard(driver, record),
    )
    return record


@dataclass(slots=True)
class _KeepsDelivering:
    """A simulated module whose output stage sticks: every off it is given is passed on, and
    its output is set back directly after it (while `stuck`)."""

    inner: ModuleDriver
    module: SimulatedModule
    voltage: float
    current: float
    stuck: bool = True

    @property
    def watchdog_s(self) -> float:
        return self.inner.watchdog_s

    @property
    def min_current_a(self) -> float:
        return self.inner.min_current_a

    def command(self, voltage: float, current: float, *, precharge: bool) -> None:
        self.inner.command(voltage, current, precharge=precharge)

    def switch_off(self) -> None:
        self.inner.switch_off()
        if self.stuck:
            self.module.output_voltage = self.voltage
            self.module.output_current = self.current


# -- small helpers ----------------------------------------------------------------------------


def _setpoint(
    voltage: float, current: float, *, precharge: bool = False, evse_id: str = DC
) -> dict[str, Any]:
    return {
        "evse_id": evse_id,
        "dc": {"voltage": voltage, "charge_current": current},
        "ev_limits": {"maximum_voltage": EV_MAX_V},
        "is_precharge": precharge,
    }


def _currents(station: Station) -> list[float]:
    return [station.devices.modules[(DC, name)].output_current for name in MODULES]


def _contactor_closed(station: Station) -> bool:
    return station.devices.boards[DC].contactor_closed


def _state(station: Station) -> State:
    return station.session.sessions[DC].state


def _entry(station: Station) -> dict[str, Any]:
    return dict(station.engine.entries.get(DC))


def _closed_updates(josev: JosevClient, since: int) -> list[dict[str, Any]]:
    return [
        m.data
        for m in josev.updates[since:]
        if m.name == "cs_contactor_status" and m.data["status"] == "closed"
    ]


async def _refused_and_dead(station: Station, josev: JosevClient, record: Commanded) -> None:
    """A precharge and a charge setpoint are both rejected, and nothing reaches the hardware:
    no module command above 0 A, no contactor close, the simulated board's contactor open."""
    since = josev.mark()
    for precharge in (True, False):
        answer = await josev.request(
            "power_electronics_setpoint", _setpoint(400.0, 100.0, precharge=precharge), timeout=5
        )
        assert answer.data == {"evse_id": DC, "status": "rejected"}, (precharge, _state(station))
    assert record.energizing() == []
    assert record.closes() == 0
    assert _currents(station) == [0.0, 0.0, 0.0]
    assert not _contactor_closed(station)
    assert _closed_updates(josev, since) == []
    assert _state(station) not in ENERGY_STATES


async def _charging(station: Station, josev: JosevClient, amps: float = 90.0) -> None:
    """A DC session that passed its cable check, charging at 400 V and `amps`."""
    await ready_to_charge(station, josev, DC)
    answer = await josev.request("power_electronics_setpoint", _setpoint(400.0, amps), timeout=5)
    assert answer.data == {"evse_id": DC, "status": "accepted"}
    assert sum(_currents(station)) == pytest.approx(amps)
    assert _state(station) is State.CHARGING


# -- 1. a setpoint out of sequence --------------------------------------------------------


async def _nothing(station: Station, josev: JosevClient) -> None:
    pass


async def _plugged_in(station: Station, josev: JosevClient) -> None:
    await josev.simulate(DC, "plug_in")
    await wait_until(lambda: _state(station) is State.AUTHORIZED, 5, "free vend at plug-in")


async def _before_the_cable_check(station: Station, josev: JosevClient) -> None:
    await ready_for_cable_check(station, josev, DC)


Situation = Callable[[Station, JosevClient], Awaitable[None]]


@pytest.mark.parametrize(
    "situation",
    [_nothing, _plugged_in, _before_the_cable_check],
    ids=["before plug-in", "plugged in, authorized", "pilot C and HLC, before the cable check"],
)
async def test_a_setpoint_before_the_cable_check_is_rejected_and_nothing_switches(
    station: Station, josev: JosevClient, situation: Situation
) -> None:
    await josev.boot(timeout=5)
    record = tap(station)
    await situation(station, josev)
    await _refused_and_dead(station, josev, record)
    assert josev.problems == []


async def _stop_charging(station: Station, josev: JosevClient) -> None:
    answer = await josev.request("stop_charging", {"evse_id": DC}, timeout=5)
    assert answer.data == {"evse_id": DC, "status": "accepted"}


async def _session_stop(station: Station, josev: JosevClient) -> None:
    await josev.update("iso15118_state_info", {"evse_id": DC, "session_status": "SessionStop"})


async def _transaction_ended(station: Station, josev: JosevClient) -> None:
    await josev.update(
        "transaction_status", {"transaction_id": "t-14", "status": "ended", "evse_id": DC}
    )


async def _plug_pulled(station: Station, josev: JosevClient) -> None:
    await josev.simulate(DC, "unplug")


@pytest.mark.parametrize(
    "ending",
    [_stop_charging, _session_stop, _transaction_ended, _plug_pulled],
    ids=["stop_charging", "SessionStop", "transaction ended", "plug pulled (CP A)"],
)
async def test_a_setpoint_after_the_session_ended_is_rejected_and_nothing_switches(
    station: Station, josev: JosevClient, ending: Situation
) -> None:
    await josev.boot(timeout=5)
    await _charging(station, josev)
    charged = josev.mark()
    await ending(station, josev)
    await wait_until(
        lambda: _state(station) not in ENERGY_STATES and not any(_currents(station)),
        5,
        "the session's energy ended",
    )
    # Josev heard the contactors open: any close it hears from here on is a new one.
    await josev.wait_update(
        lambda m: m.name == "cs_contactor_status" and m.data["status"] == "opened",
        timeout=5,
        since=charged,
    )
    assert not _contactor_closed(station)
    record = tap(station)
    await _refused_and_dead(station, josev, record)
    if ending is _plug_pulled:
        assert _state(station) is State.AVAILABLE
    assert josev.problems == []


# -- 2. a retained setpoint ---------------------------------------------------------------


@pytest.fixture
def keeping_mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A mosquitto of the test's own that keeps retained messages across a restart, as a
    broker with persistence does (its store is written when it stops)."""
    if not find_mosquitto():
        pytest.skip("needs a mosquitto binary to restart")
    store = tmp_path / "store"
    store.mkdir()
    port = free_port()
    # As root, mosquitto would drop to its own user, who may not write the test's folder;
    # `user` names the one running the tests (and has no effect for anyone else).
    text = (
        "allow_anonymous true\nset_tcp_nodelay true\npersistence true\n"
        f"persistence_location {store}/\nuser {getpass.getuser()}\n"
        f"listener {port} 127.0.0.1\n"
    )
    broker = MosquittoBroker(tmp_path, port=port, config_text=text)
    broker.start()
    yield broker
    broker.stop()


@contextlib.asynccontextmanager
async def _listening(config: Config, heard: list[aiomqtt.Message]) -> AsyncIterator[None]:
    """A plain client hearing the response topic and the request topic (retained included)."""
    host, port, _ = broker_address(config.mqtt.broker)
    async with aiomqtt.Client(host, port, socket_options=[TCP_NODELAY_OPTION]) as client:
        await client.subscribe(config.mqtt.response_topic, qos=1)
        await client.subscribe(config.mqtt.request_topic, qos=1)

        async def listen() -> None:
            async for message in client.messages:
                heard.append(message)

        listener = asyncio.create_task(listen())
        try:
            yield
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)


def _with_id(heard: list[aiomqtt.Message], topic: str, message_id: str) -> list[aiomqtt.Message]:
    found = []
    for message in heard:
        if message.topic.value != topic or not isinstance(message.payload, bytes):
            continue
        with contextlib.suppress(orjson.JSONDecodeError):
            if orjson.loads(message.payload).get("id") == message_id:
                found.append(message)
    return found


async def test_a_retained_setpoint_is_not_acted_on_at_connect_nor_after_a_broker_restart(
    keeping_mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge")
    config = station_config(keeping_mosquitto.url, unique_prefix())
    stale_id = str(uuid.uuid4())
    stale = {
        "id": stale_id,
        "name": "power_electronics_setpoint",
        "type": "request",
        "data": _setpoint(450.0, 77.0),
    }
    host, port, _ = broker_address(config.mqtt.broker)
    async with aiomqtt.Client(host, port) as publisher:
        await publisher.publish(config.mqtt.request_topic, orjson.dumps(stale), qos=1, retain=True)
    station = Station(config)
    record = tap(station)  # before it connects: the replay comes at its first subscribe

    def retained() -> int:
        return station.bridge.counters.get("inbound_rejected", Discard.RETAINED)

    first: list[aiomqtt.Message] = []
    second: list[aiomqtt.Message] = []
    task: asyncio.Task[None] | None = None
    try:
        async with _listening(config, first):  # hearing every answer from the station's start
            task = asyncio.create_task(station.run())
            await wait_until(lambda: retained() == 1, 5, "the replay at connect refused")
        keeping_mosquitto.stop()  # a clean restart: the broker writes its store and reads it back
        keeping_mosquitto.start()
        async with _listening(config, second):
            await wait_until(
                lambda: bool(_with_id(second, config.mqtt.request_topic, stale_id)),
                5,
                "the broker replaying the stored setpoint",
            )
            (replayed,) = _with_id(second, config.mqtt.request_topic, stale_id)
            assert replayed.retain, "the broker kept the setpoint across its restart"
            await wait_until(lambda: station.bridge.link.connects >= 2, 5, "the reconnect")
            await wait_until(lambda: retained() == 2, 5, "the replay after the restart refused")
            # The station still answers what Josev asks now.
            async with JosevClient.for_config(config) as josev:
                live = await josev.request(
                    "power_electronics_setpoint", _setpoint(450.0, 77.0), timeout=5
                )
                assert live.data["status"] == "rejected"  # nothing plugged in
    finally:
        if task is not None:
            await stop_bridge(task)
    assert _with_id(first + second, config.mqtt.response_topic, stale_id) == []
    assert record.energizing() == []
    assert record.closes() == 0
    assert _currents(station) == [0.0, 0.0, 0.0]
    lines = [
        r.getMessage()
        for r in caplog.records
        if "event=inbound_rejected" in r.getMessage() and "reason=retained" in r.getMessage()
    ]
    assert len(lines) == 1, "logged once per kind, counted every time"
    assert "message=power_electronics_setpoint" in lines[0]


# -- 3. a module that fell silent, and one that keeps delivering -------------------------


POLL_SLACK_S = 0.2
"""The event loop's and the virtual bus's share of "within one poll period"."""


async def _m3_silent_through_a_stop(
    station: Station, josev: JosevClient, *, right_after_a_keepalive: bool
) -> None:
    """Charging at 240 A over the wire; m3 falls silent (the station notices), then the
    session stops: m3 never hears the off and keeps its 80 A share."""
    m1 = station.devices.modules[(DC, "m1")]
    m3 = station.devices.modules[(DC, "m3")]
    await josev.boot(timeout=5)
    await ready_to_charge(station, josev, DC)
    answer = await josev.request("power_electronics_setpoint", _setpoint(400.0, 240.0), 5)
    assert answer.data["status"] == "accepted"
    await wait_until(lambda: m3.output_current == 80.0, 3, "m3 delivering its share")
    await josev.simulate(DC, "silence_module", "m3")
    await wait_until(
        lambda: _entry(station)["dc"]["max_current"] == 160.0, 5, "m3 missed by the station"
    )
    if right_after_a_keepalive:
        await _next_command(m1, "the keepalive's setpoint")
    await _stop_charging(station, josev)
    await wait_until(lambda: _state(station) not in ENERGY_STATES, 5, "the session stopped")
    await wait_until(lambda: m1.output_current == 0.0, 1, "the off frame reaching m1")
    # Silent on the bus, m3 never heard the off: it holds its last share (within its own
    # 10 s watchdog), with the session over.
    assert m3.output_current == 80.0


async def _next_command(module: ModuleControls, what: str) -> None:
    """Until the module receives its next command frame."""
    stamp = module.last_command_at
    await wait_until(
        lambda: module.last_command_at is not None and module.last_command_at != stamp, 3, what
    )


async def test_a_module_back_from_silence_is_switched_off_and_josev_hears_no_current(
    wire_station: Station, wire_config: Config
) -> None:
    station = wire_station
    m1 = station.devices.modules[(DC, "m1")]
    m3 = station.devices.modules[(DC, "m3")]
    poll_period_s = next(m.poll_period_s for m in wire_config.evse[0].module if m.name == "m3")
    async with JosevClient.for_config(wire_config) as josev:
        await _m3_silent_through_a_stop(station, josev, right_after_a_keepalive=False)
        since = josev.mark()
        # Idle, every module is commanded off once per poll period: m3 comes back just after
        # one such off and is switched off by the next.
        await _next_command(m1, "an idle off")
        await josev.simulate(DC, "restore_module", "m3")
        took = await wait_until(
            lambda: m3.output_current == 0.0, 3 * poll_period_s, "m3 switched off"
        )
        assert took <= poll_period_s + POLL_SLACK_S, f"m3 delivered {took:.2f} s after its return"
        # Idle, Josev hears what the modules measure: nothing flows.
        await wait_until(
            lambda: station.session.power.measured_current(DC) == 0.0, 3, "m3's reading of 0 A"
        )
        meter = await josev.request(
            "meter_values", {"evse_id": DC, "timestamp": "2026-12-01T10:00:00Z"}, timeout=5
        )
        assert meter.data["dc_current"] == 0.0
        assert _entry(station)["dc"]["present_current"] == 0.0
        await josev.wait_for_evse(DC, lambda e: e["dc"]["present_current"] == 0.0, 3)
        assert josev.view.evses[DC]["dc"]["present_current"] == 0.0
        faults = [m.data for m in josev.updates[since:] if m.name == "hardware_fault"]
        assert faults == [], "switched off in time: no stray output"
        josev.assert_no_problems()


async def test_a_module_back_from_silence_right_after_a_stop_is_off_within_one_poll_period(
    wire_station: Station, wire_config: Config
) -> None:
    station = wire_station
    m3 = station.devices.modules[(DC, "m3")]
    poll_period_s = next(m.poll_period_s for m in wire_config.evse[0].module if m.name == "m3")
    async with JosevClient.for_config(wire_config) as josev:
        # The stop lands just after a tick of the keepalive loop, the one that holds idle
        # modules off: the worst moment for a module to come back.
        await _m3_silent_through_a_stop(station, josev, right_after_a_keepalive=True)
        await josev.simulate(DC, "restore_module", "m3")
        took = await wait_until(
            lambda: m3.output_current == 0.0, 3 * poll_period_s, "m3 switched off"
        )
        assert took <= poll_period_s + POLL_SLACK_S, f"m3 delivered {took:.2f} s after its return"


async def test_a_module_delivering_while_commanded_off_is_a_fault_until_it_stops(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    await _charging(station, josev)
    m2 = station.devices.modules[(DC, "m2")]
    assert isinstance(m2, SimulatedModule)
    stuck = _KeepsDelivering(station.stage.evses[DC].modules["m2"], m2, 400.0, 30.0)
    _replace_drivers(station, DC, lambda name, d: stuck if name == "m2" else d)
    since = josev.mark()
    await _stop_charging(station, josev)
    assert m2.output_current == 30.0, "the off was given, and ignored"
    fault = await josev.wait_for_update(
        lambda m: m.data["component_name"] == "m2", 10, name="hardware_fault", since=since
    )
    assert fault.data == {
        "evse_id": DC,
        "component_name": "m2",
        "fault_name": "overcurrent_fault",
    }
    entry = await josev.wait_for_evse(
        DC, lambda e: e["status_code"] == "evse_malfunction", 5, since=since
    )
    assert entry["status_code"] == "evse_malfunction"
    assert _state(station) is State.FAULTED
    # Still delivering a poll period later: still a malfunction.
    held = josev.mark()
    stamp = m2.last_command_at
    assert stamp is not None
    await wait_until(
        lambda: (m2.last_command_at or stamp) > stamp, 3, "another off given to m2 (ignored)"
    )
    assert _entry(station)["status_code"] == "evse_malfunction"
    assert not any(
        e["status_code"] == "evse_ready"
        for m in josev.updates[held:]
        if m.name == "cs_status_and_limits"
        for e in m.data["evses"]
        if e["evse_id"] == DC
    )
    stuck.stuck = False  # the output stage lets go: the next off holds
    ready = await josev.wait_for_evse(
        DC, lambda e: e["status_code"] == "evse_ready", 10, since=held
    )
    assert ready["status_code"] == "evse_ready"
    assert m2.output_current == 0.0
    assert _state(station) is not State.FAULTED
    josev.assert_no_problems()


# -- 4. a limit that drops mid-charge --------------------------------------------------


async def test_a_lower_external_limit_reaches_the_modules_in_the_same_evaluation(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    await _charging(station, josev, amps=240.0)
    now = station.engine.clock()
    station.engine.ingest(DC, ExternalLimit(at=now, until=math.inf, max_current=30.0))
    # No await in between: nothing else ran, no keepalive.
    assert _entry(station)["dc"]["max_current"] == 30.0
    assert sum(_currents(station)) <= 30.0 + 1e-9
    assert sum(_currents(station)) == pytest.approx(30.0)
    assert _state(station) is State.CHARGING


async def test_an_operator_disable_switches_the_modules_off_in_the_same_evaluation(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    await _charging(station, josev, amps=240.0)
    station.engine.ingest(DC, OperatorCommand(at=station.engine.clock(), enabled=False))
    assert _entry(station)["status_code"] == "evse_shutdown"
    assert _currents(station) == [0.0, 0.0, 0.0]
    assert not _contactor_closed(station)
    assert _state(station) not in ENERGY_STATES


KEEPALIVE_S = 1.0
MQTT_BOUND_S = 0.3
"""Well under the 1 s keepalive: a limit that waited for it would miss this most times."""


@pytest.mark.parametrize(
    ("leaf", "document", "bound_a"),
    [
        (Leaf.EXTERNAL_LIMIT, {"max_current": 30.0}, 30.0),
        (Leaf.OPERATOR, {"enabled": False, "reason": "maintenance"}, 0.0),
    ],
    ids=["external limit 240 -> 30 A", "operator disable"],
)
async def test_a_limit_dropped_over_mqtt_reaches_the_modules_well_before_the_keepalive(
    station: Station, josev: JosevClient, leaf: Leaf, document: dict[str, Any], bound_a: float
) -> None:
    await josev.boot(timeout=5)
    await _charging(station, josev, amps=240.0)
    started = time.monotonic()
    await josev.publish(josev.local_topic(DC, leaf), document)
    took = await wait_until(
        lambda: sum(_currents(station)) <= bound_a + 1e-9, MQTT_BOUND_S, "the modules follow"
    )
    assert took < MQTT_BOUND_S < KEEPALIVE_S
    assert time.monotonic() - started < KEEPALIVE_S
    if bound_a == 0.0:
        assert not _contactor_closed(station)


# -- 5. a small setpoint, and the meter ----------------------------------------------


WIRE_RESOLUTION_A = 0.001
"""The Infypower set-output frame carries milliamps: a share the fewest-modules split nudges a
few ulps below 1 A goes out as 0.999 A."""


def _one_module_at_1_a(station: Station) -> bool:
    """One module delivers the whole 1 A, the other two nothing (not three 0.33 A shares)."""
    low, middle, high = sorted(_currents(station))
    return low == middle == 0.0 and _about_1_a(high)


def _about_1_a(amps: float) -> bool:
    """1 A as the wire carries it: never above, at most one count below."""
    return 1.0 - WIRE_RESOLUTION_A - 1e-9 <= amps <= 1.0


async def test_a_1_a_loop_current_goes_to_one_module_and_the_meter_reads_it(
    wire_station: Station, wire_config: Config
) -> None:
    station = wire_station
    async with JosevClient.for_config(wire_config) as josev:
        await josev.boot(timeout=5)
        await ready_to_charge(station, josev, DC)
        answer = await josev.request("power_electronics_setpoint", _setpoint(400.0, 1.0), 5)
        assert answer.data["status"] == "accepted"
        await wait_until(lambda: _one_module_at_1_a(station), 3, "1 A on one module")

        async def meter_reads_1_a() -> bool:
            meter = await josev.request(
                "meter_values", {"evse_id": DC, "timestamp": "2026-12-01T10:00:00Z"}, timeout=5
            )
            # Voltage and current come in replies of their own: wait for both.
            return _about_1_a(meter.data["dc_current"]) and meter.data["dc_voltage"] == 400.0

        await wait_until(meter_reads_1_a, 5, "meter_values reading 1 A at 400 V", every=0.2)
        meter = await josev.request(
            "meter_values", {"evse_id": DC, "timestamp": "2026-12-01T10:00:01Z"}, timeout=5
        )
        assert _about_1_a(meter.data["dc_current"]), meter.data
        assert meter.data["dc_voltage"] == 400.0
        assert _one_module_at_1_a(station), _currents(station)
        josev.assert_no_problems()


# -- 6. the pilot, authorization, lock, availability, connector status ------------------


async def test_the_simulated_board_reaches_cp_state_c2_once_the_pwm_is_on(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    since = josev.mark()
    await josev.simulate(DC, "plug_in")
    await josev.wait_for_update(lambda m: m.data["state"] == "B1", 5, name="cp_status")
    pwm = await josev.request(
        "cp_pwm", {"evse_id": DC, "hlc": True, "error_state": False, "fault_state": False}, 5
    )
    assert pwm.data["status"] == "valid"
    await josev.wait_for_update(lambda m: m.data["state"] == "B2", 5, name="cp_status")
    await josev.simulate(DC, "ev_ready")
    c2 = await josev.wait_for_update(lambda m: m.data["state"] == "C2", 5, name="cp_status")
    assert c2.data == {"evse_id": DC, "connector_id": 1, "state": "C2"}
    states = [m.data["state"] for m in josev.updates[since:] if m.name == "cp_status"]
    assert states == ["B1", "B2", "C2"]
    josev.assert_no_problems()


async def test_plug_in_sends_a_free_vend_authorization_and_connector_status_follows(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    since = josev.mark()
    await josev.simulate(DC, "plug_in")
    await wait_until(
        lambda: any(r.name == "authorization" for r in josev.station_requests), 5, "asked"
    )
    (asked,) = [r for r in josev.station_requests if r.name == "authorization"]
    assert asked.data == {"token_type": "no_authorization", "evse_id": DC}
    occupied = await josev.wait_for_update(
        lambda m: m.data["evse_id"] == DC, 5, name="connector_and_charging", since=since
    )
    assert occupied.data == {
        "evse_id": DC,
        "connector_id": 1,
        "connector_status": "occupied",
        "charging_status": "ev_connected",
    }
    await _charging(station, josev)
    charging = await josev.wait_for_update(
        lambda m: m.data.get("charging_status") == "charging", 5, name="connector_and_charging"
    )
    assert charging.data["connector_status"] == "occupied"
    lock = await josev.request(
        "cs_connector", {"evse_id": DC, "connector_id": 1, "action": "status"}, 5
    )
    assert lock.data["status"] == "locked"  # the cable check locked it
    unplugged = josev.mark()
    await _stop_charging(station, josev)
    await josev.simulate(DC, "unplug")
    available = await josev.wait_for_update(
        lambda m: m.data["connector_status"] == "available",
        5,
        name="connector_and_charging",
        since=unplugged,
    )
    assert available.data["charging_status"] == "idle"
    answer = await josev.request(
        "change_availability", {"operational_status": "inoperative", "evse_id": DC}, 5
    )
    assert answer.data == {"status": "accepted"}
    josev.assert_no_problems()
