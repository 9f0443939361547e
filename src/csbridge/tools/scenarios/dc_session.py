"""`csbridge emulate --scenario dc-session`: Josev's side of a whole DC charging session against
a simulated station, each step checked against the schemas and against what the station must do.

The station must be simulated: plugging in, unplugging and a module falling silent are a
person's and the hardware's doing, asked for on csbridge/<evse_id>/simulate.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import orjson

from csbridge.messages import Message
from csbridge.tools.emulator import EmulatorError, JosevEmulator
from csbridge.tools.scenarios.common import (
    SimulatedEvse,
    StepAction,
    StepFailedError,
    StepResult,
    evse_with,
    run_steps,
)

LOOP_STEP_S = 0.25
"""The EV's CurrentDemand pace."""


@dataclass
class DcSession:
    josev: JosevEmulator
    local_prefix: str = "csbridge"
    modules: tuple[str, ...] = ()
    evse: SimulatedEvse = field(init=False)

    name = "dc-session"

    def __post_init__(self) -> None:
        self.evse = SimulatedEvse(self.josev, self.local_prefix)

    @property
    def evse_id(self) -> str:
        return self.evse.evse_id

    def steps(self) -> list[tuple[str, StepAction]]:
        return [
            ("boot", self._boot),
            ("plug-in (cp_status B1)", self.evse.plug_in),
            ("authorized (free vend)", self.evse.free_vend),
            ("SLAC matched, HLC on, PWM (B2)", self.evse.hlc_up),
            ("the EV closes S2 (C2)", lambda: self.evse.pilot("ev_ready", "C2")),
            ("cable check", self.evse.isolation),
            ("contactors closed", self.evse.contactors_closed),
            ("precharge (<= 2 A)", self.evse.precharge),
            ("charge loop", self._charge_loop),
            ("a module falls silent: limit drops", self._limit_drop),
            ("charge loop after the drop", self._charge_loop),
            ("stop", self._stop),
            ("the EV opens S2 (B2)", lambda: self.evse.pilot("ev_pause", "B2")),
            ("unplug (cp_status A1)", self.evse.unplug),
        ]

    async def run(self) -> list[StepResult]:
        return await run_steps(self.steps(), self._cleanup)

    # -- the steps --------------------------------------------------------------------------

    async def _boot(self) -> str:
        parameters, _ = await self.josev.boot()
        self.evse.evse_id, self.evse.connector_id = evse_with(parameters, "dc")
        report = orjson.loads(await self.josev.first_message(self.evse.topic("limits")))
        self.modules = tuple(report["sources"].get("modules", {}))
        status = self.evse.entry()["status_code"]
        if status != "evse_ready":
            raise StepFailedError(f"{self.evse_id} is {status}, not evse_ready")
        max_current = self.evse.entry()["dc"]["max_current"]
        return f"{self.evse_id}, {len(self.modules)} modules, {max_current} A"

    async def _charge_loop(self) -> str:
        worst = 0.0
        for _ in range(8):
            answer = await self.evse.setpoint(400.0, 1000.0)
            if answer["status"] != "accepted":
                raise StepFailedError(f"setpoint {answer['status']}")
            over = self.evse.over_reported()
            if over is not None:
                raise StepFailedError(over)
            worst = max(worst, self.evse.entry()["dc"]["present_current"])
            await asyncio.sleep(LOOP_STEP_S)
        reported = self.evse.entry()["dc"]["max_current"]
        return f"1000 A asked, at most {worst} A delivered, {reported} A reported"

    async def _limit_drop(self) -> str:
        if len(self.modules) < 2:
            raise StepFailedError("needs a stack of two modules or more")
        before = self.evse.entry()["dc"]["max_current"]
        since = len(self.josev.updates)
        await self.evse.simulate("silence_module", self.modules[-1])

        def lower(message: Message) -> bool:
            return message.name == "cs_status_and_limits" and any(
                entry["evse_id"] == self.evse_id and entry["dc"]["max_current"] < before
                for entry in message.data["evses"]
            )

        await self.josev.wait_update(lower, timeout=15.0, since=since)
        after = self.evse.entry()["dc"]["max_current"]
        if not after < before:
            raise StepFailedError(f"max_current {before} -> {after} A")
        return f"{before} -> {after} A ({self.modules[-1]} silent)"

    async def _stop(self) -> str:
        stopped = await self.evse.stop()
        await self.evse.simulate("restore_module", self.modules[-1])
        return stopped

    async def _cleanup(self) -> None:
        if self.evse_id:
            with contextlib.suppress(EmulatorError):
                await self.josev.request("stop_charging", {"evse_id": self.evse_id}, timeout=5)
