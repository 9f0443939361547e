"""update_firmware and upload_logs end to end through a real mosquitto: Josev's request is
answered accepted, then each status word the command prints arrives as an update with the
request's id, in order, after the answer; upload_logs with the default command
(`csbridge collect-logs`) lands the archive on a loopback HTTP server with the station's own
limits reports in it; invalid requests are refused by the inbound schema, logged and counted,
and nothing runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from csbridge.config import Config
from csbridge.messages import MessageType, new_message_id
from csbridge.service.maintenance import JobKind
from csbridge.service.station import Station
from csbridge.testing.harness import wait_until
from csbridge.testing.josev import JosevClient
from tests.upload_servers import archive_members, http_sink

WORDS = ["downloading", "downloaded", "installing", "installed"]
INSTALLER = f"""
import sys
for word in {WORDS!r}:
    print(word, flush=True)
"""


@pytest.fixture
def config(config: Config, tmp_path: Path) -> Config:
    """The tests' station with a firmware installer that prints the status words, and the
    default logs command."""
    installer = tmp_path / "installer.py"
    installer.write_text(INSTALLER, encoding="utf-8")
    raw = config.model_dump(mode="json", exclude_none=True)
    raw["station"]["maintenance"] = {"firmware_command": [sys.executable, str(installer)]}
    return Config.model_validate(raw)


def _statuses(josev: JosevClient, name: str, since: int) -> list[dict[str, Any]]:
    return [m.data for m in josev.updates[since:] if m.name == name]


async def test_update_firmware_is_accepted_then_each_status_in_order(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    since = josev.mark()
    answer = await josev.request(
        "update_firmware",
        {
            "request_id": 7,
            "location": "https://fw.example/image-2.1.bin",
            "retrieve_datetime": "2026-12-01T10:00:00",  # no offset: UTC
        },
        timeout=5,
    )
    assert answer.data == {"status": "accepted"}
    await josev.wait_for_update(
        lambda m: m.data["status"] == "installed", 15, name="firmware_status", since=since
    )
    assert _statuses(josev, "firmware_status", since) == [
        {"request_id": 7, "status": word} for word in WORDS
    ]
    order = [
        (e.name, e.type) for e in josev.seen if e.name in ("update_firmware", "firmware_status")
    ]
    assert order[0] == ("update_firmware", MessageType.RESPONSE), "the answer comes first"
    await wait_until(lambda: not station.maintenance.running(JobKind.FIRMWARE), 5, "job ended")
    assert station.bridge.counters.get("maintenance_jobs", "firmware/succeeded") == 1
    josev.assert_no_problems()


async def test_upload_logs_with_the_default_command_lands_on_a_loopback_http_server(
    station: Station, josev: JosevClient
) -> None:
    await josev.boot(timeout=5)
    since = josev.mark()
    with http_sink() as sink:
        answer = await josev.request(
            "upload_logs",
            {
                "request_id": 9,
                "log_type": "diagnostics_log",
                "remote_location": f"{sink.url}/logs/",
                "oldest_timestamp": "2026-12-01T00:00:00Z",
            },
            timeout=5,
        )
        assert answer.data["status"] == "accepted"
        filename = answer.data["filename"]
        assert filename.startswith("csbridge-diagnostics_log-9-")
        assert filename.endswith(".tar.gz")
        await josev.wait_for_update(
            lambda m: m.data["status"] in ("uploaded", "upload_failure"),
            60,
            name="logs_status",
            since=since,
        )
    assert _statuses(josev, "logs_status", since) == [
        {"request_id": 9, "status": "uploading"},
        {"request_id": 9, "status": "uploaded"},
    ]
    (received,) = sink.received
    assert (received.method, received.path) == ("PUT", f"/logs/{filename}")
    members = archive_members(received.body)
    reports = orjson.loads(members["limits-reports.json"])
    assert set(reports) == set(station.engine.evse_ids)
    assert all("limits" in report for report in reports.values())
    config = orjson.loads(members["config.json"])
    assert config["mqtt"]["broker"] == station.config.mqtt.broker
    assert config["station"]["maintenance"]["firmware_command"][0] == sys.executable
    assert orjson.loads(members["manifest.json"])["request_id"] == 9
    await wait_until(lambda: not station.maintenance.running(JobKind.LOGS), 5, "job ended")
    josev.assert_no_problems()


def _request(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": new_message_id(), "name": name, "type": "request", "data": data}


async def test_invalid_requests_are_refused_by_the_schema_and_logged(
    station: Station, josev: JosevClient, caplog: pytest.LogCaptureFixture
) -> None:
    await josev.boot(timeout=5)
    counters = station.bridge.counters
    before = counters.get("inbound_rejected", "schema")
    bad_scheme = _request(
        "update_firmware",
        {
            "request_id": 1,
            "location": "file:///etc/shadow",
            "retrieve_datetime": "2026-12-01T10:00:00Z",
        },
    )
    no_request_id = _request(
        "upload_logs", {"log_type": "diagnostics_log", "remote_location": "ftp://logs.example/"}
    )
    for document in (bad_scheme, no_request_id):
        await josev.publish(josev.request_topic, document)
    await wait_until(
        lambda: counters.get("inbound_rejected", "schema") >= before + 2, 5, "both refused"
    )
    lines = [r.getMessage() for r in caplog.records if "event=inbound_rejected" in r.message]
    assert any("message=update_firmware where=$.data.location" in line for line in lines), lines
    assert any("message=upload_logs where=$.data " in line for line in lines), lines
    answered = {response.id for response in josev.responses}
    assert bad_scheme["id"] not in answered
    assert no_request_id["id"] not in answered
    assert not station.maintenance.running(JobKind.FIRMWARE)
    assert not station.maintenance.running(JobKind.LOGS)
    assert counters.total("maintenance_jobs") == 0
