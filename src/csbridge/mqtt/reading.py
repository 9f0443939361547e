"""aiomqtt's client with two changes: it reads up to READ_BATCH packets per readiness instead of
one, and it acknowledges each QoS 1 message when told to (paho's manual acknowledgement), not as
soon as paho has read it.

aiomqtt 2.x reads one packet each time the event loop finds the socket readable (paho's
loop_read reads as many as it has QoS 1 publishes awaiting an acknowledgement, which under an
inbound flood is about one), and the message loop handles one message between two reads. Under a
flood of messages the bridge drops (a full class of the intake), the socket is then read no faster
than messages are handled, the rest waits in the broker's queue, and a Josev request that came
behind the flood waits there with it. Reading a batch per readiness takes the flood off the
socket at the rate it comes, so a request behind it reaches the intake, where it goes first.

Acknowledging when told is the intake's backpressure for Josev's requests, which it must not
drop: while Josev's part of the intake is full it holds the acknowledgements back, and the
broker, which keeps at most its in-flight window (mosquitto's max_inflight_messages, 20 by
default) unacknowledged, sends nothing more until they come: the requests wait in the broker's
queue, within the broker's own bounds, and the reading (our PUBACKs among it) goes on. But
mosquitto 2.0 does not always keep to that window (measured in the flood bench: 2,000 requests
sent while not one acknowledgement went back), so a class far over its bound also pauses the
reading itself (`pause_reading`), which TCP cannot ignore.

The socket's reader and writer are registered with the event loop here, not as aiomqtt does.
aiomqtt defers every `add_reader`/`add_writer` through `call_soon_threadsafe` (paho may call from
the executor thread that connects) but removes them at once, so a registration asked for just
before paho closes the socket in the same loop pass (a publish, then the read that finds the
connection gone; a connect cancelled as the service stops) ran after the close: `add_writer` on a
closed descriptor (`OSError: [Errno 9] Bad file descriptor`, a traceback from the loop), or on
the number reused by the next socket, or a writer left behind that paho believes removed, which
the loop then calls on every pass. Here a call on the loop's own thread registers at once, and
one from another thread is carried out later only if paho still has that socket and still wants
it watched.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from contextlib import suppress
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

RESET_ON_CLOSE = struct.pack("ii", 1, 0)
"""SO_LINGER on, 0 s: close() sends a reset and drops whatever is still unsent."""

READ_BATCH = 64
"""Packets read per readiness at most: bounded, so a flood cannot keep the loop in the reader."""


class BatchReadingClient(aiomqtt.Client):
    """aiomqtt.Client reading up to READ_BATCH packets per readiness. With `manual_ack`, every
    message it delivers must be passed to `acknowledge` once (QoS 0 ones need nothing)."""

    def __init__(self, *args: Any, manual_ack: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client.manual_ack_set(manual_ack)
        paho_client = self._client

        def loop_read(max_packets: int = 1) -> MQTTErrorCode:
            return _read_batch(paho_client)

        # aiomqtt's reader callback calls loop_read (and handles what it raises).
        setattr(paho_client, "loop_read", loop_read)  # noqa: B010 - mypy refuses method assignment
        self.paused = False
        self.abandoned = False
        """Set by `abandon`: a socket that paho opens from now on is reset, never watched."""

    def _on_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:  # paho's connect, in the executor thread
            return False

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._on_loop_thread():
            self._watch(sock)
        else:
            self._loop.call_soon_threadsafe(self._watch, sock)

    def _watch(self, sock: Any) -> None:
        """Read the socket paho opened (on the loop's thread), if it is still paho's own."""
        current = self._client.socket()
        if current is None or current is not sock:
            return  # closed (and perhaps its number reused) before this ran
        if self.abandoned:
            _reset(self._client)
            return
        if not self.paused:
            self._loop.add_reader(current.fileno(), self._read_now)
        if self._misc_task is None or self._misc_task.done():
            self._misc_task = self._loop.create_task(self._misc_loop())

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # paho calls this before it closes the socket: its number is still the socket's.
        fileno = sock.fileno()
        if self._on_loop_thread():
            self._unwatch(fileno, sock)
        else:
            self._loop.call_soon_threadsafe(self._unwatch, fileno, sock)

    def _unwatch(self, fileno: int, sock: Any) -> None:
        current = self._client.socket()
        if current is not None and current is not sock and current.fileno() == fileno:
            return  # late: the number is the next socket's now, and so is its watch
        if fileno > -1:
            self._loop.remove_reader(fileno)
            self._loop.remove_writer(fileno)
        if self._misc_task is not None and not self._misc_task.done():
            self._misc_task.cancel()

    def _on_socket_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._on_loop_thread():
            self._loop.add_writer(sock.fileno(), self._write_now)
        else:
            self._loop.call_soon_threadsafe(self._write_when_wanted, sock)

    def _write_when_wanted(self, sock: Any) -> None:
        """A registration paho asked for from another thread, carried out on the loop's thread
        only if the socket is still paho's and paho still wants it written."""
        paho_client = self._client
        current = paho_client.socket()
        if current is not None and current is sock and paho_client._registered_write:  # noqa: SLF001 - paho's own state
            self._loop.add_writer(current.fileno(), self._write_now)

    def _on_socket_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._on_loop_thread():
            self._loop.remove_writer(sock.fileno())
        # From another thread: _write_when_wanted, still to run, sees it is no longer wanted.

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None = None,
    ) -> None:
        """aiomqtt's, without its error and traceback for the SUBACK of a subscribe that was
        cancelled while it waited (the link stopping during a connect): nobody waits for it."""
        waiting = self._pending_subscribes.pop(mid, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(reason_codes)

    def _write_now(self) -> None:
        """aiomqtt's writer callback: what paho has queued, as far as the socket takes it."""
        try:
            self._client.loop_write()
        except Exception as error:  # a broken connection: the session ends with it
            if not self._disconnected.done():
                self._disconnected.set_exception(error)

    def abandon(self) -> None:
        """Reset the socket of a connect that never completed (timed out, cancelled), and any
        that paho's connect, still running in its thread, opens after this: aiomqtt leaves it
        open, and a broker that was stopped (SIGSTOP) and resumes would still read its CONNECT
        and let that ghost take over the session we made meanwhile (same client id). A reset
        rather than a FIN, so the broker drops the unread CONNECT."""
        self.abandoned = True
        _reset(self._client)

    def pause_reading(self) -> None:
        """Read nothing more until resume_reading: what the broker sends waits in the kernel's
        buffers and then in the broker's queue (TCP's own flow control)."""
        if self.paused:
            return
        self.paused = True
        sock = self._client.socket()
        if sock is not None:
            self._loop.remove_reader(sock.fileno())

    def resume_reading(self) -> None:
        if not self.paused:
            return
        self.paused = False
        sock = self._client.socket()
        if sock is not None:  # closed meanwhile: a new connection reads as usual
            self._loop.add_reader(sock.fileno(), self._read_now)

    def _read_now(self) -> None:
        """The reader callback: a batch of packets (aiomqtt's callback, with its errors)."""
        try:
            self._client.loop_read()
        except Exception as error:
            if not self._disconnected.done():
                self._disconnected.set_exception(error)

    def acknowledge(self, message: aiomqtt.Message) -> None:
        """Send the PUBACK a QoS 1 message is owed (after a reconnect, a message of an earlier
        connection is owed none: the broker forgot it with that clean session)."""
        if message.qos > 0:
            self._client.ack(message.mid, message.qos)


def _read_batch(client: paho.Client) -> MQTTErrorCode:
    """paho's loop_read, for up to READ_BATCH packets: until the socket has nothing more (a TLS
    socket's own buffer included), or an error ends the connection."""
    for _ in range(READ_BATCH):
        if client._sock is None:  # noqa: SLF001 - paho's own state
            return paho.MQTT_ERR_NO_CONN
        rc = client._packet_read()  # noqa: SLF001 - loop_read reads one packet at a time
        if rc == paho.MQTT_ERR_AGAIN:
            return paho.MQTT_ERR_SUCCESS
        if rc > 0:
            return client._loop_rc_handle(rc)  # noqa: SLF001 - what loop_read does with an error
    return paho.MQTT_ERR_SUCCESS


def _reset(client: paho.Client) -> None:
    """Close paho's socket with a reset (unwatched first, through paho's own callbacks)."""
    sock = client.socket()
    if isinstance(sock, socket.socket):  # TLS sockets too; a websocket wrapper closes plainly
        with suppress(OSError):  # not a TCP socket after all: an ordinary close
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
    client._sock_close()  # noqa: SLF001 - also unregisters our reader and writer
