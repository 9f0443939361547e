"""The one place that owns the MQTT connection: connect, reconnect, subscribe, publish.

aiomqtt 2.x has no reconnect of its own, so this is the plain outer loop with jittered backoff
(0.1 s doubling to a 1.5 s cap) that its docs recommend, resubscribing every time. TCP_NODELAY on
our socket removes two delayed-ACK stalls per QoS 1 request/response (~88 ms -> ~0.7 ms).

Publishing hands the message to paho's queue and returns: paho delivers at QoS 1 (and
retransmits) on its own. Awaiting each PUBACK would serialise every sender behind a broker round
trip, and on Python 3.11 asyncio.wait_for, which aiomqtt uses for that wait, can swallow a
cancellation that arrives as the PUBACK does, leaving a stopping task stuck.

A takeover loop (another client connecting with our client id, so the broker closes our session
each time the other connects, and the other's each time we do) is recognised by its pattern,
since MQTT 3.1.1 gives no reason for a closed connection: TakeoverWatch below. It is logged once,
counted, and slows the reconnects down while it lasts.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiomqtt
import paho.mqtt.client as paho

from csbridge.config import ConfigError, MqttConfig, broker_address, read_password
from csbridge.mqtt.reading import BatchReadingClient
from csbridge.support import Counted, Counters, RateLimitedLog

QOS = 1
BACKOFF_START_S = 0.1
BACKOFF_CAP_S = 1.5
"""Below the 2 s in which a returning broker must see us again, leaving room for the connect."""
CALL_TIMEOUT_S = 5.0
OFFLINE_ACK_S = 0.5
TCP_NODELAY_OPTION = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

TAKEOVER_LOSSES = 3
"""This many losses in a row, each of a connection that came up at its first attempt (no refused
or timed-out connect in between) ..."""
TAKEOVER_UPTIME_S = 2.0
"""... and was lost within this long of being made (the other client's reconnect, at most the
backoff cap and a connect later) ..."""
TAKEOVER_WINDOW_S = 5.0
"""... all within this long, are a takeover loop. Two clients on one id flip several times a
second; a broker that restarts refuses the attempts in between, which starts the count again."""
TAKEOVER_BACKOFF_START_S = 2.0
TAKEOVER_BACKOFF_CAP_S = 30.0
"""While a loop lasts, each reconnect waits 2 s doubling to 30 s (jittered) instead of the usual
0.1-1.5 s: two bridges on one id then flip a few times a minute instead of several times a
second, and the modules, switched off at every loss, never more often."""
TAKEOVER_OVER_S = 2 * TAKEOVER_BACKOFF_CAP_S
"""A connection that lasts this long ends the loop: longer than the other side's longest wait,
so a peer that backs off as we do cannot end it by coming back slowly."""

log = logging.getLogger("csbridge.mqtt")
faults = RateLimitedLog(log)
"""Shared by every link: a broker away for an hour gives one line a minute, not 1800."""

MessageHandler = Callable[[str, bytes, bool], Awaitable[None]]
"""(topic, payload, retained): retained is MQTT's retain flag as the broker delivered it, set
only on a message the broker stored earlier and replays because we (re)subscribed."""
ConnectedHook = Callable[[], Awaitable[None]]
Acknowledge = Callable[[aiomqtt.Message], None]


def backoff_delays(start: float = BACKOFF_START_S, cap: float = BACKOFF_CAP_S) -> list[float]:
    """The nominal delays, doubling from `start` to `cap` (the last one repeats)."""
    delays = [start]
    while delays[-1] < cap:
        delays.append(min(delays[-1] * 2, cap))
    return delays


def jittered(delay: float) -> float:
    """Between half and all of `delay`, so restarted peers do not reconnect in lockstep."""
    return delay * random.uniform(0.5, 1.0)


class Loss(enum.Enum):
    """What one lost connection means to TakeoverWatch."""

    ORDINARY = "ordinary"
    LOOP_STARTED = "loop_started"
    """This loss completes the pattern: a takeover loop from now on."""
    IN_LOOP = "in_loop"
    LOOP_OVER = "loop_over"
    """The connection lasted TAKEOVER_OVER_S: the loop is over, this loss is an ordinary one."""


class TakeoverWatch:
    """Tells a takeover loop from ordinary losses, and how long to wait before reconnecting.

    mosquitto closes the older of two connections with one client id; over MQTT 3.1.1 that
    looks like any other lost connection. The loop shows in its pattern: each connection drops
    soon after it was made, and the next connect succeeds at once (the broker is there).
    """

    def __init__(
        self,
        losses: int = TAKEOVER_LOSSES,
        uptime_s: float = TAKEOVER_UPTIME_S,
        window_s: float = TAKEOVER_WINDOW_S,
        over_s: float = TAKEOVER_OVER_S,
    ) -> None:
        self._uptime_s = uptime_s
        self._window_s = window_s
        self._over_s = over_s
        self._recent: deque[float] = deque(maxlen=losses)
        self._delays = backoff_delays()
        self._loop_delays = backoff_delays(TAKEOVER_BACKOFF_START_S, TAKEOVER_BACKOFF_CAP_S)
        self.looping = False
        self.flips = 0
        """Losses since the loop was recognised."""

    def refused(self) -> None:
        """A connect attempt failed: the broker is away or refuses us, which a takeover never
        does, so the losses before it are not part of one loop."""
        self._recent.clear()

    def lost(self, up_since: float, now: float) -> Loss:
        """A connection made at `up_since` (monotonic seconds) ended at `now`."""
        if self.looping:
            if now - up_since < self._over_s:
                self.flips += 1
                return Loss.IN_LOOP
            self.end()
            return Loss.LOOP_OVER
        if now - up_since >= self._uptime_s:
            self._recent.clear()  # a connection that lived was not taken over in a loop
            return Loss.ORDINARY
        self._recent.append(now)
        full = len(self._recent) == self._recent.maxlen
        if full and now - self._recent[0] <= self._window_s:
            self.looping = True
            self.flips = 0
            return Loss.LOOP_STARTED
        return Loss.ORDINARY

    def end(self) -> int:
        """A connection outlived the loop (TAKEOVER_OVER_S): it is over. The flips it had."""
        flips = self.flips
        self.looping = False
        self.flips = 0
        self._recent.clear()
        return flips

    def loop_span_s(self) -> float:
        """Between the first and the last loss of the pattern just recognised."""
        return self._recent[-1] - self._recent[0] if self._recent else 0.0

    def next_delay(self, attempt: int) -> float:
        """The nominal wait before the next connect, `attempt` failed attempts since the last
        connection; during a loop it grows with every flip as well."""
        if self.looping:
            step, delays = self.flips + attempt, self._loop_delays
        else:
            step, delays = attempt, self._delays
        return delays[min(step, len(delays) - 1)]


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
        counters: Counters | None = None,
        queue_type: type[asyncio.Queue[aiomqtt.Message]] | None = None,
        acknowledge_with: Callable[[Acknowledge], None] | None = None,
    ) -> None:
        """`counters` gets Counted.MQTT_TAKEOVER_LOOPS (the bridge passes its own)."""
        self._config = config
        self._subscriptions = tuple(subscriptions)
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._queue_type = queue_type
        """The client's incoming queue (None: aiomqtt's unbounded FIFO)."""
        self._acknowledge_with = acknowledge_with
        """Given each new client's `acknowledge`, before it connects: whoever takes the
        messages off `queue_type` owes each one its acknowledgement (None: acknowledged as
        the client reads them)."""
        self._client: BatchReadingClient | None = None
        self.connects = 0
        self._attempt_at = time.monotonic()
        self._busy_since: float | None = None
        self.losses = 0
        self.failed_connects = 0
        self.connected = asyncio.Event()
        self.counters = counters if counters is not None else Counters()
        self.takeovers = TakeoverWatch()
        self._reading_paused = False

    def pause_reading(self) -> None:
        """Read nothing more from the broker (this connection and the next) until
        resume_reading."""
        self._reading_paused = True
        if self._client is not None:
            self._client.pause_reading()

    def resume_reading(self) -> None:
        self._reading_paused = False
        if self._client is not None:
            self._client.resume_reading()

    @property
    def reading_paused(self) -> bool:
        return self._reading_paused

    async def _new_client(self) -> BatchReadingClient:
        host, port, tls = broker_address(self._config.broker)
        password, context = await asyncio.to_thread(read_login_files, self._config, tls=tls)
        client = BatchReadingClient(
            host,
            port,
            identifier=self._config.client_id,
            username=self._config.username,
            password=password,
            keepalive=self._config.keepalive_s,
            will=aiomqtt.Will(self._config.status_topic, b"offline", qos=QOS, retain=True),
            clean_session=True,
            tls_context=context,
            socket_options=[TCP_NODELAY_OPTION],
            timeout=CALL_TIMEOUT_S,
            queue_type=self._queue_type,
            manual_ack=self._acknowledge_with is not None,
        )
        if self._acknowledge_with is not None:
            self._acknowledge_with(client.acknowledge)
        return client

    async def run(self) -> None:
        """Connect, serve, and on any loss reconnect with backoff; returns only when cancelled."""
        attempt = 0
        while True:
            if await self._session():
                attempt = 0
            delay = jittered(self.takeovers.next_delay(attempt))
            attempt += 1
            # The wait is chosen, not a stall: the watchdog counts from the attempt it leads to.
            self._attempt_at = time.monotonic() + delay
            await asyncio.sleep(delay)

    async def _session(self) -> bool:
        """One connection, until it is lost; True when it had been up."""
        self._attempt_at = time.monotonic()
        try:
            client = await self._new_client()
        except (ConfigError, OSError, ssl.SSLError) as error:
            # An unreadable secret or certificate may be fixed by the operator: keep trying.
            self.failed_connects += 1
            self.takeovers.refused()
            faults.error(
                "setup", "event=mqtt_setup_failed broker=%s why=%s", self._config.broker, error
            )
            return False
        up_since: float | None = None
        try:
            async with client:
                up_since = time.monotonic()
                try:
                    await self._serve(client)
                except asyncio.CancelledError:
                    await self._say_offline(client)
                    raise
        except aiomqtt.MqttError as error:
            return self._ended(error, up_since)
        finally:
            if up_since is None:
                # aiomqtt leaves a connect that never completed open: see abandon.
                client.abandon()
        return False

    def _ended(self, error: aiomqtt.MqttError, up_since: float | None) -> bool:
        """After a connection or an attempt at one ended with `error`; True when it had been
        up and serving."""
        was_connected = self._client is not None
        self._client = None
        self.connected.clear()
        if up_since is None:
            self.takeovers.refused()
        else:
            # Accepted, then closed: while serving, or already while subscribing.
            loss = self.takeovers.lost(up_since, time.monotonic())
            self._report_loss(loss, error, was_connected)
        if was_connected:
            self.losses += 1
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

    def _report_loss(self, loss: Loss, error: aiomqtt.MqttError, was_connected: bool) -> None:
        """One line per ordinary loss; one error line for a whole takeover loop."""
        broker = self._config.broker
        if loss is Loss.LOOP_STARTED:
            self.counters.add(Counted.MQTT_TAKEOVER_LOOPS)
            log.error(
                "event=mqtt_takeover_loop broker=%s client_id=%s losses=%d within_s=%.1f "
                "backoff_s=%.0f-%.0f why=the broker closed each connection right after it was "
                "made: another client connects with this client id (or, on a broker that binds "
                "client ids to users, as this user) -- reconnecting more slowly while it lasts",
                broker,
                self._config.client_id,
                TAKEOVER_LOSSES,
                self.takeovers.loop_span_s(),
                TAKEOVER_BACKOFF_START_S,
                TAKEOVER_BACKOFF_CAP_S,
            )
        elif loss is Loss.IN_LOOP:
            log.debug("event=mqtt_lost broker=%s why=%s in_takeover_loop=true", broker, error)
        else:
            if loss is Loss.LOOP_OVER:
                log.info("event=mqtt_takeover_loop_over broker=%s", broker)
            if was_connected:
                log.warning("event=mqtt_lost broker=%s why=%s", broker, error)

    async def _serve(self, client: BatchReadingClient) -> None:
        for subscription in self._subscriptions:
            await client.subscribe(subscription.topic, qos=subscription.qos)
            _raise_a_swallowed_cancellation()
        self._client = client
        if self._reading_paused:
            client.pause_reading()
        self.connects += 1
        _hand_off(client, self._config.status_topic, b"online", retain=True)
        # During a takeover loop every flip would log a line: its one error line says it all.
        log.log(
            logging.DEBUG if self.takeovers.looping else logging.INFO,
            "event=mqtt_connected broker=%s connects=%d",
            self._config.broker,
            self.connects,
        )
        self.connected.set()
        outlived = None
        if self.takeovers.looping:
            outlived = asyncio.get_running_loop().call_later(TAKEOVER_OVER_S, self._loop_outlived)
        try:
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
        finally:
            if outlived is not None:
                outlived.cancel()

    def _loop_outlived(self) -> None:
        """A connection made during a takeover loop has lasted TAKEOVER_OVER_S."""
        flips = self.takeovers.end()
        log.info(
            "event=mqtt_takeover_loop_over broker=%s flips=%d connected_s=%.0f",
            self._config.broker,
            flips,
            TAKEOVER_OVER_S,
        )

    def stalled_for(self, now: float) -> float:
        """How long the link has made no progress: while connected, a handler running this long
        (an idle connection is kept alive by MQTT's own keepalive, which ends it if the broker
        stops answering); while disconnected, time since the last attempt began or, while it
        waits to reconnect, since that wait was due to end (at most a connect timeout when all
        is well, however long the backoff)."""
        if self.connected.is_set():
            return 0.0 if self._busy_since is None else now - self._busy_since
        return max(0.0, now - self._attempt_at)

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


def read_login_files(config: MqttConfig, *, tls: bool) -> tuple[str | None, ssl.SSLContext | None]:
    """The password and, for a TLS broker, the TLS context: read at every connect, so a renewed
    password or certificate applies without a restart. Blocking file reads (and the system's CA
    store, tens of milliseconds): for a worker thread, never the event loop. ConfigError,
    OSError or ssl.SSLError when a file cannot be used."""
    return read_password(config), tls_context(config) if tls else None


def tls_context(config: MqttConfig) -> ssl.SSLContext:
    """Verify the broker against `ca_file` (or the system's CAs); show our certificate when one
    is configured. Reads files: off the event loop (see read_login_files)."""
    context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    if config.cert_file is not None and config.key_file is not None:
        context.load_cert_chain(str(config.cert_file), str(config.key_file))
    return context


def _raise_a_swallowed_cancellation() -> None:
    """Raise the cancellation aiomqtt's subscribe may have swallowed. It waits for the SUBACK
    with asyncio.wait_for, which on Python 3.11 returns the result when it arrives together
    with a cancellation and drops the cancellation: a SIGTERM during a connect then never
    reached the link, which went on serving while `run` waited for it to end (issue 19: a
    stop that hung). The task still counts the request (Task.cancelling), so it is honoured
    here."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


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
