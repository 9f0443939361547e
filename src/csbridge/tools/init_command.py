"""`csbridge init`: a commented starter configuration for the device profiles named.

Every profile becomes the device it describes on one EVSE: power modules, an IMD, a charger
board and a CAN meter on a DC EVSE (the buses one per bit rate the profiles need), a Modbus
meter on an AC EVSE (the shipped register map, the SDM630, measures AC). What only the site
knows (the EVSE id, the nameplate, the serial port) is a placeholder marked `CHANGE ME`, chosen
so that the file passes `csbridge check-config` as written.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from csbridge.config import ConfigError
from csbridge.sources.can import ProfileRegistry
from csbridge.support import resource_dir

DeviceRole = Literal["power_module", "imd", "board", "can_meter", "modbus_meter"]
ONE_EACH: tuple[DeviceRole, ...] = ("imd", "board", "can_meter", "modbus_meter")
"""An EVSE has at most one of these."""
DC_ROLES = frozenset({"power_module", "imd", "board", "can_meter"})
_CAN_ROLES: dict[str, DeviceRole] = {"power_module": "power_module", "imd": "imd", "board": "board"}
"""A CAN profile's kind -> the role its device plays."""


@dataclass(frozen=True, slots=True)
class ShippedProfile:
    name: str
    role: DeviceRole
    description: str
    bitrate: int | None = None
    """CAN profiles: the bus's bit rate."""
    addressed: bool = True
    """A power module whose frames carry its address (several share a bus)."""


def shipped_profiles() -> dict[str, ShippedProfile]:
    """Every profile csbridge ships (hal/ and hal/meters/) by name, with the role it plays."""
    registry = ProfileRegistry()
    profiles: dict[str, ShippedProfile] = {}
    for name in registry.names():
        profile = registry.get(name)
        header = profile.header
        role = _CAN_ROLES[header.kind.value]
        addressed = header.family != "id-fields" or profile.frame.address_field is not None
        profiles[name] = ShippedProfile(
            name, role, header.description, header.bitrate, addressed=addressed
        )
    for path in sorted((resource_dir("hal") / "meters").glob("*.toml")):
        header = tomllib.loads(path.read_text(encoding="utf-8")).get("profile", {})
        can = header.get("transport") == "can"
        profiles[path.stem] = ShippedProfile(
            path.stem,
            "can_meter" if can else "modbus_meter",
            str(header.get("description", "")),
            int(header["bitrate"]) if can else None,
        )
    return profiles


@dataclass(slots=True)
class _Plan:
    """What the starter holds: the profiles by role, the buses by bit rate."""

    chosen: list[ShippedProfile]
    buses: dict[int, str] = field(default_factory=dict)

    def of(self, role: DeviceRole) -> list[ShippedProfile]:
        return [profile for profile in self.chosen if profile.role == role]

    def bus_for(self, profile: ShippedProfile) -> str:
        assert profile.bitrate is not None
        return self.buses.setdefault(profile.bitrate, f"can{len(self.buses)}")


def plan(names: Sequence[str], shipped: dict[str, ShippedProfile]) -> _Plan:
    """The profiles named, checked: each known, none twice, at most one of each ONE_EACH role.
    ConfigError (source `init`) names every problem."""
    problems = []
    for name in sorted(set(names)):
        if name not in shipped:
            problems.append(f"no shipped profile {name!r} (have {', '.join(sorted(shipped))})")
        elif names.count(name) > 1:
            problems.append(f"{name} is named {names.count(name)} times; name each profile once")
    chosen = [shipped[name] for name in dict.fromkeys(names) if name in shipped]
    for role in ONE_EACH:
        same = [profile.name for profile in chosen if profile.role == role]
        if len(same) > 1:
            problems.append(f"{', '.join(same)}: an EVSE has one {role.replace('_', ' ')}")
    if problems:
        raise ConfigError("init", problems)
    result = _Plan(chosen)
    for profile in chosen:  # buses in the order the profiles were named
        if profile.bitrate is not None:
            result.bus_for(profile)
    return result


def starter_config(names: Sequence[str], version: str) -> str:
    """The starter configuration's text for the profiles named (see the module's docstring)."""
    chosen = plan(names, shipped_profiles())
    lines = [
        f"# csbridge starter configuration for: {', '.join(names)}",
        "# Written by `csbridge init`; it passes `csbridge check-config` as it is. Every value",
        "# marked CHANGE ME is a placeholder for this site; README.md's Configuration table and",
        "# docs/devices.md explain every key, `csbridge check-config --dump FILE` shows every",
        "# default.",
        "",
        "[station]",
        f'sw_version = "csbridge {version}"',
        'hw_version = "CHANGE-ME"          # CHANGE ME: reported to Josev in cs_parameters',
        "",
        "[station.josev_services]",
        'ask = ["slac", "iso15118"] # and "ocpp" once [station.identity] is set',
        "",
        "# [station.identity] # who the station is to OCPP (Josev's device_model):",
        "# model, vendor, serial_number, firmware_version, ocpp_version, ocpp_csms_url,",
        "# security_profile, identity, basic_auth_password_file (README.md, Configuration)",
        "",
        "[mqtt]",
        'broker = "mqtt://127.0.0.1:1883"  # Josev\'s broker (mqtts:// with ca_file for TLS)',
        '# username = "csbridge"           # and password_file, or $CSBRIDGE_MQTT_PASSWORD',
    ]
    lines += _buses(chosen)
    if any(profile.role in DC_ROLES for profile in chosen.chosen):
        lines += _dc_evse(chosen)
    if chosen.of("modbus_meter"):
        lines += _ac_evse(chosen)
    return "\n".join(_aligned(line) for line in lines) + "\n"


