"""The OCPP requests Josev Pro relays that csbridge refuses at once: `set_variable_validate`,
`generate_csr`, `data_transfer`, `ocpp_message`.

csbridge speaks no OCPP and keeps neither OCPP variables nor a key store, so none of these can
be carried out. Each still gets the refusal Josev's rule for its response allows, so Josev never
waits out its timeout (30 to 60 s) for an answer that would not come: `rejected` for a variable
or a CSR, `unknown_vendor_id` for vendor data (what OCPP's DataTransfer prescribes for a vendor
the receiver has no extension for), an OCPP-J CallError `NotSupported` for a raw OCPP message.
Each refusal is logged (one line a minute per message name) and counted in
`csbridge_ocpp_requests_refused_total{name}`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from csbridge.messages import (
    DataTransferRequest,
    DataTransferResponse,
    GenerateCsrRequest,
    GenerateCsrResponse,
    OcppMessageRequest,
    OcppMessageResponse,
    SetVariableValidateRequest,
    SetVariableValidateResponse,
    handles,
    value_or,
)
from csbridge.support import Counted, Counters, RateLimitedLog

log = logging.getLogger("csbridge.session")

NOT_SUPPORTED = "csbridge speaks no OCPP"
"""The CallError's description (OCPP-J caps it at 255 characters)."""


class OcppRefusals:
    """Answers the four OCPP requests with their refusals."""

    def __init__(self, counters: Counters, clock: Callable[[], float]) -> None:
        self._counters = counters
        self._log = RateLimitedLog(log, clock)

    def _refused(self, name: str, what: str) -> None:
        self._counters.add(Counted.OCPP_REFUSED, name)
        self._log.warning(
            ("ocpp_refused", name),
            "event=ocpp_refused message=%s %s why=csbridge speaks no OCPP",
            name,
            what,
        )

    @handles(SetVariableValidateRequest)
    def set_variable_validate(
        self, message: SetVariableValidateRequest
    ) -> SetVariableValidateResponse:
        self._refused(
            message.NAME,
            f"component={message.component.name!r} variable={message.variable.name!r}",
        )
        return SetVariableValidateResponse(result="rejected")

    @handles(GenerateCsrRequest)
    def generate_csr(self, message: GenerateCsrRequest) -> GenerateCsrResponse:
        self._refused(message.NAME, f"certificate_type={message.certificate_type}")
        return GenerateCsrResponse(status="rejected")

    @handles(DataTransferRequest)
    def data_transfer(self, message: DataTransferRequest) -> DataTransferResponse:
        self._refused(
            message.NAME,
            f"vendor_id={message.vendor_id!r} message_id={value_or(message.message_id, '-')!r}",
        )
        return DataTransferResponse(status="unknown_vendor_id")

    @handles(OcppMessageRequest)
    def ocpp_message(self, message: OcppMessageRequest) -> OcppMessageResponse:
        self._refused(
            message.NAME, f"ocpp_version={message.ocpp_version} ocpp={message.message_name}"
        )
        return OcppMessageResponse(
            ocpp_version=message.ocpp_version,
            message_type="CallError",
            error_code="NotSupported",
            error_description=NOT_SUPPORTED,
            error_details={},
        )
