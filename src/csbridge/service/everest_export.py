"""A csbridge module stack offered to EVerest as a power_supply_DC API module: an EVerest
set-up drives modules csbridge has profiles for, through EVerest's own MQTT API.

Out (m2e/): capabilities (the EVSE's live limits, so never more than csbridge reports),
voltage_current about 4 times a second, mode, the communication check, and errors raised and
cleared as the EVSE's status changes. In (e2m/): mode and export_voltage_current become a
setpoint, clamped and kept alive exactly like one from Josev; heartbeats are watched, and once
EVerest's stop for `heartbeat_timeout_s` the stack is switched off.
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
from csbridge.sources.everest import PSU, DeviceKey, Publish, decode_value, send_checked
from csbridge.support import Clock

log = logging.getLogger("csbridge.everest.export")

TICK_S = 0.05

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
    heartbeat_at: float | None = None
    heartbeat_lost: bool = False
    sent: dict[str, Any] = field(default_factory=dict)
    """The last value sent per channel, so state goes out on change only."""
    error: tuple[str, str] | None = None
    next_check_at: float = 0.0
    next_measurement_at: float = 0.0


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
                export, DeviceKey(export.topic_prefix.rstrip("/"), PSU, export.module_id)
            )
            for export in config.everest_export
        }

    def count(self) -> int:
        return len(self.offers)

    # -- in --------------------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        return [offer.key.topic("e2m/#") for offer in self.offers.values()]

    def owns(self, topic: str) -> bool:
        return any(topic.startswith(o.key.topic("e2m/")) for o in self.offers.values())

    def handle(self, topic: str, payload: bytes) -> str:
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

    def _take(self, evse_id: str, offer: _Offer, channel: str, value: Any) -> None:
        if channel == "e2m/heartbeat":
            offer.heartbeat_at = self._clock()
            offer.heartbeat_lost = False
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
            offer.sent.clear()  # the broker may be new: say everything again

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
        if offer.heartbeat_at is None or offer.heartbeat_lost:
            return
        if now - offer.heartbeat_at > offer.config.heartbeat_timeout_s:
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
            self._send(offer, "m2e/clear_error", {"type": kind, "sub_type": sub_type})
        if error is not None:
            kind, sub_type = error
            self._send(offer, "m2e/raise_error", {"type": kind, "sub_type": sub_type})
        offer.error = error
        offer.sent["error"] = error

    def _on_change(self, offer: _Offer, channel: str, value: Any) -> None:
        if offer.sent.get(channel) != value and self._send(offer, channel, value):
            offer.sent[channel] = value

    def _send(self, offer: _Offer, channel: str, value: Any) -> bool:
        return send_checked(self._registry, self.publish, offer.key, channel, value)


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
