"""The DC setpoint of a session: what the power modules are told, never more than was reported.

Pure functions: the EVSE's reported cs_status_and_limits entry (what Josev was told), the EV's
request and the stack's modules in, either a refusal or one setpoint out.

Rules, in order:

1. A setpoint only under status evse_ready (not while the IMD self-tests, not on any fault).
2. The entry's dc block must be there and hold finite numbers >= 0; the request must be finite
   and >= 0 (a voltage, the EV's maximum voltage, and a current, a power or both).
3. At least one healthy module, or there is nobody to command.
4. Voltage = min(requested, reported max_voltage, EV maximum voltage). Below the reported
   min_voltage (or at 0 V) the request is refused, not raised to the minimum: the hardware cannot
   regulate there, and raising it would give the EV a voltage it did not ask for.
5. Total current = min(requested current, requested power / voltage, reported max_current,
   reported max_power / voltage), and at most 2 A in precharge. The products voltage x current
   are checked in floats and the current stepped down by ulps if one came out a hair high, so
   voltage x total <= max_power holds exactly, not only up to rounding. No rounding to a
   reporting resolution: the frames round each number toward zero on the wire.
6. The total is split equally. The divisor counts the healthy modules and the modules that fell
   silent less than their own watchdog time ago (profile `watchdog_s`; never, if unset): such a
   module may still deliver the current it was last told, so the others do not take over its
   share until it has surely switched itself off. Silent modules get no setpoint frames. The
   share times the divisor never exceeds the total, nor voltage x share x divisor a power
   limit (stepped down by ulps if needed).

Discharge (import mode: energy from the EV back to the grid), asked by the request's
discharge_current / discharge_power: the same rules, with the reported dc_bpt block's
evse_max_discharge_current and evse_max_discharge_power in place of max_current and max_power,
the EV's own discharge maxima (ev_rated_limits) on top, and only the bidirectional modules
counted and commanded. A request that asks both directions at once, or a discharge in
precharge, is refused.

Limits of the model: a silent module holds its *last* setpoint. If the total drops while it is
silent, it may deliver its old, larger share until its watchdog fires. A module that answers but
is not healthy (fault, offline, too hot) is not silent and not counted: it gets no setpoint and
should be switched off explicitly, since our polls keep its watchdog from firing. For the same
reason a silent module's watchdog only runs while nothing is sent to it: measure its silence from
the later of its last frame and our last frame to it (ModuleContact.silent_for_s). A module whose
protocol has no such watchdog (the Huawei R4850 falls back to its offline setpoints) is never
surely off by silence alone.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from csbridge.limits.model import StatusCode

PRECHARGE_MAX_CURRENT_A = 2.0
"""The current limit of precharge (ISO 15118-2 / DIN SPEC 70121: at most 2 A)."""
DEFAULT_WATCHDOG_S = 10.0
"""The communication watchdog of the simulated modules and of those EVerest drives (Infypower's
10 s); a CAN profile that states none gets none (watchdog_or_default)."""
DC_FIELDS = ("max_current", "max_power", "max_voltage", "min_voltage")
DC_BPT_FIELDS = {
    "max_current": "evse_max_discharge_current",
    "max_power": "evse_max_discharge_power",
}
"""Our name -> the dc_bpt block's, for the limits a discharge is clamped to."""


class Refusal(enum.StrEnum):
    NOT_READY = "status_not_ready"
    NO_DC_LIMITS = "no_dc_limits"
    INVALID_LIMITS = "invalid_limits"
    INVALID_REQUEST = "invalid_request"
    NO_HEALTHY_MODULE = "no_healthy_module"
    BELOW_MIN_VOLTAGE = "below_min_voltage"
    NO_DC_BPT_LIMITS = "no_dc_bpt_limits"
    NO_AC_BPT_LIMITS = "no_ac_bpt_limits"
    ABOVE_LIMITS = "above_limits"


@dataclass(frozen=True, slots=True)
class Refused:
    reason: Refusal
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DcRequest:
    """What the EV asks for (ISO 15118 target values) and its own maximum voltage."""

    voltage: float
    ev_max_voltage: float
    current: float | None = None
    power: float | None = None
    precharge: bool = False
    discharge_current: float | None = None
    """Import mode: the current the EV asks to give back (a magnitude)."""
    discharge_power: float | None = None
    ev_max_discharge_current: float | None = None
    """The EV's own discharge maxima (ev_rated_limits), None: it told none."""
    ev_max_discharge_power: float | None = None

    @property
    def discharging(self) -> bool:
        """The request asks for energy from the EV: a discharge value given, and no charge
        value above 0 (a request with both above 0 is refused as invalid)."""
        asked = self.discharge_current is not None or self.discharge_power is not None
        return asked and not any(value for value in (self.current, self.power))


