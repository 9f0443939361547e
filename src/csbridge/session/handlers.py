"""The session's I/O: Josev's session messages and the devices' readings become events of each
EVSE's state machine (session/machine.py), and its commands reach the power path, the board
and the IMD. A request the machine refuses is answered `rejected` (a cable check: `finished`,
`invalid`) and nothing is commanded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Protocol, cast

from csbridge.config import Config, EvseConfig, Kind
from csbridge.engine import LimitsEngine
from csbridge.limits import (
    AcDischargeRequest,
    Composition,
    DcRequest,
    EvseInputs,
    Refused,
    StatusCode,
    ac_discharge_power,
    duty_percent,
    fresh_meter,
)
from csbridge.messages import (
    ABSENT,
    CableCheckRequest,
    CableCheckResponse,
    ChangeAvailabilityRequest,
    ChangeAvailabilityResponse,
    ChangeAvailabilityUpdate,
    ConnectorAndChargingUpdate,
    ContactorStatus,
    CpPilotState,
    CpPwmRequest,
    CpPwmResponse,
    CpStatusUpdate,
    CsConnectorRequest,
    CsConnectorResponse,
    CsContactorStatusRequest,
    CsContactorStatusResponse,
    CsContactorStatusUpdate,
    EvRatedLimitsUpdate,
    FaultName,
    HandlerTable,
    HardwareFaultUpdate,
    HlcChargingUpdate,
    Iso15118StateInfoUpdate,
    IsolationStatus,
    LockStatus,
    Message,
    MeterValuesRequest,
    MeterValuesResponse,
    Payload,
    PerPhase,
    PowerElectronicsSetpointRequest,
    PowerElectronicsSetpointResponse,
    SignedMeterValue,
    SlacStatusUpdate,
    StopChargingRequest,
    StopChargingResponse,
    TokenPresented,
    TransactionStatusUpdate,
    handles,
    josev_date_time,
    value_or,
)
from csbridge.power import PowerOnReason, PowerStage
from csbridge.session.authorization import Authorizer, build_authorizers
from csbridge.session.authorization_flow import AuthorizationFlow
from csbridge.session.cable_check import cable_check_verdict
from csbridge.session.connector_lock import confirmed, lock_status
from csbridge.session.machine import (
    ENERGY_STATES,
    Command,
    Event,
    Machine,
    State,
    Step,
    charging_status,
    connector_status,
    step,
)
from csbridge.session.power_path import PowerPath
from csbridge.session.unknown_evse import (
    refuse_cable_check,
    refuse_change_availability,
    refuse_contactor_status,
    refuse_cp_pwm,
    refuse_cs_connector,
    refuse_setpoint,
    refuse_stop_charging,
)
from csbridge.sources import CpState, LockState, SessionCondition, cp_status
from csbridge.sources.rfid import Token, TokenError
from csbridge.support import Counted, RateLimitedLog

log = logging.getLogger("csbridge.session")

MAX_REPORTED_TOKEN = 36
"""The report's id_token bound (OCPP's IdToken); a longer one from Josev is left out."""
MAX_STOP_REASON = 200
MAX_METER_PUBLIC_KEY = 2500
"""The report's bound on a meter's public key: Josev's bound on signed_meter_values' key."""
MAX_OBSERVE_PASSES = 8
"""Passes over one evaluation's consequences before giving up (each pass acts on changes only,
so two or three settle everything)."""
KEEPALIVE_S = 1.0
"""Setpoints are sent again this often: well inside a module's own 10 s watchdog."""
SAFE_VOLTAGE_V = 60.0
"""Below this the output may be touched (IEC 61851-23): the connector may unlock."""
SESSION_OVER = frozenset({"SessionStop", "Idle"})
_PILOT_EVENT = {
    CpState.A: Event.CP_A,
    CpState.B: Event.CP_B,
    CpState.C: Event.CP_CD,
    CpState.D: Event.CP_CD,
    CpState.E: Event.CP_EF,
    CpState.F: Event.CP_EF,
}
_CLOSE_REASON = {
    Command.CLOSE_FOR_CABLE_CHECK: PowerOnReason.DC_CABLE_CHECK,
    Command.CLOSE_FOR_PRECHARGE: PowerOnReason.DC_PRE_CHARGE,
    Command.CLOSE_FOR_CHARGING: PowerOnReason.FULL_POWER_CHARGING,
}


class ForEvse(Protocol):
    """A message about one EVSE."""

    NAME: ClassVar[str]

    @property
    def evse_id(self) -> str: ...


@dataclass(slots=True)
class EvseSession:
    """One EVSE's state machine and what Josev and the devices told about its session."""

    machine: Machine
    since: datetime
    """When the machine entered its state (wall clock, for people)."""
    last_stop: tuple[str, datetime] | None = None
    """Why and when energy last stopped."""
    hlc_charging: bool = False
    slac_status: str | None = None
    iso15118_state: str | None = None
    ev_rated_limits: EvRatedLimitsUpdate | None = None
    transaction: TransactionStatusUpdate | None = None
    cable_check_started: float | None = None
    energy_wh: float = 0.0
    metered_at: float | None = None
    pwm_on: bool = False
    cp_status: str | None = None
    pilot_event: Event | None = None
    contactor: str | None = None
    faults: frozenset[tuple[str, FaultName]] = frozenset()
    troubled: bool = False
    """The limits say the EVSE cannot serve for a fault (emergency or malfunction)."""
    limits_ready: bool = False
    lock: LockStatus | None = None

    @property
    def state(self) -> State:
        return self.machine.state


