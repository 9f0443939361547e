"""One EVSE: its kind, connectors, nameplate limits, cable, installation, derating, devices,
authorization."""

from __future__ import annotations

import enum
import itertools
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, model_validator

from csbridge.config.base import Finite, NonNegative, Positive, Strict
from csbridge.config.devices import BoardConfig, ImdConfig, ModuleConfig
from csbridge.config.meter import MeterConfig


class Kind(enum.StrEnum):
    AC = "ac"
    DC = "dc"


AcConnectorType = Literal["AC_single_phase_core", "AC_three_phase_core"]
DcConnectorType = Literal["DC_core", "DC_extended", "DC_combo_core", "DC_unique"]


class ConnectorConfig(Strict):
    id: Annotated[int, Field(ge=1)]
    connector_type: AcConnectorType | DcConnectorType


class DcStaticLimits(Strict):
    """The DC power stage's nameplate: a ceiling for everything live sources report.

    The maxima may be left out only when modules are configured: the stack then decides.
    """

    max_current_a: NonNegative | None = None
    min_current_a: NonNegative = 0.0
    max_voltage_v: NonNegative | None = None
    min_voltage_v: NonNegative = 0.0
    max_power_w: NonNegative | None = None
    peak_current_ripple_a: NonNegative
    current_reg_tolerance_a: NonNegative | None = None
    energy_to_be_delivered_wh: NonNegative | None = None
    power_ramp_limit_w_per_s: NonNegative | None = None

    @model_validator(mode="after")
    def _minima_below_maxima(self) -> Self:
        _ordered(self, "current_a", "voltage_v")
        return self

    def missing_maxima(self) -> list[str]:
        return [
            name
            for name in ("max_current_a", "max_voltage_v", "max_power_w")
            if getattr(self, name) is None
        ]


class DcBptStaticLimits(Strict):
    max_discharge_current_a: NonNegative
    min_discharge_current_a: NonNegative = 0.0
    max_discharge_power_w: NonNegative
    min_discharge_power_w: NonNegative = 0.0

    @model_validator(mode="after")
    def _minima_below_maxima(self) -> Self:
        _ordered(self, "discharge_current_a", "discharge_power_w")
        return self


class AcStaticLimits(Strict):
    max_current_a: NonNegative
    """Per phase in use."""


class AcBptStaticLimits(Strict):
    max_discharge_power_w: NonNegative
    """Per phase in use."""
    min_discharge_power_w: NonNegative = 0.0

    @model_validator(mode="after")
    def _minima_below_maxima(self) -> Self:
        _ordered(self, "discharge_power_w")
        return self


class CableConfig(Strict):
    """The connector and cable rating."""

    max_current_a: Positive
    max_voltage_v: Positive | None = None


class InstallationConfig(Strict):
    """The grid connection this EVSE draws from."""

    max_power_w: Positive | None = None
    max_current_a: Positive | None = None
    """Per phase, at the grid."""
    grid_voltage_v: Positive = 230.0
    """Phase-to-neutral, to turn a DC EVSE's grid current into power."""
    grid_phases: Literal[1, 3] = 3
    efficiency: Annotated[float, Field(gt=0, le=1)] = 0.95
    """DC only: grid power times this is what reaches the EV."""
    max_export_power_w: NonNegative | None = None
    """DC with bpt: the most power the connection may take back to the grid (the grid
    operator's export limit), W. It bounds the EV's discharge power as it is, without crediting
    the station's losses (the import efficiency is not known). None: no export limit of its
    own (the connection's max_power_w and max_current_a still bound discharge)."""


class DeratingConfig(Strict):
    """A piecewise-linear curve from a temperature to a current (A) or power (W) limit.

    `module` curves limit each module's own output; `evse` and `plug` curves limit the EVSE.
    """

    input: Literal["module", "evse", "plug"]
    quantity: Literal["current", "power"]
    points: Annotated[list[tuple[Finite, NonNegative]], Field(min_length=2)]

    @model_validator(mode="after")
    def _rising(self) -> Self:
        temperatures = [t for t, _ in self.points]
        if any(b <= a for a, b in itertools.pairwise(temperatures)):
            raise ValueError(f"points: temperatures must rise strictly, got {temperatures}")
        return self


