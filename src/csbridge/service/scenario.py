"""Scripted scenarios on the simulated station: what a commissioning engineer sees on a real
charger, replayed (a module drops out, a plug heats up, the site caps an EVSE, the IMD tests)."""

from __future__ import annotations

from csbridge.config import Config, Kind
from csbridge.engine import LimitsEngine
from csbridge.service.steps import Step
from csbridge.sources import ExternalLimit
from csbridge.sources.simulated import SimulatedDevices


def demo_scenario(config: Config, devices: SimulatedDevices, engine: LimitsEngine) -> list[Step]:
    """The demo's loop, built from whatever the configuration simulates."""
    steps: list[Step] = []
    dc = next((e for e in config.evse if e.kind is Kind.DC and len(e.module) >= 2), None)
    if dc is not None and (dc.evse_id, dc.module[1].name) in devices.modules:
        module = devices.modules[(dc.evse_id, dc.module[1].name)]
        deadline = dc.module[1].freshness_deadline_s

        def silence() -> None:
            module.silent = True

        def restore() -> None:
            module.silent = False
            devices.emit(module)

        steps += [
            Step(3.0, f"{dc.evse_id}: module {module.config.name} falls silent", silence),
            Step(deadline + 3.0, f"{dc.evse_id}: module {module.config.name} talks again", restore),
        ]
    board = devices.boards.get(dc.evse_id) if dc is not None else None
    if board is not None:
        plug = board

        def heat() -> None:
            plug.plug_temperature_c = 80.0
            devices.emit(plug)

        def cool() -> None:
            plug.plug_temperature_c = 35.0
            devices.emit(plug)

        steps += [
            Step(4.0, f"{plug.evse_id}: plug heats up to 80 degC", heat),
            Step(4.0, f"{plug.evse_id}: plug cooled down to 35 degC", cool),
        ]
    ac = next((e for e in config.evse if e.kind is Kind.AC), None)
    if ac is not None:
        evse_id = ac.evse_id

        def cap() -> None:
            now = engine.clock()
            engine.ingest(evse_id, ExternalLimit(at=now, until=now + 5.0, max_power=11_000.0))

        steps.append(Step(3.0, f"{evse_id}: site energy manager caps it at 11 kW for 5 s", cap))
    imd = devices.imds.get(dc.evse_id) if dc is not None else None
    if imd is not None:
        tester = imd

        def self_test() -> None:
            tester.start_self_test(engine.clock())
            devices.emit(tester)

        steps.append(Step(7.0, f"{tester.evse_id}: IMD self-test", self_test))
    return steps
