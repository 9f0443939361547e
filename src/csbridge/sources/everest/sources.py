"""Devices written against EVerest's API as csbridge sources: power supplies
(power_supply_DC) become module readings, IMDs (isolation_monitor) IMD readings; setpoints,
self-tests and heartbeats go back the other way.

Freshness follows EVerest's communication check (EVerest/EVerest lib/everest/everest_api_types/
include/everest_api_types/utilities/CommCheckHandler.hpp): a device counts as in contact from
its first `true` on m2e/communication_check until one is missing for `communication_check_s`
(until then, as in EVerest's "Initial communication check" fault, nothing of it is reported and
its EVSE is not ready). A check of 0 s or less is no check, as in EVerest: no initial fault, any
message makes the device present. A device that sends `false` turns its check off; without a
check its messages keep it fresh, on the same deadline (or NO_CHECK_SILENCE_S), so a silent
device still falls to the safe side.

Every error but VendorWarning takes the EVSE out of service, as in EVerest's EvseManager; an
error type outside the API's closed list is an error too. A clear_error without sub_type clears
only the error raised without one (EVerest's ErrorManagerImpl::clear_error(type)).

csbridge also plays EVerest's API entry point for these devices (entrypoint.py): the ready
beacon after each connect, and answers to discover and query-modules.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from csbridge.config import Config, EverestApiDevice, ModuleConfig
from csbridge.messages import InboundRejected, RejectReason, SchemaRegistry
from csbridge.sources.everest.api import (
    HEARTBEAT_WRAP,
    IMD,
    IMD_COMMANDS,
    NOT_FATAL,
    PSU,
    DeviceKey,
    ImdCommands,
    Publish,
    decode_value,
    entrypoint_base,
    send_checked,
    unknown_error_type,
)
from csbridge.sources.everest.entrypoint import EntryPoint, api_parameter
from csbridge.sources.readings import (
    Capability,
    ImdReading,
    ModuleReading,
    ReadingSink,
)
from csbridge.support import Clock, RateLimitedLog

log = logging.getLogger("csbridge.everest")


TICK_S = 0.1
SELF_TEST_TIMEOUT_S = 30.0
"""EVerest allows an IMD about 20 s for its self-test; no result by this is a failed test."""
EV_MAX_VOLTAGE_UNKNOWN_V = 500.0
"""The EV's maximum voltage EVerest assumes for the cable check when the EV has told none."""


def cable_check_voltage(ev_max_voltage: float | None, evse_max_voltage: float) -> float:
    """The cable-check (and IMD self-test) voltage of IEC 61851-23:2023 CC.4.1.2, formula CC.1,
    as EVerest's EvseManager computes it (modules/EVSE/EvseManager/EvseManager.cpp,
    get_cable_check_voltage): up to 500 V EV maximum, that plus 50 V but at most 500 V; above,
    1.1 times it; never above the EVSE's maximum."""
    ev_max = EV_MAX_VOLTAGE_UNKNOWN_V if ev_max_voltage is None else ev_max_voltage
    if ev_max <= 500.0:
        return min(ev_max + 50.0, 500.0, evse_max_voltage)
    return min(1.1 * ev_max, evse_max_voltage)


@dataclass(slots=True)
class _Contact:
    """The communication check of one device."""

    check_enabled: bool = True
    last_at: float | None = None

    def heard(self, channel: str, now: float, value: Any) -> None:
        if channel == "m2e/communication_check":
            self.check_enabled = bool(value)
            if value:
                self.last_at = now
        elif not self.check_enabled:
            self.last_at = now


@dataclass(slots=True)
class _Errors:
    active: dict[str, set[str]] = field(default_factory=dict)
    """Active sub_types by type; an error raised without sub_type has sub_type ""."""

    def apply(self, channel: str, error: dict[str, Any]) -> None:
        kind, sub_type = error["type"], error.get("sub_type", "")
        if channel == "m2e/raise_error":
            self.active.setdefault(kind, set()).add(sub_type)
            return
        # Without a sub_type only the error raised without one is cleared, as in EVerest.
        self.active.get(kind, set()).discard(sub_type)
        if not self.active.get(kind, True):
            self.active.pop(kind, None)

    @property
    def fatal(self) -> bool:
        return any(kind not in NOT_FATAL for kind in self.active)


