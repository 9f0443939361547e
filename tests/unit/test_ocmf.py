"""OCMF records read as the format describes them (S.A.F.E. e.V. OCMF-en.md): three sections
`OCMF|payload|signature`, the payload's mandatory keys, the signature's SD, readings scaled by
their RU. The records are written here by hand from those facts."""

from __future__ import annotations

import pytest

from csbridge.sources.meters import OcmfError, parse_ocmf

PAYLOAD = (
    '{"FV":"1.0","GI":"DCBM","GS":"S1","PG":"T7","MV":"LEM","MM":"DCBM 400","MS":"S1",'
    '"IS":true,"IL":"NONE","IT":"ISO14443","ID":"04A2B9C1",'
    '"RD":[{"TM":"2026-12-01T13:22:04,000+0200 S","TX":"B","RV":2935.6,"RI":"01-00:01.08.00.FF",'
    '"RU":"kWh","RT":"DC","EF":"","ST":"G"},'
    '{"TM":"2026-12-01T13:52:04,000+0200 S","TX":"E","RV":2960100,"RI":"01-00:01.08.00.FF",'
    '"RU":"Wh","RT":"DC","EF":"","ST":"G"}]}'
)
SIGNATURE = '{"SA":"ECDSA-secp256r1-SHA256","SD":"3045022100AB"}'


def test_a_record_keeps_its_text_byte_for_byte_and_reads_its_parts() -> None:
    text = f"OCMF|{PAYLOAD}|{SIGNATURE}"
    record = parse_ocmf(f"{text}\r\n")
    assert record.text == text
    assert record.meter_serial == "S1"
    assert record.signing_algorithm == "ECDSA-secp256r1-SHA256"
    assert record.signature_encoding == "hex"  # OCMF's default when SE is left out
    begin, end = record.readings
    assert (begin.kind, begin.status, end.kind) == ("B", "G", "E")
    assert begin.value_wh == pytest.approx(2_935_600.0)  # 2935.6 kWh
    assert end.value_wh == pytest.approx(2_960_100.0)  # given in Wh
    assert begin.time.endswith(" S")


def test_base64_signature_and_an_unknown_unit_are_read_as_written() -> None:
    payload = PAYLOAD.replace('"RU":"kWh"', '"RU":"varh"')
    record = parse_ocmf(f'OCMF|{payload}|{{"SE":"base64","SD":"MEUCIQ=="}}')
    assert record.signature_encoding == "base64"
    assert record.readings[0].value_wh is None  # not an energy unit: no made-up scale


NO_MS = PAYLOAD.replace('"MS":"S1",', "")
NO_PG_IT = PAYLOAD.replace('"PG":"T7",', "").replace('"IT":"ISO14443",', "")
RD_OBJECT = PAYLOAD.replace('"RD":[', '"RD":{"x":[').replace("]}", "]}}")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (f"OCMF|{PAYLOAD}", "2 sections"),
        (f"OCMF|{PAYLOAD}|{SIGNATURE}|extra", "4 sections"),
        (f"OCMX|{PAYLOAD}|{SIGNATURE}", "header"),
        (f"OCMF|{{not json}}|{SIGNATURE}", "payload is not JSON"),
        (f"OCMF|[1,2]|{SIGNATURE}", "payload is not a JSON object"),
        (f"OCMF|{PAYLOAD}|not json", "signature is not JSON"),
        (f"OCMF|{NO_MS}|{SIGNATURE}", "lacks MS"),
        (f"OCMF|{NO_PG_IT}|{SIGNATURE}", "lacks PG, IT"),
        (f"OCMF|{RD_OBJECT}|{SIGNATURE}", "RD is not a list"),
        (f'OCMF|{PAYLOAD}|{{"SA":"ECDSA-secp256r1-SHA256"}}', "lacks SD"),
        (f'OCMF|{PAYLOAD}|{{"SD":""}}', "lacks SD"),
        ("", "1 sections"),
    ],
)
def test_what_is_no_ocmf_record_is_refused_saying_why(text: str, why: str) -> None:
    with pytest.raises(OcmfError, match=why):
        parse_ocmf(text)