class ExternalDefaults(Strict):
    """The limit that holds when no external limit is valid (none by default)."""

    max_power_w: Positive | None = None
    max_current_a: Positive | None = None
    max_discharge_power_w: NonNegative | None = None
    """A discharge (bpt) power limit; None: the charging max_power_w bounds discharge too."""


CardTokenType = Literal["ISO14443", "ISO15693"]
"""The token types of the contactless cards a reader reports by UID (Josev's names)."""

AuthorizationMode = Literal["free", "allowlist", "josev"]


class SerialReaderConfig(Strict):
    """An RFID reader on a serial port that prints each card's UID as a line of hex digits."""

    kind: Literal["serial"]
    port: Annotated[str, Field(min_length=1)]
    """The device, e.g. /dev/ttyUSB0 (better a stable /dev/serial/by-id/... link)."""
    baudrate: Annotated[int, Field(gt=0)] = 9600
    token_type: CardTokenType = "ISO14443"  # noqa: S105 - a card standard, not a secret
    """What the reader's cards are; their UIDs are sent to Josev with this token type."""


class AuthorizationConfig(Strict):
    """How this EVSE decides that a driver may charge (EIM: external identification means).

    `free`: anyone who plugs in (free-vend); `allowlist`: the tokens in `allowlist_file`;
    `josev`: every token is asked of Josev (and so of the CSMS behind it).
    """

    mode: AuthorizationMode = "free"
    allowlist_file: Path | None = None
    """One `token_type id_token` a line; read again when it changes. It may be missing at
    start (every token is then rejected until it appears), so only its name is checked here."""
    josev_timeout_s: Positive = 30.0
    """mode = "josev": how long to wait for Josev's answer before the token counts as rejected."""
    reader: SerialReaderConfig | None = None

    @model_validator(mode="after")
    def _allowlist_file_with_allowlist_mode(self) -> Self:
        if self.mode == "allowlist" and self.allowlist_file is None:
            raise ValueError('mode = "allowlist" needs allowlist_file')
        if self.mode != "allowlist" and self.allowlist_file is not None:
            msg = f'allowlist_file is only read with mode = "allowlist" (mode is "{self.mode}")'
            raise ValueError(msg)
        return self


def _ordered(model: BaseModel, *quantities: str) -> None:
    """min_<quantity> never above max_<quantity> (a missing maximum bounds nothing)."""
    for quantity in quantities:
        low = getattr(model, f"min_{quantity}")
        high = getattr(model, f"max_{quantity}")
        if high is not None and low > high:
            msg = f"min_{quantity} ({low}) is above max_{quantity} ({high})"
            raise ValueError(msg)


