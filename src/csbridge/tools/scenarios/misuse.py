"""`csbridge emulate --scenario misuse`: every out-of-sequence request of issue 14, each in its
own step against the simulated station's DC EVSE, which must refuse it, while a second client
(tools/scenarios/watch.py) watches that no module ever delivers output.

A power_electronics_setpoint is sent (a) before plug-in, (b) plugged in at pilot C, authorized,
HLC on, before the cable check, (c) after stop_charging, (d) after iso15118_state_info
SessionStop, (e) after transaction_status ended, (f) after unplug; (g) a retained setpoint sits
on Josev's request topic; (h) one request id arrives twice. A refusal is `rejected` (a cable
check: `finished` with `invalid`) with the contactors open. Between steps the EV and Josev bring
the session to where the next step needs it, as they would: plug in, authorization, SLAC, the
pilot, a cable check that passes. Any module above 1 A, or any present current above 1 A told
to Josev, at any time, fails the step it happened in, naming when and which.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from csbridge.messages import Message, new_message_id
from csbridge.tools.emulator import EmulatorError, JosevEmulator
from csbridge.tools.scenarios.common import (
    SimulatedEvse,
    StepAction,
    StepFailedError,
    StepResult,
    answers_in,
    evse_with,
    run_steps,
)
from csbridge.tools.scenarios.watch import Output, OutputWatch, outputs_in_entry

PRECHARGE: dict[str, Any] = {
    "dc": {"voltage": 400.0, "charge_current": 2.0},
    "ev_limits": {"maximum_voltage": 500.0},
    "is_precharge": True,
}
CHARGE: dict[str, Any] = {
    "dc": {"voltage": 450.0, "charge_current": 77.0},
    "ev_limits": {"maximum_voltage": 500.0},
    "is_precharge": False,
}
"""The setpoints sent out of sequence: the EV's precharge, and what the issue saw a retained
setpoint drive the modules to."""
STATE_WAIT_S = 5.0
LAST_LOOK_S = 2.0
"""How long the last step still watches: longer than a module's poll period and the report
that follows it, so output that began at the end of a step is seen too."""
RESTING = ("available", "occupied", "authorized")


LIVE_ANSWER_S = 5.0
"""How long the live copy of the retained setpoint may take to be answered."""
LIVE_POLL_S = 0.05


@dataclass
class Misuse:
    josev: JosevEmulator
    watch: OutputWatch
    local_prefix: str = "csbridge"
    station_client_id: str | None = None
    """The station's MQTT client id, if known: step (g) then takes it over once, so that the
    station subscribes again and the broker replays the retained setpoint to it."""
    evse: SimulatedEvse = field(init=False)
    _started: float = field(init=False, default=0.0)
    _timeline: list[tuple[float, str]] = field(init=False, default_factory=list)
    _retained_on: str | None = field(init=False, default=None)

    name = "misuse"

    def __post_init__(self) -> None:
        self.evse = SimulatedEvse(self.josev, self.local_prefix)

    def steps(self) -> list[tuple[str, StepAction]]:
        steps: list[tuple[str, StepAction]] = [
            ("boot", self._boot),
            ("(a) setpoint before plug-in", self._before_plug_in),
            ("(b) setpoint at pilot C, authorized, HLC on, no cable check", self._no_cable_check),
            ("(c) setpoint after stop_charging", self._after_stop_charging),
            ("(d) setpoint after iso15118_state_info SessionStop", self._after_session_stop),
            ("(e) setpoint after transaction_status ended", self._after_transaction_ended),
            ("(f) setpoint after unplug (pilot A)", self._after_unplug),
            ("(g) a retained setpoint on Josev's topic", self._retained),
            ("(h) one request id twice: same answer, acted on once", self._repeated),
            ("no module output, at any time", self._last_look),
        ]
        return [(name, self._watched(name, step)) for name, step in steps]

    async def run(self, only: Collection[str] = ()) -> list[StepResult]:
        """Every step; with `only`, boot and the steps named there."""
        self._started = time.perf_counter()
        steps = [(n, s) for n, s in self.steps() if not only or n == "boot" or n in only]
        try:
            return await run_steps(steps, self._cleanup)
        finally:
            await self._clear_retained()  # whatever happened: no replay for the next client

    def _watched(self, name: str, step: StepAction) -> StepAction:
        """`step`, and then no output seen anywhere so far."""

        async def watched() -> str:
            self._timeline.append((time.perf_counter(), name))
            try:
                detail = await step()
            except (StepFailedError, EmulatorError):
                self._no_output()  # output seen meanwhile is the failure that matters
                raise
            self._no_output()
            return detail

        return watched

    # -- what every step checks -------------------------------------------------------------

    def _no_output(self) -> None:
        seen = sorted(self.watch.outputs + self._told_outputs(), key=lambda output: output.at)
        if seen:
            more = f" (and {len(seen) - 3} more)" if len(seen) > 3 else ""
            raise StepFailedError("; ".join(self._describe(o) for o in seen[:3]) + more)

    def _told_outputs(self) -> list[Output]:
        """Present currents above the limit that Josev was told (responses and updates)."""
        found = []
        for exchange in self.josev.exchanges:
            if exchange.outgoing or exchange.name != "cs_status_and_limits":
                continue
            for entry in exchange.data.get("evses", []):
                found += outputs_in_entry(exchange.at, entry, f"present_current ({exchange.type})")
        return found

    def _describe(self, output: Output) -> str:
        during = next(
            (name for at, name in reversed(self._timeline) if at <= output.at), "before boot"
        )
        return (
            f"{output.source} of {output.evse_id} at {output.amps:.1f} A, "
            f"seen {output.at - self._started:.1f} s in, during {during!r}"
        )

    async def _refused(self, when: str) -> str:
        """A precharge and a charging setpoint, each answered `rejected`, the contactors open
        and never reported closed meanwhile."""
        since = len(self.josev.updates)
        for kind, setpoint in (("precharge", PRECHARGE), ("charging", CHARGE)):
            answer = await self.evse.request("power_electronics_setpoint", setpoint)
            if answer.data["status"] != "rejected":
                raise StepFailedError(f"{when}: the {kind} setpoint was {answer.data['status']}")
        contactors = await self.evse.contactors()
        closed = [
            m
            for m in self.josev.updates[since:]
            if m.name == "cs_contactor_status"
            and m.data.get("evse_id") == self.evse.evse_id
            and m.data.get("status") == "closed"
        ]
        if closed:
            raise StepFailedError(f"{when}: contactors reported closed after refused setpoints")
        if contactors != "opened":
            raise StepFailedError(f"{when}: contactors {contactors} after refused setpoints")
        return "precharge and charging setpoints rejected, contactors opened"

    # -- bringing the session where a step needs it ------------------------------------------

    async def _session_state(self, *states: str) -> str:
        """Until the EVSE's limits report shows its session in one of `states`."""

        def session_in(report: dict[str, Any]) -> bool:
            return report.get("session", {}).get("state") in states

        report = await self.watch.wait_report(self.evse.evse_id, session_in, STATE_WAIT_S)
        if report is None:
            now = self.watch.reports.get(self.evse.evse_id, {}).get("session", {}).get("state")
            raise StepFailedError(f"the session is {now}, not {' or '.join(states)}")
        return str(report["session"]["state"])

    async def _session_up(self, *, transaction: str | None = None) -> None:
        """Plug in, free vend, SLAC and HLC, the PWM, the EV at C: authorized, no cable check.
        With `transaction`, Josev reports that transaction started once authorized."""
        await self._session_state("available")
        await self.evse.plug_in()
        await self.evse.free_vend()
        if transaction is not None:
            await self.josev.update(
                "transaction_status",
                {"transaction_id": transaction, "status": "started", "evse_id": self.evse.evse_id},
            )
        await self.evse.hlc_up()
        await self.evse.pilot("ev_ready", "C2")
        await self._session_state("authorized")

    async def _cable_check_passes(self) -> str:
        """A cable check that passes: from here a setpoint could bring energy."""
        _, level = await self.evse.cable_check()
        contactors = await self.evse.contactors()
        if contactors != "closed":
            raise StepFailedError(f"contactors {contactors} after the cable check")
        return level

    async def _stopped(self, since: int, why: str) -> None:
        """The contactors reported open after `since`, as the stop `why` asks."""
        try:
            await self.evse.update_named(
                "cs_contactor_status", since, lambda m: m.data["status"] == "opened"
            )
        except StepFailedError:
            raise StepFailedError(f"the contactors stayed closed after {why}") from None

    async def _end_session(self) -> None:
        """The EV opens S2 and the plug comes out."""
        await self.evse.pilot("ev_pause", "B2")
        await self.evse.unplug()

    # -- the steps --------------------------------------------------------------------------

    async def _boot(self) -> str:
        parameters, _ = await self.josev.boot()
        self.evse.evse_id, self.evse.connector_id = evse_with(parameters, "dc")
        status = self.evse.entry()["status_code"]
        if status != "evse_ready":
            raise StepFailedError(f"{self.evse.evse_id} is {status}, not evse_ready")
        report = await self.watch.wait_report(self.evse.evse_id, lambda _: True)
        if report is None:
            raise StepFailedError(f"no limits report on {self.evse.topic('limits')}")
        modules = report["sources"].get("modules", {})
        if not modules:
            raise StepFailedError("the limits report shows no module to watch")
        return f"{self.evse.evse_id}, watching modules {', '.join(modules)}"

    async def _before_plug_in(self) -> str:
        await self._session_state("available")
        refused = await self._refused("before plug-in")
        check = await self.evse.request("cable_check", {"cable_check_action": "start"})
        verdict = (check.data["cable_check_status"], check.data.get("isolation_level"))
        if verdict != ("finished", "invalid"):
            raise StepFailedError(f"before plug-in: a cable check start answered {check.data}")
        contactors = await self.evse.contactors()
        if contactors != "opened":
            raise StepFailedError(f"before plug-in: contactors {contactors} after a cable check")
        return f"{refused}; cable check finished/invalid"

    async def _no_cable_check(self) -> str:
        await self._session_up()
        return await self._refused("before the cable check")

    async def _after_stop_charging(self) -> str:
        level = await self._cable_check_passes()  # the session of (b) goes on
        since = len(self.josev.updates)
        status = await self.evse.stop_charging()
        if status != "accepted":
            raise StepFailedError(f"stop_charging {status}")
        await self._stopped(since, "stop_charging")
        refused = await self._refused("after stop_charging")
        await self._end_session()
        return f"isolation {level}, stop accepted, contactors opened; {refused}"

    async def _after_session_stop(self) -> str:
        await self._session_up()
        level = await self._cable_check_passes()
        since = len(self.josev.updates)
        await self.josev.update(
            "iso15118_state_info",
            {"evse_id": self.evse.evse_id, "session_status": "SessionStop"},
        )
        await self._stopped(since, "SessionStop")
        refused = await self._refused("after SessionStop")
        await self._end_session()
        return f"isolation {level}, SessionStop, contactors opened; {refused}"

    async def _after_transaction_ended(self) -> str:
        transaction = f"misuse-{uuid.uuid4().hex[:8]}"
        await self._session_up(transaction=transaction)
        level = await self._cable_check_passes()
        since = len(self.josev.updates)
        await self.josev.update(
            "transaction_status",
            {"transaction_id": transaction, "status": "ended", "evse_id": self.evse.evse_id},
        )
        await self._stopped(since, "the transaction ended")
        refused = await self._refused("after the transaction ended")
        await self._end_session()
        return f"isolation {level}, transaction ended, contactors opened; {refused}"

    async def _after_unplug(self) -> str:
        await self._session_up()
        level = await self._cable_check_passes()
        since = len(self.josev.updates)
        await self._end_session()  # no stop from Josev: the EV opens S2, the plug comes out
        await self._stopped(since, "the unplug")
        await self._session_state("available")
        refused = await self._refused("after unplug")
        return f"isolation {level}, B2 then A1, contactors opened; {refused}"

    async def _retained(self) -> str:
        await self._session_state("available")
        message_id = new_message_id()
        document = {
            "id": message_id,
            "name": "power_electronics_setpoint",
            "type": "request",
            "data": {"evse_id": self.evse.evse_id, **CHARGE},
        }
        payload = self.josev.codec.encode_document(document)  # valid, as Josev would write it
        topic = self.josev.request_topic
        self._retained_on = topic
        await self.watch.publish(topic, payload, retain=True)
        if await self.watch.retained(topic) != payload:
            raise StepFailedError("the broker did not keep the setpoint retained")
        # The station subscribed long ago: MQTT hands it this publish with RETAIN 0, as any
        # live request. Once a later request is answered, the station has handled it.
        probe = await self.evse.contactors()
        # The probe went on another connection than the publish: MQTT orders neither against
        # the other, so the live copy's answer may come after the probe's. Wait for it.
        for _ in range(round(LIVE_ANSWER_S / LIVE_POLL_S)):
            if answers_in(self.josev.exchanges, message_id):
                break
            await asyncio.sleep(LIVE_POLL_S)
        live = answers_in(self.josev.exchanges, message_id)
        if len(live) > 1 or any(answer.data.get("status") != "rejected" for answer in live):
            told = [answer.data.get("status") for answer in live]
            raise StepFailedError(f"the retained setpoint, delivered live, was answered {told}")
        self._forgive(message_id)
        parts = [f"kept retained; live copy answered {live[0].data['status'] if live else 'not'}"]
        if self.station_client_id is not None:
            parts.append(await self._replayed(message_id, len(live)))
        else:
            parts.append("replay not forced (the station's client id is unknown)")
        if probe != "opened" or await self.evse.contactors() != "opened":
            raise StepFailedError("the contactors closed after the retained setpoint")
        return "; ".join(parts)

    async def _replayed(self, message_id: str, answered: int) -> str:
        """Take the station's client id over: the station connects and subscribes again, and
        the broker replays the retained setpoint to it (RETAIN 1), which it must not answer."""
        assert self.station_client_id is not None
        since = len(self.josev.updates)
        await self.watch.take_over(self.station_client_id)
        try:  # after every connect the station tells Josev its connectors again
            await self.evse.update_named("connector_and_charging", since, lambda _: True)
        except StepFailedError:
            raise StepFailedError("the station did not connect again after the takeover") from None
        await self.evse.contactors()  # answered after what the broker replayed was handled
        replies = answers_in(self.josev.exchanges, message_id)[answered:]
        if replies:
            raise StepFailedError(
                f"the setpoint replayed at a new subscription was answered "
                f"{[reply.data.get('status') for reply in replies]}"
            )
        await self._session_state(*RESTING)
        return "replayed at the station's new subscription: not answered"

    async def _repeated(self) -> str:
        await self._session_state("available")
        # A setpoint out of sequence, delivered twice (QoS 1 may): the same answer twice.
        first = await self.evse.request("power_electronics_setpoint", CHARGE)
        await self._redeliver(first)
        setpoint = await self.evse.answers_to(first.id, 2)
        if first.data["status"] != "rejected" or setpoint[1].data != first.data:
            raise StepFailedError(f"setpoint answered {first.data}, then {setpoint[1].data}")
        self._forgive(first.id)
        # A cable check start delivered again after its verdict: answered as the first time,
        # and the check is not run again (a new one would be ongoing, its verdict gone).
        await self._session_up()
        start, level = await self.evse.cable_check()
        await self._redeliver(start)
        again = (await self.evse.answers_to(start.id, 2))[1]
        if again.data != start.data:
            raise StepFailedError(f"cable check start answered {start.data}, then {again.data}")
        self._forgive(start.id)
        status = await self.evse.request("cable_check", {"cable_check_action": "status"})
        verdict = (status.data["cable_check_status"], status.data.get("isolation_level"))
        if verdict != ("finished", level):
            raise StepFailedError(f"the repeated start ran the check again: {status.data}")
        since = len(self.josev.updates)
        if await self.evse.stop_charging() != "accepted":
            raise StepFailedError("stop_charging refused")
        await self._stopped(since, "stop_charging")
        await self._end_session()
        return (
            f"setpoint twice: {first.data['status']} twice; cable check start twice: "
            f"{start.data['cable_check_status']} twice, verdict kept ({level})"
        )

    async def _last_look(self) -> str:
        await asyncio.sleep(LAST_LOOK_S)
        await self.josev.request("cs_status_and_limits")  # what Josev is told now
        told = sum(
            1
            for exchange in self.josev.exchanges
            if not exchange.outgoing and exchange.name == "cs_status_and_limits"
        )
        seconds = time.perf_counter() - self._started
        return (
            f"{self.watch.report_count} limits reports and {told} cs_status_and_limits over "
            f"{seconds:.0f} s: no module or present current above 1 A"
        )

    # -- the emulator's bookkeeping -------------------------------------------------------------

    async def _redeliver(self, answered: Message) -> None:
        """The request `answered` answered, published once more byte for byte (as QoS 1
        redelivers it)."""
        sent = next(e for e in self.josev.exchanges if e.outgoing and e.id == answered.id)
        document = {"id": sent.id, "name": sent.name, "type": str(sent.type), "data": sent.data}
        await self.josev.publish(self.josev.request_topic, document)

    def _forgive(self, message_id: str) -> None:
        """The emulator counts an answer to an id it no longer waits for as the station's
        problem; for a request this scenario sent again on purpose (or retained) it is what
        the station must do, and checked above."""
        self.josev.problems[:] = [p for p in self.josev.problems if message_id not in p]

    async def _cleanup(self) -> None:
        if not self.evse.evse_id:
            return
        with contextlib.suppress(EmulatorError):
            await self.josev.request("stop_charging", {"evse_id": self.evse.evse_id}, timeout=5)
        with contextlib.suppress(aiomqtt.MqttError):
            await self.evse.simulate("unplug")

    async def _clear_retained(self) -> None:
        if self._retained_on is None:
            return
        with contextlib.suppress(aiomqtt.MqttError):
            await self.watch.publish(self._retained_on, b"", retain=True)
        self._retained_on = None