@dataclass(frozen=True, slots=True)
class ModuleContact:
    """One configured module as the split sees it."""

    name: str
    healthy: bool
    silent_for_s: float | None = None
    """Seconds since the module fell silent (its last frame, or our last frame to it if that
    is later: its watchdog restarts on every frame it receives) when it is out of the stack
    for silence; None otherwise (healthy, never seen, or answering but unhealthy)."""
    watchdog_s: float = DEFAULT_WATCHDOG_S
    bidirectional: bool = False
    """The module can take energy from the EV (import mode)."""

    @property
    def counted(self) -> bool:
        """Healthy, or silent for less than its watchdog time (a NaN time counts: unsure)."""
        if self.healthy:
            return True
        if self.silent_for_s is None:
            return False
        return not self.silent_for_s >= self.watchdog_s


@dataclass(frozen=True, slots=True)
class ModuleSetpoint:
    name: str
    voltage: float
    current: float


@dataclass(frozen=True, slots=True)
class Setpoint:
    voltage: float
    total_current: float
    """What the whole stack may deliver: module_current x counted <= this."""
    module_current: float
    counted: int
    """Modules the total is divided by (healthy plus silent within their watchdog)."""
    modules: tuple[ModuleSetpoint, ...]
    """One per healthy module: the frames to send. Silent counted modules get none."""
    precharge: bool
    import_: bool = False
    """Import mode: the modules take `total_current` from the EV (a magnitude)."""

    @property
    def commanded_current(self) -> float:
        return sum((module.current for module in self.modules), 0.0)


def watchdog_or_default(watchdog_s: float | None) -> float:
    """A profile's `watchdog_s`. A profile that states none describes a module not known to
    switch itself off when its controller falls silent (the Huawei R4850 falls back to its
    offline setpoints and goes on delivering): it is never surely off by silence alone, so
    its watchdog is infinite (counted in the split, and in a shared pool never parked, until
    it is heard again)."""
    return math.inf if watchdog_s is None else watchdog_s


def module_contacts(
    healthy: Sequence[str],
    silent_since: Mapping[str, float],
    now: float,
    watchdog_s: Mapping[str, float] | None = None,
    bidirectional: frozenset[str] = frozenset(),
) -> list[ModuleContact]:
    """Contacts from a stack's healthy names (StackState.healthy) and, per module out of the
    stack for silence, when it was last in contact (monotonic seconds); `bidirectional` names
    the modules that can import."""
    watchdogs = watchdog_s or {}
    contacts = [
        ModuleContact(
            name,
            True,
            watchdog_s=watchdogs.get(name, DEFAULT_WATCHDOG_S),
            bidirectional=name in bidirectional,
        )
        for name in healthy
    ]
    contacts += [
        ModuleContact(
            name,
            False,
            now - since,
            watchdog_s=watchdogs.get(name, DEFAULT_WATCHDOG_S),
            bidirectional=name in bidirectional,
        )
        for name, since in silent_since.items()
        if name not in healthy
    ]
    return contacts


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _reported_dc(entry: Mapping[str, Any]) -> dict[str, float] | Refused:
    dc = entry.get("dc")
    if not isinstance(dc, Mapping):
        return Refused(Refusal.NO_DC_LIMITS, "the reported entry has no dc block")
    limits: dict[str, float] = {}
    for field in DC_FIELDS:
        number = _number(dc.get(field))
        if number is None:
            return Refused(Refusal.INVALID_LIMITS, f"dc.{field} = {dc.get(field)!r}")
        limits[field] = number
    return limits


def _reported_dc_bpt(entry: Mapping[str, Any]) -> dict[str, float] | Refused:
    bpt = entry.get("dc_bpt")
    if not isinstance(bpt, Mapping):
        return Refused(Refusal.NO_DC_BPT_LIMITS, "the reported entry has no dc_bpt block")
    limits: dict[str, float] = {}
    for ours, field in DC_BPT_FIELDS.items():
        number = _number(bpt.get(field))
        if number is None:
            return Refused(Refusal.INVALID_LIMITS, f"dc_bpt.{field} = {bpt.get(field)!r}")
        limits[ours] = number
    return limits


