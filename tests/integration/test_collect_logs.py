"""`csbridge collect-logs` as a real process, uploading to real servers on loopback: an HTTP
server (PUT and POST, with a login, a server error and a retry), an FTP and an FTPS server
(pyftpdlib); each archive is opened and its contents checked: the journal (a journalctl on
PATH that says what it was asked), the log file, the configuration without its secrets, the
versions and the station's limits reports. sftp and bad options say so and exit non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme

from csbridge.config import REMOVED
from tests.upload_servers import (
    FTP_PASSWORD,
    FTP_USER,
    archive_members,
    ftp_sink,
    http_sink,
)

FILENAME = "csbridge-diagnostics_log-7-20261201T101500Z.tar.gz"
SECRET = "/etc/csbridge/broker-password"  # noqa: S105 - a path that must not leave
FAKE_JOURNALCTL = """#!/bin/sh
echo "journalctl was asked: $*"
echo "2026-12-01T10:00:01.000000+00:00 board csbridge[42]: event=bridge_started"
"""


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A PATH folder with a journalctl that prints what it was asked and one journal line."""
    folder = tmp_path / "bin"
    folder.mkdir()
    journalctl = folder / "journalctl"
    journalctl.write_text(FAKE_JOURNALCTL, encoding="utf-8")
    journalctl.chmod(0o755)
    return folder


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "csbridge.log"
    path.write_text("event=bridge_started\nevent=limits_changed evse_id=E1\n", encoding="utf-8")
    return path


@pytest.fixture
def snapshot(tmp_path: Path, log_file: Path) -> Path:
    """What the running station hands the command: its configuration (here with a secret
    the station should have removed already: removed again) and its limits reports."""
    document = {
        "config": {
            "mqtt": {"broker": "mqtt://user:pw@127.0.0.1:1883", "password_file": SECRET},
            "station": {
                "maintenance": {"journal_unit": "csbridge-test", "log_file": str(log_file)}
            },
        },
        "limits_reports": {"DE*CSB*E0001": {"limits": {"evse_id": "DE*CSB*E0001"}}},
    }
    path = tmp_path / "snapshot.json"
    path.write_bytes(orjson.dumps(document))
    return path


