"""meter_values pushed during a transaction (session/meter_push.py), fed by the EVSEs'
configured meters: the engine's freshest meter sample, and each REST meter's client as the
signer of its EVSE's transactions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from csbridge.config import Config
from csbridge.engine import LimitsEngine
from csbridge.limits import fresh_meter
from csbridge.session import MeterPush, SessionHandlers, SigningMeter


@dataclass(frozen=True, slots=True)
class PushReading:
    """What a push reads of a meter sample: its registers and DC values."""

    energy_import_wh: float
    energy_export_wh: float
    dc_voltage: float | None
    dc_current: float | None


def fresh_reading(config: Config, engine: LimitsEngine) -> Callable[[str], PushReading | None]:
    """The EVSE's meter sample while within its meter's deadline, with both energy registers;
    else None (a push then says it has no reading, never an invented one)."""
    metered = {e.evse_id: e for e in config.evse if e.meter is not None}

    def reading(evse_id: str) -> PushReading | None:
        evse = metered.get(evse_id)
        if evse is None:
            return None
        sample = fresh_meter(evse, engine.inputs(evse_id), engine.clock())
        if sample is None or sample.energy_import_wh is None or sample.energy_export_wh is None:
            return None
        return PushReading(
            sample.energy_import_wh,
            sample.energy_export_wh,
            sample.dc_voltage_v,
            sample.dc_current_a,
        )

    return reading


def meter_push(
    config: Config,
    engine: LimitsEngine,
    session: SessionHandlers,
    signers: Mapping[str, SigningMeter],
) -> MeterPush | None:
    """The push for every metered EVSE, told of each transaction; None without a meter."""
    intervals = {e.evse_id: e.meter.update_interval_s for e in config.evse if e.meter is not None}
    if not intervals:
        return None
    push = MeterPush(
        session.pushed.put_nowait,
        fresh_reading(config, engine),
        signers=signers,
        intervals=intervals,
        counters=engine.counters,
        clock=engine.clock,
        on_public_key=session.set_meter_public_key,
        on_signed=session.set_transaction_signed,
    )
    session.on_transaction.append(push.on_transaction)
    return push
