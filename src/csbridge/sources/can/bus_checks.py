"""What check-config warns of on a [[bus]]: a configuration that loads and routes, but whose bus
would likely not open, or open at a bit rate its devices do not talk at.

The interface's name is checked by the configuration itself (python-can's registry), and a bus
`bitrate` that differs from a profile's is refused by the router; these are the cases neither
can refuse: an adapter python-can opens at its driver's default rate because no `bitrate` is
set, profiles on one bus that disagree, and a driver that cannot be loaded here. Options are
not checked: every interface takes **kwargs and reads its options from them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

from can.interfaces import BACKENDS

from csbridge.config import BusConfig, Config
from csbridge.sources.can.router import DeviceRouter


def bus_warnings(config: Config, router: DeviceRouter) -> list[str]:
    """One line per finding, each naming the bus by its key."""
    warnings = []
    for index, bus in enumerate(config.bus):
        where = f"bus[{index}] ({bus.name})"
        route = router.routes.get(bus.name)
        rates = (
            {}
            if route is None
            else {p.codec.profile.name: p.codec.profile.header.bitrate for p in route.profiles}
        )
        warnings += [f"{where}: {problem}" for problem in _bitrate_problems(bus, rates)]
        warnings += [f"{where}: {problem}" for problem in _interface_problems(bus)]
    return warnings


def _bitrate_problems(bus: BusConfig, rates: dict[str, int]) -> Iterator[str]:
    if bus.bitrate is not None or not rates:
        return  # a bitrate that differs from a profile's is the router's refusal
    named = ", ".join(f"{name} {rate} bit/s" for name, rate in sorted(rates.items()))
    if len(set(rates.values())) > 1:
        yield f"its profiles talk at different bit rates ({named}): one bus runs at one rate"
    elif bus.sets_bitrate:
        (rate,) = set(rates.values())
        yield (
            f"interface {bus.interface} opens at its driver's default bit rate, no `bitrate` is "
            f"set ({named}): set bitrate = {rate}"
        )


def _interface_problems(bus: BusConfig) -> Iterator[str]:
    """The interface's driver cannot be loaded here (gs_usb without pyusb, ...). A driver
    whose native library is missing often loads and fails only as the bus opens."""
    module_name, class_name = BACKENDS[bus.interface]
    try:
        getattr(importlib.import_module(module_name), class_name)
    except Exception as error:  # a driver's import fails in any way it likes
        yield (
            f"interface {bus.interface}: python-can cannot load its driver here ({error}): "
            "`run` will keep trying to open the bus"
        )