@dataclass(slots=True)
class EverestPsu:
    evse_id: str
    module: ModuleConfig
    key: DeviceKey
    contact: _Contact = field(default_factory=_Contact)
    errors: _Errors = field(default_factory=_Errors)
    capabilities: dict[str, Any] | None = None
    measured: dict[str, Any] | None = None
    mode: str | None = None
    commanded: tuple[dict[str, str], dict[str, float]] | None = None
    """The last mode and setpoint sent, sent again after a reconnect."""

    def absorb(self, channel: str, value: Any, now: float) -> None:
        self.contact.heard(channel, now, value)
        if channel == "m2e/capabilities":
            self.capabilities = value
        elif channel == "m2e/voltage_current":
            self.measured = value
        elif channel == "m2e/mode":
            self.mode = value
        elif channel in ("m2e/raise_error", "m2e/clear_error"):
            self.errors.apply(channel, value)

    def reading(self) -> ModuleReading | None:
        if self.contact.last_at is None:
            return None
        faulted = self.mode == "Fault" or self.errors.fatal
        return ModuleReading(
            name=self.module.name,
            address=self.module.address,
            at=self.contact.last_at,
            online=not faulted,
            output_voltage=self.measured["voltage_V"] if self.measured else None,
            output_current=self.measured["current_A"] if self.measured else None,
            export=_export(self.capabilities),
            import_=_import(self.capabilities),
            fault=faulted,
            stops_evse=self.errors.fatal,
        )


@dataclass(slots=True)
class EverestImd:
    evse_id: str
    key: DeviceKey
    deadline_s: float
    evse_max_voltage: float
    commands: ImdCommands
    contact: _Contact = field(default_factory=_Contact)
    errors: _Errors = field(default_factory=_Errors)
    resistance_ohm: float | None = None
    voltage: float | None = None
    measured_at: float | None = None
    self_test_since: float | None = None
    self_test_failed: bool = False

    def absorb(self, channel: str, value: Any, now: float) -> None:
        self.contact.heard(channel, now, value)
        if channel == "m2e/isolation_measurement":
            self.resistance_ohm = value["resistance_F_Ohm"]
            self.voltage = value.get("voltage_V")
            self.measured_at = now
        elif channel == "m2e/self_test_result":
            self.self_test_since = None
            self.self_test_failed = not value
        elif channel in ("m2e/raise_error", "m2e/clear_error"):
            self.errors.apply(channel, value)

    def expire_self_test(self, now: float) -> bool:
        """True when a self-test ran out of time now (it counts as failed)."""
        if self.self_test_since is None or now - self.self_test_since < SELF_TEST_TIMEOUT_S:
            return False
        self.self_test_since = None
        self.self_test_failed = True
        return True

    def reading(self, now: float) -> ImdReading | None:
        if self.contact.last_at is None:
            return None
        outdated = self.measured_at is None or now - self.measured_at > self.deadline_s
        return ImdReading(
            at=self.contact.last_at,
            resistance_ohm=self.resistance_ohm,
            voltage=self.voltage,
            self_test_running=self.self_test_since is not None,
            value_outdated=outdated,
            device_fault=self.errors.fatal or self.self_test_failed,
        )


def _export(capabilities: dict[str, Any] | None) -> Capability | None:
    if capabilities is None:
        return None
    return Capability(
        max_voltage=capabilities["max_export_voltage_V"],
        min_voltage=capabilities["min_export_voltage_V"],
        max_current=capabilities["max_export_current_A"],
        min_current=capabilities["min_export_current_A"],
        max_power=capabilities["max_export_power_W"],
    )


def _import(capabilities: dict[str, Any] | None) -> Capability | None:
    needed = ("max_import_voltage_V", "max_import_current_A", "max_import_power_W")
    if capabilities is None or not capabilities["bidirectional"]:
        return None
    if any(key not in capabilities for key in needed):
        return None  # bidirectional but no import limits told: nothing may be imported
    return Capability(
        max_voltage=capabilities["max_import_voltage_V"],
        min_voltage=capabilities.get("min_import_voltage_V", 0.0),
        max_current=capabilities["max_import_current_A"],
        min_current=capabilities.get("min_import_current_A", 0.0),
        max_power=capabilities["max_import_power_W"],
    )


