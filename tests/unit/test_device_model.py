"""The device model's pieces without a broker: OCPP connector types by region, supply phases and
nameplate power per EVSE, [station.identity]'s validation, the password file, and the answer
checked against DeviceModelResponse.json."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import orjson
import pytest

from csbridge.config import Config, ConfigError, parse_config
from csbridge.messages import (
    DeviceModelRequest,
    Direction,
    EnvelopeCodec,
    Message,
    SchemaRegistry,
)
from csbridge.service.identity import (
    DeviceModel,
    device_model_evses,
    ocpp_connector_type,
    read_basic_auth_password,
)
from csbridge.support import Counters, example_config
from tests.support import small_station

PASSWORD = "pa55-word"  # noqa: S105 - the test's own
IDENTITY = """
[station.identity]
model = "m"
vendor = "v"
serial_number = "s-1"
firmware_version = "1.0"
ocpp_csms_url = "{url}"
security_profile = {profile}
identity = "s-1"
basic_auth_password_file = "{password_file}"
{extra}
"""


def _config(
    password_file: Path,
    *,
    url: str = "wss://csms.example.com/ocpp",
    profile: int = 2,
    extra: str = "",
    station: str = "",
    evse_tables: str = "",
) -> Config:
    identity = IDENTITY.format(url=url, profile=profile, password_file=password_file, extra=extra)
    text = small_station(("DE*T*E1", evse_tables), station=station)
    return parse_config(text + identity, "test.toml")


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text(f"{PASSWORD}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("ours", "region", "ocpp"),
    [
        ("DC_extended", "eu", "cCCS2"),
        ("DC_combo_core", "eu", "cCCS2"),
        ("DC_extended", "na", "cCCS1"),
        ("DC_combo_core", "na", "cCCS1"),
        ("AC_three_phase_core", "eu", "cType2"),
        ("AC_three_phase_core", "na", "cType2"),
        ("AC_single_phase_core", "eu", "cType2"),
        ("AC_single_phase_core", "na", "cType1"),
        ("DC_core", "eu", "Unknown"),
        ("DC_unique", "na", "Unknown"),
    ],
)
def test_connector_types_map_to_ocpp_by_region(ours: str, region: str, ocpp: str) -> None:
    assert ocpp_connector_type(ours, region) == ocpp


def test_the_example_station_is_told_as_ocpp_knows_it() -> None:
    config = parse_config(example_config("sim-station.toml").read_text(encoding="utf-8"))
    evses = [evse.to_json() for evse in device_model_evses(config)]
    assert evses == [
        {
            "ocpp_id": 1,
            "iso15118_id": "DE*CSB*E0001",
            "power_kw": 150.0,
            "supply_phases": 3,
            "connectors": [{"id": 1, "connector_type": "cCCS2"}],
        },
        {
            "ocpp_id": 2,
            "iso15118_id": "DE*CSB*E0002",
            "power_kw": 22.08,  # 32 A x 230 V x 3 phases
            "supply_phases": 3,
            "connectors": [{"id": 1, "connector_type": "cType2"}],
        },
    ]


def test_region_na_and_a_single_phase_grid(password_file: Path) -> None:
    config = _config(
        password_file,
        station='region = "na"\n',
        evse_tables="[evse.installation]\ngrid_phases = 1\n",
    )
    (evse,) = device_model_evses(config)
    assert evse.supply_phases == 1
    assert evse.connectors[0].connector_type == "cCCS1"


@pytest.mark.parametrize(
    "url", ["https://csms.example.com/ocpp", "csms.example.com", "ws://", "ftp://x/y"]
)
def test_a_csms_address_that_is_not_a_websocket_is_refused(password_file: Path, url: str) -> None:
    with pytest.raises(ConfigError, match=r"station\.identity\.ocpp_csms_url"):
        _config(password_file, url=url)


@pytest.mark.parametrize("profile", [0, 4])
def test_a_security_profile_outside_one_to_three_is_refused(
    password_file: Path, profile: int
) -> None:
    with pytest.raises(ConfigError, match=r"station\.identity\.security_profile"):
        _config(password_file, profile=profile)


def test_an_evse_without_a_rated_power_needs_nameplate_kw(password_file: Path) -> None:
    modules = (
        '[[evse.module]]\nname = "m1"\n'
        "simulated = { max_voltage_v = 1000, max_current_a = 80, max_power_w = 40000 }\n"
    )
    station = small_station(("DE*T*E1", modules))
    station = station.replace("max_power_w = 150000\n", "", 1).replace("max_current_a = 200\n", "")

    def with_identity(extra: str) -> Config:
        identity = IDENTITY.format(
            url="ws://csms/ocpp", profile=1, password_file=password_file, extra=extra
        )
        return parse_config(station + identity, "test.toml")

    with pytest.raises(ConfigError, match=r"DE\*T\*E1 states no rated power"):
        with_identity("")
    (evse,) = device_model_evses(with_identity('nameplate_kw = { "DE*T*E1" = 90.0 }'))
    assert evse.power_kw == 90.0
    with pytest.raises(ConfigError, match=r"nameplate_kw: no EVSE 'DE\*T\*E9'"):
        with_identity('nameplate_kw = { "DE*T*E1" = 90.0, "DE*T*E9" = 5.0 }')


def test_the_password_is_read_from_its_file_and_a_missing_one_is_named(
    password_file: Path, tmp_path: Path
) -> None:
    config = _config(password_file)
    assert config.station.identity is not None
    assert read_basic_auth_password(config.station.identity) == PASSWORD
    missing = _config(tmp_path / "nothing-here").station.identity
    assert missing is not None
    with pytest.raises(ConfigError, match="cannot read") as raised:
        read_basic_auth_password(missing)
    assert raised.value.source == "station.identity.basic_auth_password_file"


def test_the_answer_passes_its_schema_and_the_password_goes_nowhere_else(
    password_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password_file.chmod(0o644)
    config = _config(
        password_file, extra='ocpp_version = "ocpp2.0.1"\nsim_imsi = "262011234567890"'
    )
    model = DeviceModel(config, Counters())
    asyncio.run(model.load())
    answer = model.device_model(DeviceModelRequest())
    assert answer is not None
    codec = EnvelopeCodec(SchemaRegistry(), Direction.FROM_JOSEV, 1 << 16)
    document = orjson.loads(codec.encode(Message(answer)))  # raises if it breaks its schema
    assert document["data"]["basic_auth_password"] == PASSWORD
    assert document["data"]["sim_imsi"] == "262011234567890"
    assert "sim_iccid" not in document["data"]
    assert "event=secret_file_exposed" in caplog.text  # readable by others: said
    assert PASSWORD not in caplog.text
    assert PASSWORD not in config.model_dump_json()


def test_an_unreadable_password_leaves_the_model_unanswered_not_the_station(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    counters = Counters()
    model = DeviceModel(_config(tmp_path / "absent"), counters)
    asyncio.run(model.load())
    assert "event=identity_unreadable" in caplog.text
    assert model.device_model(DeviceModelRequest()) is None
    assert model.device_model(DeviceModelRequest()) is None
    assert counters.get("device_model_unanswered") == 2
    assert caplog.text.count("event=device_model_unconfigured") == 1
