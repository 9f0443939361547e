"""The health and latest value of every source of one EVSE, for the retained limits topic and
`csbridge status`: what a commissioning engineer needs to see why a limit is what it is."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from csbridge.config import BoardConfig, EvseConfig, ImdConfig
from csbridge.engine.latest import Entry
from csbridge.engine.rounding import RoundedSnapshot
from csbridge.limits import Composition, EvseInputs, LimitSource, external_in_force
from csbridge.sources import BoardReading, ExternalLimit, ImdReading

AGE_DECIMALS = 2


@dataclass(frozen=True, slots=True)
class LimitsReport:
    """One EVSE's limits report (csbridge/<evse_id>/limits)."""

    limits: RoundedSnapshot
    """What Josev was told."""
    binding: Mapping[str, LimitSource]
    """The source that binds each reported limit, by Josev's name for the limit."""
    sources: dict[str, Any]
    """The health and latest value of every source, JSON-ready (`source_report`)."""
    session: Mapping[str, Any] | None = None
    """The EVSE's session as the session tells it (its state, authorization, last stop)."""
    josev: Mapping[str, Any] | None = None
    """What Josev says of itself (its services, OCPP boot, websocket, clock), station-wide."""
    pool: Mapping[str, Any] | None = None
    """A pooled EVSE's allocation: which module serves it and why (session/pool.py)."""


def report_document(report: LimitsReport, limits: Entry) -> Entry:
    """The report as its topic carries it; `limits` is the entry of `report.limits`."""
    document: Entry = {
        "limits": limits,
        "binding": {key: source.value for key, source in report.binding.items()},
        "sources": report.sources,
    }
    if report.session is not None:
        document["session"] = dict(report.session)
    if report.josev is not None:
        document["josev"] = dict(report.josev)
    if report.pool is not None:
        document["pool"] = dict(report.pool)
    return document


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    """Leave out what is unknown: nothing on our topics is ever null."""
    return {key: value for key, value in values.items() if value is not None}


def _age(at: float, now: float) -> float:
    return round(max(0.0, now - at), AGE_DECIMALS)


def _freshness(reading: ImdReading | BoardReading | None, now: float, deadline_s: float) -> str:
    if reading is None:
        return "never_seen"
    return "fresh" if now - reading.at <= deadline_s else "stale"


def source_report(
    config: EvseConfig, inputs: EvseInputs, composition: Composition | None, now: float
) -> dict[str, Any]:
    report: dict[str, Any] = {}
    if config.module:
        report["modules"] = _modules(config, inputs, composition, now)
    if config.imd is not None:
        report["imd"] = _imd(config.imd, inputs.imd, composition, now)
    if config.board is not None:
        report["board"] = _board(config.board, inputs.board, now)
    report["external"] = _external(config, inputs.external, now)
    operator = inputs.operator
    report["operator"] = _compact(
        {
            "enabled": operator is None or operator.enabled,
            "reason": operator.reason if operator is not None and operator.reason else None,
        }
    )
    return report


def _modules(
    config: EvseConfig, inputs: EvseInputs, composition: Composition | None, now: float
) -> dict[str, Any]:
    stack = composition.stack if composition is not None else None
    modules: dict[str, Any] = {}
    for module in config.module:
        reading = inputs.modules.get(module.name)
        state = "healthy"
        if stack is not None and module.name in stack.absent:
            state = stack.absent[module.name].value
        entry: dict[str, Any] = {"state": state, "address": module.address}
        if reading is not None:
            export = reading.export
            entry |= _compact(
                {
                    "age_s": _age(reading.at, now),
                    "output_voltage": reading.output_voltage,
                    "output_current": reading.output_current,
                    "max_current": export.max_current if export else None,
                    "max_power": export.max_power if export else None,
                    "temperature_c": reading.temperature_c,
                }
            )
            entry |= {"fault": reading.fault, "derating": reading.derating}
        modules[module.name] = entry
    return modules


def _imd(
    config: ImdConfig, imd: ImdReading | None, composition: Composition | None, now: float
) -> dict[str, Any]:
    state = _freshness(imd, now, config.deadline_s)
    entry: dict[str, Any] = {"state": state, "rule": config.rule}
    if imd is not None:
        if state == "fresh" and imd.device_fault:
            entry["state"] = "device_fault"
        elif state == "fresh" and imd.self_test_running:
            entry["state"] = "self_test"
        entry |= _compact({"age_s": _age(imd.at, now), "resistance_ohm": imd.resistance_ohm})
    dc = composition.snapshot.dc if composition is not None else None
    if dc is not None and dc.isolation_status is not None:
        entry["isolation"] = dc.isolation_status.value
    return entry


def _board(config: BoardConfig, board: BoardReading | None, now: float) -> dict[str, Any]:
    state = _freshness(board, now, config.deadline_s)
    if board is not None and board.fault and state == "fresh":
        state = "fault"
    entry: dict[str, Any] = {"state": state}
    if board is not None:
        entry |= _compact(
            {
                "age_s": _age(board.at, now),
                "evse_temperature_c": board.evse_temperature_c,
                "plug_temperature_c": board.plug_temperature_c,
                "cp_state": board.cp_state.value if board.cp_state else None,
                "contactor_closed": board.contactor_closed,
                "max_current_a": board.max_current_a,
                "max_discharge_current_a": board.max_discharge_current_a,
                "phases": board.phases,
            }
        )
        entry |= {"emergency_stop": board.emergency_stop, "rcd_error": board.rcd_error}
    return entry


def _external(config: EvseConfig, external: ExternalLimit | None, now: float) -> dict[str, Any]:
    in_force = external_in_force(config.external, external, now)
    if in_force.limit is None:
        return {"active": False} | _compact(
            {"max_power": in_force.max_power, "max_current": in_force.max_current}
        )
    # What the energy manager sent, as it sent it: a quantity it left out is not its to show.
    remaining = in_force.limit.until - now
    return {"active": True} | _compact(
        {
            "max_power": in_force.limit.max_power,
            "max_current": in_force.limit.max_current,
            "expires_in_s": round(remaining, AGE_DECIMALS) if math.isfinite(remaining) else None,
        }
    )
