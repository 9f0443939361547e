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
"""

from __future__ import annotations

from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

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
        """aiomqtt's own reader callback, put back after a pause."""
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
