"""The answer to a request naming an EVSE the station does not have: the refusal its response's
status allows, so Josev hears at once instead of waiting out its timeout (30 to 60 s) with no
answer. A response without a status (meter_values) has no refusal: such a request gets none."""

from __future__ import annotations

from csbridge.messages import (
    CableCheckRequest,
    CableCheckResponse,
    ChangeAvailabilityResponse,
    CpPwmRequest,
    CpPwmResponse,
    CsConnectorRequest,
    CsConnectorResponse,
    CsContactorStatusRequest,
    CsContactorStatusResponse,
    PowerElectronicsSetpointRequest,
    PowerElectronicsSetpointResponse,
    StopChargingRequest,
    StopChargingResponse,
)

UNKNOWN_EVSE_INFO = "no such EVSE at this station"
"""The `info` of a refusal that has one: fixed text, never the evse_id as sent."""


def refuse_cable_check(message: CableCheckRequest) -> CableCheckResponse:
    """Finished with isolation `invalid`: Josev ends the session, as for a failed check."""
    return CableCheckResponse(
        evse_id=message.evse_id, cable_check_status="finished", isolation_level="invalid"
    )


def refuse_contactor_status(message: CsContactorStatusRequest) -> CsContactorStatusResponse:
    return CsContactorStatusResponse(
        evse_id=message.evse_id, status="error", info=UNKNOWN_EVSE_INFO
    )


def refuse_setpoint(message: PowerElectronicsSetpointRequest) -> PowerElectronicsSetpointResponse:
    return PowerElectronicsSetpointResponse(evse_id=message.evse_id, status="rejected")


def refuse_stop_charging(message: StopChargingRequest) -> StopChargingResponse:
    return StopChargingResponse(evse_id=message.evse_id, status="rejected")


def refuse_cp_pwm(message: CpPwmRequest) -> CpPwmResponse:
    return CpPwmResponse(evse_id=message.evse_id, status="error", info=UNKNOWN_EVSE_INFO)


def refuse_cs_connector(message: CsConnectorRequest) -> CsConnectorResponse:
    """`unknown`: the station cannot say anything of a lock it does not have."""
    return CsConnectorResponse(
        evse_id=message.evse_id,
        connector_id=message.connector_id,
        status="unknown",
        info=UNKNOWN_EVSE_INFO,
    )


def refuse_change_availability() -> ChangeAvailabilityResponse:
    return ChangeAvailabilityResponse(status="rejected")
