"""A csbridge module stack offered to EVerest as a power_supply_DC API module: an EVerest
set-up drives modules csbridge has profiles for, through EVerest's own MQTT API
(EVerest/EVerest docs/source/reference/EVerest_API/power_supply_DC_API.yaml and
entrypoint_API.yaml).

Out (m2e/): capabilities (the EVSE's live limits, so never more than csbridge reports),
voltage_current about 4 times a second, mode, the communication check, and errors raised and
cleared as the EVSE's status changes (only types of power_supply_DC's closed list). In (e2m/):
mode and export_voltage_current become a setpoint, clamped and kept alive exactly like one from
Josev; heartbeats are watched, and once EVerest's stop for several heartbeat intervals the stack
is switched off.

EVerest keeps nothing of an API client across its own restart, so, as EVerest's own API
clients do (applications/pionix_chargebridge/src/everest_api/*_api.cpp), capabilities, mode and
active errors are said again on the first heartbeat, when the heartbeat returns or its counter
goes backwards (EVerest restarted), and on `everest_api/ready_beacon`. The heartbeat interval is
asked of EVerest: `everest_api/query-modules/power_supply_DC`, whose reply names this module's
`heartbeat_period_ms`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from csbridge.config import Config, EverestExportConfig
from csbridge.engine import LimitsEngine
from csbridge.limits import DcLimits, DcRequest
from csbridge.messages import InboundRejected, RejectReason, SchemaRegistry
from csbridge.session import SessionHandlers
from csbridge.sources.everest import (
    HEARTBEAT_WRAP,
    PSU,
    DeviceKey,
    Publish,
    decode_value,
    entrypoint_base,
    publish_checked,
    send_checked,
)
from csbridge.support import Clock

log = logging.getLogger("csbridge.everest.export")

TICK_S = 0.05
HEARTBEAT_MISSED = 3
"""Heartbeat intervals without one before EVerest counts as gone."""
BEACON_EVERY_S = 1.0
"""At most one ready beacon acted on per this long: a flood of them may not turn into a flood
of discovery requests (EVerest sends one when it starts)."""
ERROR_SCHEMA = "EverestPsuError"
"""What is raised and cleared is held to power_supply_DC's closed list of error types."""

ERROR_OF_STATUS = {
    "evse_malfunction": ("HardwareFault", "csbridge: evse_malfunction"),
    "evse_emergency_shutdown": ("HardwareFault", "csbridge: evse_emergency_shutdown"),
    "evse_utility_interrupt_event": ("UnderVoltageAC", "csbridge: grid input lost"),
}
"""What EVerest is told when the stack cannot serve; every one of these stops its session."""

_NO_DC = DcLimits(
    present_voltage=0.0,
    present_current=0.0,
    max_current=0.0,
    min_current=0.0,
    max_voltage=0.0,
    min_voltage=0.0,
    max_power=0.0,
    peak_current_ripple=0.0,
)
"""What an EVSE without a DC block offers: nothing."""


@dataclass(slots=True)
class _Offer:
    config: EverestExportConfig
    key: DeviceKey
    mode: str = "Off"
    phase: str = "Other"
    export: dict[str, float] | None = None
    heartbeat_interval_s: float = 1.0
    """The config's, until EVerest's discovery reply names its own."""
    heartbeat_at: float | None = None
    heartbeat_lost: bool = False
    last_beat: int | None = None
    beacon_at: float | None = None
    sent: dict[str, Any] = field(default_factory=dict)
    """The last value sent per channel, so state goes out on change only."""
    error: tuple[str, str] | None = None
    next_check_at: float = 0.0
    next_measurement_at: float = 0.0

    @property
    def entrypoint(self) -> str:
        return entrypoint_base(self.config.topic_prefix)

    @property
    def beacon_topic(self) -> str:
        return f"{self.entrypoint}/ready_beacon"

    @property
    def reply_topic(self) -> str:
        """Where EVerest's discovery reply comes back to (our choice: any topic will do)."""
        return f"{self.entrypoint}/reply/csbridge/{self.key.module_id}"

    @property
    def heartbeat_timeout_s(self) -> float | None:
        """None: EVerest sends no heartbeat, none is watched."""
        if self.config.heartbeat_timeout_s is not None:
            return self.config.heartbeat_timeout_s
        if self.heartbeat_interval_s <= 0:
            return None
        return HEARTBEAT_MISSED * self.heartbeat_interval_s

    def say_everything_again(self) -> None:
        """Capabilities, mode, active errors and the communication check go out again on the
        next tick."""
        self.sent.clear()
        self.next_check_at = self.next_measurement_at = 0.0