class EverestSources:
    """Every everest-api device of the station: their topics in, their commands out."""

    def __init__(
        self, config: Config, sink: ReadingSink, clock: Clock, registry: SchemaRegistry
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._registry = registry
        self._max_payload = config.mqtt.max_payload_bytes
        self._faults = RateLimitedLog(log, clock)
        self.publish: Publish | None = None
        """Set by the station once the MQTT link exists."""
        self.psus: dict[tuple[str, str], EverestPsu] = {}
        self.imds: dict[str, EverestImd] = {}
        self._devices: dict[DeviceKey, EverestPsu | EverestImd] = {}
        self._apis: list[tuple[DeviceKey, EverestApiDevice]] = []
        self._heartbeats: dict[DeviceKey, float] = {}
        for evse in config.evse:
            for module in evse.module:
                if module.everest is not None:
                    key = _key(PSU, module.everest)
                    psu = EverestPsu(evse.evse_id, module, key, _contact(module.everest))
                    self.psus[(evse.evse_id, module.name)] = psu
                    self._add(key, psu, module.everest)
            if evse.imd is not None and evse.imd.everest is not None:
                api = evse.imd.everest
                key = _key(IMD, api)
                evse_max = evse.dc_limits.max_voltage_v if evse.dc_limits else None
                deadline = min(evse.imd.deadline_s, api.silence_deadline_s)
                commands = IMD_COMMANDS[api.api_revision]
                imd = EverestImd(
                    evse.evse_id, key, deadline, evse_max or 500.0, commands, _contact(api)
                )
                self.imds[evse.evse_id] = imd
                self._add(key, imd, api)
        self._beats: dict[DeviceKey, int] = {}
        self._cable_checks: set[str] = set()
        """EVSEs whose IMD self-test of the cable check runs: a setpoint now is told the phase
        CableCheck."""
        self._sessions_checking: set[str] = set()
        """EVSEs whose session is in its cable check (cable_check): offs are told the phase
        CableCheck until it ends or a precharge or charging setpoint comes."""
        self._entrypoints = _entrypoints(config, self._apis)

    def _add(self, key: DeviceKey, device: EverestPsu | EverestImd, api: EverestApiDevice) -> None:
        assert key not in self._devices  # Config refuses a module_id used twice
        self._devices[key] = device
        self._apis.append((key, api))
        if api.heartbeat_interval_s > 0:
            self._heartbeats[key] = api.heartbeat_interval_s

    def count(self) -> int:
        return len(self._devices)

    # -- in --------------------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        devices = [key.topic("m2e/#") for key in self._devices]
        return devices + [t for entry in self._entrypoints for t in entry.subscriptions()]

    def owns(self, topic: str) -> bool:
        return any(topic.startswith(key.topic("")) for key in self._devices) or any(
            entry.owns(topic) for entry in self._entrypoints
        )

    def handle(self, topic: str, payload: bytes) -> str:
        """One m2e message or entry-point request; the label it is counted under.
        InboundRejected when it is bad."""
        for entry in self._entrypoints:
            if entry.owns(topic):
                return entry.answer(self._registry, self.publish, topic, payload, self._max_payload)
        for key, device in self._devices.items():
            channel = key.channel_of(topic)
            if channel is None:
                continue
            if not channel.startswith("m2e/"):
                break
            value = decode_value(self._registry, channel, payload, self._max_payload)
            if channel == "m2e/raise_error" and unknown_error_type(
                self._registry, key.interface, value
            ):
                self._faults.warning(
                    (key, "unknown_error_type"),
                    "event=everest_unknown_error_type module=%s type=%.64s -- taken as an error",
                    key.module_id,
                    value["type"],
                )
            now = self._clock()
            device.absorb(channel, value, now)
            if channel == "m2e/self_test_result":
                self._cable_checks.discard(device.evse_id)
            self._report(device, now)
            return f"everest:{key.interface}/{channel}"
        raise InboundRejected(
            RejectReason.UNKNOWN_MESSAGE, "topic", f"no everest channel {topic}", "everest"
        )

    def _report(self, device: EverestPsu | EverestImd, now: float) -> None:
        reading = device.reading() if isinstance(device, EverestPsu) else device.reading(now)
        if reading is not None:
            self._sink(device.evse_id, reading)

    # -- out -------------------------------------------------------------------------------

    def _send(self, key: DeviceKey, channel: str, value: Any) -> bool:
        return send_checked(self._registry, self.publish, key, channel, value)

    def charging_phase(self, evse_id: str, *, precharge: bool) -> str:
        """EVerest's ChargingPhase for a setpoint now: PreCharge, CableCheck while the EVSE's
        cable check runs, else Charging."""
        if precharge:
            return "PreCharge"
        # A setpoint the session sends is never part of its cable check (it holds the supply
        # off then): a setpoint in the session's check is its end, so only the self-test counts.
        return "CableCheck" if evse_id in self._cable_checks else "Charging"

    def cable_check(self, evse_id: str, *, running: bool) -> None:
        """The EVSE's session entered (or left) its cable check."""
        if running:
            self._sessions_checking.add(evse_id)
        else:
            self._sessions_checking.discard(evse_id)

    def command(
        self, evse_id: str, module: str, voltage: float, current: float, phase: str
    ) -> bool:
        """Export at this voltage and current (the setpoint is already clamped)."""
        if phase != "CableCheck":
            self._cable_checks.discard(evse_id)
            self._sessions_checking.discard(evse_id)
        psu = self.psus[(evse_id, module)]
        mode = {"mode": "Export", "charging_phase": phase}
        setpoint = {"voltage_V": voltage, "current_A": current}
        psu.commanded = (mode, setpoint)
        sent = self._send(psu.key, "e2m/export_voltage_current", setpoint)
        return self._send(psu.key, "e2m/mode", mode) and sent

    def switch_off(self, evse_id: str, module: str) -> bool:
        """Off: in the phase CableCheck while the EVSE's session checks its cable (as EVerest's
        EvseManager sends Off in the phase it is in), else Other."""
        self._cable_checks.discard(evse_id)
        phase = "CableCheck" if evse_id in self._sessions_checking else "Other"
        psu = self.psus[(evse_id, module)]
        psu.commanded = (
            {"mode": "Off", "charging_phase": phase},
            {"voltage_V": 0.0, "current_A": 0.0},
        )
        sent = self._send(psu.key, "e2m/mode", psu.commanded[0])
        return self._send(psu.key, "e2m/export_voltage_current", psu.commanded[1]) and sent

    def start_self_test(self, evse_id: str, ev_max_voltage: float | None = None) -> bool:
        """The IMD's self-test at the cable check, at the cable-check voltage (from the EV's
        maximum voltage when known, else EVerest's assumed 500 V); the EVSE's supplies are in
        the phase CableCheck from now until the test's result (or its timeout), a precharge
        setpoint or off."""
        imd = self.imds.get(evse_id)
        if imd is None:
            return False
        self._cable_checks.add(evse_id)
        imd.self_test_since = self._clock()
        # The verdict after the test must rest on a sample taken after it.
        imd.resistance_ohm = imd.voltage = imd.measured_at = None
        self._report(imd, imd.self_test_since)
        voltage = cable_check_voltage(ev_max_voltage, imd.evse_max_voltage)
        return self._send(imd.key, imd.commands.start_self_test, voltage)

    def stop_measuring(self) -> None:
        for imd in self.imds.values():
            self._send(imd.key, imd.commands.stop, {})

    async def on_connected(self) -> None:
        """After each (re)connect: the ready beacon (a device that waits for EVerest starts),
        IMDs measure again, supplies get their last command again."""
        for entry in self._entrypoints:
            entry.ready(self._registry, self.publish)
        for imd in self.imds.values():
            self._send(imd.key, imd.commands.start, {})
        for psu in self.psus.values():
            if psu.commanded is not None:
                self._send(psu.key, "e2m/mode", psu.commanded[0])
                self._send(psu.key, "e2m/export_voltage_current", psu.commanded[1])

    async def run(self) -> None:
        """Heartbeats out, and the IMDs' self-test timeouts; until cancelled."""
        if not self._devices:
            return
        due = dict.fromkeys(self._heartbeats, self._clock())
        while True:
            now = self._clock()
            for key, at in due.items():
                if now >= at:
                    beat = self._beats.get(key, 0)
                    self._send(key, "e2m/heartbeat", beat)
                    self._beats[key] = (beat + 1) % HEARTBEAT_WRAP
                    due[key] = now + self._heartbeats[key]
            for imd in self.imds.values():
                if imd.expire_self_test(now):
                    self._cable_checks.discard(imd.evse_id)
                    log.warning("event=imd_self_test_timeout evse=%s", imd.evse_id)
                    self._report(imd, now)
            await asyncio.sleep(TICK_S)


def _key(interface: str, api: EverestApiDevice) -> DeviceKey:
    return DeviceKey(api.topic_prefix.rstrip("/"), interface, api.module_id)


def _contact(api: EverestApiDevice) -> _Contact:
    return _Contact(check_enabled=api.checks_communication)


def _entrypoints(
    config: Config, apis: list[tuple[DeviceKey, EverestApiDevice]]
) -> list[EntryPoint]:
    """One entry point per API base the devices live under."""
    mqtt = config.mqtt
    own = (mqtt.request_topic, mqtt.response_topic, mqtt.status_topic, f"{mqtt.local_prefix}/")
    devices = tuple(key.topic("") for key, _ in apis)
    by_base: dict[str, list[dict[str, Any]]] = {}
    for key, api in apis:
        by_base.setdefault(entrypoint_base(api.topic_prefix), []).append(
            api_parameter(key.interface, api)
        )
    return [EntryPoint(base, found, own + devices) for base, found in by_base.items()]