class SessionHandlers:
    def __init__(
        self,
        config: Config,
        engine: LimitsEngine,
        stage: PowerStage,
        clock: Callable[[], float] = time.monotonic,
        *,
        power: PowerPath | None = None,
        authorizers: Mapping[str, Authorizer] | None = None,
        operative: Mapping[str, bool] | None = None,
    ) -> None:
        self._config = {evse.evse_id: evse for evse in config.evse}
        self._engine = engine
        self._stage = stage
        self._clock = clock
        self.power = power or PowerPath(
            config,
            engine,
            stage,
            clock,
            {evse_id: stage.min_currents(evse_id) for evse_id in stage.evses},
        )
        now = datetime.now(UTC)
        in_service = operative or {}
        self.sessions = {
            evse.evse_id: EvseSession(
                Machine.start(
                    dc=evse.kind is Kind.DC, operative=in_service.get(evse.evse_id, True)
                ),
                now,
            )
            for evse in config.evse
        }
        self.authorization = AuthorizationFlow(
            authorizers if authorizers is not None else build_authorizers(config, clock=clock),
            self.feed,
            lambda evse_id: self.sessions[evse_id].state,
            clock,
            unknown_evse=self._unknown_evse,
        )
        self.on_availability: Callable[[str, bool], None] | None = None
        """Told every change of an EVSE's availability (the state file keeps it)."""
        self.on_step: list[Callable[[str, Event, State, State], None]] = []
        """Told every event an EVSE's machine took: (evse_id, event, state before, after)."""
        self.on_transaction: list[Callable[[str, TransactionStatusUpdate], None]] = []
        """Told every transaction_status Josev gives for a known EVSE (meter_push.MeterPush)."""
        self.meter_public_keys: dict[str, str] = {}
        """Each EVSE's signing meter's public key, once read (set_meter_public_key)."""
        self.transaction_signed: dict[str, SignedMeterValue] = {}
        """The signed value of each EVSE's running transaction's start, while it runs
        (set_transaction_signed): the meter_values answer carries it."""
        self._announced: dict[str, tuple[str, str]] = {}
        self._conditions: dict[str, SessionCondition] = {}
        self.pushed: asyncio.Queue[Message] = asyncio.Queue()
        """Updates for Josev that the station raises itself (CP, contactors, faults)."""
        self._feeding = False
        self._observing: set[str] = set()
        self._observe_again: set[str] = set()
        self._watching: set[asyncio.Task[None]] = set()
        self._refusals = RateLimitedLog(log, engine.clock)
        """Every warning a message can cause (a refusal, an unknown EVSE, a failed lock): a
        flood of one kind gives one line a minute; the counters count every one."""
        engine.observers.append(self._observe)
        for evse_id in self.sessions:  # an EVSE kept out of service says so from the start
            self.publish_condition(evse_id)

    def handlers(self) -> HandlerTable:
        """The methods below marked @handles, and the authorization's."""
        return HandlerTable.of(self, self.authorization)

    def _evse(self, message: ForEvse) -> tuple[str, EvseConfig] | None:
        evse_id = message.evse_id
        if evse_id not in self._config:
            self._unknown_evse(message.NAME, evse_id)
            return None
        return evse_id, self._config[evse_id]

    def _unknown_evse(self, name: str, evse_id: str) -> None:
        """Counted, and logged keyed by the message's name alone: the evse_id is whatever the
        sender wrote."""
        self._engine.counters.add(Counted.UNKNOWN_EVSE, name)
        self._refusals.warning(
            ("unknown_evse", name),
            "event=unknown_evse message=%s evse_id=%r",
            name,
            evse_id,
        )

    # -- the machine -------------------------------------------------------------------------

    def feed(self, evse_id: str, event: Event, why: str = "") -> Step:
        """Run one event through the EVSE's machine and carry out its commands."""
        session = self.sessions[evse_id]
        before = session.machine
        result = step(before, event)
        session.machine = result.machine
        if not result.accepted:
            self._engine.counters.add(Counted.SESSION_REFUSED, event.value)
            self._refusals.warning(
                ("session_refused", before.state, event),
                "event=session_refused evse=%s state=%s on=%s why=%s",
                evse_id,
                before.state,
                event,
                result.why,
            )
            return result
        after = result.machine.state
        if event is Event.CP_A:
            self.authorization.forget(evse_id)  # a new EV, a new authorization
            session.ev_rated_limits = None  # and its own limits, never the last EV's
        if after is not before.state:
            session.since = datetime.now(UTC)
            log.info(
                "event=session_state evse=%s from=%s to=%s on=%s%s",
                evse_id,
                before.state,
                after,
                event,
                f" why={why}" if why else "",
            )
            if before.state in ENERGY_STATES and after not in ENERGY_STATES:
                session.last_stop = (why or event.value, session.since)
        for command in result.commands:
            self._carry_out(evse_id, command, why or event.value)
        if before.facts.operative != session.machine.facts.operative:
            self._availability_changed(evse_id, session.machine.facts.operative)
        self.announce(evse_id)
        self.publish_condition(evse_id)
        self._progress(evse_id)
        for observer in self.on_step:
            observer(evse_id, event, before.state, after)
        return result

    def announce(self, evse_id: str, *, again: bool = False) -> None:
        """connector_and_charging to Josev (for OCPP) when either status changed."""
        machine = self.sessions[evse_id].machine
        statuses = (connector_status(machine), charging_status(machine))
        if not again and self._announced.get(evse_id) == statuses:
            return
        self._announced[evse_id] = statuses
        self._push(
            ConnectorAndChargingUpdate(
                evse_id=evse_id,
                connector_id=self._config[evse_id].connectors[0].id,
                connector_status=statuses[0],
                charging_status=statuses[1],
            )
        )

    def _availability_changed(self, evse_id: str, operative: bool) -> None:
        log.info("event=availability evse=%s operative=%s", evse_id, operative)
        if self.on_availability is not None:
            self.on_availability(evse_id, operative)

    def report_block(self, evse_id: str) -> dict[str, Any]:
        """The `session` block of the EVSE's limits report."""
        session = self.sessions[evse_id]
        machine = session.machine
        record = self.authorization.by_evse[evse_id]
        authorization: dict[str, Any] = {"status": record.status}
        if record.token_type is not None:
            authorization["token_type"] = record.token_type
        if record.id_token and len(record.id_token) <= MAX_REPORTED_TOKEN:
            authorization["id_token"] = record.id_token
        block: dict[str, Any] = {
            "state": machine.state.value,
            "since": josev_date_time(session.since),
            "authorization": authorization,
            "connector_status": connector_status(machine),
            "charging_status": charging_status(machine),
        }
        if session.last_stop is not None:
            why, at = session.last_stop
            block["last_stop"] = {"reason": why[:MAX_STOP_REASON], "at": josev_date_time(at)}
        if session.lock is not None:
            block["lock"] = session.lock
        if evse_id in self.meter_public_keys:
            block["meter_public_key"] = self.meter_public_keys[evse_id]
        return block

    def set_transaction_signed(self, evse_id: str, value: SignedMeterValue | None) -> None:
        """The signing meter's record of the transaction that started on `evse_id` (None: it
        ended, or its start was not signed)."""
        if value is None:
            self.transaction_signed.pop(evse_id, None)
        else:
            self.transaction_signed[evse_id] = value

    def set_meter_public_key(self, evse_id: str, key: str) -> None:
        """The EVSE's signing meter's public key, for its limits report (csbridge status). A
        key over the report's bound (Josev's) is left out: it would stop the whole report."""
        if evse_id not in self.sessions or self.meter_public_keys.get(evse_id) == key:
            return
        if len(key) > MAX_METER_PUBLIC_KEY:
            self._refusals.warning(
                ("meter_public_key", evse_id),
                "event=meter_public_key_refused evse=%s why=longer than %d characters",
                evse_id,
                MAX_METER_PUBLIC_KEY,
            )
            return
        self.meter_public_keys[evse_id] = key
        self.publish_condition(evse_id)

    def publish_condition(self, evse_id: str) -> None:
        """What the limits follow of the session (availability, stray output) and what its
        report shows, to the engine when any of it changed."""
        condition = SessionCondition(
            at=0.0,
            operative=self._operative(evse_id),
            stray_output=self.power.stray_output(evse_id),
            report=self.report_block(evse_id),
            importing=self.power.step(evse_id).import_,
        )
        if condition == self._conditions.get(evse_id):
            return
        self._conditions[evse_id] = condition
        self._engine.ingest(evse_id, dataclasses.replace(condition, at=self._clock()))

    def _carry_out(self, evse_id: str, command: Command, why: str) -> None:
        match command:
            case Command.ALL_OFF:
                if self.power.off(evse_id):
                    log.warning("event=modules_off evse=%s why=%s", evse_id, why)
                self._stage.open_contactors(evse_id)
                self.sessions[evse_id].cable_check_started = None
                self._stage.end_cable_check(evse_id)  # after the Off, sent in its phase
            case (
                Command.CLOSE_FOR_CABLE_CHECK
                | Command.CLOSE_FOR_PRECHARGE
                | Command.CLOSE_FOR_CHARGING
            ):
                self._stage.close_contactors(evse_id, _CLOSE_REASON[command])
            case Command.START_SELF_TEST:
                session = self.sessions[evse_id]
                session.cable_check_started = self._clock()
                # Josev's cable_check request carries no EV limits: its rated limits (from
                # ChargeParameterDiscovery, before the cable check) say the EV's maximum.
                rated = _rated_max_voltage(session)
                ev_max = rated if rated != float("inf") else None
                self._stage.start_cable_check(evse_id, ev_max)
            case Command.LOCK:
                self._move_lock(evse_id, LockState.LOCKED)
            case Command.UNLOCK:
                if self.power.measured_voltage(evse_id) < SAFE_VOLTAGE_V:
                    self._move_lock(evse_id, LockState.UNLOCKED)
            case Command.OFFER_AUTHORIZATION:
                self._offer_authorization(evse_id)

    def _offer_authorization(self, evse_id: str) -> None:
        self.authorization.on_plug_in(evse_id)

    def _progress(self, evse_id: str) -> None:
        """Steps the devices have already taken: contactors that read open, an output that is
        below the safe voltage."""
        if self._feeding:
            return
        self._feeding = True
        try:
            state = self.sessions[evse_id].state
            if state is State.STOPPING and not self._contactors_closed(evse_id):
                self.feed(evse_id, Event.CONTACTORS_OPEN)
                state = self.sessions[evse_id].state
            if state is State.FINISHING and self.power.measured_voltage(evse_id) < SAFE_VOLTAGE_V:
                self.feed(evse_id, Event.DISCHARGED)
        finally:
            self._feeding = False

    def _contactors_closed(self, evse_id: str) -> bool:
        """As the feedback says; a board without feedback opened them when told."""
        board = self._engine.inputs(evse_id).board
        return board is not None and board.contactor_closed is True

    # -- updates from Josev ------------------------------------------------------------------

    @handles(SlacStatusUpdate)
    def slac_status(self, message: SlacStatusUpdate) -> None:
        found = self._evse(message)
        if found is None:
            return
        self.sessions[found[0]].slac_status = message.status
        if message.status == "matched":
            self.feed(found[0], Event.HLC_ON)
        elif message.status in ("failed", "unmatched", "basic_charging"):
            self.feed(found[0], Event.HLC_OFF, f"SLAC {message.status}")

    @handles(EvRatedLimitsUpdate)
    def ev_rated_limits(self, message: EvRatedLimitsUpdate) -> None:
        found = self._evse(message)
        if found is not None:
            self.sessions[found[0]].ev_rated_limits = message

    @handles(HlcChargingUpdate)
    def hlc_charging(self, message: HlcChargingUpdate) -> None:
        found = self._evse(message)
        if found is None:
            return
        self.sessions[found[0]].hlc_charging = message.status
        if message.status:
            self.feed(found[0], Event.HLC_ON)
        else:
            self.feed(found[0], Event.HLC_OFF, "the HLC session ended")

    @handles(TransactionStatusUpdate)
    def transaction_status(self, message: TransactionStatusUpdate) -> None:
        evse_id = message.evse_id
        if evse_id is ABSENT or evse_id not in self.sessions:
            if evse_id is not ABSENT:
                self._unknown_evse(message.NAME, evse_id)
            return
        self.sessions[evse_id].transaction = message
        for observer in self.on_transaction:
            observer(evse_id, message)
        if message.status == "ended":
            self.feed(evse_id, Event.TRANSACTION_ENDED, "the transaction ended")

    @handles(Iso15118StateInfoUpdate)
    def state_info(self, message: Iso15118StateInfoUpdate) -> None:
        found = self._evse(message)
        if found is None:
            return
        evse_id = found[0]
        state = message.session_status
        self.sessions[evse_id].iso15118_state = state
        if state in SESSION_OVER:
            self.feed(evse_id, Event.SESSION_STOP, f"Josev reports {state}")
        else:
            self.feed(evse_id, Event.HLC_ON)

    # -- requests ----------------------------------------------------------------------------

    @handles(CableCheckRequest)
    def cable_check(self, message: CableCheckRequest) -> CableCheckResponse:
        found = self._evse(message)
        if found is None:
            return refuse_cable_check(message)
        evse_id, evse = found
        session = self.sessions[evse_id]
        if session.state in (State.PRECHARGE, State.CHARGING):
            return self._isolation_now(evse_id)
        starting = message.cable_check_action == "start" or session.state is State.AUTHORIZED
        if starting or session.cable_check_started is None:
            if not self.feed(evse_id, Event.CABLE_CHECK_START).accepted:
                return _cable_check_answer(evse_id, "finished", "invalid")
            if evse.imd is None:
                self.feed(evse_id, Event.ISOLATION_FAILED, "no IMD")
                return _cable_check_answer(evse_id, "finished", "no_imd")
            return _cable_check_answer(evse_id, "ongoing")
        started = session.cable_check_started
        verdict = cable_check_verdict(
            started, self._clock(), self._engine.inputs(evse_id).imd, self._isolation(evse_id)
        )
        if not verdict.finished:
            return _cable_check_answer(evse_id, "ongoing")
        isolation = verdict.isolation or "invalid"
        event = Event.ISOLATION_OK if verdict.passed else Event.ISOLATION_FAILED
        self.feed(evse_id, event, f"isolation {isolation}")
        return _cable_check_answer(evse_id, "finished", isolation)

    def _isolation(self, evse_id: str) -> IsolationStatus | None:
        """The isolation status reported to Josev now (None: the EVSE reports none)."""
        dc = self._engine.snapshots.get(evse_id).dc
        reported = dc.isolation_status if dc is not None else None
        return reported.value if reported is not None else None

    def _isolation_now(self, evse_id: str) -> CableCheckResponse:
        """After the check, while energy flows: the isolation the IMD reports now (Josev may
        poll until PowerDelivery stops); one that is no longer valid or warning stops it."""
        isolation = self._isolation(evse_id) or "invalid"
        if isolation not in ("valid", "warning"):
            self.feed(evse_id, Event.ISOLATION_FAILED, f"isolation {isolation}")
        return _cable_check_answer(evse_id, "finished", isolation)

    @handles(CsContactorStatusRequest)
    def contactor_status(self, message: CsContactorStatusRequest) -> CsContactorStatusResponse:
        found = self._evse(message)
        if found is None:
            return refuse_contactor_status(message)
        evse_id = found[0]
        board = self._engine.inputs(evse_id).board
        if board is None or board.contactor_closed is None:
            return CsContactorStatusResponse(
                evse_id=evse_id, status="error", info="no contactor feedback"
            )
        return CsContactorStatusResponse(
            evse_id=evse_id, status="closed" if board.contactor_closed else "opened"
        )

    @handles(PowerElectronicsSetpointRequest)
    def setpoint(
        self, message: PowerElectronicsSetpointRequest
    ) -> PowerElectronicsSetpointResponse:
        found = self._evse(message)
        if found is None:
            return refuse_setpoint(message)
        evse_id, evse = found
        dc = message.dc
        if evse.kind is Kind.AC:
            return self._ac_setpoint(evse_id, evse, message)
        if dc is ABSENT:
            return _setpoint_answer(evse_id, accepted=False)
        session = self.sessions[evse_id]
        request = DcRequest(
            voltage=value_or(dc.voltage, 0.0),
            ev_max_voltage=min(message.ev_limits.maximum_voltage, _rated_max_voltage(session)),
            current=value_or(dc.charge_current, None),
            power=value_or(dc.charge_power, None),
            precharge=message.is_precharge is True,
            discharge_current=value_or(dc.discharge_current, None),
            discharge_power=value_or(dc.discharge_power, None),
            ev_max_discharge_current=_rated_max_discharge(session, "current"),
            ev_max_discharge_power=_rated_max_discharge(session, "power"),
        )
        clamped = self.power.clamp(evse_id, request)
        if isinstance(clamped, Refused):
            self._log_refused(evse_id, clamped)
            return _setpoint_answer(evse_id, accepted=False)
        event = Event.PRECHARGE_SETPOINT if request.precharge else Event.CHARGE_SETPOINT
        if not self.feed(evse_id, event).accepted:
            return _setpoint_answer(evse_id, accepted=False)
        result = self.power.run(evse_id, request)
        if isinstance(result, Refused):
            self._log_refused(evse_id, result)
            self.feed(evse_id, Event.STOP_CHARGING, "the setpoint is not allowed")
            return _setpoint_answer(evse_id, accepted=False)
        self.publish_condition(evse_id)  # the direction the present current is reported in
        return _setpoint_answer(evse_id, accepted=True)

    def _ac_setpoint(
        self, evse_id: str, evse: EvseConfig, message: PowerElectronicsSetpointRequest
    ) -> PowerElectronicsSetpointResponse:
        """An AC EV draws what the PWM allows: a charge setpoint only needs the session to allow
        it. A discharge (ac.discharge_*, the EV's inverter does the work) must also fit the
        reported ac_bpt maxima; the board is then told what it allows."""
        ac = message.ac
        discharge = AcDischargeRequest()
        if ac is not ABSENT:
            discharge = AcDischargeRequest(
                active_power=value_or(ac.discharge_active_power, None),
                current=value_or(ac.discharge_current, None),
                charging=any(
                    value_or(value, 0.0) for value in (ac.charge_active_power, ac.charge_current)
                ),
            )
        allowed = 0.0
        if discharge.asked:
            entry = self._engine.entries.get(evse_id)
            result = ac_discharge_power(entry, discharge, float(evse.nominal_voltage or 0))
            if isinstance(result, Refused):
                self._log_refused(evse_id, result)
                return _setpoint_answer(evse_id, accepted=False)
            allowed = result
        accepted = self.feed(evse_id, Event.CHARGE_SETPOINT).accepted
        if accepted and evse.bpt:
            self._stage.allow_ac_discharge(evse_id, allowed)
        return _setpoint_answer(evse_id, accepted=accepted)

    def drive(self, evse_id: str, request: DcRequest) -> bool:
        """Run the stack at `request` (clamped now and on every keepalive) for EVerest through
        the export, whose EvseManager runs the session; False: refused, and the stack is off."""
        result = self.power.run(evse_id, request)
        if isinstance(result, Refused):
            self._log_refused(evse_id, result)
            self.switch_off(evse_id, "the requested setpoint is not allowed")
            return False
        return True

    def driving(self, evse_id: str) -> bool:
        """A setpoint runs on the EVSE's modules."""
        return self.power.request(evse_id) is not None

    async def keep_alive(self) -> None:
        """Resend every running setpoint, clamped to the limits of now, faster than the modules'
        watchdog; hold every idle EVSE's modules off once per poll period; a session the limits
        no longer allow is switched off."""
        tick = min(
            (m.poll_period_s for evse in self._config.values() for m in evse.module),
            default=KEEPALIVE_S,
        )
        tick = min(tick, KEEPALIVE_S)
        next_keepalive = self._clock() + KEEPALIVE_S
        while True:
            await asyncio.sleep(tick)
            now = self._clock()
            if now >= next_keepalive:
                next_keepalive = now + KEEPALIVE_S
                for evse_id in self.sessions:
                    refused = self.power.keep_alive(evse_id)
                    if refused is not None:
                        self._stop_refused(evse_id, refused)
                    self.publish_condition(evse_id)
            self.hold_off(now)

    def hold_off(self, now: float) -> None:
        """Modules off again where nothing runs; stray output reported to the limits."""
        for evse_id, stray in self.power.hold_off(now).items():
            if stray:
                log.error(
                    "event=stray_output evse=%s modules=%s -- output while commanded off",
                    evse_id,
                    ",".join(sorted(stray)),
                )
            for name in sorted(stray):
                self._push(
                    HardwareFaultUpdate(
                        evse_id=evse_id, component_name=name, fault_name="overcurrent_fault"
                    )
                )
            self.publish_condition(evse_id)

    def _operative(self, evse_id: str) -> bool:
        return self.sessions[evse_id].machine.facts.operative

    def switch_off(self, evse_id: str, why: str) -> None:
        """Energy off now (EVerest's heartbeat lost, a refused drive): the modules off and,
        in a Josev session, the session stopped."""
        if self.power.off(evse_id):
            log.warning("event=modules_off evse=%s why=%s", evse_id, why)
        if self.sessions[evse_id].state in ENERGY_STATES:
            self.feed(evse_id, Event.STOP_CHARGING, why)

    def switch_everything_off(self, why: str) -> None:
        """The safe side: MQTT lost, the bridge stopping, Josev's service down."""
        for evse_id in self.sessions:
            self.switch_off(evse_id, why)
            self._stage.open_contactors(evse_id)

    def _log_refused(self, evse_id: str, refused: Refused) -> None:
        self._refusals.warning(
            ("setpoint_rejected", refused.reason),
            "event=setpoint_rejected evse=%s reason=%s why=%s",
            evse_id,
            refused.reason,
            refused.detail,
        )

    def _stop_refused(self, evse_id: str, refused: Refused) -> None:
        self._log_refused(evse_id, refused)
        self.switch_off(evse_id, "the setpoint is no longer allowed")

    @handles(StopChargingRequest)
    def stop_charging(self, message: StopChargingRequest) -> StopChargingResponse:
        found = self._evse(message)
        if found is None:
            return refuse_stop_charging(message)
        evse_id = found[0]
        self.feed(evse_id, Event.STOP_CHARGING, "stop_charging")
        return StopChargingResponse(evse_id=evse_id, status="accepted")

    @handles(ChangeAvailabilityRequest)
    def change_availability(self, message: ChangeAvailabilityRequest) -> ChangeAvailabilityResponse:
        """The station, one EVSE or one connector (each EVSE has one) in or out of service; out
        of service waits for a running session's end."""
        evse_id = value_or(message.evse_id, None)
        if evse_id is not None and evse_id not in self._config:
            self._unknown_evse(message.NAME, evse_id)
            return refuse_change_availability()
        connector = value_or(message.connector_id, None)
        targets = [evse_id] if evse_id is not None else list(self._config)
        known = {c.id for c in self._config[evse_id].connectors} if evse_id is not None else set()
        if connector is not None and evse_id is not None and connector not in known:
            return ChangeAvailabilityResponse(status="rejected")
        operative = message.operational_status == "operative"
        for target in targets:
            self.feed(target, Event.OPERATIVE if operative else Event.INOPERATIVE, "Josev")
        return ChangeAvailabilityResponse(status="accepted")

    def operator_changed(self, evse_id: str, enabled: bool, reason: str) -> None:
        """The operator topic: taken like Josev's change_availability and, when it changes
        anything, told to Josev (a retained command repeated at each connect does not)."""
        facts = self.sessions[evse_id].machine.facts
        in_service = facts.operative and not facts.inoperative_pending
        if enabled == in_service:
            return
        self.feed(evse_id, Event.OPERATIVE if enabled else Event.INOPERATIVE, f"operator {reason}")
        self._push(
            ChangeAvailabilityUpdate(
                operational_status="operative" if enabled else "inoperative", evse_id=evse_id
            )
        )

    def present_token(self, evse_id: str, token: TokenPresented) -> str | None:
        """A token on csbridge/<evse_id>/token; why it is refused, or None."""
        try:
            parsed = Token.parse(token.id_token, token.token_type)
        except TokenError as error:
            return str(error)
        self.authorization.present(evse_id, parsed)
        return None

    def announce_all(self) -> None:
        """Every EVSE's connector and charging status again (after a connect)."""
        for evse_id in self.sessions:
            self.announce(evse_id, again=True)

    @handles(CsConnectorRequest)
    async def cs_connector(self, message: CsConnectorRequest) -> CsConnectorResponse:
        """Lock, unlock or say the lock's state, from the board's feedback."""
        found = self._evse(message)
        if found is None:
            return refuse_cs_connector(message)
        evse_id, evse = found

        def answer(status: LockStatus, info: str | None = None) -> CsConnectorResponse:
            return CsConnectorResponse(
                evse_id=evse_id,
                connector_id=message.connector_id,
                status=status,
                info=info if info is not None else ABSENT,
            )

        if message.connector_id not in {connector.id for connector in evse.connectors}:
            return answer("unknown", f"no connector {message.connector_id:g} on {evse_id}")
        board = self._engine.inputs(evse_id).board
        if message.action == "status":
            return answer(lock_status(board))
        if message.action == "unlock":
            why = self._unlock_refused(evse_id)
            if why is not None:
                return answer("error", why)
            if not self.feed(evse_id, Event.UNLOCK, "cs_connector unlock").accepted:
                return answer("error", f"a session runs ({self.sessions[evse_id].state.value})")
        wanted = LockState.LOCKED if message.action == "lock" else LockState.UNLOCKED
        if not self._command_lock(evse_id, wanted):
            return answer("error", "no board to pass the lock command to")
        status = await confirmed(lambda: self._engine.inputs(evse_id).board, wanted)
        if status == "error":
            self._lock_failed(evse_id, wanted)
            return answer("error", f"the lock did not reach {wanted.value} within 1 s")
        return answer(status)

    def _unlock_refused(self, evse_id: str) -> str | None:
        """Why the connector must stay locked now, or None."""
        if self._contactors_closed(evse_id):
            return "the contactors are closed"
        if self.sessions[evse_id].state in (*ENERGY_STATES, State.STOPPING):
            return f"energy may flow ({self.sessions[evse_id].state.value})"
        voltage = self.power.measured_voltage(evse_id)
        if voltage >= SAFE_VOLTAGE_V:
            return f"the output is at {voltage:.0f} V (at least {SAFE_VOLTAGE_V:.0f} V)"
        return None

    def _command_lock(self, evse_id: str, wanted: LockState) -> bool:
        if wanted is LockState.LOCKED:
            return self._stage.lock(evse_id)
        return self._stage.unlock(evse_id)

    def _move_lock(self, evse_id: str, wanted: LockState) -> None:
        """A lock or unlock the machine commands, watched until the board confirms it."""
        if not self._command_lock(evse_id, wanted):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a script driving the session): nothing to watch with
            return

        async def watch() -> None:
            read = lambda: self._engine.inputs(evse_id).board  # noqa: E731
            if await confirmed(read, wanted) == "error":
                self._lock_failed(evse_id, wanted)

        task = loop.create_task(watch())
        self._watching.add(task)
        task.add_done_callback(self._watching.discard)

    def _lock_failed(self, evse_id: str, wanted: LockState) -> None:
        self._refusals.error(
            ("lock_failed", wanted),
            "event=lock_failed evse=%s wanted=%s -- hardware fault",
            evse_id,
            wanted,
        )
        self._push(
            HardwareFaultUpdate(
                evse_id=evse_id, component_name="connector_lock", fault_name="other"
            )
        )
        if wanted is LockState.LOCKED and self.sessions[evse_id].state in ENERGY_STATES:
            self.feed(evse_id, Event.STOP_CHARGING, "the connector lock is not confirmed")

    @handles(CpPwmRequest)
    def cp_pwm(self, message: CpPwmRequest) -> CpPwmResponse:
        found = self._evse(message)
        if found is None:
            return refuse_cp_pwm(message)
        evse_id = found[0]
        pwm_on = not (message.error_state or message.fault_state)
        duty = duty_percent(float(value_or(message.current, 0.0)), message.hlc)
        if not self._stage.drive_pwm(evse_id, on=pwm_on, duty_percent=duty):
            return CpPwmResponse(
                evse_id=evse_id, status="error", info="no board to pass the PWM to"
            )
        self.sessions[evse_id].pwm_on = pwm_on
        self._observe(evse_id, self._engine.inputs(evse_id), self._engine.composition(evse_id))
        return CpPwmResponse(evse_id=evse_id, status="valid")

    @handles(MeterValuesRequest)
    def meter_values(self, message: MeterValuesRequest) -> MeterValuesResponse | None:
        """None (no answer) for an unknown EVSE: the response has no status to refuse with, and
        a reading of a meter the station does not have would be made up.

        With a meter, everything comes from it: energy from its registers, per-phase values
        where it measures them (0 where it does not). Its instantaneous values count while its
        sample is fresh; past its deadline the energies are the last registers it gave (a total
        does not go stale, it only stops growing) and the rest is 0. Without a meter, present
        voltage times current is integrated between requests (counted: not for billing)."""
        evse_id = value_or(message.evse_id, None) or next(iter(self._config))
        if evse_id not in self._config:
            self._unknown_evse(message.NAME, evse_id)
            return None
        config = self._config[evse_id]
        if config.meter is not None:
            return self._metered_values(evse_id, config)
        self._engine.counters.add(Counted.METER_VALUES_INTEGRATED, evse_id)
        # Measured, never the deadbanded values of the updates: a meter reads what flows.
        voltage = self.power.measured_voltage(evse_id)
        current = self.power.measured_current(evse_id)
        session = self.sessions[evse_id]
        now = self._clock()
        if session.metered_at is not None:
            session.energy_wh += max(0.0, voltage * current) * (now - session.metered_at) / 3600
        session.metered_at = now
        zero = PerPhase(l1=0.0, l2=0.0, l3=0.0)
        return MeterValuesResponse(
            evse_id=evse_id,
            timestamp=josev_date_time(datetime.now(UTC)),
            voltage=zero,
            current=zero,
            power_factor=1.0,
            # nothing measures a frequency here; DC has none (0 Hz, as a DC meter's answer)
            frequency=0.0 if config.kind is Kind.DC else 50.0,
            total_active_energy_imported=round(session.energy_wh, 3),
            total_reactive_energy_imported=0.0,
            dc_voltage=round(voltage, 3),
            dc_current=round(current, 3),
        )

    def _metered_values(self, evse_id: str, config: EvseConfig) -> MeterValuesResponse:
        inputs = self._engine.inputs(evse_id)
        sample = inputs.meter
        now_sample = fresh_meter(config, inputs, self._clock())
        dc = config.kind is Kind.DC
        power_factor = now_sample.power_factor if now_sample is not None else None
        frequency = now_sample.frequency_hz if now_sample is not None else None
        dc_voltage = now_sample.dc_voltage_v if now_sample is not None else None
        dc_current = now_sample.dc_current_a if now_sample is not None else None
        energy = sample.energy_import_wh if sample is not None else None
        exported = sample.energy_export_wh if sample is not None else None
        signed = self.transaction_signed.get(evse_id)
        return MeterValuesResponse(
            evse_id=evse_id,
            timestamp=josev_date_time(datetime.now(UTC)),
            voltage=_per_phase(now_sample.voltage_v if now_sample is not None else None),
            current=_per_phase(now_sample.current_a if now_sample is not None else None),
            # DC carries no reactive power: its factor is 1 by definition, its frequency 0.
            power_factor=round(min(1.0, abs(power_factor)), 3)
            if power_factor is not None
            else float(dc),
            frequency=round(frequency, 3) if frequency is not None else 0.0,
            total_active_energy_imported=round(energy or 0.0, 3),
            total_reactive_energy_imported=0.0,
            # a register the meter keeps goes out like the import one; none kept: left out
            total_active_energy_exported=round(exported, 3) if exported is not None else ABSENT,
            dc_voltage=round(max(0.0, dc_voltage), 3) if dc_voltage is not None else ABSENT,
            dc_current=round(dc_current, 3) if dc_current is not None else ABSENT,
            signed_meter_values=[signed] if signed is not None else ABSENT,
        )

    # -- what the station sees and tells Josev by itself -----------------------------------

    def _observe(self, evse_id: str, inputs: EvseInputs, composition: Composition | None) -> None:
        """After every evaluation. What it does may evaluate the EVSE again (a command the
        simulated hardware reports at once): that evaluation is not observed inside this one,
        whose readings it would make stale, but by another pass once this one is done."""
        if evse_id in self._observing:
            self._observe_again.add(evse_id)
            return
        self._observing.add(evse_id)
        try:
            for _ in range(MAX_OBSERVE_PASSES):
                self._observe_again.discard(evse_id)
                self._observe_now(evse_id)
                if evse_id not in self._observe_again:
                    return
            log.error("event=observe_unsettled evse=%s passes=%d", evse_id, MAX_OBSERVE_PASSES)
        finally:
            self._observing.discard(evse_id)

    def _observe_now(self, evse_id: str) -> None:
        session = self.sessions[evse_id]
        inputs = self._engine.inputs(evse_id)
        composition = self._engine.composition(evse_id)
        board = inputs.board
        if board is not None and board.lock is not None:
            session.lock = lock_status(board)
        if board is not None and board.cp_state is not None:
            if board.cp_state is CpState.A:
                session.pwm_on = False  # unplugged: the board stops the PWM until asked again
            self._pilot(evse_id, session, board.cp_state)
        if board is not None and board.contactor_closed is not None:
            contactor: ContactorStatus = "closed" if board.contactor_closed else "opened"
            if contactor != session.contactor:
                session.contactor = contactor
                self._push(CsContactorStatusUpdate(evse_id=evse_id, status=contactor))
        faults = _faults(inputs, composition)
        raised = sorted(faults - session.faults)
        session.faults = faults
        for component, fault in raised:
            self._push(
                HardwareFaultUpdate(evse_id=evse_id, component_name=component, fault_name=fault)
            )
        if raised and session.state in ENERGY_STATES:
            # Any new fault ends the energy of a running session, even one the stack outlives.
            component, fault = raised[0]
            self.feed(evse_id, Event.STOP_CHARGING, f"{component}: {fault}")
        self._limits(evse_id, session)
        refused = self.power.follow_limits(evse_id)
        if refused is not None:
            self._stop_refused(evse_id, refused)
        self.power.off_if_delivering(evse_id, self._clock())
        self._progress(evse_id)
        self.publish_condition(evse_id)

    def _pilot(self, evse_id: str, session: EvseSession, pilot: CpState) -> None:
        state = cp_status(pilot, session.pwm_on)
        if state != session.cp_status:
            session.cp_status = state
            connector = self._config[evse_id].connectors[0].id
            self._push(
                CpStatusUpdate(
                    evse_id=evse_id,
                    connector_id=connector,
                    state=cast(CpPilotState, state),  # a letter of CpState, 1 or 2 added
                )
            )
        event = _PILOT_EVENT.get(pilot)
        if event is not None and event is not session.pilot_event:
            session.pilot_event = event
            self.feed(evse_id, event, f"pilot {pilot.value}")

    def _limits(self, evse_id: str, session: EvseSession) -> None:
        """The reported status as the machine's facts: a fault, or limits ready or not."""
        status = self._engine.snapshots.get(evse_id).status_code
        troubled = status in (StatusCode.EVSE_EMERGENCY_SHUTDOWN, StatusCode.EVSE_MALFUNCTION)
        ready = status in (StatusCode.EVSE_READY, StatusCode.EVSE_ISOLATION_MONITORING_ACTIVE)
        if troubled != session.troubled:
            session.troubled = troubled
            self.feed(evse_id, Event.FAULT if troubled else Event.FAULT_CLEARED, status.value)
        if ready != session.limits_ready:
            session.limits_ready = ready
            event = Event.LIMITS_READY if ready else Event.LIMITS_NOT_READY
            self.feed(evse_id, event, f"status {status.value}")

    def _push(self, payload: Payload) -> None:
        self.pushed.put_nowait(Message(payload))