class EvseConfig(Strict):
    evse_id: Annotated[str, Field(min_length=1, max_length=37, pattern=r"^\S+$")]
    kind: Kind
    bpt: bool = False
    network_interface: Annotated[str, Field(min_length=1)]
    supports_eim: bool = True
    nominal_voltage: Annotated[int, Field(ge=1, le=1000)] | None = None
    """AC only: the grid's phase-to-neutral voltage, V."""
    phases: Literal[1, 3] = 3
    """AC only: how many phases the EVSE switches."""
    control_mode: Literal["scheduled", "dynamic"] | None = None
    bpt_channel: Literal["unified", "separated"] | None = None
    generator_mode: Literal["grid_following", "grid_forming"] | None = None
    grid_island_detection_mode: Literal["active", "passive"] | None = None
    connectors: Annotated[list[ConnectorConfig], Field(min_length=1)]
    dc_limits: DcStaticLimits | None = None
    dc_bpt_limits: DcBptStaticLimits | None = None
    ac_limits: AcStaticLimits | None = None
    ac_bpt_limits: AcBptStaticLimits | None = None
    cable: CableConfig | None = None
    installation: InstallationConfig | None = None
    derating: list[DeratingConfig] = []
    module: list[ModuleConfig] = []
    """DC: the power modules stacked in parallel ([[evse.module]])."""
    imd: ImdConfig | None = None
    board: BoardConfig | None = None
    meter: MeterConfig | None = None
    """The EVSE's energy meter; without one, meter values are integrated from the modules."""
    external: ExternalDefaults = ExternalDefaults()
    authorization: AuthorizationConfig = AuthorizationConfig()
    """Absent: free-vend, as before authorization existed."""

    @model_validator(mode="after")
    def _consistent_with_kind(self) -> Self:
        problems: list[str] = []
        own, other = ("dc", "ac") if self.kind is Kind.DC else ("ac", "dc")
        if getattr(self, f"{own}_limits") is None:
            problems.append(f"a {own} EVSE needs [{own}_limits]")
        for block in (f"{other}_limits", f"{other}_bpt_limits"):
            if getattr(self, block) is not None:
                problems.append(f"[{block}] does not belong to a {own} EVSE")
        bpt_block = getattr(self, f"{own}_bpt_limits")
        if self.bpt and bpt_block is None:
            problems.append(f"bpt = true needs [{own}_bpt_limits]")
        if not self.bpt and bpt_block is not None:
            problems.append(f"[{own}_bpt_limits] given but bpt is false")
        if self.kind is Kind.AC and self.nominal_voltage is None:
            problems.append("an ac EVSE needs nominal_voltage")
        if self.kind is Kind.DC and self.nominal_voltage is not None:
            problems.append("nominal_voltage is for ac EVSEs only")
        prefix = "DC_" if self.kind is Kind.DC else "AC_"
        for index, connector in enumerate(self.connectors):
            if not connector.connector_type.startswith(prefix):
                problems.append(
                    f"connectors[{index}].connector_type {connector.connector_type} "
                    f"does not fit a {own} EVSE"
                )
        ids = [connector.id for connector in self.connectors]
        if len(set(ids)) != len(ids):
            problems.append(f"connector ids must be unique, got {ids}")
        problems += self._live_source_problems()
        problems += self._bpt_stack_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _bpt_stack_problems(self) -> list[str]:
        """A DC EVSE advertises BPT only with modules that can take energy back: one marked
        `bidirectional` (whose profile must be able to import: checked with the profiles)."""
        if self.kind is not Kind.DC or not self.bpt:
            return []
        if not any(module.bidirectional for module in self.module):
            return [
                "bpt = true on a dc EVSE needs a bidirectional module stack: mark the modules "
                "that can import `bidirectional = true`, or set bpt = false"
            ]
        return []

    def _live_source_problems(self) -> list[str]:
        problems: list[str] = []
        if self.kind is Kind.AC:
            if self.module:
                problems.append("[[evse.module]] power modules belong to a dc EVSE")
            if self.imd is not None:
                problems.append("[evse.imd] belongs to a dc EVSE")
        names = [module.name for module in self.module]
        if len(set(names)) != len(names):
            problems.append(f"module names must be unique, got {names}")
        if (
            self.imd is not None
            and self.imd.rule == "iec61851-23:2014"
            and self.imd.rated_voltage_v is None
            and (self.dc_limits is None or self.dc_limits.max_voltage_v is None)
        ):
            problems.append(
                "the 2014 isolation rule needs [evse.imd] rated_voltage_v "
                "or [dc_limits] max_voltage_v"
            )
        if not self.module and any(curve.input == "module" for curve in self.derating):
            problems.append("a derating curve on module temperature needs [[evse.module]]")
        if self.board is None and any(curve.input != "module" for curve in self.derating):
            problems.append("a derating curve on evse or plug temperature needs [evse.board]")
        if self.dc_limits is not None and not self.module and self.dc_limits.missing_maxima():
            missing = ", ".join(self.dc_limits.missing_maxima())
            problems.append(f"[dc_limits] needs {missing} when no modules are configured")
        return problems
