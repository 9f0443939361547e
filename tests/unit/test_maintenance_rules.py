"""update_firmware and upload_logs on paper: the schemas take what Josev's rules take and refuse
the rest (a location of another scheme, a missing request_id), what we send is exactly Josev's
words, the request becomes the documented `--field=value` arguments, secrets never leave in a
log upload, and an upload location says where the file lands."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from csbridge.config import REMOVED, Config, redacted, redacted_config, without_url_password
from csbridge.messages import (
    FirmwareStatusUpdate,
    InboundRejected,
    LogsStatusUpdate,
    SchemaRegistry,
    check_document,
)
from csbridge.messages.registry import Direction
from csbridge.service.maintenance import RULES, JobKind, archive_name, command_arguments
from csbridge.tools.log_upload import NotSupportedError, UploadError, target_of
from tests.support import station_config

REGISTRY = SchemaRegistry()
ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def _message(name: str, message_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": ID, "name": name, "type": message_type, "data": data}


def _firmware(**data: Any) -> dict[str, Any]:
    base = {
        "request_id": 7,
        "location": "https://fw.example/image.bin",
        "retrieve_datetime": "2026-12-01T10:00:00Z",
    }
    return _message("update_firmware", "request", {**base, **data})


def _logs(**data: Any) -> dict[str, Any]:
    base = {
        "request_id": 8,
        "log_type": "diagnostics_log",
        "remote_location": "ftp://logs.example/in/",
    }
    return _message("upload_logs", "request", {**base, **data})


def _rejected_at(document: dict[str, Any]) -> str:
    with pytest.raises(InboundRejected) as caught:
        check_document(REGISTRY, document, Direction.FROM_JOSEV)
    return caught.value.where


# -- what Josev may send ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    ["http://a/b", "https://a/b", "ftp://u:p@a/", "ftps://a:990/x", "sftp://a/x"],
)
def test_every_scheme_josev_allows_is_taken(location: str) -> None:
    check_document(REGISTRY, _firmware(location=location), Direction.FROM_JOSEV)
    check_document(REGISTRY, _logs(remote_location=location), Direction.FROM_JOSEV)


@pytest.mark.parametrize("location", ["file:///etc/passwd", "HTTP://a/b", "ftp:/a", "a/b", ""])
def test_a_location_of_another_scheme_is_refused(location: str) -> None:
    assert _rejected_at(_firmware(location=location)) == "$.data.location"
    assert _rejected_at(_logs(remote_location=location)) == "$.data.remote_location"


@pytest.mark.parametrize("required", ["request_id", "location", "retrieve_datetime"])
def test_update_firmware_without_a_required_field_is_refused(required: str) -> None:
    document = _firmware()
    del document["data"][required]
    assert _rejected_at(document) == "$.data"


@pytest.mark.parametrize("required", ["request_id", "log_type", "remote_location"])
def test_upload_logs_without_a_required_field_is_refused(required: str) -> None:
    document = _logs()
    del document["data"][required]
    assert _rejected_at(document) == "$.data"


def test_everything_optional_josev_may_add_is_taken() -> None:
    check_document(
        REGISTRY,
        _firmware(
            install_datetime="2026-12-01t11:00:00.5",  # no offset, lower-case t: UTC
            retries=3,
            retry_interval=30.5,
            signing_certificate="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            signature="c2lnbmF0dXJl",
            a_field_only_a_newer_josev_knows=True,
        ),
        Direction.FROM_JOSEV,
    )
    check_document(
        REGISTRY,
        _logs(
            log_type="security_log",
            retries=0,
            retry_interval=10,
            oldest_timestamp="2026-11-30T00:00:00+01:00",
            latest_timestamp="2026-12-01T00:00:00.123",
        ),
        Direction.FROM_JOSEV,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("request_id", "7"),
        ("request_id", 7.5),
        ("retrieve_datetime", "2026-12-01 10:00:00"),
        ("retrieve_datetime", "2026-12-01T10:00:00.1234Z"),
        ("retries", "3"),
    ],
)
def test_values_josev_would_not_send_are_refused(field: str, value: Any) -> None:
    assert _rejected_at(_firmware(**{field: value})) == f"$.data.{field}"


def test_an_unknown_log_type_is_refused() -> None:
    assert _rejected_at(_logs(log_type="everything")) == "$.data.log_type"


# -- what we send ------------------------------------------------------------------------------


def test_every_status_word_is_one_josev_takes_and_no_other() -> None:
    for word in RULES[JobKind.FIRMWARE].words:
        message = FirmwareStatusUpdate(request_id=1, status=word)  # type: ignore[arg-type]
        assert REGISTRY.violation("FirmwareStatusUpdate", _update(message.NAME, message)) is None
    for word in RULES[JobKind.LOGS].words:
        logs = LogsStatusUpdate(request_id=1, status=word)  # type: ignore[arg-type]
        assert REGISTRY.violation("LogsStatusUpdate", _update(logs.NAME, logs)) is None
    assert len(RULES[JobKind.FIRMWARE].words) == 14
    assert len(RULES[JobKind.LOGS].words) == 8
    bad = _message("firmware_status", "update", {"request_id": 1, "status": "uploaded"})
    assert REGISTRY.violation("FirmwareStatusUpdate", bad) is not None
    extra = _message("logs_status", "update", {"request_id": 1, "status": "idle", "x": 1})
    assert REGISTRY.violation("LogsStatusUpdate", extra) is not None


def _update(name: str, payload: FirmwareStatusUpdate | LogsStatusUpdate) -> dict[str, Any]:
    return _message(name, "update", payload.to_json())


def test_the_failure_words_are_status_words_of_their_kind() -> None:
    for rules in RULES.values():
        assert rules.failure in rules.words
        assert rules.failures <= rules.words


@pytest.mark.parametrize("filename", ["x", "a" * 255])
def test_upload_logs_response_filename_bounds(filename: str) -> None:
    document = _message("upload_logs", "response", {"status": "accepted", "filename": filename})
    assert REGISTRY.violation("UploadLogsResponse", document) is None
    document["data"]["filename"] = filename + "a" * (256 - len(filename))
    assert REGISTRY.violation("UploadLogsResponse", document) is not None


# -- the command's arguments -------------------------------------------------------------------


def test_the_request_becomes_field_equals_value_arguments_in_utc() -> None:
    arguments = command_arguments(
        {
            "request_id": 7,
            "location": "https://fw.example/image.bin",
            "retrieve_datetime": "2026-12-01T11:00:00+01:00",
            "install_datetime": "2026-12-01T12:30:00.5",
            "retries": 3.0,
            "retry_interval": 2.5,
            "signing_certificate": "-----BEGIN CERTIFICATE-----\nMIIB",
        }
    )
    assert arguments == [
        "--request-id=7",
        "--location=https://fw.example/image.bin",
        "--retrieve-datetime=2026-12-01T10:00:00.000Z",
        "--install-datetime=2026-12-01T12:30:00.500Z",
        "--retries=3",
        "--retry-interval=2.5",
        "--signing-certificate=-----BEGIN CERTIFICATE-----\nMIIB",
    ]


def test_an_impossible_date_goes_as_josev_wrote_it() -> None:
    assert command_arguments({"oldest_timestamp": "2026-13-01T00:00:00"}) == [
        "--oldest-timestamp=2026-13-01T00:00:00"
    ]


def test_the_archive_name_says_kind_request_and_time() -> None:
    moment = datetime(2026, 12, 1, 10, 15, tzinfo=UTC)
    name = archive_name("security_log", 42, moment)
    assert name == "csbridge-security_log-42-20261201T101500Z.tar.gz"
    huge = archive_name("diagnostics_log", -(10**400), moment)  # JSON bounds no integer
    assert len(huge) <= 255
    response = _message("upload_logs", "response", {"status": "accepted", "filename": huge})
    assert REGISTRY.violation("UploadLogsResponse", response) is None


# -- no secret leaves --------------------------------------------------------------------------


def test_secrets_are_removed_by_their_key_whatever_the_section() -> None:
    document = {
        "mqtt": {"username": "csbridge", "password_file": "/etc/pw", "key_file": "/k.pem"},
        "station": {
            "identity": {"basic_auth_password": "hunter2", "basic_auth_password_file": None},
            "token": "abc",
        },
        "evse": [{"authorization": {"token_type": "ISO14443", "api_key": "k"}}],
        "url": "ftp://user:pass%40word@host/dir",
    }
    assert redacted(document) == {
        "mqtt": {"username": "csbridge", "password_file": REMOVED, "key_file": REMOVED},
        "station": {
            "identity": {"basic_auth_password": REMOVED, "basic_auth_password_file": None},
            "token": REMOVED,
        },
        "evse": [{"authorization": {"token_type": "ISO14443", "api_key": REMOVED}}],
        "url": f"ftp://user:{REMOVED}@host/dir",
    }


def test_the_effective_config_keeps_everything_but_secrets(tmp_path: Path) -> None:
    raw = station_config("mqtt://127.0.0.1:1883", "p").model_dump(mode="json")
    raw["mqtt"] |= {"username": "station", "password_file": str(tmp_path / "pw")}
    document = redacted_config(Config.model_validate(raw))
    assert document["mqtt"]["password_file"] == REMOVED
    assert document["mqtt"]["username"] == "station"
    assert document["station"]["maintenance"]["journal_unit"] == "csbridge"
    assert str(tmp_path / "pw") not in repr(document)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://u:p@h/x", f"https://u:{REMOVED}@h/x"),
        ("https://u@h/x", "https://u@h/x"),
        ("https://h:8443/x", "https://h:8443/x"),
        ("no url at all", "no url at all"),
    ],
)
def test_passwords_in_urls_are_removed(text: str, expected: str) -> None:
    assert without_url_password(text) == expected


# -- where an upload lands ---------------------------------------------------------------------


def test_a_folder_location_keeps_the_file_name() -> None:
    target = target_of("ftp://user:p%2Fw@host:2121/in/logs/", "a.tar.gz")
    assert (target.host, target.port, target.user, target.password) == ("host", 2121, "user", "p/w")
    assert (target.folder, target.name) == ("/in/logs", "a.tar.gz")
    assert target.url_without_login == "ftp://host:2121/in/logs/a.tar.gz"


def test_a_file_location_names_the_file() -> None:
    target = target_of("https://host/upload/station-7.tgz?sig=1", "a.tar.gz")
    assert (target.folder, target.name) == ("/upload", "station-7.tgz")
    assert target.url_without_login == "https://host/upload/station-7.tgz?sig=1"


def test_sftp_is_not_supported_and_a_hostless_location_fails() -> None:
    with pytest.raises(NotSupportedError):
        target_of("sftp://host/in/", "a.tar.gz")
    with pytest.raises(UploadError):
        target_of("http:///in/", "a.tar.gz")
