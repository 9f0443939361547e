"""The one place that owns the MQTT connection: connect, reconnect, subscribe, publish.

aiomqtt 2.x has no reconnect of its own, so this is the plain outer loop with jittered backoff
(0.1 s doubling to a 1.5 s cap) that its docs recommend, resubscribing every time. TCP_NODELAY on
our socket removes two delayed-ACK stalls per QoS 1 request/response (~88 ms -> ~0.7 ms).

Publishing hands the message to paho's queue and returns: paho delivers at QoS 1 (and
retransmits) on its own. Awaiting each PUBACK would serialise every sender behind a broker round
trip, and on Python 3.11 asyncio.wait_for, which aiomqtt uses for that wait, can swallow a
cancellation that arrives as the PUBACK does, leaving a stopping task stuck.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiomqtt
import paho.mqtt.client as paho

from csbridge.config import ConfigError, MqttConfig, broker_address, read_password
from csbridge.support import RateLimitedLog

QOS = 1
BACKOFF_START_S = 0.1
BACKOFF_CAP_S = 1.5
"""Below the 2 s in which a returning broker must see us again, leaving room for the connect."""
CALL_TIMEOUT_S = 5.0
OFFLINE_ACK_S = 0.5
TCP_NODELAY_OPTION = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

log = logging.getLogger("csbridge.mqtt")
faults = RateLimitedLog(log)
"""Shared by every link: a broker away for an hour gives one line a minute, not 1800."""

MessageHandler = Callable[[str, bytes, bool], Awaitable[None]]
"""(topic, payload, retained): retained is MQTT's retain flag as the broker delivered it, set
only on a message the broker stored earlier and replays because we (re)subscribed."""
ConnectedHook = Callable[[], Awaitable[None]]


def backoff_delays(start: float = BACKOFF_START_S, cap: float = BACKOFF_CAP_S) -> list[float]:
    """The nominal delays, doubling from `start` to `cap` (the last one repeats)."""
    delays = [start]
    while delays[-1] < cap:
        delays.append(min(delays[-1] * 2, cap))
    return delays


def jittered(delay: float) -> float:
    """Between half and all of `delay`, so restarted peers do not reconnect in lockstep."""
    return delay * random.uniform(0.5, 1.0)


@dataclass(frozen=True, slots=True)
class Subscription:
    topic: str
    qos: int = QOS


class MqttLink:
    """Keeps one client connected for as long as `run` runs; publishes while connected."""

    def __init__(
        self,
        config: MqttConfig,
        subscriptions: Sequence[Subscription],
        on_message: MessageHandler,
        on_connected: ConnectedHook,
        on_lost: Callable[[], None] | None = None,
        *,
        queue_type: type[asyncio.Queue[aiomqtt.Message]] | None = None,
    ) -> None:
        self._config = config
        self._subscriptions = tuple(subscriptions)
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._queue_type = queue_type
        """The client's incoming queue (None: aiomqtt's unbounded FIFO)."""
        self._client: aiomqtt.Client | None = None
        self.connects = 0
        self._attempt_at = time.monotonic()
        self._busy_since: float | None = None
        self.losses = 0
        self.failed_connects = 0
        self.connected = asyncio.Event()

    def _new_client(self) -> aiomqtt.Client:
        host, port, tls = broker_address(self._config.broker)
        return aiomqtt.Client(
            host,
            port,
            identifier=self._config.client_id,
            username=self._config.username,
            password=read_password(self._config),
            keepalive=self._config.keepalive_s,
            will=aiomqtt.Will(self._config.status_topic, b"offline", qos=QOS, retain=True),
            clean_session=True,
            tls_context=tls_context(self._config) if tls else None,
            socket_options=[TCP_NODELAY_OPTION],
            timeout=CALL_TIMEOUT_S,
            queue_type=self._queue_type,
        )

    async def run(self) -> None:
        """Connect, serve, and on any loss reconnect with backoff; returns only when cancelled."""
        delays = backoff_delays()
        attempt = 0
        while True:
            if await self._session():
                attempt = 0
            delay = jittered(delays[min(attempt, len(delays) - 1)])
            attempt += 1
            await asyncio.sleep(delay)

    async def _session(self) -> bool:
        """One connection, until it is lost; True when it had been up."""
        self._attempt_at = time.monotonic()
        try:
            client = self._new_client()
        except (ConfigError, OSError, ssl.SSLError) as error:
            # An unreadable secret or certificate may be fixed by the operator: keep trying.
            self.failed_connects += 1
            faults.error(
                "setup", "event=mqtt_setup_failed broker=%s why=%s", self._config.broker, error
            )
            return False
        try:
            async with client:
                try:
                    await self._serve(client)
                except asyncio.CancelledError:
                    await self._say_offline(client)
                    raise
        except aiomqtt.MqttError as error:
            was_connected = self._client is not None
            self._client = None
            self.connected.clear()
            if was_connected:
                self.losses += 1
                log.warning("event=mqtt_lost broker=%s why=%s", self._config.broker, error)
                if self._on_lost is not None:
                    self._on_lost()
                return True
            self.failed_connects += 1
            faults.warning(
                "connect",
                "event=mqtt_connect_failed broker=%s why=%s",
                self._config.broker,
                error,
            )
        return False

    async def _serve(self, client: aiomqtt.Client) -> None:
        for subscription in self._subscriptions:
            await client.subscribe(subscription.topic, qos=subscription.qos)
        self._client = client
        self.connects += 1
        _hand_off(client, self._config.status_topic, b"online", retain=True)
        log.info("event=mqtt_connected broker=%s connects=%d", self._config.broker, self.connects)
        self.connected.set()
        await self._on_connected()
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                payload = b"" if payload is None else str(payload).encode()
            self._busy_since = time.monotonic()
            try:
                await self._on_message(message.topic.value, bytes(payload), message.retain)
            finally:
                self._busy_since = None

    def stalled_for(self, now: float) -> float:
        """How long the link has made no progress: while connected, a handler running this long
        (an idle connection is kept alive by MQTT's own keepalive, which ends it if the broker
        stops answering); while disconnected, time since the last attempt (at most the backoff
        cap plus a connect timeout when all is well)."""
        if self.connected.is_set():
            return 0.0 if self._busy_since is None else now - self._busy_since
        return now - self._attempt_at

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Queue for delivery at QoS 1; False when not connected or paho refuses it."""
        return self.publish_nowait(topic, payload, retain=retain)

    def publish_nowait(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """The same from code that cannot await (a command issued inside a handler)."""
        client = self._client
        if client is None:
            return False
        return _hand_off(client, topic, payload, retain=retain)

    def client_socket(self) -> socket.socket | None:
        """The live socket, for checks such as TCP_NODELAY."""
        if self._client is None:
            return None
        sock = self._client._client.socket()  # noqa: SLF001 - paho exposes no public accessor via aiomqtt
        return sock if isinstance(sock, socket.socket) else None

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        """On a deliberate stop the will does not fire: say `offline` ourselves, retained, and
        wait (briefly) for the broker's PUBACK: then it has also taken everything published
        before (one connection is handled in order), and a client that asks right after we
        are gone gets `offline`, not a stale `online`."""
        self._client = None
        self.connected.clear()
        info = _queue(client, self._config.status_topic, b"offline", retain=True)
        if info is None:
            log.warning("event=offline_not_published topic=%s", self._config.status_topic)
            return
        deadline = time.monotonic() + OFFLINE_ACK_S
        while not info.is_published() and time.monotonic() < deadline:  # noqa: ASYNC110 - paho offers no awaitable
            await asyncio.sleep(0.005)


def tls_context(config: MqttConfig) -> ssl.SSLContext:
    """Verify the broker against `ca_file` (or the system's CAs); show our certificate when one
    is configured. Read at every connect, so renewed certificates apply without a restart."""
    context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    if config.cert_file is not None and config.key_file is not None:
        context.load_cert_chain(str(config.cert_file), str(config.key_file))
    return context


def _hand_off(client: aiomqtt.Client, topic: str, payload: bytes, *, retain: bool) -> bool:
    return _queue(client, topic, payload, retain=retain) is not None


def _queue(
    client: aiomqtt.Client, topic: str, payload: bytes, *, retain: bool
) -> paho.MQTTMessageInfo | None:
    info = client._client.publish(topic, payload, qos=QOS, retain=retain)  # noqa: SLF001
    if info.rc != paho.MQTT_ERR_SUCCESS:
        faults.warning(
            ("publish", topic),
            "event=publish_failed topic=%s why=%s",
            topic,
            paho.error_string(info.rc),
        )
        return None
    return info
