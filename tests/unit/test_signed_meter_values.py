"""signed_meter_values in meter_values, held against Josev's rules (josev-mqtt-api.md section 9):
each entry has signed_meter_data (<= 2500 characters), signing_method and encoding_method (<= 50
each) and public_key (<= 2500), and an OCPP measurand name; nothing else. The station always
names the measurand, though Josev's rules would let it out. Both schema backends are asked."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from csbridge.messages import (
    MeterValuesResponse,
    MeterValuesUpdate,
    PerPhase,
    SchemaRegistry,
    SignedMeterValue,
)
from csbridge.messages.envelope import InboundRejected, RejectReason, check_document
from csbridge.messages.registry import Backend, fast_backend_available
from tests.support import load_fixture

BACKENDS = [Backend.REFERENCE, *([Backend.FAST] if fast_backend_available() else [])]
LIMITS = {
    "signed_meter_data": 2500,
    "signing_method": 50,
    "encoding_method": 50,
    "public_key": 2500,
}
ENTRY = "$.data.signed_meter_values[0]"


@pytest.fixture(scope="module", params=BACKENDS)
def registry(request: pytest.FixtureRequest) -> SchemaRegistry:
    return SchemaRegistry(backend=request.param)


def _signed(kind: str = "update") -> dict[str, Any]:
    document = copy.deepcopy(load_fixture("meter_values_update_signed", "messages-session"))
    document["type"] = kind
    return document


def _entry(document: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = document["data"]["signed_meter_values"][0]
    return entry


def _refused(registry: SchemaRegistry, document: dict[str, Any]) -> InboundRejected:
    with pytest.raises(InboundRejected) as caught:
        check_document(registry, document)
    assert caught.value.reason is RejectReason.SCHEMA
    return caught.value


@pytest.mark.parametrize("kind", ["update", "response"])
@pytest.mark.parametrize(("field", "limit"), sorted(LIMITS.items()))
def test_each_string_may_reach_its_limit_and_not_pass_it(
    registry: SchemaRegistry, kind: str, field: str, limit: int
) -> None:
    at_limit = _signed(kind)
    _entry(at_limit)[field] = "A" * limit
    check_document(registry, at_limit)
    over = _signed(kind)
    _entry(over)[field] = "A" * (limit + 1)
    refused = _refused(registry, over)
    assert (refused.where, refused.why.split(":")[0]) == (f"{ENTRY}.{field}", "maxLength")


@pytest.mark.parametrize(
    "field", ["measurand", "signed_meter_data", "signing_method", "encoding_method", "public_key"]
)
def test_every_field_is_required(registry: SchemaRegistry, field: str) -> None:
    document = _signed()
    del _entry(document)[field]
    refused = _refused(registry, document)
    assert (refused.where, refused.why.split(":")[0]) == (ENTRY, "required")


def test_the_measurand_is_an_ocpp_name_and_nothing_is_added(registry: SchemaRegistry) -> None:
    document = _signed()
    _entry(document)["measurand"] = "Energy.Active.Import"
    assert _refused(registry, document).where == f"{ENTRY}.measurand"
    document = _signed()
    _entry(document)["timestamp"] = "2026-12-01T22:50:00Z"
    assert _refused(registry, document).why.split(":")[0] == "additionalProperties"
    document = _signed()
    document["data"]["signed_meter_values"] = []
    assert _refused(registry, document).where == "$.data.signed_meter_values"


def test_exported_energy_is_a_non_negative_register(registry: SchemaRegistry) -> None:
    document = _signed()
    document["data"]["total_active_energy_exported"] = -1
    assert _refused(registry, document).where == "$.data.total_active_energy_exported"


def test_the_classes_write_what_the_schema_takes(registry: SchemaRegistry) -> None:
    """The message classes build a signed reading the schema passes, fields in schema names."""
    zero = PerPhase(l1=0.0, l2=0.0, l3=0.0)
    signed = SignedMeterValue(
        measurand="Energy.Active.Import.Register",
        signed_meter_data="OCMF|{}|{}",
        signing_method="ECDSA-secp256r1-SHA256",
        encoding_method="OCMF",
        public_key="04AB",
    )
    for cls in (MeterValuesUpdate, MeterValuesResponse):
        data = cls(
            evse_id="DE*CSB*E0001",
            timestamp="2026-12-01T22:50:00.000Z",
            voltage=zero,
            current=zero,
            power_factor=1.0,
            frequency=0.0,
            total_active_energy_imported=1.0,
            total_reactive_energy_imported=0.0,
            total_active_energy_exported=2.0,
            signed_meter_values=[signed],
        ).to_json()
        assert data["signed_meter_values"] == [
            {
                "measurand": "Energy.Active.Import.Register",
                "signed_meter_data": "OCMF|{}|{}",
                "signing_method": "ECDSA-secp256r1-SHA256",
                "encoding_method": "OCMF",
                "public_key": "04AB",
            }
        ]
        kind = cls.TYPE.value
        document = {"id": _signed()["id"], "name": "meter_values", "type": kind, "data": data}
        check_document(registry, document)