def _cable_check_answer(
    evse_id: str,
    status: Literal["ongoing", "finished"],
    isolation: IsolationStatus | None = None,
) -> CableCheckResponse:
    return CableCheckResponse(
        evse_id=evse_id,
        cable_check_status=status,
        isolation_level=isolation if isolation is not None else ABSENT,
    )


def _setpoint_answer(evse_id: str, *, accepted: bool) -> PowerElectronicsSetpointResponse:
    return PowerElectronicsSetpointResponse(
        evse_id=evse_id, status="accepted" if accepted else "rejected"
    )


def _faults(
    inputs: EvseInputs, composition: Composition | None
) -> frozenset[tuple[str, FaultName]]:
    """(component, fault_name) of every fault the sources report now."""
    faults: set[tuple[str, FaultName]] = set()
    for name, module in inputs.modules.items():
        if module.fault or module.over_temperature:
            faults.add((name, "other"))
        if module.input_lost:
            faults.add((name, "power_loss"))
    if inputs.imd is not None and inputs.imd.device_fault:
        faults.add(("imd", "other"))
    if inputs.board is not None and inputs.board.emergency_stop:
        faults.add(("board", "emergency_stop"))
    dc = composition.snapshot.dc if composition is not None else None
    if dc is not None and dc.isolation_status is not None and dc.isolation_status.value == "fault":
        faults.add(("imd", "ground_fault"))
    return frozenset(faults)