class EverestExport:
    """Every configured export: a TopicSource for the bridge plus a publishing task."""

    def __init__(
        self,
        config: Config,
        engine: LimitsEngine,
        session: SessionHandlers,
        registry: SchemaRegistry,
    ) -> None:
        self._engine = engine
        self._session = session
        self._registry = registry
        self._max_payload = config.mqtt.max_payload_bytes
        self._clock: Clock = engine.clock
        self.publish: Publish | None = None
        self.offers = {
            export.evse_id: _Offer(
                export,
                DeviceKey(export.topic_prefix.rstrip("/"), PSU, export.module_id),
                heartbeat_interval_s=export.heartbeat_interval_s,
            )
            for export in config.everest_export
        }
        self._beacons: dict[str, list[_Offer]] = {}
        self._replies: dict[str, _Offer] = {}
        """The entry-point topics each offer listens on, looked up on every message."""
        for offer in self.offers.values():
            self._beacons.setdefault(offer.beacon_topic, []).append(offer)
            self._replies[offer.reply_topic] = offer

    def count(self) -> int:
        return len(self.offers)

    # -- in --------------------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        devices = [offer.key.topic("e2m/#") for offer in self.offers.values()]
        return devices + list(self._beacons) + list(self._replies)

    def owns(self, topic: str) -> bool:
        return (
            topic in self._beacons
            or topic in self._replies
            or any(topic.startswith(o.key.topic("e2m/")) for o in self.offers.values())
        )

    def handle(self, topic: str, payload: bytes) -> str:
        if topic in self._beacons:
            decode_value(self._registry, "ready_beacon", payload, self._max_payload)
            now = self._clock()
            for offer in self._beacons[topic]:
                if offer.beacon_at is not None and now - offer.beacon_at < BEACON_EVERY_S:
                    continue
                offer.beacon_at = now
                log.info("event=everest_ready module=%s -- state said again", offer.key.module_id)
                offer.say_everything_again()
                self._discover(offer)
            return "everest-export:ready_beacon"
        if topic in self._replies:
            reply = decode_value(self._registry, "reply", payload, self._max_payload)
            self._discovered(self._replies[topic], reply)
            return "everest-export:discovered"
        for evse_id, offer in self.offers.items():
            channel = offer.key.channel_of(topic)
            if channel is None or not channel.startswith("e2m/"):
                continue
            value = decode_value(self._registry, channel, payload, self._max_payload)
            self._take(evse_id, offer, channel, value)
            return f"everest-export:{channel}"
        raise InboundRejected(
            RejectReason.UNKNOWN_MESSAGE, "topic", f"no everest channel {topic}", "everest"
        )

    def _discover(self, offer: _Offer) -> None:
        """Ask EVerest for this module's communication parameters (its heartbeat period)."""
        request = {"headers": {"replyTo": offer.reply_topic}}
        topic = f"{offer.entrypoint}/query-modules/{PSU}"
        publish_checked(self._registry, self.publish, topic, "query-modules", request)

    def _discovered(self, offer: _Offer, reply: dict[str, Any]) -> None:
        for api in reply["apis"]:
            if api["type"] != PSU or api["module_id"] != offer.key.module_id:
                continue
            period_ms = api.get("communication_monitoring", {}).get("heartbeat_period_ms")
            if period_ms is None:
                continue
            offer.heartbeat_interval_s = max(period_ms, 0) / 1000
            log.info(
                "event=everest_heartbeat_period module=%s period_ms=%d timeout_s=%s",
                offer.key.module_id,
                period_ms,
                offer.heartbeat_timeout_s,
            )

    def _heartbeat(self, evse_id: str, offer: _Offer, beat: int) -> None:
        first, returned = offer.last_beat is None, offer.heartbeat_lost
        # Modulo the wrap at 2^64: a step back is a restarted EVerest, a wrap is a step on.
        restarted = (
            offer.last_beat is not None
            and (beat - offer.last_beat) % HEARTBEAT_WRAP > HEARTBEAT_WRAP // 2
        )
        offer.heartbeat_at = self._clock()
        offer.heartbeat_lost = False
        offer.last_beat = beat
        if not (first or returned or restarted):
            return
        offer.say_everything_again()
        if restarted:
            # A restarted EVerest runs no session: what its former self asked is void.
            log.warning("event=everest_restarted module=%s beat=%d", offer.key.module_id, beat)
            offer.mode, offer.phase, offer.export = "Off", "Other", None
            if self._session.driving(evse_id):
                self._session.switch_off(evse_id, "EVerest restarted")
        elif returned:
            log.warning("event=everest_heartbeat_back evse=%s -- setpoint again", evse_id)
            if offer.mode == "Export":
                self._follow(evse_id, offer)

    def _take(self, evse_id: str, offer: _Offer, channel: str, value: Any) -> None:
        if channel == "e2m/heartbeat":
            self._heartbeat(evse_id, offer, value)
        elif channel == "e2m/mode":
            offer.mode, offer.phase = value["mode"], value["charging_phase"]
            if offer.mode == "Import":
                log.warning("event=everest_import_refused evse=%s why=not offered", evse_id)
            self._follow(evse_id, offer)
        elif channel == "e2m/export_voltage_current":
            offer.export = {"voltage": value["voltage_V"], "current": value["current_A"]}
            self._follow(evse_id, offer)
        # e2m/import_voltage_current: the offer is export only (bidirectional false).

    def _follow(self, evse_id: str, offer: _Offer) -> None:
        if offer.mode != "Export" or offer.heartbeat_lost:
            self._session.switch_off(evse_id, f"EVerest: mode {offer.mode}")
            return
        if offer.export is None:
            return  # EVerest sets the voltage and current before or after the mode
        voltage, current = offer.export["voltage"], offer.export["current"]
        request = DcRequest(
            voltage=voltage,
            ev_max_voltage=voltage,
            current=max(current, 0.0),
            precharge=offer.phase == "PreCharge",
        )
        self._session.drive(evse_id, request)

    async def on_connected(self) -> None:
        for offer in self.offers.values():
            offer.say_everything_again()  # the broker may be new
            self._discover(offer)

    # -- out -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled."""
        if not self.offers:
            return
        while True:
            now = self._clock()
            for evse_id, offer in self.offers.items():
                self._watch_heartbeat(evse_id, offer, now)
                self._publish_state(evse_id, offer, now)
            await asyncio.sleep(TICK_S)

    def _watch_heartbeat(self, evse_id: str, offer: _Offer, now: float) -> None:
        timeout = offer.heartbeat_timeout_s
        if offer.heartbeat_at is None or offer.heartbeat_lost or timeout is None:
            return
        if now - offer.heartbeat_at > timeout:
            offer.heartbeat_lost = True
            log.warning("event=everest_heartbeat_lost evse=%s -- modules off", evse_id)
            self._session.switch_off(evse_id, "EVerest's heartbeat stopped")

    def _publish_state(self, evse_id: str, offer: _Offer, now: float) -> None:
        snapshot = self._engine.snapshots.get(evse_id)
        dc = snapshot.dc or _NO_DC
        status = snapshot.status_code.value
        self._on_change(offer, "m2e/capabilities", _capabilities(dc))
        driving = self._session.driving(evse_id)
        mode = "Fault" if status in ERROR_OF_STATUS else ("Export" if driving else "Off")
        self._on_change(offer, "m2e/mode", mode)
        self._errors(offer, ERROR_OF_STATUS.get(status))
        if now >= offer.next_check_at:
            offer.next_check_at = now + offer.config.communication_check_every_s
            self._send(offer, "m2e/communication_check", True)
        if now >= offer.next_measurement_at:
            offer.next_measurement_at = now + offer.config.voltage_current_every_s
            measured = {
                "voltage_V": float(dc.present_voltage),
                "current_A": float(dc.present_current),
            }
            self._send(offer, "m2e/voltage_current", measured)

    def _errors(self, offer: _Offer, error: tuple[str, str] | None) -> None:
        if error == offer.error and "error" in offer.sent:
            return
        if offer.error is not None and offer.error != error:
            kind, sub_type = offer.error
            clear = {"type": kind, "sub_type": sub_type}
            self._send(offer, "m2e/clear_error", clear, ERROR_SCHEMA)
        if error is not None:
            kind, sub_type = error
            raise_ = {"type": kind, "sub_type": sub_type}
            self._send(offer, "m2e/raise_error", raise_, ERROR_SCHEMA)
        offer.error = error
        offer.sent["error"] = error

    def _on_change(self, offer: _Offer, channel: str, value: Any) -> None:
        if offer.sent.get(channel) != value and self._send(offer, channel, value):
            offer.sent[channel] = value

    def _send(self, offer: _Offer, channel: str, value: Any, schema: str | None = None) -> bool:
        return send_checked(self._registry, self.publish, offer.key, channel, value, schema=schema)


def _capabilities(dc: DcLimits) -> dict[str, Any]:
    """The EVSE's reported DC limits, which already hold the stack, the nameplate, the cable,
    derating and the status (0 when it cannot serve): EVerest never sees more."""
    tolerance = dc.current_reg_tolerance
    return {
        "bidirectional": False,
        "max_export_voltage_V": float(dc.max_voltage),
        "min_export_voltage_V": float(dc.min_voltage),
        "max_export_current_A": float(dc.max_current),
        "min_export_current_A": float(dc.min_current),
        "max_export_power_W": float(dc.max_power),
        "current_regulation_tolerance_A": float(tolerance) if tolerance is not None else 0.0,
        "peak_current_ripple_A": float(dc.peak_current_ripple),
    }
