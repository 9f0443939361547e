"""One class per kind of Josev message (each schema in schemas/ with an `x-direction`), and the
objects they hold, as mobilityhouse/ocpp writes its call and call-result payloads; and the
objects of our own topics that the session reads or writes (a presented token, an EVSE's
session in its limits report), and Josev's date-time both ways.

Fields are the schemas' property names. A property every message of the kind carries is a
required field; any other defaults to ABSENT and is left out of the JSON. An object whose schema
names its properties is a class here (named after its $defs entry); one the schema leaves open
stays a mapping. Every class is frozen, slotted and built by keyword (so required and optional
fields may come in any order). Fields keep the order the station has always written them in:
what goes out is byte for byte what went out before. tests/unit/test_message_classes.py holds all of
this against the schema catalogue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Self

from csbridge.messages.json_object import ABSENT, Absent, JsonObject, MessageType, Payload

JsonValue = Any
"""A property the schema gives no type: any JSON value, null included."""

# -- Definitions.json --------------------------------------------------------------------------

StatusCode = Literal[
    "evse_not_ready",
    "evse_ready",
    "evse_shutdown",
    "evse_utility_interrupt_event",
    "evse_isolation_monitoring_active",
    "evse_emergency_shutdown",
    "evse_malfunction",
]
IsolationStatus = Literal["invalid", "valid", "warning", "fault", "no_imd"]
AcConnectorType = Literal["AC_single_phase_core", "AC_three_phase_core"]
DcConnectorType = Literal["DC_core", "DC_extended", "DC_combo_core", "DC_unique"]
ControlMode = Literal["scheduled", "dynamic"]
BptChannel = Literal["unified", "separated"]
GeneratorMode = Literal["grid_following", "grid_forming"]
GridIslandDetectionMode = Literal["active", "passive"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PerPhase(JsonObject):
    l1: float
    l2: float
    l3: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AcLimits(JsonObject):
    max_current: PerPhase
    nominal_voltage: float
    rcd_error: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AcBptLimits(JsonObject):
    evse_max_discharge_power: PerPhase
    evse_min_discharge_power: PerPhase


@dataclass(frozen=True, slots=True, kw_only=True)
class DcLimits(JsonObject):
    present_voltage: float
    present_current: float
    max_current: float
    min_current: float
    max_voltage: float
    min_voltage: float
    max_power: float
    peak_current_ripple: float
    current_reg_tolerance: float | Absent = ABSENT
    energy_to_be_delivered: float | Absent = ABSENT
    evse_power_ramp_limit: float | Absent = ABSENT
    isolation_status: IsolationStatus | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class DcBptLimits(JsonObject):
    evse_max_discharge_power: float
    evse_min_discharge_power: float
    evse_max_discharge_current: float
    evse_min_discharge_current: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EvseStatusAndLimits(JsonObject):
    evse_id: str
    status_code: StatusCode
    ac: AcLimits | Absent = ABSENT
    ac_bpt: AcBptLimits | Absent = ABSENT
    dc: DcLimits | Absent = ABSENT
    dc_bpt: DcBptLimits | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusAndLimitsData(JsonObject):
    evses: Sequence[EvseStatusAndLimits]


@dataclass(frozen=True, slots=True, kw_only=True)
class AcService(JsonObject):
    connector_type: AcConnectorType
    nominal_voltage: int
    control_mode: ControlMode | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class AcBptService(JsonObject):
    connector_type: AcConnectorType
    nominal_voltage: int
    control_mode: ControlMode | Absent = ABSENT
    bpt_channel: BptChannel | Absent = ABSENT
    generator_mode: GeneratorMode | Absent = ABSENT
    grid_island_detection_mode: GridIslandDetectionMode | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class DcService(JsonObject):
    connector_type: DcConnectorType
    control_mode: ControlMode | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class DcBptService(JsonObject):
    connector_type: DcConnectorType
    control_mode: ControlMode | Absent = ABSENT
    bpt_channel: BptChannel | Absent = ABSENT
    generator_mode: GeneratorMode | Absent = ABSENT
    grid_island_detection_mode: GridIslandDetectionMode | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectorServices(JsonObject):
    ac: AcService | Absent = ABSENT
    ac_bpt: AcBptService | Absent = ABSENT
    dc: DcService | Absent = ABSENT
    dc_bpt: DcBptService | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class Connector(JsonObject):
    id: int
    services: ConnectorServices


@dataclass(frozen=True, slots=True, kw_only=True)
class EvseParameters(JsonObject):
    evse_id: str
    supports_eim: bool
    network_interface: str
    connectors: Sequence[Connector]


# -- SessionDefinitions.json -------------------------------------------------------------------

Acceptance = Literal["accepted", "rejected"]
ContactorStatus = Literal["closed", "opened", "error"]
CpPilotState = Literal["A1", "A2", "B1", "B2", "C1", "C2", "D1", "D2", "E", "F"]
FaultName = Literal[
    "overcurrent_fault",
    "emergency_stop",
    "ground_fault",
    "energy_limit_reached",
    "power_loss",
    "power_quality",
    "reboot",
    "other",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptanceData(JsonObject):
    evse_id: str
    status: Acceptance


@dataclass(frozen=True, slots=True, kw_only=True)
class EvseOnlyRequestData(JsonObject):
    evse_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactorStatusData(JsonObject):
    evse_id: str
    status: ContactorStatus
    info: str | Absent = ABSENT


Measurand = Literal[
    "Current.Export",
    "Current.Import",
    "Current.Offered",
    "Energy.Active.Export.Register",
    "Energy.Active.Import.Register",
    "Energy.Reactive.Export.Register",
    "Energy.Reactive.Import.Register",
    "Energy.Active.Export.Interval",
    "Energy.Active.Import.Interval",
    "Energy.Active.Net",
    "Energy.Reactive.Export.Interval",
    "Energy.Reactive.Import.Interval",
    "Energy.Reactive.Net",
    "Energy.Apparent.Net",
    "Energy.Apparent.Import",
    "Energy.Apparent.Export",
    "Frequency",
    "Power.Active.Export",
    "Power.Active.Import",
    "Power.Factor",
    "Power.Offered",
    "Power.Reactive.Export",
    "Power.Reactive.Import",
    "SoC",
    "Voltage",
]
"""OCPP 2.0.1's measurand names, which a signed meter value carries."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedMeterValue(JsonObject):
    measurand: Measurand
    signed_meter_data: str
    signing_method: str
    encoding_method: str
    public_key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterValuesData(JsonObject):
    evse_id: str | Absent = ABSENT
    timestamp: str
    voltage: PerPhase
    current: PerPhase
    power_factor: float
    frequency: float
    total_active_energy_imported: float
    total_reactive_energy_imported: float
    # dc_voltage before dc_current (the schema lists them the other way): the station has
    # always written them in this order.
    dc_voltage: float | Absent = ABSENT
    dc_current: float | Absent = ABSENT
    soc: float | Absent = ABSENT
    total_active_energy_exported: float | Absent = ABSENT
    signed_meter_values: Sequence[SignedMeterValue] | Absent = ABSENT