def _rated_max_discharge(session: EvseSession, quantity: str) -> float | None:
    """The EV's own discharge maximum of one quantity ("current" or "power") from its rated
    limits (ev_rated_limits), the lowest positive finite one it told; None: none. As with the
    voltage, a number that cannot be used is ignored, and the EVSE's limits still clamp."""
    limits = session.ev_rated_limits
    rated = value_or(limits.dc_rated_limits, {}) if limits is not None else {}
    values = [
        float(value)
        for key, value in rated.items()
        if "max" in key
        and "discharge" in key
        and quantity in key
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and 0 < value < float("inf")
    ]
    return min(values, default=None)


def _rated_max_voltage(session: EvseSession) -> float:
    """The EV's own maximum voltage from its rated limits (ev_rated_limits), if it told one a
    clamp can use. Josev's rules put no minimum on these numbers: one that is not a positive
    finite voltage (negative, zero, a boolean) is ignored here, so the setpoint's own
    ev_limits.maximum_voltage and the EVSE's limits still clamp, and nothing bypasses them."""
    limits = session.ev_rated_limits
    rated = value_or(limits.dc_rated_limits, {}) if limits is not None else {}
    values = [
        float(value)
        for key, value in rated.items()
        if "max" in key
        and "voltage" in key
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and 0 < value < float("inf")
    ]
    return min(values, default=float("inf"))


def _per_phase(values: tuple[float | None, float | None, float | None] | None) -> PerPhase:
    """A meter's per-phase magnitudes; 0 for a phase it does not measure."""
    l1, l2, l3 = values or (None, None, None)
    return PerPhase(
        l1=round(abs(l1 or 0.0), 3), l2=round(abs(l2 or 0.0), 3), l3=round(abs(l3 or 0.0), 3)
    )