def collect_logs(
    *arguments: str, path: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["PATH"] = str(path)
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "csbridge", "collect-logs", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _json(members: dict[str, bytes], name: str) -> Any:
    return orjson.loads(members[name])


def test_http_put_to_a_folder_lands_the_whole_archive(
    snapshot: Path, bin_dir: Path, log_file: Path
) -> None:
    with http_sink() as sink:
        done = collect_logs(
            "--request-id=7",
            "--log-type=diagnostics_log",
            f"--remote-location={sink.url}/in/",
            "--oldest-timestamp=2026-12-01T11:00:00+01:00",
            "--latest-timestamp=2026-12-01T12:00:00",
            f"--filename={FILENAME}",
            f"--snapshot={snapshot}",
            path=bin_dir,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["uploading", "uploaded"]
    (received,) = sink.received
    assert (received.method, received.path) == ("PUT", f"/in/{FILENAME}")
    assert received.content_type == "application/gzip"
    assert received.authorization is None
    members = archive_members(received.body)
    assert set(members) == {
        "journal.txt",
        "csbridge.log",
        "config.json",
        "versions.json",
        "limits-reports.json",
        "manifest.json",
    }
    journal = members["journal.txt"].decode()
    assert "-u csbridge-test" in journal
    assert "--since=2026-12-01 10:00:00 UTC" in journal  # +01:00 read, journalctl told UTC
    assert "--until=2026-12-01 12:00:00 UTC" in journal  # no offset: UTC
    assert "event=bridge_started" in journal
    assert members["csbridge.log"] == log_file.read_bytes()
    config = _json(members, "config.json")
    assert config["mqtt"]["password_file"] == REMOVED
    assert config["mqtt"]["broker"] == f"mqtt://user:{REMOVED}@127.0.0.1:1883"
    assert SECRET.encode() not in received.body
    assert _json(members, "limits-reports.json") == {
        "DE*CSB*E0001": {"limits": {"evse_id": "DE*CSB*E0001"}}
    }
    versions = _json(members, "versions.json")
    assert versions["packages"]["csbridge"]
    assert versions["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
    manifest = _json(members, "manifest.json")
    assert manifest["request_id"] == 7
    assert manifest["oldest_timestamp"] == "2026-12-01T10:00:00.000Z"
    assert manifest["files"] == sorted(set(members) - {"manifest.json"})


def test_http_post_with_a_login_to_a_file_url(snapshot: Path, tmp_path: Path) -> None:
    with http_sink() as sink:
        host = sink.url.removeprefix("http://")
        done = collect_logs(
            f"--remote-location=http://uploader:p%40ss@{host}/upload/station.tgz",
            "--http-method=POST",
            f"--filename={FILENAME}",
            f"--snapshot={snapshot}",
            path=tmp_path,  # no journalctl: the log file alone
        )
    assert done.returncode == 0, done.stderr
    assert "p@ss" not in done.stderr
    (received,) = sink.received
    assert (received.method, received.path) == ("POST", "/upload/station.tgz")
    assert received.authorization == "Basic dXBsb2FkZXI6cEBzcw=="  # uploader:p@ss
    members = archive_members(received.body)
    assert "journal.txt" not in members
    assert "csbridge.log" in members
    assert "no journalctl on this system" in _json(members, "manifest.json")["notes"]


def test_a_server_error_is_retried_then_upload_failure(snapshot: Path, tmp_path: Path) -> None:
    with http_sink() as sink:
        sink.status = 500
        done = collect_logs(
            f"--remote-location={sink.url}/in/",
            "--retries=1",
            "--retry-interval=0.1",
            f"--snapshot={snapshot}",
            path=tmp_path,
        )
    assert done.returncode == 1
    assert done.stdout.splitlines() == ["uploading", "upload_failure"]
    assert len(sink.received) == 2
    assert "attempt 2 of 2: HTTP PUT answered 500" in done.stderr


def test_ftp_with_a_login_stores_the_archive_in_the_folder(
    snapshot: Path, bin_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "ftp-root"
    (root / "in").mkdir(parents=True)
    with ftp_sink(root) as sink:
        host = sink.url.removeprefix("ftp://")
        done = collect_logs(
            f"--remote-location=ftp://{FTP_USER}:{FTP_PASSWORD}@{host}/in/",
            f"--filename={FILENAME}",
            f"--snapshot={snapshot}",
            path=bin_dir,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["uploading", "uploaded"]
    assert FTP_PASSWORD not in done.stderr
    members = archive_members((root / "in" / FILENAME).read_bytes())
    assert _json(members, "limits-reports.json")
    assert "event=bridge_started" in members["journal.txt"].decode()


def test_ftp_with_a_wrong_password_is_upload_failure(snapshot: Path, tmp_path: Path) -> None:
    root = tmp_path / "ftp-root"
    root.mkdir()
    with ftp_sink(root) as sink:
        host = sink.url.removeprefix("ftp://")
        done = collect_logs(
            f"--remote-location=ftp://{FTP_USER}:wrong@{host}/",
            f"--snapshot={snapshot}",
            path=tmp_path,
        )
    assert done.returncode == 1
    assert done.stdout.splitlines() == ["uploading", "upload_failure"]
    assert list(root.iterdir()) == []


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(CA file, server certificate, server key) for 127.0.0.1."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    ca_file, certificate, key = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server.cert_chain_pems[0].write_to_path(str(certificate))
    server.private_key_pem.write_to_path(str(key))
    return ca_file, certificate, key


def test_ftps_uploads_over_tls(
    snapshot: Path, tmp_path: Path, tls: tuple[Path, Path, Path]
) -> None:
    ca_file, certificate, key = tls
    root = tmp_path / "ftps-root"
    root.mkdir()
    with ftp_sink(root, tls_files=(certificate, key)) as sink:
        host = sink.url.removeprefix("ftps://")
        done = collect_logs(
            f"--remote-location=ftps://{FTP_USER}:{FTP_PASSWORD}@{host}/",
            f"--filename={FILENAME}",
            f"--snapshot={snapshot}",
            path=tmp_path,
            extra_env={"SSL_CERT_FILE": str(ca_file)},  # the system's trust store, for the test
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["uploading", "uploaded"]
    assert "config.json" in archive_members((root / FILENAME).read_bytes())


def test_ftps_to_an_untrusted_server_is_upload_failure(
    snapshot: Path, tmp_path: Path, tls: tuple[Path, Path, Path]
) -> None:
    _, certificate, key = tls
    root = tmp_path / "ftps-root"
    root.mkdir()
    with ftp_sink(root, tls_files=(certificate, key)) as sink:
        done = collect_logs(
            f"--remote-location={sink.url}/", f"--snapshot={snapshot}", path=tmp_path
        )
    assert done.returncode == 1
    assert done.stdout.splitlines() == ["uploading", "upload_failure"]
    assert list(root.iterdir()) == []


def test_sftp_is_not_supported(snapshot: Path, tmp_path: Path) -> None:
    done = collect_logs(
        "--remote-location=sftp://logs.example/in/", f"--snapshot={snapshot}", path=tmp_path
    )
    assert done.returncode == 3
    assert done.stdout.splitlines() == ["not_supported_operation"]
    assert "not supported: sftp" in done.stderr


def test_a_bad_timestamp_is_bad_message(tmp_path: Path) -> None:
    done = collect_logs(
        "--remote-location=http://127.0.0.1:9/", "--oldest-timestamp=yesterday", path=tmp_path
    )
    assert done.returncode == 2
    assert done.stdout.splitlines() == ["bad_message"]
    assert "--oldest-timestamp" in done.stderr


def test_without_a_location_it_writes_the_archive(tmp_path: Path) -> None:
    output = tmp_path / "out" / "logs.tar.gz"
    config = Path(__file__).resolve().parents[2] / "fixtures" / "configs" / "reading-station.toml"
    done = collect_logs(f"--config={config}", f"--output={output}", path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    members = archive_members(output.read_bytes())
    assert _json(members, "config.json")["evse"]
    notes = _json(members, "manifest.json")["notes"]
    assert any("no limits reports" in note for note in notes)