# -- StationDefinitions.json -------------------------------------------------------------------

PresentedTokenType = Literal[
    "ISO14443", "ISO15693", "key_code", "local", "no_authorization", "mac_address"
]
"""What a person presents at the station: the token types its authorization request may name."""
TokenType = Literal[
    "central",
    "e_maid",
    "ISO14443",
    "ISO15693",
    "key_code",
    "local",
    "no_authorization",
    "mac_address",
]
"""Every token type Josev names: central (a remote start) and e_maid (Plug & Charge) come only
from Josev."""
AuthorizationStatus = Literal["accepted", "rejected", "deauthorized"]
OperationalStatus = Literal["operative", "inoperative"]
ConnectorStatus = Literal["available", "occupied", "unavailable", "reserved", "faulted"]
ChargingStatus = Literal["ev_connected", "suspended_ev", "suspended_evse", "charging", "idle"]
LockStatus = Literal["locked", "unlocked", "error", "unknown"]


def josev_date_time(moment: datetime) -> str:
    """`moment` as Josev's date-time rule takes it: UTC, milliseconds (never more than three
    fraction digits), 'Z'. A naive moment is read as UTC, as Josev reads a missing offset."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_josev_date_time(text: str) -> datetime | None:
    """A date-time that passed Josev's rule, as an aware datetime (no offset: UTC); None for one
    the rule's shape lets through but no calendar holds (month 13, second 60)."""
    try:
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- what PowerElectronicsSetpointRequest and Iso15118StateInfoUpdate hold ---------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class EvLimits(JsonObject):
    maximum_voltage: float
    minimum_voltage: float | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class AcSetpoint(JsonObject):
    charge_active_power: float | Absent = ABSENT
    charge_reactive_power: float | Absent = ABSENT
    discharge_active_power: float | Absent = ABSENT
    discharge_reactive_power: float | Absent = ABSENT
    charge_current: float | Absent = ABSENT
    discharge_current: float | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class DcSetpoint(JsonObject):
    voltage: float | Absent = ABSENT
    charge_current: float | Absent = ABSENT
    charge_power: float | Absent = ABSENT
    discharge_current: float | Absent = ABSENT
    discharge_power: float | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class Iso15118StateInfo(JsonObject):
    session_id: str | Absent = ABSENT
    evcc_id: str | Absent = ABSENT
    evcc_mac: str | Absent = ABSENT
    selected_payment_option: Literal["EIM", "PNC"] | Absent = ABSENT
    protocol: str | Absent = ABSENT
    stop_action: JsonValue | Absent = ABSENT


