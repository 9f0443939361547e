"""[evse.meter] `signing`: an Eichrecht DC meter that signs an EVSE's transactions beside the
meter that measures (examples/bpt-station.toml: an IVT-S shunt and a LEM DCBM). No request is
made here: the signing meter's client is only built."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from csbridge.config import Config, MeterConfig, load_config
from csbridge.sources.meters import MeterSources, RestDcMeter
from csbridge.support import Counters
from csbridge.support.resources import example_config
from tests.support import station_config

BASE = station_config("mqtt://127.0.0.1:1883", "meter-signing")
LEM = {"url": "http://127.0.0.1:8710"}


def _with_meter(meter: MeterConfig) -> Config:
    evses = [BASE.evse[0].model_copy(update={"meter": meter}), *BASE.evse[1:]]
    return BASE.model_copy(update={"evse": evses})


def test_a_signing_meter_beside_a_measuring_one_is_taken() -> None:
    meter = MeterConfig.model_validate({"kind": "simulated", "simulated": {}, "signing": LEM})
    assert meter.signing is not None
    assert meter.signing.url == LEM["url"]


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"kind": "rest", "rest": LEM, "signing": LEM}, "signs its own transactions"),
        ({"kind": "simulated", "signing": {"url": "ftp://meter"}}, "should match pattern"),
    ],
)
def test_a_signing_meter_where_it_cannot_be_is_refused(
    settings: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        MeterConfig.model_validate(settings)


async def test_the_signing_meter_signs_the_evses_transactions() -> None:
    meter = MeterConfig.model_validate({"kind": "simulated", "signing": LEM})
    meters = MeterSources(_with_meter(meter), lambda *_: None, Counters())
    try:
        signers = meters.signers()
        assert list(signers) == [BASE.evse[0].evse_id]
        assert isinstance(signers[BASE.evse[0].evse_id], RestDcMeter)
        # the measuring meter stays the simulated one: the signer only signs
        assert meters.meters[BASE.evse[0].evse_id].kind == "simulated"
    finally:
        for client in meters.signing.values():
            await client.close()


def test_the_bpt_example_measures_with_the_shunt_and_signs_with_the_lem() -> None:
    config = load_config(example_config("bpt-station.toml"))
    dc, ac = config.evse
    assert dc.bpt
    assert dc.meter is not None
    assert (dc.meter.kind, dc.meter.simulated is not None) == ("can", True)
    assert dc.meter.signing is not None
    assert all(module.bidirectional for module in dc.module)
    assert ac.meter is not None
    assert ac.meter.modbus is not None
    assert (ac.meter.kind, ac.meter.modbus.tcp is not None) == ("modbus", True)
    assert ac.meter.simulated is not None
