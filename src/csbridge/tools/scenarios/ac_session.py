"""`csbridge emulate --scenario ac-session`: Josev's side of a whole AC charging session on the
simulated station's AC EVSE, each step checked against the schemas and against what the station
must do: free-vend authorization at plug-in, the socket locked, the PWM offering 16 A, the
contactor closed once the EV closes S2, a setpoint and meter values, and after the stop the
contactor open, the socket unlocked, the plug out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from csbridge.tools.emulator import EmulatorError, JosevEmulator
from csbridge.tools.scenarios.common import (
    POLL_S,
    SimulatedEvse,
    StepAction,
    StepFailedError,
    StepResult,
    evse_with,
    run_steps,
)

OFFERED_A = 16.0
"""What the PWM offers the EV (basic charging, no HLC)."""
OFFERED_DUTY = OFFERED_A / 0.6
"""%: IEC 61851-1's pilot duty cycle for 6 to 51 A is the current divided by 0.6 A per %."""
LOCK_WAIT_S = 2.0
"""A lock travels in well under a second; the station must confirm it within one."""
DUTY_TOLERANCE = 0.1
"""%: a duty cycle told to Josev may be rounded."""


@dataclass
class AcSession:
    josev: JosevEmulator
    local_prefix: str = "csbridge"
    evse: SimulatedEvse = field(init=False)

    name = "ac-session"

    def __post_init__(self) -> None:
        self.evse = SimulatedEvse(self.josev, self.local_prefix)

    def steps(self) -> list[tuple[str, StepAction]]:
        return [
            ("boot", self._boot),
            ("plug-in (cp_status B1)", self.evse.plug_in),
            ("authorized (free vend)", self.evse.free_vend),
            ("the socket locks", lambda: self._lock_reads("locked")),
            (f"PWM {OFFERED_A:g} A, no HLC (B2)", self._pwm),
            ("the EV closes S2 (C2): contactor closed, charging", self._ev_ready),
            ("AC setpoint accepted", self._setpoint),
            ("meter values", self._meter_values),
            ("stop: contactor opened", self._stop),
            ("the EV opens S2 (B2)", lambda: self.evse.pilot("ev_pause", "B2")),
            ("the socket unlocks", lambda: self._lock_reads("unlocked")),
            ("unplug (cp_status A1)", self.evse.unplug),
        ]

    async def run(self) -> list[StepResult]:
        return await run_steps(self.steps(), self._cleanup)

    # -- the steps --------------------------------------------------------------------------

    async def _boot(self) -> str:
        parameters, _ = await self.josev.boot()
        self.evse.evse_id, self.evse.connector_id = evse_with(parameters, "ac")
        entry = self.evse.entry()
        if entry["status_code"] != "evse_ready":
            raise StepFailedError(f"{self.evse.evse_id} is {entry['status_code']}, not evse_ready")
        per_phase = entry["ac"]["max_current"]
        return f"{self.evse.evse_id}, connector {self.evse.connector_id}, {per_phase['l1']} A"

    async def _lock_reads(self, wanted: str) -> str:
        """Until cs_connector status answers `wanted` (the machine moves the lock itself)."""
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            answer = await self.evse.request(
                "cs_connector", {"connector_id": self.evse.connector_id, "action": "status"}
            )
            status = answer.data["status"]
            if status == wanted:
                return f"cs_connector status {status}"
            if time.monotonic() > deadline:
                raise StepFailedError(
                    f"the lock reads {status}, not {wanted}, after {LOCK_WAIT_S} s"
                )
            await asyncio.sleep(POLL_S)

    async def _pwm(self) -> str:
        since = len(self.josev.updates)
        answer = await self.evse.request(
            "cp_pwm",
            {"hlc": False, "current": OFFERED_A, "error_state": False, "fault_state": False},
        )
        if answer.data["status"] != "valid":
            raise StepFailedError(f"cp_pwm answered {answer.data}")
        status = await self.evse.update_named("cp_status", since, lambda m: m.data["state"] == "B2")
        wanted = OFFERED_DUTY
        told = status.data.get("duty_cycle")
        if told is not None and abs(told - wanted) > DUTY_TOLERANCE:
            raise StepFailedError(f"cp_status duty {told} %, not {wanted:.1f} % for {OFFERED_A} A")
        report = orjson.loads(await self.josev.first_message(self.evse.topic("limits")))
        reported = report["limits"]["ac"]["max_current"]
        if min(reported.values()) < OFFERED_A:
            raise StepFailedError(f"{OFFERED_A} A offered, the limits report allows {reported}")
        duty = f"duty {told} %" if told is not None else f"duty {wanted:.1f} % (not told)"
        return f"B2, {duty}, report allows {min(reported.values())} A per phase"

    async def _ev_ready(self) -> str:
        since = len(self.josev.updates)
        await self.evse.pilot("ev_ready", "C2")
        await self.evse.update_named(
            "cs_contactor_status", since, lambda m: m.data["status"] == "closed"
        )
        await self.evse.update_named(
            "connector_and_charging",
            since,
            lambda m: m.data.get("charging_status") == "charging",
        )
        contactors = await self.evse.contactors()
        if contactors != "closed":
            raise StepFailedError(f"cs_contactor_status answered {contactors}")
        return "C2, contactor closed, charging"

    async def _setpoint(self) -> str:
        answer = await self.evse.request(
            "power_electronics_setpoint",
            {"ac": {"charge_current": OFFERED_A}, "ev_limits": {"maximum_voltage": 400.0}},
        )
        if answer.data["status"] != "accepted":
            raise StepFailedError(f"AC setpoint {answer.data['status']}")
        return "accepted"

    async def _meter_values(self) -> str:
        problems = len(self.josev.problems)
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        answer = await self.evse.request("meter_values", {"timestamp": now})
        if len(self.josev.problems) > problems:  # the emulator checks it against the schema
            raise StepFailedError(self.josev.problems[-1])
        if answer.data.get("evse_id", self.evse.evse_id) != self.evse.evse_id:
            raise StepFailedError(f"meter values of {answer.data['evse_id']}")
        return f"{answer.data['total_active_energy_imported']} Wh imported"

    async def _stop(self) -> str:
        since = len(self.josev.updates)
        status = await self.evse.stop_charging()
        if status != "accepted":
            raise StepFailedError(f"stop_charging {status}")
        await self.evse.update_named(
            "cs_contactor_status", since, lambda m: m.data["status"] == "opened"
        )
        await self.evse.update_named(
            "connector_and_charging",
            since,
            lambda m: m.data.get("charging_status") not in (None, "charging"),
        )
        return "contactor opened, no longer charging"

    async def _cleanup(self) -> None:
        if self.evse.evse_id:
            with contextlib.suppress(EmulatorError):
                await self.josev.request("stop_charging", {"evse_id": self.evse.evse_id}, timeout=5)
