"""The `session` block of the limits report is valid by its schema whatever the session went
through: a block that broke it would keep the whole report from being published."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from csbridge.engine import LimitsEngine
from csbridge.messages import TokenType
from csbridge.power import EvsePower, NoBoardDriver, NoImdDriver, PowerStage
from csbridge.session import SessionHandlers
from csbridge.session.machine import Event, Machine, State
from tests.support import examples, schema_oracle, station_config

DC = "DE*CSB*E0001"
SESSION_SCHEMA = schema_oracle()["EvseLimitsReport"].evolve(
    schema={"$ref": "https://schemas.csbridge.invalid/EvseLimitsReport.json#/$defs/session"}
)


def _session() -> SessionHandlers:
    config = station_config("mqtt://127.0.0.1:1", "report")
    stage = PowerStage(
        {evse.evse_id: EvsePower({}, NoBoardDriver(), NoImdDriver()) for evse in config.evse}
    )
    return SessionHandlers(config, LimitsEngine(config), stage)


@settings(max_examples=examples(500), deadline=None)
@given(
    state=st.sampled_from(list(State)),
    status=st.sampled_from(["none", "pending", "accepted", "rejected", "deauthorized"]),
    token_type=st.none() | st.sampled_from(typing.get_args(TokenType)),
    id_token=st.none() | st.text(max_size=80),
    reason=st.none() | st.text(max_size=400),
    lock=st.none() | st.sampled_from(["locked", "unlocked", "error", "unknown"]),
)
def test_the_session_block_is_valid_whatever_it_holds(
    state: State,
    status: str,
    token_type: str | None,
    id_token: str | None,
    reason: str | None,
    lock: typing.Any,
) -> None:
    session = _session()
    record = session.authorization.by_evse[DC]
    record.status, record.token_type, record.id_token = status, token_type, id_token
    evse = session.sessions[DC]
    evse.machine = Machine(state, evse.machine.facts)
    evse.lock = lock
    if reason is not None:
        evse.last_stop = (reason, datetime.now(UTC))
    block = session.report_block(DC)
    errors = [error.message for error in SESSION_SCHEMA.iter_errors(block)]
    assert errors == [], block
    assert block["state"] == state.value


def test_the_report_carries_the_block_and_follows_the_state() -> None:
    session = _session()
    engine = session._engine  # noqa: SLF001 - the engine the station would publish from
    assert engine.reports.get(DC)["session"]["state"] == "available"
    session.feed(DC, Event.CP_B, "plugged in")
    report = engine.reports.get(DC)["session"]
    assert report["state"] == "authorized"  # free vend
    assert report["authorization"] == {"status": "accepted", "token_type": "no_authorization"}
    assert report["connector_status"] == "occupied"
