"""`csbridge emulate --scenario bpt-session`: Josev's side of a bidirectional DC session against a
simulated station with a meter (examples/bpt-station.toml): charge, come down through zero,
discharge at the EV's requested power, stop. Each step is checked on what Josev sees: the
setpoints accepted, the present current's sign (the stack's direction: positive towards the EV,
negative back from it), the meter's import and export registers moving the right way, and the
signing meter's records at the transaction's start and end.

The registers come from Josev's meter_values request; the table shows them at each step.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from csbridge.messages import Message
from csbridge.sources.meters import OcmfError, parse_ocmf
from csbridge.tools.emulator import EmulatorError, JosevEmulator
from csbridge.tools.scenarios.common import (
    SimulatedEvse,
    StepAction,
    StepFailedError,
    StepResult,
    run_steps,
)

LOOP_STEP_S: Final = 0.25
"""The EV's CurrentDemand pace."""
LEG_S: Final = 10.0
"""How long the EV charges, and then discharges."""
VOLTAGE_V: Final = 400.0
CHARGE_CURRENT_A: Final = 20.0
DISCHARGE_POWER_W: Final = 8000.0
"""What the EV asks to give back: 20 A at 400 V."""
CURRENT_SLACK_A: Final = 3.0
"""How far the present current may sit from the asked one: the reported values move past a
1 A deadband, and the stack ramps."""
SETTLE_S: Final = 8.0
"""How long the stack may take to reach the asked current, or zero (the power ramp)."""
STILL_WH: Final = 1.5
"""How much a register that must stand still may move: the last samples of the leg before, and
a shunt's counter that counts whole Wh (the IVT-S)."""
EV_ID: Final = "EMULATOR-BPT"
"""The identifier the transaction was authorized with, as Josev reports it (no secret)."""
MEASURAND: Final = "Energy.Active.Import.Register"


@dataclass(frozen=True, slots=True)
class Registers:
    """The meter's registers as Josev's meter_values request gives them, Wh."""

    imported: float
    exported: float

    def __str__(self) -> str:
        return f"import {self.imported:.2f} Wh, export {self.exported:.2f} Wh"


