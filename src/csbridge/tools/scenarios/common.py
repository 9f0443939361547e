"""What the emulator's scenarios share: their steps and results, and one EVSE of a simulated
station, driven as its EV and the person at it would (csbridge/<evse_id>/simulate) and asked as
Josev would (the emulator).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from csbridge.messages import Message
from csbridge.tools.emulator import EmulatorError, Exchange, JosevEmulator

CABLE_CHECK_LIMIT_S = 40.0
"""ISO 15118-2 CableCheck timeout."""
CABLE_CHECK_POLL_S = 0.5
"""How often Josev asks for the cable check's status."""
STATION_REQUEST_WAIT_S = 5.0
EV_MAX_VOLTAGE_V = 500.0
"""The simulated EV's maximum voltage (its setpoints' ev_limits)."""
PRECHARGE_SETTLE_S = 0.5
"""How long precharge runs before its current is read."""
PRECHARGE_LIMIT_A = 2.0
REPORTED_DEADBAND_A = 1.0
"""Reported present values move past a 1 A deadband: a reading may lag by that much."""
POLL_S = 0.05
"""How often a scenario looks again at what the emulator recorded without telling (the
station's own requests, an answer to an id it no longer waits for)."""

FREE_VEND = "no_authorization"
"""The token_type of the station's authorization request when nobody presented a token."""

StepAction = Callable[[], Awaitable[str]]
"""One step: what it saw when it passed; StepFailedError (or EmulatorError) when not."""
Service = Literal["ac", "dc"]


class StepFailedError(Exception):
    """What the station did wrong in one step."""


@dataclass(frozen=True, slots=True)
class StepResult:
    name: str
    passed: bool
    seconds: float
    detail: str


async def run_steps(
    steps: Sequence[tuple[str, StepAction]], cleanup: Callable[[], Awaitable[None]]
) -> list[StepResult]:
    """Each step in order until one fails; then `cleanup` (leave the station idle) and stop."""
    results = []
    for name, step in steps:
        started = time.perf_counter()
        try:
            detail = await step()
        except (StepFailedError, EmulatorError, KeyError) as error:
            results.append(StepResult(name, False, time.perf_counter() - started, str(error)))
            await cleanup()
            break
        results.append(StepResult(name, True, time.perf_counter() - started, detail))
    return results


def evse_with(parameters: Message, service: Service) -> tuple[str, int]:
    """The first EVSE (and its connector id) of cs_parameters whose connector offers `service`."""
    for evse in parameters.data["parameters"]:
        for connector in evse["connectors"]:
            if service in connector["services"]:
                return evse["evse_id"], int(connector["id"])
    raise StepFailedError(f"the station has no {service.upper()} EVSE")