COMMENT_COLUMN = 36


def _aligned(line: str) -> str:
    """A setting's comment moved to one column, so the file reads as a table."""
    code, marker, comment = line.partition(" # ")
    if not marker or line.startswith("#"):
        return line
    return f"{code.rstrip():<{COMMENT_COLUMN - 1}} # {comment.strip()}"


def _buses(chosen: _Plan) -> list[str]:
    lines = []
    for bitrate, name in chosen.buses.items():
        users = [
            p.name for p in chosen.chosen if p.bitrate is not None and chosen.bus_for(p) == name
        ]
        lines += [
            "",
            f"[[bus]]                            # {', '.join(users)}",
            f'name = "{name}"                    # the interface (channel = "..." to differ)',
            'interface = "socketcan"            # the link is set up by the OS (ip link set ...)',
            f"bitrate = {bitrate}",
        ]
    return lines


def _dc_evse(chosen: _Plan) -> list[str]:
    lines = [
        "",
        "[[evse]]",
        'evse_id = "DE*CSB*E0001"           # CHANGE ME: this EVSE\'s id (at most 37 characters)',
        'kind = "dc"',
        'network_interface = "eth0"         # CHANGE ME: where Josev talks to the EV (SLAC/PLC)',
        'connectors = [{ id = 1, connector_type = "DC_extended" }]',
        "",
        "[evse.dc_limits]                   # CHANGE ME: the nameplate, a ceiling for what the",
        "max_current_a = 200.0              # modules report",
        "min_current_a = 1.0",
        "max_voltage_v = 920.0",
        "min_voltage_v = 150.0",
        "max_power_w = 150000",
        "peak_current_ripple_a = 2.0",
        "",
        "[evse.authorization]",
        'mode = "free"                      # every EV that plugs in is authorized',
    ]
    addresses = iter(range(1, 256))
    for index, module in enumerate(chosen.of("power_module"), start=1):
        address = next(addresses) if module.addressed else 0
        why = "as set on the module" if module.addressed else "fixed identifiers: one per bus"
        lines += [
            "",
            f"[[evse.module]]                    # {module.description}",
            f'name = "m{index}"',
            f"address = {address} # CHANGE ME: {why}",
            f'can = {{ profile = "{module.name}", bus = "{chosen.bus_for(module)}" }}',
        ]
    for imd in chosen.of("imd"):
        lines += [
            "",
            f"[evse.imd]                         # {imd.description}",
            f'can = {{ profile = "{imd.name}", bus = "{chosen.bus_for(imd)}" }}',
        ]
    for board in chosen.of("board"):
        lines += [
            "",
            f"[evse.board]                       # {board.description}",
            f'can = {{ profile = "{board.name}", bus = "{chosen.bus_for(board)}" }}',
        ]
    if not chosen.of("board"):
        lines += ["", "# No board named: a DC EVSE without [evse.board] never starts a session."]
    for meter in chosen.of("can_meter"):
        lines += [
            "",
            f"[evse.meter]                       # {meter.description}",
            'kind = "can"',
            f'can = {{ profile = "{meter.name}", bus = "{chosen.bus_for(meter)}" }}',
        ]
    return lines


def _ac_evse(chosen: _Plan) -> list[str]:
    (meter,) = chosen.of("modbus_meter")
    return [
        "",
        "[[evse]]",
        'evse_id = "DE*CSB*E0002"           # CHANGE ME: this EVSE\'s id (at most 37 characters)',
        'kind = "ac"',
        'network_interface = "eth1"         # CHANGE ME',
        "nominal_voltage = 230              # V phase-to-neutral",
        "phases = 3",
        'connectors = [{ id = 1, connector_type = "AC_three_phase_core" }]',
        "",
        "[evse.ac_limits]",
        "max_current_a = 32.0               # CHANGE ME: per phase",
        "",
        "[evse.authorization]",
        'mode = "free"',
        "",
        f"[evse.meter]                       # {meter.description}",
        'kind = "modbus"',
        "",
        "[evse.meter.modbus]",
        f'register_map = "{meter.name}"',
        "device_id = 1                      # CHANGE ME: the meter's Modbus address",
        'serial = { port = "/dev/ttyUSB0" } # CHANGE ME: or tcp = { host = "..." }',
    ]


def write_starter(path: Path, text: str, *, force: bool) -> None:
    """Write the file; FileExistsError when it exists and `force` is not given."""
    with path.open("w" if force else "x", encoding="utf-8") as file:
        file.write(text)
