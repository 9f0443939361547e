"""The broker link: address, login, topics, limits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from csbridge.config.base import Strict


def _default_port(scheme: str) -> int:
    return 8883 if scheme == "mqtts" else 1883


class MqttConfig(Strict):
    broker: str = "mqtt://127.0.0.1:1883"
    client_id: Annotated[str, Field(min_length=1, max_length=64)] = "csbridge"
    username: str | None = None
    password_file: Path | None = None
    request_topic: Annotated[str, Field(min_length=1)] = "josev/cs"
    response_topic: Annotated[str, Field(min_length=1)] = "cs/josev"
    status_topic: Annotated[str, Field(min_length=1)] = "csbridge/status"
    local_prefix: Annotated[str, Field(min_length=1)] = "csbridge"
    """Our own per-EVSE topics: <prefix>/<evse_id>/limits, .../external_limit, .../operator."""
    keepalive_s: Annotated[int, Field(ge=2, le=600)] = 10
    max_payload_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    intake_queue_size: Annotated[int, Field(ge=8, le=1_000_000)] = 20_000
    """Inbound messages waiting to be handled, in all: half for Josev's requests, a quarter each
    for our own and EVerest's topics; beyond a class's part, its messages are dropped. Their
    payloads are bounded too (32 MiB in all, shared the same way)."""
    ca_file: Path | None = None
    """The CA that signed the broker's certificate (mqtts:// only; default: the system's)."""
    cert_file: Path | None = None
    """Our client certificate (PEM) for a broker that asks for one; needs key_file."""
    key_file: Path | None = None

    @model_validator(mode="after")
    def _tls_files_belong_to_tls(self) -> Self:
        _, _, tls = broker_address(self.broker)
        given = [name for name in ("ca_file", "cert_file", "key_file") if getattr(self, name)]
        if given and not tls:
            msg = f"{', '.join(given)} given but the broker URL is not mqtts://"
            raise ValueError(msg)
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file given without a username")
        return self

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        broker_address(value)
        return value

    @field_validator("request_topic", "response_topic", "status_topic", "local_prefix")
    @classmethod
    def _plain_topic(cls, value: str) -> str:
        if any(char in value for char in "+#\0"):
            msg = "a topic to publish or answer on cannot hold wildcards or NUL"
            raise ValueError(msg)
        return value


def broker_address(url: str) -> tuple[str, int, bool]:
    """`mqtt://host:port` -> (host, port, tls)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        msg = f"broker URL {url!r} must start with mqtt:// or mqtts://"
        raise ValueError(msg)
    if not parts.hostname:
        msg = f"broker URL {url!r} names no host"
        raise ValueError(msg)
    try:
        port = parts.port or _default_port(parts.scheme)
    except ValueError as error:
        msg = f"broker URL {url!r} has a bad port"
        raise ValueError(msg) from error
    return parts.hostname, port, parts.scheme == "mqtts"
