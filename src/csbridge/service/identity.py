"""Josev's `device_model` (for OCPP): who the station is, from [station.identity] and the EVSEs.

The basic-auth password is read from its file once, at start and off the event loop, and goes
nowhere but into the answer: never into a log line, the limits report, the status view or the
effective configuration (which hold only the file's path). Without [station.identity] there is
nothing true to answer (Josev's rules need a real CSMS address among others): the request is
left unanswered, said once per boot, and counted.
"""

from __future__ import annotations

import asyncio
import logging
import stat
from pathlib import Path

from csbridge.config import (
    Config,
    ConfigError,
    EvseConfig,
    IdentityConfig,
    Kind,
    nameplate_power_w,
)
from csbridge.messages import (
    ABSENT,
    DeviceModelConnector,
    DeviceModelEvse,
    DeviceModelRequest,
    DeviceModelResponse,
    OcppConnectorType,
    handles,
)
from csbridge.support import Counted, Counters

log = logging.getLogger("csbridge.identity")


def ocpp_connector_type(connector_type: str, region: str) -> OcppConnectorType:
    """OCPP 2.0.1's name for one of our (ISO 15118) connector types: a combo DC inlet is the
    region's CCS, a three-phase AC one Type 2, a single-phase AC one the region's (Type 2 in
    Europe, Type 1 in North America); what ISO 15118 does not pin to a plug is Unknown."""
    match connector_type:
        case "DC_extended" | "DC_combo_core":
            return "cCCS1" if region == "na" else "cCCS2"
        case "AC_three_phase_core":
            return "cType2"
        case "AC_single_phase_core":
            return "cType1" if region == "na" else "cType2"
    return "Unknown"


def supply_phases(evse: EvseConfig) -> int:
    """The AC phases that feed the EVSE: an AC EVSE's own, a DC EVSE's grid connection's."""
    if evse.kind is Kind.AC:
        return evse.phases
    return evse.installation.grid_phases if evse.installation is not None else 3


def device_model_evses(config: Config) -> list[DeviceModelEvse]:
    """Each EVSE as OCPP numbers it (1, 2, ... in configuration order)."""
    identity = config.station.identity
    evses = []
    for ocpp_id, evse in enumerate(config.evse, start=1):
        power_w = nameplate_power_w(evse, identity)
        evses.append(
            DeviceModelEvse(
                ocpp_id=ocpp_id,
                iso15118_id=evse.evse_id,
                power_kw=round((power_w or 0.0) / 1000.0, 3),
                supply_phases=supply_phases(evse),
                connectors=[
                    DeviceModelConnector(
                        id=connector.id,
                        connector_type=ocpp_connector_type(
                            connector.connector_type, config.station.region
                        ),
                    )
                    for connector in evse.connectors
                ],
            )
        )
    return evses


def read_basic_auth_password(identity: IdentityConfig) -> str:
    """The password file's content (trailing newline stripped); ConfigError, naming only the
    file, when it cannot be read."""
    path = identity.basic_auth_password_file
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        why = f"cannot read {path}: {error.__class__.__name__}"
        raise ConfigError("station.identity.basic_auth_password_file", [why]) from None


def _exposed(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False


class DeviceModel:
    """Answers `device_model`; `load` must have run (Station.run does it first)."""

    def __init__(self, config: Config, counters: Counters) -> None:
        self._config = config
        self._identity = config.station.identity
        self._counters = counters
        self._password: str | None = None
        self._said_unconfigured = False

    async def load(self) -> None:
        """Read the basic-auth password once, off the loop; one that cannot be read is logged
        and leaves the device model unanswered."""
        if self._identity is None or self._password is not None:
            return
        path = self._identity.basic_auth_password_file
        try:
            self._password = await asyncio.to_thread(read_basic_auth_password, self._identity)
        except ConfigError as error:
            # Charging goes on without OCPP's password; only the device model cannot be told.
            log.warning(
                "event=identity_unreadable where=%s why=%s", error.source, error.problems[0]
            )
            return
        if await asyncio.to_thread(_exposed, path):
            log.warning(
                "event=secret_file_exposed path=%s why=readable by group or others -- chmod 600 it",
                path,
            )

    @handles(DeviceModelRequest)
    def device_model(self, _message: DeviceModelRequest) -> DeviceModelResponse | None:
        identity = self._identity
        if identity is None or self._password is None:
            self._counters.add(Counted.DEVICE_MODEL_UNANSWERED)
            if not self._said_unconfigured:
                self._said_unconfigured = True
                log.warning(
                    "event=device_model_unconfigured why=no [station.identity] in the "
                    "configuration; Josev's device_model stays unanswered (said once per boot)"
                    if identity is None
                    else "event=device_model_unconfigured why=the basic-auth password was "
                    "not read at start; Josev's device_model stays unanswered"
                )
            return None
        return DeviceModelResponse(
            model=identity.model,
            vendor=identity.vendor,
            serial_number=identity.serial_number,
            firmware_version=identity.firmware_version,
            ocpp_version=identity.ocpp_version if identity.ocpp_version is not None else ABSENT,
            ocpp_csms_url=identity.ocpp_csms_url,
            security_profile=identity.security_profile,
            identity=identity.identity,
            basic_auth_password=self._password,
            sim_iccid=identity.sim_iccid if identity.sim_iccid is not None else ABSENT,
            sim_imsi=identity.sim_imsi if identity.sim_imsi is not None else ABSENT,
            evses=device_model_evses(self._config),
        )