@dataclass
class BptSession:
    josev: JosevEmulator
    local_prefix: str = "csbridge"
    evse: SimulatedEvse = field(init=False)
    _started: bool = field(init=False, default=False)
    _first: Registers | None = field(init=False, default=None)
    transaction_id: str = field(init=False, default="")
    """Its own each run: the signing meter keeps what an earlier run left open."""

    name = "bpt-session"

    def __post_init__(self) -> None:
        self.evse = SimulatedEvse(self.josev, self.local_prefix)
        self.transaction_id = f"bpt-session-{time.time_ns()}"

    @property
    def evse_id(self) -> str:
        return self.evse.evse_id

    def steps(self) -> list[tuple[str, StepAction]]:
        return [
            ("boot (DC EVSE with dc_bpt)", self._boot),
            ("plug-in (cp_status B1)", self.evse.plug_in),
            ("authorized (free vend)", self.evse.free_vend),
            ("SLAC matched, HLC on, PWM (B2)", self.evse.hlc_up),
            ("the EV closes S2 (C2)", lambda: self.evse.pilot("ev_ready", "C2")),
            ("cable check", self.evse.isolation),
            ("contactors closed", self.evse.contactors_closed),
            ("transaction start: signed value", self._transaction_start),
            (f"charge {LEG_S:.0f} s at {CHARGE_CURRENT_A:.0f} A", self._charge),
            ("through zero", self._through_zero),
            (f"discharge {LEG_S:.0f} s at {DISCHARGE_POWER_W:.0f} W", self._discharge),
            ("through zero again", self._through_zero),
            ("stop", self._stop),
            ("transaction end: signed value", self._transaction_end),
            ("energy from the meter registers", self._energy),
            ("the EV opens S2 (B2)", lambda: self.evse.pilot("ev_pause", "B2")),
            ("unplug (cp_status A1)", self.evse.unplug),
        ]

    async def run(self) -> list[StepResult]:
        return await run_steps(self.steps(), self._cleanup)

    # -- the steps --------------------------------------------------------------------------

    async def _boot(self) -> str:
        parameters, _ = await self.josev.boot()
        self.evse.evse_id, self.evse.connector_id = _bpt_evse(parameters)
        entry = self.evse.entry()
        if entry["status_code"] != "evse_ready":
            raise StepFailedError(f"{self.evse_id} is {entry['status_code']}, not evse_ready")
        bpt = entry.get("dc_bpt")
        if not bpt or not bpt["evse_max_discharge_power"] >= DISCHARGE_POWER_W:
            raise StepFailedError(
                f"{self.evse_id} cannot take {DISCHARGE_POWER_W:.0f} W back: dc_bpt {bpt}"
            )
        self._first = await self._registers()
        return (
            f"{self.evse_id}, discharge up to {bpt['evse_max_discharge_current']} A /"
            f" {bpt['evse_max_discharge_power']} W; {self._first}"
        )

    async def _transaction_start(self) -> str:
        since = len(self.josev.updates)
        self._started = True
        await self.josev.update(
            "transaction_status",
            {
                "evse_id": self.evse_id,
                "transaction_id": self.transaction_id,
                "status": "started",
                "id_token": EV_ID,
            },
        )
        return await self._signed(since, "B")

    async def _charge(self) -> str:
        before = await self._registers()
        present = await self._hold(
            {"voltage": VOLTAGE_V, "charge_current": CHARGE_CURRENT_A}, CHARGE_CURRENT_A
        )
        after = await self._registers()
        if not after.imported > before.imported:
            raise StepFailedError(f"the import register did not rise: {before} -> {after}")
        if after.exported - before.exported > STILL_WH:
            raise StepFailedError(f"the export register rose while charging: {before} -> {after}")
        return f"{present:+.1f} A; {after}"

    async def _through_zero(self) -> str:
        answer = await self._setpoint({"voltage": VOLTAGE_V, "charge_current": 0.0})
        if answer["status"] != "accepted":
            raise StepFailedError(f"0 A setpoint {answer['status']}")
        present = await self._settle(0.0)
        return f"{present:+.1f} A"

    async def _discharge(self) -> str:
        before = await self._registers()
        expected = -DISCHARGE_POWER_W / VOLTAGE_V
        present = await self._hold(
            {"voltage": VOLTAGE_V, "discharge_power": DISCHARGE_POWER_W}, expected
        )
        after = await self._registers()
        if not after.exported > before.exported:
            raise StepFailedError(f"the export register did not rise: {before} -> {after}")
        if after.imported - before.imported > STILL_WH:
            raise StepFailedError(
                f"the import register rose while discharging: {before} -> {after}"
            )
        return f"{present:+.1f} A; {after}"

    async def _transaction_end(self) -> str:
        since = len(self.josev.updates)
        await self._end_transaction()
        return await self._signed(since, "E")

    async def _stop(self) -> str:
        return await self.evse.stop()

    async def _energy(self) -> str:
        first = self._first
        last = await self._registers()
        if first is None:
            raise StepFailedError("no registers read at boot")
        imported = last.imported - first.imported
        exported = last.exported - first.exported
        if not (imported > 0 and exported > 0):
            raise StepFailedError(f"imported {imported:.2f} Wh, exported {exported:.2f} Wh")
        return f"imported {imported:.2f} Wh, exported {exported:.2f} Wh ({last})"

    # -- what the steps share ---------------------------------------------------------------

    async def _setpoint(self, dc: dict[str, float]) -> dict[str, Any]:
        answer = await self.evse.request(
            "power_electronics_setpoint",
            {"dc": dc, "ev_limits": {"maximum_voltage": 500.0}, "is_precharge": False},
        )
        return answer.data

    def _present_current(self) -> float:
        return float(self.evse.entry()["dc"]["present_current"])

    async def _settle(self, target: float) -> float:
        """The present current once it is within CURRENT_SLACK_A of `target`."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            present = self._present_current()
            if abs(present - target) <= CURRENT_SLACK_A:
                return present
            if time.monotonic() > deadline:
                raise StepFailedError(f"{present} A after {SETTLE_S} s, not {target:+.1f} A")
            await asyncio.sleep(LOOP_STEP_S)

    async def _hold(self, dc: dict[str, float], target: float) -> float:
        """The EV's loop: `dc` every LOOP_STEP_S for LEG_S, each accepted; the present current
        must reach `target` (its sign: the stack's direction) and stay there."""
        started = time.monotonic()
        reached = False
        present = 0.0
        while time.monotonic() - started < LEG_S or not reached:
            answer = await self._setpoint(dc)
            if answer["status"] != "accepted":
                raise StepFailedError(f"setpoint {dc} {answer['status']}: {answer}")
            present = self._present_current()
            if present * target < 0 and abs(present) > CURRENT_SLACK_A:
                raise StepFailedError(f"{present} A flows the wrong way (asked {target:+.1f} A)")
            near = abs(present - target) <= CURRENT_SLACK_A
            if reached and not near:
                raise StepFailedError(f"{present} A, off the asked {target:+.1f} A")
            reached = reached or near
            if not reached and time.monotonic() - started > SETTLE_S:
                raise StepFailedError(f"{present} A after {SETTLE_S} s, not {target:+.1f} A")
            await asyncio.sleep(LOOP_STEP_S)
        return present

    async def _registers(self) -> Registers:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        answer = await self.evse.request("meter_values", {"timestamp": now})
        data = answer.data
        exported = data.get("total_active_energy_exported")
        if exported is None:
            raise StepFailedError("meter_values without total_active_energy_exported")
        return Registers(float(data["total_active_energy_imported"]), float(exported))

    async def _signed(self, since: int, reading: str) -> str:
        """The meter_values update from `since` on that carries the signing meter's record,
        whose reading is of kind `reading` (B: the transaction's begin, E: its end)."""

        def signed(message: Message) -> bool:
            return bool(message.data.get("signed_meter_values"))

        update = await self.evse.update_named("meter_values", since, signed, timeout=10.0)
        value = update.data["signed_meter_values"][0]
        if value["measurand"] != MEASURAND or not value["public_key"]:
            raise StepFailedError(f"signed value {value['measurand']}, key {value['public_key']!r}")
        try:
            record = parse_ocmf(value["signed_meter_data"])
        except OcmfError as error:
            raise StepFailedError(f"the signed record is no OCMF: {error}") from None
        kinds = [each.kind for each in record.readings]
        if reading not in kinds:
            raise StepFailedError(f"the record's readings are {kinds}, no {reading}")
        return (
            f"{value['signing_method']}, readings {''.join(kinds)},"
            f" import {update.data['total_active_energy_imported']} Wh"
        )

    async def _end_transaction(self) -> None:
        self._started = False
        await self.josev.update(
            "transaction_status",
            {"evse_id": self.evse_id, "transaction_id": self.transaction_id, "status": "ended"},
        )

    async def _cleanup(self) -> None:
        """A failed run leaves no transaction open on the signing meter, nor power flowing."""
        if self.evse_id:
            with contextlib.suppress(EmulatorError):
                if self._started:
                    await self._end_transaction()
                await self.josev.request("stop_charging", {"evse_id": self.evse_id}, timeout=5)


def _bpt_evse(parameters: Message) -> tuple[str, int]:
    """The first EVSE (and its connector id) of cs_parameters offering dc_bpt."""
    for evse in parameters.data["parameters"]:
        for connector in evse["connectors"]:
            if "dc_bpt" in connector["services"]:
                return evse["evse_id"], int(connector["id"])
    raise StepFailedError("the station has no DC EVSE offering dc_bpt")