@dataclass
class SimulatedEvse:
    """One EVSE of a simulated station: plugging in and the EV's pilot go to its simulate topic,
    Josev's requests go through the emulator, and what comes back is checked."""

    josev: JosevEmulator
    local_prefix: str = "csbridge"
    evse_id: str = ""
    connector_id: int = 1
    _requests_at_plug_in: int = field(init=False, default=0)
    _updates_at_plug_in: int = field(init=False, default=0)

    def entry(self) -> dict[str, Any]:
        """Josev's latest cs_status_and_limits entry of this EVSE."""
        entry = self.josev.view.evses.get(self.evse_id)
        if entry is None:
            raise StepFailedError(f"Josev knows nothing of {self.evse_id}")
        return entry

    def topic(self, leaf: str) -> str:
        """One of the station's own topics of this EVSE."""
        return f"{self.local_prefix}/{self.evse_id}/{leaf}"

    async def simulate(self, action: str, module: str | None = None) -> None:
        command: dict[str, Any] = {"action": action}
        if module is not None:
            command["module"] = module
        await self.josev.publish(self.topic("simulate"), command)

    async def request(self, name: str, data: dict[str, Any] | None = None) -> Message:
        """A request about this EVSE (its evse_id added), answered within 10 s."""
        return await self.josev.request(name, {"evse_id": self.evse_id, **(data or {})})

    async def update_named(
        self, name: str, since: int, check: Callable[[Message], bool], timeout: float = 10.0
    ) -> Message:
        """The first update `name` about this EVSE from index `since` on that passes `check`."""

        def matches(message: Message) -> bool:
            return (
                message.name == name
                and message.data.get("evse_id") == self.evse_id
                and check(message)
            )

        try:
            return await self.josev.wait_update(matches, timeout=timeout, since=since)
        except EmulatorError:
            raise StepFailedError(f"no such {name} update within {timeout} s") from None

    async def station_request(
        self, name: str, since: int, timeout: float = STATION_REQUEST_WAIT_S
    ) -> Message:
        """The station's own request `name` about this EVSE, from index `since` on."""

        def asked(message: Message) -> bool:
            return message.name == name and message.data.get("evse_id") == self.evse_id

        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.josev.station_requests[since:] if asked(m)]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise StepFailedError(f"no {name} request from the station within {timeout} s")
            await asyncio.sleep(POLL_S)

    async def answers_to(self, message_id: str, count: int, timeout: float = 5.0) -> list[Exchange]:
        """The station's responses carrying `message_id`, once there are `count` of them: also
        those the emulator took for strays (a second answer to one id, an answer to a request
        it did not send itself)."""
        deadline = time.monotonic() + timeout
        while True:
            found = answers_in(self.josev.exchanges, message_id)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise StepFailedError(
                    f"{len(found)} answers to {message_id} within {timeout} s, not {count}"
                )
            await asyncio.sleep(POLL_S)

    # -- what the EV does -------------------------------------------------------------------

    async def pilot(self, action: str, state: str) -> str:
        """The EV's `action` on the pilot; the station must report cp_status `state`."""
        since = len(self.josev.updates)
        await self.simulate(action)
        await self.update_named("cp_status", since, lambda m: m.data["state"] == state)
        return state

    async def plug_in(self) -> str:
        """Plug the EV in: cp_status B1 first (what Josev has heard so far is kept, for
        free_vend to look beyond)."""
        since = len(self.josev.updates)
        self._requests_at_plug_in = len(self.josev.station_requests)
        self._updates_at_plug_in = since
        await self.simulate("plug_in")
        status = await self.update_named(
            "cp_status", since, lambda m: m.data["state"].startswith("B")
        )
        if status.data["state"] != "B1":
            raise StepFailedError(f"plug-in gave {status.data['state']}, not B1 first")
        return "B1"

    async def free_vend(self) -> str:
        """The station authorizes the last plug-in itself and tells Josev so (and OCPP, through
        connector_and_charging, that the connector is occupied)."""
        requests_since, updates_since = self._requests_at_plug_in, self._updates_at_plug_in
        request = await self.station_request("authorization", requests_since)
        if request.data["token_type"] != FREE_VEND:
            raise StepFailedError(f"authorization with token_type {request.data['token_type']}")
        occupied = await self.update_named(
            "connector_and_charging",
            updates_since,
            lambda m: m.data.get("connector_status") == "occupied",
        )
        return f"{request.data['token_type']}, connector {occupied.data['connector_status']}"

    async def unplug(self) -> str:
        since = len(self.josev.updates)
        await self.simulate("unplug")
        await self.update_named("cp_status", since, lambda m: m.data["state"] == "A1")
        await self.update_named(
            "connector_and_charging", since, lambda m: m.data.get("connector_status") == "available"
        )
        return "A1, connector available"

    # -- what Josev does --------------------------------------------------------------------

    async def hlc_up(self) -> str:
        """SLAC matched, the HLC session up, the 5 % PWM on: the pilot goes to B2."""
        since = len(self.josev.updates)
        await self.josev.update(
            "slac_status", {"evse_id": self.evse_id, "run_id": "emulator", "status": "matched"}
        )
        await self.josev.update("hlc_charging", {"evse_id": self.evse_id, "status": True})
        answer = await self.request(
            "cp_pwm", {"hlc": True, "error_state": False, "fault_state": False}
        )
        if answer.data["status"] != "valid":
            raise StepFailedError(f"cp_pwm answered {answer.data['status']}")
        await self.update_named("cp_status", since, lambda m: m.data["state"] == "B2")
        return "B2"

    async def cable_check(self) -> tuple[Message, str]:
        """Start a cable check and ask for its status until it is finished: the start's answer
        and the isolation level, which must let the session go on."""
        start = await self.request("cable_check", {"cable_check_action": "start"})
        if start.data["cable_check_status"] != "ongoing":
            raise StepFailedError(f"start answered {start.data}")
        deadline = time.monotonic() + CABLE_CHECK_LIMIT_S
        while time.monotonic() < deadline:
            status = await self.request("cable_check", {"cable_check_action": "status"})
            if status.data["cable_check_status"] == "finished":
                level = str(status.data["isolation_level"])
                if level not in ("valid", "warning"):
                    raise StepFailedError(f"isolation {level}")
                return start, level
            await asyncio.sleep(CABLE_CHECK_POLL_S)
        raise StepFailedError(f"no verdict within {CABLE_CHECK_LIMIT_S} s")

    async def contactors(self) -> str:
        """What the station answers cs_contactor_status (closed, opened or error)."""
        answer = await self.request("cs_contactor_status")
        return str(answer.data["status"])

    async def isolation(self) -> str:
        """A scenario's step: the cable check to its verdict."""
        _, level = await self.cable_check()
        return f"isolation {level}"

    async def contactors_closed(self) -> str:
        """A scenario's step: the station reports its contactors closed."""
        status = await self.contactors()
        if status != "closed":
            raise StepFailedError(f"contactors {status}")
        return "closed"

    async def stop_charging(self) -> str:
        answer = await self.request("stop_charging")
        return str(answer.data["status"])

    async def setpoint(
        self, voltage: float, current: float, *, precharge: bool = False
    ) -> dict[str, Any]:
        """Josev's power_electronics_setpoint for this EVSE: the answer's data."""
        answer = await self.request(
            "power_electronics_setpoint",
            {
                "dc": {"voltage": voltage, "charge_current": current},
                "ev_limits": {"maximum_voltage": EV_MAX_VOLTAGE_V},
                "is_precharge": precharge,
            },
        )
        return answer.data

    async def precharge(self, voltage: float = 400.0) -> str:
        """A scenario's step: precharge accepted, and no more than PRECHARGE_LIMIT_A flows."""
        answer = await self.setpoint(voltage, 20.0, precharge=True)
        if answer["status"] != "accepted":
            raise StepFailedError(f"precharge {answer['status']}")
        await asyncio.sleep(PRECHARGE_SETTLE_S)
        current = self.entry()["dc"]["present_current"]
        if current > PRECHARGE_LIMIT_A + REPORTED_DEADBAND_A:
            raise StepFailedError(f"{current} A flows during precharge")
        return f"{current} A"

    def over_reported(self) -> str | None:
        """Why the present current Josev was told lies above the maximum it was told, or None."""
        dc = self.entry()["dc"]
        if dc["present_current"] > dc["max_current"] + REPORTED_DEADBAND_A:
            return f"{dc['present_current']} A flows, above the {dc['max_current']} A reported"
        return None

    async def stop(self) -> str:
        """A scenario's step: the ISO session stops, the station accepts stop_charging and
        opens its contactors."""
        since = len(self.josev.updates)
        await self.josev.update(
            "iso15118_state_info", {"evse_id": self.evse_id, "session_status": "SessionStop"}
        )
        status = await self.stop_charging()
        if status != "accepted":
            raise StepFailedError(f"stop_charging {status}")
        await self.update_named(
            "cs_contactor_status", since, lambda m: m.data["status"] == "opened"
        )
        return "modules off, contactors opened"

    async def start_dc_session(self) -> str:
        """Plug-in to precharge, as one step: what each stage saw, in order."""
        stages: list[tuple[str, StepAction]] = [
            ("plug-in", self.plug_in),
            ("authorized", self.free_vend),
            ("HLC", self.hlc_up),
            ("S2 closed", lambda: self.pilot("ev_ready", "C2")),
            ("cable check", self.isolation),
            ("contactors", self.contactors_closed),
            ("precharge", self.precharge),
        ]
        seen = []
        for stage, action in stages:
            try:
                seen.append(await action())
            except StepFailedError as error:
                raise StepFailedError(f"{stage}: {error}") from None
        return ", ".join(seen)


def answers_in(exchanges: Sequence[Exchange], message_id: str) -> list[Exchange]:
    """The responses among `exchanges` that came from the station and carry `message_id`."""
    return [
        exchange
        for exchange in exchanges
        if not exchange.outgoing and exchange.type == "response" and exchange.id == message_id
    ]