OPTIONAL_REQUEST_FIELDS = (
    "current",
    "power",
    "discharge_current",
    "discharge_power",
    "ev_max_discharge_current",
    "ev_max_discharge_power",
)


def _request_problem(request: DcRequest) -> str | None:
    named = {
        "voltage": request.voltage,
        "ev_max_voltage": request.ev_max_voltage,
        **{name: getattr(request, name) for name in OPTIONAL_REQUEST_FIELDS},
    }
    for name, value in named.items():
        if value is None and name in OPTIONAL_REQUEST_FIELDS:
            continue
        if _number(value) is None:
            return f"{name} = {value!r} is not a finite number >= 0"
    charge = (request.current, request.power)
    discharge = (request.discharge_current, request.discharge_power)
    if all(value is None for value in (*charge, *discharge)):
        return "neither a current nor a power was requested"
    if any(charge) and any(discharge):
        return "charge and discharge asked at once"
    if request.discharging and request.precharge:
        return "a discharge in precharge"
    return None


MAX_ULP_STEPS = 64
"""A quotient is within an ulp or two of exact; past this many steps give 0 (never happens)."""


def _at_most_product(current: float, voltage: float, power: float) -> float:
    """`current` (about power / voltage or less), stepped down by ulps until
    voltage x current <= power in floats."""
    for _ in range(MAX_ULP_STEPS):
        if voltage * current <= power:
            return current
        current = math.nextafter(current, 0.0)
    return 0.0


def _share(total: float, counted: int, voltage: float, powers: Sequence[float]) -> float:
    """total / counted, stepped down by ulps until share x counted <= total and the modules'
    power, voltage x share x counted, is within every power limit, in floats (near the bottom
    of the float range a product may round up past a limit its factors respect)."""
    share = total / counted
    for _ in range(MAX_ULP_STEPS):
        if share * counted <= total and all(voltage * share * counted <= p for p in powers):
            return share
        share = math.nextafter(share, 0.0)
    return 0.0


def dc_setpoint(
    entry: Mapping[str, Any], request: DcRequest, modules: Sequence[ModuleContact]
) -> Setpoint | Refused:
    """The setpoint for one EVSE's stack, or why there is none (see the module doc)."""
    status = entry.get("status_code")
    if status != StatusCode.EVSE_READY.value:
        return Refused(Refusal.NOT_READY, f"status is {status!r}, not evse_ready")
    limits = _reported_dc(entry)
    if isinstance(limits, Refused):
        return limits
    problem = _request_problem(request)
    if problem is not None:
        return Refused(Refusal.INVALID_REQUEST, problem)
    importing = request.discharging
    if importing:
        bpt = _reported_dc_bpt(entry)
        if isinstance(bpt, Refused):
            return bpt
        limits = {**limits, **bpt}
        modules = [module for module in modules if module.bidirectional]
    healthy = list({module.name: module for module in modules if module.healthy}.values())
    if not healthy:
        return Refused(Refusal.NO_HEALTHY_MODULE, "no healthy module to command")

    voltage = float(min(request.voltage, limits["max_voltage"], request.ev_max_voltage))
    if voltage <= 0 or voltage < limits["min_voltage"]:
        return Refused(
            Refusal.BELOW_MIN_VOLTAGE,
            f"{voltage} V is below the reported minimum {limits['min_voltage']} V",
        )

    asked: tuple[float | None, ...] = (request.current,)
    asked_powers: tuple[float | None, ...] = (request.power,)
    if importing:
        asked = (request.discharge_current, request.ev_max_discharge_current)
        asked_powers = (request.discharge_power, request.ev_max_discharge_power)
    candidates = [limits["max_current"], *(value for value in asked if value is not None)]
    if request.precharge:
        candidates.append(PRECHARGE_MAX_CURRENT_A)
    total = float(min(candidates))
    powers = [limits["max_power"], *(power for power in asked_powers if power is not None)]
    for power in powers:
        total = _at_most_product(min(total, power / voltage), voltage, power)

    counted = len({module.name for module in modules if module.counted})
    share = _share(total, counted, voltage, powers)
    return Setpoint(
        voltage=voltage,
        total_current=total,
        module_current=share,
        counted=counted,
        modules=tuple(ModuleSetpoint(module.name, voltage, share) for module in healthy),
        precharge=request.precharge,
        import_=importing,
    )


