"""Real servers on loopback that receive a log upload: an HTTP server (http.server in a
thread) that keeps every PUT and POST, and an FTP(S) server (pyftpdlib in a thread) on a
folder of the test's own."""

from __future__ import annotations

import contextlib
import ssl
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
from pyftpdlib.servers import FTPServer

FTP_USER = "station"
FTP_PASSWORD = "s3cret-ftp"  # noqa: S105 - a throwaway login of the test server


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    path: str
    content_type: str | None
    authorization: str | None
    body: bytes


@dataclass(slots=True)
class HttpSink:
    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 201
    """What the server answers every upload with."""


@contextlib.contextmanager
def http_sink(context: ssl.SSLContext | None = None) -> Iterator[HttpSink]:
    """A loopback HTTP (or, with a server context, HTTPS) server keeping what it is sent."""
    sink = HttpSink(url="")

    class Handler(BaseHTTPRequestHandler):
        def _keep(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            sink.received.append(
                Received(
                    self.command,
                    self.path,
                    self.headers.get("Content-Type"),
                    self.headers.get("Authorization"),
                    body,
                )
            )
            self.send_response(sink.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = _keep  # noqa: N815 - http.server's naming
        do_POST = _keep  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    scheme = "https" if context is not None else "http"
    sink.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="http-sink", daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass(frozen=True, slots=True)
class FtpSink:
    url: str
    """ftp(s)://host:port with no login and no path."""
    folder: Path
    """What the FTP root holds."""


@contextlib.contextmanager
def ftp_sink(
    root: Path, *, tls_files: tuple[Path, Path] | None = None, anonymous: bool = False
) -> Iterator[FtpSink]:
    """A loopback FTP server with one user (FTP_USER) writing to `root`; with
    (certificate, key) files it is an FTPS server that demands TLS for login and data."""
    authorizer = DummyAuthorizer()
    authorizer.add_user(FTP_USER, FTP_PASSWORD, str(root), perm="elradfmw")
    if anonymous:
        authorizer.add_anonymous(str(root), perm="elrw")
    handler: type[FTPHandler]
    if tls_files is not None:
        certificate, key = tls_files

        class Tls(TLS_FTPHandler):  # type: ignore[misc] # pyftpdlib has no type hints
            certfile = str(certificate)
            keyfile = str(key)
            tls_control_required = True
            tls_data_required = True

        handler = Tls
    else:

        class Plain(FTPHandler):  # type: ignore[misc]
            pass

        handler = Plain
    handler.authorizer = authorizer
    handler.passive_ports = None
    server = FTPServer(("127.0.0.1", 0), handler)
    port = server.address[1]
    stop = threading.Event()

    def serve() -> None:
        # One poll at a time, so the server is closed on its own thread.
        while not stop.is_set():
            server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        server.close_all()

    thread = threading.Thread(target=serve, name="ftp-sink", daemon=True)
    thread.start()
    scheme = "ftps" if tls_files is not None else "ftp"
    try:
        yield FtpSink(f"{scheme}://127.0.0.1:{port}", root)
    finally:
        stop.set()
        thread.join(5)


def archive_members(content: bytes) -> dict[str, bytes]:
    """A .tar.gz's files by their name inside its one folder."""
    members = {}
    with tarfile.open(fileobj=BytesIO(content), mode="r:gz") as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            assert extracted is not None, member.name
            folder, _, name = member.name.partition("/")
            members[name] = extracted.read()
            assert folder, member.name
    return members
