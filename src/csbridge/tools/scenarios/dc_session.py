"""`csbridge emulate --scenario dc-session`: Josev's side of a whole DC charging session against
a simulated station, each step checked against the schemas and against what the station must do.

The station must be simulated: plugging in, unplugging and a module falling silent are a
person's and the hardware's doing, asked for on csbridge/<evse_id>/simulate.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from csbridge.messages import Message
from csbridge.tools.emulator import EmulatorError, JosevEmulator

CABLE_CHECK_LIMIT_S = 40.0
"""ISO 15118-2 CableCheck timeout."""
LOOP_STEP_S = 0.25
"""The EV's CurrentDemand pace."""


class StepFailedError(Exception):
    """What the station did wrong in one step."""


@dataclass(frozen=True, slots=True)
class StepResult:
    name: str
    passed: bool
    seconds: float
    detail: str


@dataclass
class DcSession:
    josev: JosevEmulator
    local_prefix: str = "csbridge"
    evse_id: str = ""
    modules: tuple[str, ...] = ()

    async def run(self) -> list[StepResult]:
        steps: list[tuple[str, Callable[[], Awaitable[str]]]] = [
            ("boot", self._boot),
            ("plug-in (cp_status B1)", self._plug_in),
            ("authorized (free vend)", self._authorized),
            ("SLAC matched, HLC on, PWM (B2)", self._pwm),
            ("the EV closes S2 (C2)", self._ev_ready),
            ("cable check", self._cable_check),
            ("contactors closed", self._contactors),
            ("precharge (<= 2 A)", self._precharge),
            ("charge loop", self._charge_loop),
            ("a module falls silent: limit drops", self._limit_drop),
            ("charge loop after the drop", self._charge_loop),
            ("stop", self._stop),
            ("the EV opens S2 (B2)", self._ev_pause),
            ("unplug (cp_status A1)", self._unplug),
        ]
        results = []
        for name, step in steps:
            started = time.perf_counter()
            try:
                detail = await step()
            except (StepFailedError, EmulatorError, KeyError) as error:
                results.append(StepResult(name, False, time.perf_counter() - started, str(error)))
                await self._cleanup()
                break
            results.append(StepResult(name, True, time.perf_counter() - started, detail))
        return results

    def _entry(self) -> dict[str, Any]:
        entry = self.josev.view.evses.get(self.evse_id)
        if entry is None:
            raise StepFailedError(f"Josev knows nothing of {self.evse_id}")
        return entry

    async def _simulate(self, action: str, module: str | None = None) -> None:
        command: dict[str, Any] = {"action": action}
        if module is not None:
            command["module"] = module
        await self.josev.publish(f"{self.local_prefix}/{self.evse_id}/simulate", command)

    async def _update_named(
        self, name: str, since: int, check: Callable[[Message], bool], timeout: float = 10.0
    ) -> Message:
        def matches(message: Message) -> bool:
            return (
                message.name == name
                and message.data.get("evse_id") == self.evse_id
                and check(message)
            )

        return await self.josev.wait_update(matches, timeout=timeout, since=since)

    # -- the steps --------------------------------------------------------------------------

    async def _boot(self) -> str:
        parameters, _ = await self.josev.boot()
        dc = [
            p["evse_id"]
            for p in parameters.data["parameters"]
            if "dc" in p["connectors"][0]["services"]
        ]
        if not dc:
            raise StepFailedError("the station has no DC EVSE")
        self.evse_id = dc[0]
        report = orjson.loads(
            await self.josev.first_message(f"{self.local_prefix}/{self.evse_id}/limits")
        )
        self.modules = tuple(report["sources"].get("modules", {}))
        if self._entry()["status_code"] != "evse_ready":
            raise StepFailedError(
                f"{self.evse_id} is {self._entry()['status_code']}, not evse_ready"
            )
        return (
            f"{self.evse_id}, {len(self.modules)} modules, {self._entry()['dc']['max_current']} A"
        )

    async def _plug_in(self) -> str:
        since = len(self.josev.updates)
        await self._simulate("plug_in")
        status = await self._update_named(
            "cp_status", since, lambda m: m.data["state"].startswith("B")
        )
        if status.data["state"] != "B1":
            raise StepFailedError(f"plug-in gave {status.data['state']}, not B1 first")
        return "B1"

    async def _authorized(self) -> str:
        """Free vend: the station authorizes the plug-in itself and tells Josev so."""

        def asked(message: Message) -> bool:
            return message.name == "authorization" and message.data.get("evse_id") == self.evse_id

        deadline = time.monotonic() + 5.0
        while not any(asked(m) for m in self.josev.station_requests):
            if time.monotonic() > deadline:
                raise StepFailedError("no authorization request from the station")
            await asyncio.sleep(0.05)
        request = next(m for m in self.josev.station_requests if asked(m))
        since = 0
        occupied = await self._update_named(
            "connector_and_charging",
            since,
            lambda m: m.data.get("connector_status") == "occupied",
        )
        return f"{request.data['token_type']}, connector {occupied.data['connector_status']}"

    async def _ev_ready(self) -> str:
        since = len(self.josev.updates)
        await self._simulate("ev_ready")
        await self._update_named("cp_status", since, lambda m: m.data["state"] == "C2")
        return "C2"

    async def _ev_pause(self) -> str:
        since = len(self.josev.updates)
        await self._simulate("ev_pause")
        await self._update_named("cp_status", since, lambda m: m.data["state"] == "B2")
        return "B2"

    async def _pwm(self) -> str:
        since = len(self.josev.updates)
        await self.josev.update(
            "slac_status", {"evse_id": self.evse_id, "run_id": "emulator", "status": "matched"}
        )
        await self.josev.update("hlc_charging", {"evse_id": self.evse_id, "status": True})
        answer = await self.josev.request(
            "cp_pwm",
            {"evse_id": self.evse_id, "hlc": True, "error_state": False, "fault_state": False},
        )
        if answer.data["status"] != "valid":
            raise StepFailedError(f"cp_pwm answered {answer.data['status']}")
        await self._update_named("cp_status", since, lambda m: m.data["state"] == "B2")
        return "B2"

    async def _cable_check(self) -> str:
        start = await self.josev.request(
            "cable_check", {"evse_id": self.evse_id, "cable_check_action": "start"}
        )
        if start.data["cable_check_status"] != "ongoing":
            raise StepFailedError(f"start answered {start.data}")
        deadline = time.monotonic() + CABLE_CHECK_LIMIT_S
        while time.monotonic() < deadline:
            status = await self.josev.request(
                "cable_check", {"evse_id": self.evse_id, "cable_check_action": "status"}
            )
            if status.data["cable_check_status"] == "finished":
                level = status.data["isolation_level"]
                if level not in ("valid", "warning"):
                    raise StepFailedError(f"isolation {level}")
                return f"isolation {level}"
            await asyncio.sleep(0.5)
        raise StepFailedError(f"no verdict within {CABLE_CHECK_LIMIT_S} s")

    async def _contactors(self) -> str:
        answer = await self.josev.request("cs_contactor_status", {"evse_id": self.evse_id})
        if answer.data["status"] != "closed":
            raise StepFailedError(f"contactors {answer.data['status']}")
        return "closed"

    async def _setpoint(
        self, voltage: float, current: float, *, precharge: bool = False
    ) -> dict[str, Any]:
        answer = await self.josev.request(
            "power_electronics_setpoint",
            {
                "evse_id": self.evse_id,
                "dc": {"voltage": voltage, "charge_current": current},
                "ev_limits": {"maximum_voltage": 500.0},
                "is_precharge": precharge,
            },
        )
        return answer.data

    async def _precharge(self) -> str:
        answer = await self._setpoint(400.0, 20.0, precharge=True)
        if answer["status"] != "accepted":
            raise StepFailedError(f"precharge {answer['status']}")
        await asyncio.sleep(0.5)
        current = self._entry()["dc"]["present_current"]
        if current > 2.0 + 1.0:  # reported present values move past a 1 A deadband
            raise StepFailedError(f"{current} A flows during precharge")
        return f"{current} A"

    async def _charge_loop(self) -> str:
        worst = 0.0
        for _ in range(8):
            answer = await self._setpoint(400.0, 1000.0)
            if answer["status"] != "accepted":
                raise StepFailedError(f"setpoint {answer['status']}")
            dc = self._entry()["dc"]
            if dc["present_current"] > dc["max_current"] + 1.0:
                raise StepFailedError(
                    f"{dc['present_current']} A flows, above the {dc['max_current']} A reported"
                )
            worst = max(worst, dc["present_current"])
            await asyncio.sleep(LOOP_STEP_S)
        reported = self._entry()["dc"]["max_current"]
        return f"1000 A asked, at most {worst} A delivered, {reported} A reported"

    async def _limit_drop(self) -> str:
        if len(self.modules) < 2:
            raise StepFailedError("needs a stack of two modules or more")
        before = self._entry()["dc"]["max_current"]
        since = len(self.josev.updates)
        await self._simulate("silence_module", self.modules[-1])

        def lower(message: Message) -> bool:
            return message.name == "cs_status_and_limits" and any(
                entry["evse_id"] == self.evse_id and entry["dc"]["max_current"] < before
                for entry in message.data["evses"]
            )

        await self.josev.wait_update(lower, timeout=15.0, since=since)
        after = self._entry()["dc"]["max_current"]
        if not after < before:
            raise StepFailedError(f"max_current {before} -> {after} A")
        return f"{before} -> {after} A ({self.modules[-1]} silent)"

    async def _stop(self) -> str:
        since = len(self.josev.updates)
        await self.josev.update(
            "iso15118_state_info", {"evse_id": self.evse_id, "session_status": "SessionStop"}
        )
        answer = await self.josev.request("stop_charging", {"evse_id": self.evse_id})
        if answer.data["status"] != "accepted":
            raise StepFailedError(f"stop_charging {answer.data['status']}")
        await self._update_named(
            "cs_contactor_status", since, lambda m: m.data["status"] == "opened"
        )
        await self._simulate("restore_module", self.modules[-1])
        return "modules off, contactors opened"

    async def _unplug(self) -> str:
        since = len(self.josev.updates)
        await self._simulate("unplug")
        await self._update_named("cp_status", since, lambda m: m.data["state"] == "A1")
        await self._update_named(
            "connector_and_charging", since, lambda m: m.data.get("connector_status") == "available"
        )
        return "A1, connector available"

    async def _cleanup(self) -> None:
        if self.evse_id:
            with contextlib.suppress(EmulatorError):
                await self.josev.request("stop_charging", {"evse_id": self.evse_id}, timeout=5)