def direction_ceiling(entry: Mapping[str, Any], import_: bool, voltage: float) -> float:
    """The most current the reported entry allows in one direction at `voltage` (0 when the
    block is missing or not valid): a ramp toward a new direction never holds more."""
    limits = _reported_dc_bpt(entry) if import_ else _reported_dc(entry)
    if isinstance(limits, Refused) or not voltage > 0:
        return 0.0
    return _at_most_product(
        min(limits["max_current"], limits["max_power"] / voltage), voltage, limits["max_power"]
    )


DEFAULT_MIN_REGULATED_CURRENT_A = 1.0
"""A module's smallest well-regulated output current when its profile states none."""


def fewest_modules(setpoint: Setpoint, min_current_a: Mapping[str, float]) -> Setpoint:
    """A setpoint whose share is below what its modules regulate well, on the fewest modules
    whose minimum the share then meets (the others are left out, to be held off).

    Only when every counted module is healthy: a silent module may still deliver its last
    share, which the even split over every counted module already allows for. The shares stay
    total / k, so the stack's total and power stay where dc_setpoint put them."""
    healthy = setpoint.modules
    if not healthy or setpoint.counted != len(healthy) or setpoint.total_current <= 0:
        return setpoint
    minimum = max(
        min_current_a.get(module.name, DEFAULT_MIN_REGULATED_CURRENT_A) for module in healthy
    )
    if setpoint.module_current >= minimum:
        return setpoint
    k = max(1, min(len(healthy), math.floor(setpoint.total_current / minimum)))
    if k == len(healthy):
        return setpoint
    voltage = setpoint.voltage
    power_before = voltage * setpoint.module_current * setpoint.counted
    share = setpoint.total_current / k
    for _ in range(MAX_ULP_STEPS):
        if share * k <= setpoint.total_current and voltage * share * k <= power_before:
            break
        share = math.nextafter(share, 0.0)
    else:
        return setpoint
    chosen = healthy[:k]
    return replace(
        setpoint,
        module_current=share,
        counted=k,
        modules=tuple(replace(module, current=share) for module in chosen),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AcDischargeRequest:
    """An AC setpoint's discharge side (ac.discharge_*): what the EV's own inverter is asked to
    give back. Total active power (W) and current per phase (A), either may be absent."""

    active_power: float | None = None
    current: float | None = None
    charging: bool = False
    """The same setpoint also asks a charge power or current above 0."""

    @property
    def asked(self) -> bool:
        return bool(self.active_power) or bool(self.current)


def ac_discharge_power(
    entry: Mapping[str, Any], request: AcDischargeRequest, nominal_voltage: float
) -> float | Refused:
    """The total discharge power an AC BPT setpoint may pass to the board: its active power (or
    its current per phase at the nominal voltage, on every phase the reported ac_bpt names),
    or why it is refused: not evse_ready, no ac_bpt block, both directions asked, a number
    that is not finite and >= 0, or more than the reported per-phase maxima allow."""
    status = entry.get("status_code")
    if status != StatusCode.EVSE_READY.value:
        return Refused(Refusal.NOT_READY, f"status is {status!r}, not evse_ready")
    bpt = entry.get("ac_bpt")
    maxima = bpt.get("evse_max_discharge_power") if isinstance(bpt, Mapping) else None
    if not isinstance(maxima, Mapping):
        return Refused(Refusal.NO_AC_BPT_LIMITS, "the reported entry has no ac_bpt block")
    per_phase = [_number(maxima.get(phase)) for phase in ("l1", "l2", "l3")]
    if any(value is None for value in per_phase):
        return Refused(Refusal.INVALID_LIMITS, f"ac_bpt.evse_max_discharge_power = {maxima!r}")
    phases = [value for value in per_phase if value]
    for name, value in (("active_power", request.active_power), ("current", request.current)):
        if value is not None and _number(value) is None:
            return Refused(Refusal.INVALID_REQUEST, f"{name} = {value!r}")
    if request.charging and request.asked:
        return Refused(Refusal.INVALID_REQUEST, "charge and discharge asked at once")
    power = request.active_power or 0.0
    if request.current:
        power = max(power, request.current * nominal_voltage * max(len(phases), 1))
        if phases and request.current * nominal_voltage > min(phases):
            return Refused(
                Refusal.ABOVE_LIMITS,
                f"{request.current} A per phase is above {min(phases)} W per phase",
            )
    allowed = sum((value for value in phases), 0.0)
    if power > allowed:
        return Refused(Refusal.ABOVE_LIMITS, f"{power} W is above the reported {allowed} W")
    return power
