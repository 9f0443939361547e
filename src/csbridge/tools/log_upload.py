"""Put one file at a remote location with the standard library only: HTTP(S) PUT or POST (the
archive as the body), FTP or FTPS (explicit TLS, the data channel protected too). SFTP needs
an SSH client the standard library lacks: NotSupportedError.

Where it lands: a location whose path ends in `/` (or has no path) is a folder, and the file
keeps its name there; any other path names the file itself. A user and password in the URL
(`ftp://user:password@host/dir/`) log in; none: FTP's anonymous login, HTTP without one.
"""

from __future__ import annotations

import base64
import ftplib
import io
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

TIMEOUT_S = 60.0
"""Per connection attempt and per socket operation."""
HTTP_SCHEMES = ("http", "https")
FTP_SCHEMES = ("ftp", "ftps")
SUPPORTED = (*HTTP_SCHEMES, *FTP_SCHEMES)


class UploadError(Exception):
    """The upload did not happen; the message says where it failed and why (no password)."""


class NotSupportedError(UploadError):
    """A location whose scheme csbridge cannot upload to (sftp)."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int | None
    user: str | None
    password: str | None
    folder: str
    """The path's folder part, unquoted, without a trailing slash ("" for the root)."""
    name: str
    """The file's name there."""
    url_without_login: str
    """The URL to use, userinfo removed (safe to log)."""


def target_of(location: str, filename: str) -> Target:
    """Where `filename` goes at `location`; UploadError for a location that names no host,
    NotSupportedError for a scheme other than http(s) and ftp(s)."""
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme not in SUPPORTED:
        raise NotSupportedError(
            f"{scheme or 'no'} scheme: csbridge uploads by {', '.join(SUPPORTED)} only"
        )
    if not parts.hostname:
        raise UploadError("the location names no host")
    path = parts.path or "/"
    if path.endswith("/"):
        folder, name = path.rstrip("/"), filename
        path = f"{path}{filename}"
    else:
        folder, _, name = path.rpartition("/")
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:  # an IPv6 address goes back in brackets
        netloc = f"[{parts.hostname}]" + ("" if parts.port is None else f":{parts.port}")
    return Target(
        scheme=scheme,
        host=parts.hostname,
        port=parts.port,
        user=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        folder=unquote(folder),
        name=unquote(name),
        url_without_login=urlunsplit((scheme, netloc, path, parts.query, "")),
    )


def upload(
    content: bytes,
    location: str,
    filename: str,
    *,
    http_method: str = "PUT",
    timeout_s: float = TIMEOUT_S,
) -> str:
    """Put `content` at `location` as `filename`; the URL it went to (without a password).
    UploadError (or NotSupportedError) when it did not go."""
    target = target_of(location, filename)
    if target.scheme in HTTP_SCHEMES:
        _http(content, target, http_method, timeout_s)
    else:
        _ftp(content, target, timeout_s)
    return target.url_without_login


def _http(content: bytes, target: Target, method: str, timeout_s: float) -> None:
    headers = {"Content-Type": "application/gzip"}
    if target.user is not None:
        login = f"{target.user}:{target.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(login).decode("ascii")
    request = urllib.request.Request(  # noqa: S310 - the scheme was checked: http(s) only
        target.url_without_login, data=content, method=method, headers=headers
    )
    context = ssl.create_default_context() if target.scheme == "https" else None
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as error:
        raise UploadError(f"HTTP {method} answered {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise UploadError(f"HTTP {method} failed: {reason}") from None
    if not 200 <= status < 300:
        raise UploadError(f"HTTP {method} answered {status}")


def _ftp(content: bytes, target: Target, timeout_s: float) -> None:
    # Plain FTP because the back office asked for it (its URL says ftp://); ftps:// gets TLS.
    client: ftplib.FTP = (
        ftplib.FTP_TLS(context=ssl.create_default_context(), timeout=timeout_s)  # noqa: S321
        if target.scheme == "ftps"
        else ftplib.FTP(timeout=timeout_s)  # noqa: S321
    )
    try:
        client.connect(target.host, target.port or 21)
        if target.user is None:
            client.login()  # anonymous
        else:
            client.login(target.user, target.password or "")
        if isinstance(client, ftplib.FTP_TLS):
            client.prot_p()
        if target.folder:
            client.cwd(target.folder)
        client.storbinary(f"STOR {target.name}", io.BytesIO(content))
    except ftplib.all_errors as error:
        raise UploadError(
            f"FTP to {target.host}: {str(error).strip() or type(error).__name__}"
        ) from None
    finally:
        try:
            client.quit()
        except ftplib.all_errors:
            client.close()
