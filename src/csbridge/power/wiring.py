"""The one place a power path's transport is chosen: for each module, board and IMD of the
configuration, the driver that reaches it, once, when the station is wired."""

from __future__ import annotations

from typing import TYPE_CHECKING

from csbridge.config import Config, EvseConfig, ModuleConfig
from csbridge.power.can import CanTransport
from csbridge.power.drivers import (
    BoardDriver,
    ImdDriver,
    ModuleDriver,
    NoBoardDriver,
    NoImdDriver,
    NoModuleDriver,
)
from csbridge.power.everest import EverestApiImd, EverestApiModule
from csbridge.power.pool import PoolModules
from csbridge.power.stage import EvsePower, PowerStage
from csbridge.sources.can import CanBuses, DeviceRouter
from csbridge.sources.everest import EverestSources

if TYPE_CHECKING:
    from csbridge.sources.simulated import SimulatedDevices


def wire_power(
    config: Config,
    router: DeviceRouter,
    buses: CanBuses,
    devices: SimulatedDevices | None,
    everest: EverestSources | None = None,
) -> PowerStage:
    """Every EVSE's drivers; `devices` None: the configuration simulates nothing (and the
    simulators are never imported)."""
    wiring = _Wiring(CanTransport(router, buses), devices, everest)
    pooled = {evse_id: pool for pool in config.pool for evse_id in pool.evse_ids}
    # One driver per pool module, shared: each pooled EVSE sees those connected to it now.
    pool_drivers = {
        pool.name: {m.name: wiring.module(pool.evse_ids[0], m) for m in pool.module}
        for pool in config.pool
    }
    evses = {}
    for evse in config.evse:
        pool = pooled.get(evse.evse_id)
        if pool is None:
            evses[evse.evse_id] = wiring.evse(evse)
        else:
            evses[evse.evse_id] = EvsePower(
                PoolModules(pool_drivers[pool.name]), wiring.board(evse), wiring.imd(evse)
            )
    return PowerStage(evses)


class _Wiring:
    def __init__(
        self, can: CanTransport, devices: SimulatedDevices | None, everest: EverestSources | None
    ) -> None:
        self._can = can
        self._devices = devices
        self._everest = everest

    def evse(self, evse: EvseConfig) -> EvsePower:
        modules = {module.name: self.module(evse.evse_id, module) for module in evse.module}
        return EvsePower(modules, self.board(evse), self.imd(evse))

    def module(self, evse_id: str, module: ModuleConfig) -> ModuleDriver:
        if module.everest is not None and self._everest is not None:
            return EverestApiModule(self._everest, evse_id, module.name)
        if module.can is not None:
            # A simulated module on CAN obeys the frames, as the real one does.
            return self._can.module(module)
        if self._devices is not None:
            from csbridge.power.simulated import simulated_module_driver  # noqa: PLC0415

            driver = simulated_module_driver(self._devices, evse_id, module.name)
            if driver is not None:
                return driver
        return NoModuleDriver()

    def board(self, evse: EvseConfig) -> BoardDriver:
        on_can = self._can.board(evse.board) if evse.board is not None else None
        if on_can is not None:
            return on_can
        if self._devices is not None and evse.evse_id in self._devices.boards:
            from csbridge.power.simulated import SimulatedBoardDriver  # noqa: PLC0415

            return SimulatedBoardDriver(self._devices, self._devices.boards[evse.evse_id])
        return NoBoardDriver()

    def imd(self, evse: EvseConfig) -> ImdDriver:
        imd = evse.imd
        # A simulated IMD is told directly, even one on a CAN bus: the wire simulator does not
        # read IMD_Request.
        if self._devices is not None and evse.evse_id in self._devices.imds:
            from csbridge.power.simulated import SimulatedImdDriver  # noqa: PLC0415

            return SimulatedImdDriver(self._devices, self._devices.imds[evse.evse_id])
        if imd is not None and imd.everest is not None and self._everest is not None:
            return EverestApiImd(self._everest, evse.evse_id)
        on_can = self._can.imd(imd) if imd is not None else None
        if on_can is not None:
            return on_can
        return NoImdDriver()