# -- the messages: boot ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CsParametersRequest(Payload):
    NAME = "cs_parameters"
    TYPE = MessageType.REQUEST


@dataclass(frozen=True, slots=True, kw_only=True)
class CsParametersResponse(Payload):
    NAME = "cs_parameters"
    TYPE = MessageType.RESPONSE

    sw_version: str
    hw_version: str
    number_of_evses: int
    parameters: Sequence[EvseParameters]


@dataclass(frozen=True, slots=True, kw_only=True)
class CsStatusAndLimitsRequest(Payload):
    NAME = "cs_status_and_limits"
    TYPE = MessageType.REQUEST


@dataclass(frozen=True, slots=True, kw_only=True)
class CsStatusAndLimitsResponse(StatusAndLimitsData, Payload):
    NAME = "cs_status_and_limits"
    TYPE = MessageType.RESPONSE


@dataclass(frozen=True, slots=True, kw_only=True)
class CsStatusAndLimitsUpdate(StatusAndLimitsData, Payload):
    NAME = "cs_status_and_limits"
    TYPE = MessageType.UPDATE


# -- the messages: the session's requests and their responses ---------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CableCheckRequest(Payload):
    NAME = "cable_check"
    TYPE = MessageType.REQUEST

    evse_id: str
    cable_check_action: Literal["start", "status"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CableCheckResponse(Payload):
    NAME = "cable_check"
    TYPE = MessageType.RESPONSE

    evse_id: str
    cable_check_status: Literal["ongoing", "finished"]
    isolation_level: IsolationStatus | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class CsContactorStatusRequest(EvseOnlyRequestData, Payload):
    NAME = "cs_contactor_status"
    TYPE = MessageType.REQUEST


@dataclass(frozen=True, slots=True, kw_only=True)
class CsContactorStatusResponse(ContactorStatusData, Payload):
    NAME = "cs_contactor_status"
    TYPE = MessageType.RESPONSE


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerElectronicsSetpointRequest(Payload):
    NAME = "power_electronics_setpoint"
    TYPE = MessageType.REQUEST

    evse_id: str
    is_precharge: bool | Absent = ABSENT
    ev_limits: EvLimits
    ac: AcSetpoint | Absent = ABSENT
    dc: DcSetpoint | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerElectronicsSetpointResponse(AcceptanceData, Payload):
    NAME = "power_electronics_setpoint"
    TYPE = MessageType.RESPONSE


@dataclass(frozen=True, slots=True, kw_only=True)
class StopChargingRequest(EvseOnlyRequestData, Payload):
    NAME = "stop_charging"
    TYPE = MessageType.REQUEST


@dataclass(frozen=True, slots=True, kw_only=True)
class StopChargingResponse(AcceptanceData, Payload):
    NAME = "stop_charging"
    TYPE = MessageType.RESPONSE


@dataclass(frozen=True, slots=True, kw_only=True)
class CpPwmRequest(Payload):
    NAME = "cp_pwm"
    TYPE = MessageType.REQUEST

    evse_id: str
    hlc: bool
    current: float | Absent = ABSENT
    error_state: bool
    fault_state: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CpPwmResponse(Payload):
    NAME = "cp_pwm"
    TYPE = MessageType.RESPONSE

    evse_id: str | Absent = ABSENT
    status: Literal["valid", "invalid", "error"]
    info: str | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterValuesRequest(Payload):
    NAME = "meter_values"
    TYPE = MessageType.REQUEST

    evse_id: str | Absent = ABSENT
    timestamp: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterValuesResponse(MeterValuesData, Payload):
    NAME = "meter_values"
    TYPE = MessageType.RESPONSE


# -- the messages: updates ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterValuesUpdate(MeterValuesData, Payload):
    NAME = "meter_values"
    TYPE = MessageType.UPDATE


@dataclass(frozen=True, slots=True, kw_only=True)
class CsContactorStatusUpdate(ContactorStatusData, Payload):
    NAME = "cs_contactor_status"
    TYPE = MessageType.UPDATE


@dataclass(frozen=True, slots=True, kw_only=True)
class CpStatusUpdate(Payload):
    NAME = "cp_status"
    TYPE = MessageType.UPDATE

    evse_id: str
    connector_id: int
    state: CpPilotState
    max_voltage: float | Absent = ABSENT
    min_voltage: float | Absent = ABSENT
    duty_cycle: float | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class HardwareFaultUpdate(Payload):
    NAME = "hardware_fault"
    TYPE = MessageType.UPDATE

    evse_id: str
    component_name: str
    fault_name: FaultName


@dataclass(frozen=True, slots=True, kw_only=True)
class HlcChargingUpdate(Payload):
    NAME = "hlc_charging"
    TYPE = MessageType.UPDATE

    evse_id: str
    status: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class SlacStatusUpdate(Payload):
    NAME = "slac_status"
    TYPE = MessageType.UPDATE

    evse_id: str
    run_id: JsonValue
    status: Literal["matching", "failed", "matched", "unmatched", "basic_charging"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EvRatedLimitsUpdate(Payload):
    NAME = "ev_rated_limits"
    TYPE = MessageType.UPDATE

    evse_id: str
    ac_rated_limits: Mapping[str, JsonValue] | Absent = ABSENT
    dc_rated_limits: Mapping[str, JsonValue] | Absent = ABSENT
    departure_time: float | str | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionStatusUpdate(Payload):
    NAME = "transaction_status"
    TYPE = MessageType.UPDATE

    transaction_id: str | int
    status: Literal["started", "in_progress", "ended"]
    evse_id: str | Absent = ABSENT
    id_token: str | Absent = ABSENT
    token_type: str | Absent = ABSENT


SessionStatus = Literal[
    "Idle",
    "SessionSetup",
    "SupportedAppProtocol",
    "ServiceDiscovery",
    "ServiceDetail",
    "CertificateInstallation",
    "ServiceSelection",
    "AuthorizationSetup",
    "Authorization",
    "ChargeParameterDiscovery",
    "CableCheck",
    "PreCharge",
    "PowerDelivery",
    "ChargingLoop",
    "MeteringReceipt",
    "ScheduleExchange",
    "WeldingDetection",
    "SessionStop",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Iso15118StateInfoUpdate(Payload):
    NAME = "iso15118_state_info"
    TYPE = MessageType.UPDATE

    evse_id: str
    session_status: SessionStatus
    info: Iso15118StateInfo | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceStatusUpdate(Payload):
    NAME = "service_status"
    TYPE = MessageType.UPDATE

    service: str | Absent = ABSENT
    software_version: str | Absent = ABSENT
    api_version: str | Absent = ABSENT
    status: Literal["ready", "starting", "stopping", "error", "busy"]


# -- the messages: authorization, availability, the connector ---------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationRequest(Payload):
    NAME = "authorization"
    TYPE = MessageType.REQUEST

    token_type: PresentedTokenType
    id_token: str | Absent = ABSENT
    evse_id: str | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationResponse(Payload):
    """Josev's answer to the station's AuthorizationRequest: a response that travels from
    Josev, matched to the request by id."""

    NAME = "authorization"
    TYPE = MessageType.RESPONSE

    status: AuthorizationStatus
    evse_id: str | Absent = ABSENT
    group_id_token: str | Absent = ABSENT
    group_id_token_type: TokenType | Absent = ABSENT
    cache_expiry_date_time: str | Absent = ABSENT
    """Josev's date-time: parse_josev_date_time reads it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationUpdate(Payload):
    NAME = "authorization"
    TYPE = MessageType.UPDATE

    evse_id: str
    token_type: TokenType
    status: AuthorizationStatus
    id_token: str | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessAuthorizedTokenRequest(Payload):
    NAME = "process_authorized_token"
    TYPE = MessageType.REQUEST

    token_type: TokenType
    id_token: str | Absent = ABSENT
    evse_id: str | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessAuthorizedTokenResponse(Payload):
    NAME = "process_authorized_token"
    TYPE = MessageType.RESPONSE

    status: Literal["accepted", "discarded"]
    evse_id: str | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeAvailabilityRequest(Payload):
    NAME = "change_availability"
    TYPE = MessageType.REQUEST

    operational_status: OperationalStatus
    evse_id: str | Absent = ABSENT
    connector_id: int | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeAvailabilityResponse(Payload):
    NAME = "change_availability"
    TYPE = MessageType.RESPONSE

    status: Acceptance


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeAvailabilityUpdate(Payload):
    """A local availability change told to Josev; a connector_id needs its evse_id."""

    NAME = "change_availability"
    TYPE = MessageType.UPDATE

    operational_status: OperationalStatus
    evse_id: str | Absent = ABSENT
    connector_id: float | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class CsConnectorRequest(Payload):
    NAME = "cs_connector"
    TYPE = MessageType.REQUEST

    evse_id: str
    connector_id: float
    """A JSON number in Josev's rule: echo it in the response as it came."""
    action: Literal["lock", "unlock", "status"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CsConnectorResponse(Payload):
    NAME = "cs_connector"
    TYPE = MessageType.RESPONSE

    evse_id: str
    connector_id: float
    status: LockStatus
    info: str | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectorAndChargingUpdate(Payload):
    """At least one of the two statuses (the schema refuses neither)."""

    NAME = "connector_and_charging"
    TYPE = MessageType.UPDATE

    evse_id: str
    connector_id: float
    charging_status: ChargingStatus | Absent = ABSENT
    connector_status: ConnectorStatus | Absent = ABSENT


# -- our own topics: a presented token, an EVSE's session in its limits report -----------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenPresented(JsonObject):
    """csbridge/<evse_id>/token (TokenPresented.json)."""

    id_token: str
    token_type: PresentedTokenType


SessionState = Literal[
    "available",
    "occupied",
    "authorizing",
    "authorized",
    "cable_check",
    "precharge",
    "charging",
    "paused",
    "stopping",
    "finishing",
    "faulted",
    "unavailable",
]
SessionAuthorizationStatus = Literal["none", "pending", "accepted", "rejected", "deauthorized"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionAuthorization(JsonObject):
    status: SessionAuthorizationStatus
    token_type: TokenType | Absent = ABSENT
    id_token: str | Absent = ABSENT
    """At most 36 characters (OCPP's IdToken bound), or the report fails its schema."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LastStop(JsonObject):
    reason: str
    """At most 200 characters."""
    at: str
    """josev_date_time of the moment."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EvseSession(JsonObject):
    """The `session` block of csbridge/<evse_id>/limits (EvseLimitsReport.json)."""

    state: SessionState
    since: str
    """josev_date_time of the moment the state was entered."""
    authorization: SessionAuthorization
    last_stop: LastStop | Absent = ABSENT
    connector_status: ConnectorStatus
    charging_status: ChargingStatus | Absent = ABSENT
    lock: LockStatus | Absent = ABSENT
    meter_public_key: str | Absent = ABSENT
    """The EVSE's Eichrecht meter's public key, once read."""


PAYLOADS: Mapping[tuple[str, str], type[Payload]] = {
    (payload.NAME, payload.TYPE): payload
    for payload in (
        CsParametersRequest,
        CsParametersResponse,
        CsStatusAndLimitsRequest,
        CsStatusAndLimitsResponse,
        CsStatusAndLimitsUpdate,
        CableCheckRequest,
        CableCheckResponse,
        CsContactorStatusRequest,
        CsContactorStatusResponse,
        CsContactorStatusUpdate,
        PowerElectronicsSetpointRequest,
        PowerElectronicsSetpointResponse,
        StopChargingRequest,
        StopChargingResponse,
        CpPwmRequest,
        CpPwmResponse,
        MeterValuesRequest,
        MeterValuesResponse,
        MeterValuesUpdate,
        CpStatusUpdate,
        HardwareFaultUpdate,
        HlcChargingUpdate,
        SlacStatusUpdate,
        EvRatedLimitsUpdate,
        TransactionStatusUpdate,
        Iso15118StateInfoUpdate,
        ServiceStatusUpdate,
        AuthorizationRequest,
        AuthorizationResponse,
        AuthorizationUpdate,
        ProcessAuthorizedTokenRequest,
        ProcessAuthorizedTokenResponse,
        ChangeAvailabilityRequest,
        ChangeAvailabilityResponse,
        ChangeAvailabilityUpdate,
        CsConnectorRequest,
        CsConnectorResponse,
        ConnectorAndChargingUpdate,
    )
}
"""The class of every kind of message, by (name, type): the one lookup from the wire to a class.
A MessageType is a str, so either spelling of the type finds it."""


# -- reset and device_model --


@dataclass(frozen=True, slots=True, kw_only=True)
class ResetRequest(Payload):
    """One EVSE (evse_id) or, without it, the whole station."""

    NAME = "reset"
    TYPE = MessageType.REQUEST

    evse_id: str | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class ResetResponse(Payload):
    NAME = "reset"
    TYPE = MessageType.RESPONSE

    status: Acceptance


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceModelRequest(Payload):
    NAME = "device_model"
    TYPE = MessageType.REQUEST


OcppConnectorType = Literal[
    "cCCS1",
    "cCCS2",
    "cG105",
    "cTesla",
    "cType1",
    "cType2",
    "s309-1P-16A",
    "s309-1P-32A",
    "s309-3P-16A",
    "s309-3P-32A",
    "sBS1361",
    "sCEE-7-7",
    "sType2",
    "sType3",
    "Other1PhMax16A",
    "Other1PhOver16A",
    "Other3Ph",
    "Pan",
    "wInductive",
    "wResonant",
    "Undetermined",
    "Unknown",
]
"""OCPP 2.0.1's connector type names, as Josev's device_model takes them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceModelConnector(JsonObject):
    id: int
    connector_type: OcppConnectorType


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceModelEvse(JsonObject):
    ocpp_id: int
    iso15118_id: str
    power_kw: float
    supply_phases: int
    connectors: Sequence[DeviceModelConnector]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceModelResponse(Payload):
    """basic_auth_password is a secret: never log this message."""

    NAME = "device_model"
    TYPE = MessageType.RESPONSE

    model: str
    vendor: str
    serial_number: str
    firmware_version: str
    ocpp_version: Literal["ocpp1.6", "ocpp2.0.1", "ocpp2.1"] | Absent = ABSENT
    ocpp_csms_url: str
    security_profile: int
    identity: str
    basic_auth_password: str
    sim_iccid: str | Absent = ABSENT
    sim_imsi: str | Absent = ABSENT
    evses: Sequence[DeviceModelEvse]


# -- maintenance: update_firmware, upload_logs and their status updates ------------------------

FirmwareStatus = Literal[
    "downloading",
    "downloaded",
    "download_failed",
    "download_scheduled",
    "download_paused",
    "idle",
    "installing",
    "installed",
    "installation_failed",
    "install_rebooting",
    "install_scheduled",
    "install_verification_failed",
    "invalid_signature",
    "signature_verified",
]
"""What a firmware_command prints, one word a line; each goes to Josev as firmware_status."""
LogsStatus = Literal[
    "accepted_canceled",
    "bad_message",
    "idle",
    "not_supported_operation",
    "permission_denied",
    "upload_failure",
    "uploaded",
    "uploading",
]
"""What a logs_command prints, one word a line; each goes to Josev as logs_status."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateFirmwareRequest(Payload):
    NAME = "update_firmware"
    TYPE = MessageType.REQUEST

    request_id: int
    location: str
    retrieve_datetime: str
    """Josev's date-time (parse_josev_date_time reads it), as are the others below."""
    install_datetime: str | Absent = ABSENT
    retries: float | Absent = ABSENT
    retry_interval: float | Absent = ABSENT
    signing_certificate: str | Absent = ABSENT
    signature: str | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateFirmwareResponse(Payload):
    NAME = "update_firmware"
    TYPE = MessageType.RESPONSE

    status: Literal[
        "accepted", "rejected", "accepted_canceled", "invalid_certificate", "revoked_certificate"
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmwareStatusUpdate(Payload):
    NAME = "firmware_status"
    TYPE = MessageType.UPDATE

    request_id: int
    status: FirmwareStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadLogsRequest(Payload):
    NAME = "upload_logs"
    TYPE = MessageType.REQUEST

    request_id: int
    log_type: Literal["diagnostics_log", "security_log"]
    remote_location: str
    retries: float | Absent = ABSENT
    retry_interval: float | Absent = ABSENT
    oldest_timestamp: str | Absent = ABSENT
    latest_timestamp: str | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadLogsResponse(Payload):
    NAME = "upload_logs"
    TYPE = MessageType.RESPONSE

    status: Literal["accepted", "rejected", "accepted_canceled"]
    filename: str | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class LogsStatusUpdate(Payload):
    NAME = "logs_status"
    TYPE = MessageType.UPDATE

    request_id: int
    status: LogsStatus


# -- service status and what Josev tells the driver and the station ----------------------------

JosevService = Literal["slac", "iso15118", "ocpp", "gridcode", "smart_charging"]
ServiceState = Literal["ready", "starting", "stopping", "error", "busy"]


class OpenData(Payload):
    """The data of an update Josev's rules give no fields the station relies on: kept whole, as
    it came (what the station republishes or shows), and written back the same."""

    __slots__ = ("raw",)

    raw: Mapping[str, JsonValue]

    def to_json(self) -> dict[str, Any]:
        return dict(getattr(self, "raw", {}))

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Self:
        made = cls()
        object.__setattr__(made, "raw", dict(document))  # frozen: set once, here
        return made

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, OpenData)
            and type(other) is type(self)
            and (self.to_json() == other.to_json())
        )

    def __hash__(self) -> int:
        return hash(type(self))


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceStatusRequest(Payload):
    """The station asks Josev how one of its services is doing."""

    NAME = "service_status"
    TYPE = MessageType.REQUEST

    service: JosevService | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceStatusResponse(Payload):
    """Josev's answer, matched to the station's request by id."""

    NAME = "service_status"
    TYPE = MessageType.RESPONSE

    service: str
    software_version: str
    api_version: str
    status: ServiceState


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockSyncUpdate(Payload):
    NAME = "clock_sync"
    TYPE = MessageType.UPDATE

    current_time: str
    """Josev's date-time: parse_josev_date_time reads it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DisplayParamsUpdate(Payload):
    NAME = "display_params"
    TYPE = MessageType.UPDATE

    evse_id: str
    present_soc: JsonValue | Absent = ABSENT
    charging_complete: JsonValue | Absent = ABSENT
    min_soc: JsonValue | Absent = ABSENT
    target_soc: JsonValue | Absent = ABSENT
    max_soc: JsonValue | Absent = ABSENT
    remaining_time_to_min_soc: JsonValue | Absent = ABSENT
    remaining_time_to_target_soc: JsonValue | Absent = ABSENT
    remaining_time_to_max_soc: JsonValue | Absent = ABSENT
    battery_energy_capacity: JsonValue | Absent = ABSENT
    inlet_hot: JsonValue | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class DisplayAndPersonalMsgUpdate(OpenData):
    NAME = "display_and_personal_msg"
    TYPE = MessageType.UPDATE


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class CostUpdatedUpdate(OpenData):
    NAME = "cost_updated"
    TYPE = MessageType.UPDATE


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class BootStatusUpdate(OpenData):
    NAME = "boot_status"
    TYPE = MessageType.UPDATE


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class WebsocketStatusUpdate(OpenData):
    NAME = "websocket_status"
    TYPE = MessageType.UPDATE


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class CertificateInstallationStatusUpdate(OpenData):
    NAME = "certificate_installation_status"
    TYPE = MessageType.UPDATE


PAYLOADS = {
    **PAYLOADS,
    **{
        (payload.NAME, payload.TYPE): payload
        for payload in (
            ResetRequest,
            ResetResponse,
            DeviceModelRequest,
            DeviceModelResponse,
            UpdateFirmwareRequest,
            UpdateFirmwareResponse,
            FirmwareStatusUpdate,
            UploadLogsRequest,
            UploadLogsResponse,
            LogsStatusUpdate,
            ServiceStatusRequest,
            ServiceStatusResponse,
            ClockSyncUpdate,
            DisplayParamsUpdate,
            DisplayAndPersonalMsgUpdate,
            CostUpdatedUpdate,
            BootStatusUpdate,
            WebsocketStatusUpdate,
            CertificateInstallationStatusUpdate,
        )
    },
}


# -- OCPP requests csbridge refuses (Josev Pro relays them; csbridge speaks no OCPP) --

OcppVersion = Literal["ocpp1.6", "ocpp2.0.1", "ocpp2.1"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OcppComponent(JsonObject):
    name: str
    instance: str | Absent = ABSENT
    evse_id: str | Absent = ABSENT
    """Any string, as Josev's rule allows: OCPP's, not necessarily one of our EVSEs."""
    connector_id: int | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class OcppVariable(JsonObject):
    name: str
    instance: str | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class SetVariableValidateRequest(Payload):
    NAME = "set_variable_validate"
    TYPE = MessageType.REQUEST

    attribute_value: str
    attribute_type: Literal["MinSet", "MaxSet", "Actual", "Target"] | Absent = ABSENT
    component: OcppComponent
    variable: OcppVariable


@dataclass(frozen=True, slots=True, kw_only=True)
class SetVariableValidateResponse(Payload):
    NAME = "set_variable_validate"
    TYPE = MessageType.RESPONSE

    result: Literal["rejected"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerateCsrRequest(Payload):
    NAME = "generate_csr"
    TYPE = MessageType.REQUEST

    certificate_type: str
    common_name: str
    organization_name: str
    country_name: str
    evse_id: str | Absent = ABSENT
    algorithm: str | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerateCsrResponse(Payload):
    NAME = "generate_csr"
    TYPE = MessageType.RESPONSE

    status: Literal["rejected"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DataTransferRequest(Payload):
    NAME = "data_transfer"
    TYPE = MessageType.REQUEST

    vendor_id: str
    message_id: str | Absent = ABSENT
    data: JsonValue | Absent = ABSENT


@dataclass(frozen=True, slots=True, kw_only=True)
class DataTransferResponse(Payload):
    NAME = "data_transfer"
    TYPE = MessageType.RESPONSE

    status: Literal["unknown_vendor_id"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OcppMessageRequest(Payload):
    NAME = "ocpp_message"
    TYPE = MessageType.REQUEST

    ocpp_version: OcppVersion
    message_name: str
    payload: Mapping[str, JsonValue]


@dataclass(frozen=True, slots=True, kw_only=True)
class OcppMessageResponse(Payload):
    """An OCPP-J CallError: the one answer Josev's rule allows that claims nothing done."""

    NAME = "ocpp_message"
    TYPE = MessageType.RESPONSE

    ocpp_version: OcppVersion
    message_type: Literal["CallError"]
    error_code: Literal["NotSupported"]
    error_description: str
    """At most 255 characters."""
    error_details: Mapping[str, JsonValue]


PAYLOADS = {
    **PAYLOADS,
    **{
        (payload.NAME, payload.TYPE): payload
        for payload in (
            SetVariableValidateRequest,
            SetVariableValidateResponse,
            GenerateCsrRequest,
            GenerateCsrResponse,
            DataTransferRequest,
            DataTransferResponse,
            OcppMessageRequest,
            OcppMessageResponse,
        )
    },
}
