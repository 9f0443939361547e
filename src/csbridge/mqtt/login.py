"""How a command-line client (the emulator, `csbridge status`) logs in to a broker that asks
for it: a user, a password from a file or $CSBRIDGE_MQTT_PASSWORD, TLS with a CA of its own
and a client certificate. The same rules and the same TLS set-up as the bridge's own."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from csbridge.config import (
    ConfigError,
    MqttConfig,
    broker_address,
    describe_validation_error,
    read_password,
)
from csbridge.mqtt.link import TCP_NODELAY_OPTION, tls_context


@dataclass(frozen=True, slots=True)
class BrokerLogin:
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None

    @classmethod
    def for_broker(
        cls,
        broker: str,
        *,
        username: str | None = None,
        password_file: Path | None = None,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
    ) -> BrokerLogin:
        """ConfigError naming the option when the combination cannot work."""
        try:
            mqtt = MqttConfig(
                broker=broker,
                username=username,
                password_file=password_file,
                ca_file=ca_file,
                cert_file=cert_file,
                key_file=key_file,
            )
        except ValidationError as error:
            raise ConfigError("options", describe_validation_error(error)) from None
        _, _, tls = broker_address(broker)
        try:
            context = tls_context(mqtt) if tls else None
        except (OSError, ssl.SSLError) as error:
            raise ConfigError("options", [f"TLS files: {error}"]) from None
        return cls(username, read_password(mqtt), context)

    def client_options(self, broker: str) -> dict[str, Any]:
        """Keyword arguments for aiomqtt.Client (the host and port first)."""
        host, port, tls = broker_address(broker)
        context = (
            self.tls if self.tls is not None else (ssl.create_default_context() if tls else None)
        )
        return {
            "hostname": host,
            "port": port,
            "username": self.username,
            "password": self.password,
            "tls_context": context,
            "socket_options": [TCP_NODELAY_OPTION],
        }
