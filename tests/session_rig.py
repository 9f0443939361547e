"""A real session (SessionHandlers on a real limits engine) without a loop, a broker or devices:
readings go straight into the engine and Josev's messages straight into the handlers, so a unit
test can walk an EVSE into a session and end it by any of the paths the station knows. The
power stage has no drivers: nothing is commanded anywhere, the session's bookkeeping is real.

Used by the status and metrics tests, which show what the session records.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from csbridge.config import Config, load_config
from csbridge.engine.engine import LimitsEngine
from csbridge.messages import (
    AuthorizationUpdate,
    CableCheckRequest,
    HlcChargingUpdate,
    Iso15118StateInfoUpdate,
    SlacStatusUpdate,
    StopChargingRequest,
    TransactionStatusUpdate,
)
from csbridge.power import EvsePower, NoBoardDriver, NoImdDriver, PowerStage
from csbridge.session import SessionHandlers
from csbridge.session.machine import ENERGY_STATES, State
from csbridge.sources.readings import (
    BoardReading,
    Capability,
    CpState,
    ImdReading,
    LockState,
    ModuleReading,
    OperatorCommand,
)
from tests.support import FIXTURES

DC = "DE*CSB*E0001"
REPORT_EVERY_S = 1e-6
START_S = 1000.0
TICK_S = 1e-5
"""The engine's clock moves on by this at every reading of it: more than REPORT_EVERY_S, and
far too little for any reading to go stale within a test."""
MODULE_EXPORT = Capability(max_voltage=1000, min_voltage=150, max_current=80, max_power=40000)


@dataclass(slots=True)
class SessionRig:
    """The tests' station (reading-station.toml): its DC EVSE's sources fed by hand."""

    config: Config
    engine: LimitsEngine
    session: SessionHandlers
    cp: CpState = CpState.A
    lock: LockState | None = None

    @classmethod
    def ready(cls) -> SessionRig:
        """Every source of the DC EVSE heard from, nothing plugged in: evse_ready."""
        loaded = load_config(FIXTURES / "configs" / "reading-station.toml")
        # Every evaluation rebuilds the limits report, so that it shows the session of now: a
        # station rebuilds it on its reporting beat (1 s) when no limit changed.
        reporting = loaded.reporting.model_copy(update={"limits_report_every_s": REPORT_EVERY_S})
        config = loaded.model_copy(update={"reporting": reporting})
        ticks = itertools.count()
        engine = LimitsEngine(config, clock=lambda: START_S + next(ticks) * TICK_S)
        stage = PowerStage(
            {evse.evse_id: EvsePower({}, NoBoardDriver(), NoImdDriver()) for evse in config.evse}
        )
        rig = cls(config, engine, SessionHandlers(config, engine, stage))
        for module in config.evse[0].module:
            rig.module(module.name)
        engine.ingest(DC, ImdReading(at=engine.clock(), resistance_ohm=5_000_000.0))
        rig.board()
        return rig

    def module(self, name: str, *, fault: bool = False) -> None:
        reading = ModuleReading(
            name=name,
            address=int(name[1:]),
            at=self.engine.clock(),
            output_voltage=0.0,
            output_current=0.0,
            export=MODULE_EXPORT,
            temperature_c=40.0,
            fault=fault,
        )
        self.engine.ingest(DC, reading)

    def board(self, *, emergency_stop: bool = False) -> None:
        reading = BoardReading(
            at=self.engine.clock(),
            evse_temperature_c=30.0,
            plug_temperature_c=30.0,
            cp_state=self.cp,
            contactor_closed=False,
            emergency_stop=emergency_stop,
            lock=self.lock,
        )
        self.engine.ingest(DC, reading)

    def pilot(self, cp: CpState) -> None:
        self.cp = cp
        self.board()

    def state(self) -> State:
        """The DC EVSE's state now (a call, so that no earlier check narrows it)."""
        return self.session.sessions[DC].state

    def into_cable_check(self) -> None:
        """Plug in (free vend authorizes), HLC up, the EV at pilot C, the cable check started:
        energy may flow."""
        self.pilot(CpState.B)
        self.session.hlc_charging(HlcChargingUpdate(evse_id=DC, status=True))
        self.lock = LockState.LOCKED
        self.pilot(CpState.C)
        assert self.state() is State.AUTHORIZED, self.state()
        self.session.cable_check(CableCheckRequest(evse_id=DC, cable_check_action="start"))
        assert self.state() is State.CABLE_CHECK, self.state()

    def unplug(self) -> None:
        self.lock = LockState.UNLOCKED
        self.pilot(CpState.A)
        assert self.state() not in ENERGY_STATES


STOPS: dict[str, Callable[[SessionRig], object]] = {
    "stop_charging": lambda rig: rig.session.stop_charging(StopChargingRequest(evse_id=DC)),
    "unplugged": lambda rig: rig.pilot(CpState.A),
    "paused": lambda rig: rig.pilot(CpState.B),
    "transaction_ended": lambda rig: rig.session.transaction_status(
        TransactionStatusUpdate(transaction_id="t-1", status="ended", evse_id=DC)
    ),
    "session_stop": lambda rig: rig.session.state_info(
        Iso15118StateInfoUpdate(evse_id=DC, session_status="SessionStop")
    ),
    "slac_failed": lambda rig: rig.session.slac_status(
        SlacStatusUpdate(evse_id=DC, run_id="r-1", status="failed")
    ),
    "deauthorized": lambda rig: rig.session.authorization.authorization_update(
        AuthorizationUpdate(
            evse_id=DC,
            token_type="central",  # noqa: S106 - a token type, no secret
            status="deauthorized",
        )
    ),
    "module_fault": lambda rig: rig.module("m1", fault=True),
    "emergency_stop": lambda rig: rig.board(emergency_stop=True),
    "operator_disable": lambda rig: rig.engine.ingest(
        DC, OperatorCommand(at=rig.engine.clock(), enabled=False, reason="maintenance")
    ),
    "mqtt_lost": lambda rig: rig.session.switch_everything_off("MQTT lost"),
}
"""Every way this rig ends a running session, each through the station's own handlers."""
