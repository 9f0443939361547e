"""The station behind the packaged broker security: TLS (a throwaway trustme CA), passwords made
by mosquitto_passwd, client certificates, and packaging/mosquitto/csbridge.acl, all loaded by a
real mosquitto of each test's own and exercised by a real running station.

The Josev side is mostly a plain aiomqtt client (it must also publish where Josev may not);
`csbridge emulate` logs in as Josev through its command-line options.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import ssl
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import aiomqtt
import orjson
import pytest
import trustme

from csbridge.config import PASSWORD_ENV, Config, MqttConfig, exposed_secret_files
from csbridge.messages.envelope import EnvelopeCodec, Message, MessageType
from csbridge.messages.registry import Direction, SchemaRegistry
from csbridge.mqtt.embedded_broker import LOOPBACK, free_port
from csbridge.mqtt.link import QOS
from csbridge.service.station import Station
from csbridge.support import log_limit
from csbridge.testing.harness import wait_for_station
from csbridge.tools.emulator import check_consistent
from tests.conftest import start_station, stop_bridge
from tests.support import load_fixture, station_config, unique_prefix
from tests.system.test_packaging import PackagedBroker, make_password_file

REQUEST_TOPIC = "josev/cs"
RESPONSE_TOPIC = "cs/josev"
STATUS_TOPIC = "csbridge/status"
SETTLE_S = 1.0
"""How long a message that got through would take, many times over, on loopback."""
USERS = ("csbridge", "josev", "intruder")
CSBRIDGE = (sys.executable, "-m", "csbridge")


@functools.cache
def registry() -> SchemaRegistry:
    return SchemaRegistry()


# -- a CA, a broker with two TLS listeners, the packaged ACL ----------------------------------


@dataclass(frozen=True, slots=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_certs: dict[str, tuple[Path, Path]]
    """user -> (certificate, key), issued by the same CA."""


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    folder = tmp_path / "pki"
    folder.mkdir(mode=0o700)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.crt"))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(folder / "broker.crt"))
    server.private_key_pem.write_to_path(str(folder / "broker.key"))
    clients = {}
    for user in ("csbridge", "josev"):
        issued = ca.issue_cert(f"{user}.client.test")
        cert, key = folder / f"{user}.crt", folder / f"{user}.key"
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        key.chmod(0o600)
        clients[user] = (cert, key)
    (folder / "broker.key").chmod(0o600)
    return Pki(folder / "ca.crt", folder / "broker.crt", folder / "broker.key", clients)


@dataclass(slots=True)
class SecureBroker:
    broker: PackagedBroker
    tls_port: int
    """TLS; a password is enough."""
    mtls_port: int
    """TLS; a password and a client certificate from the CA (require_certificate true)."""
    passwords: dict[str, str] = field(default_factory=dict)

    def url(self, port: int) -> str:
        return f"mqtts://{LOOPBACK}:{port}"


def tls_listeners(pki: Pki, tls_port: int, mtls_port: int) -> str:
    """The packaged config's commented TLS listener, twice: without and with client certs."""
    blocks = []
    for port, require in ((tls_port, "false"), (mtls_port, "true")):
        blocks.append(
            f"listener {port} {LOOPBACK}\n"
            f"cafile {pki.ca}\n"
            f"certfile {pki.server_cert}\n"
            f"keyfile {pki.server_key}\n"
            "tls_version tlsv1.2\n"
            f"require_certificate {require}\n"
            "use_identity_as_username false\n"
        )
    return "\n".join(blocks)


@pytest.fixture
def secure(tmp_path: Path, pki: Pki) -> Iterator[SecureBroker]:
    passwords = {user: f"{user}-{secrets.token_urlsafe(12)}" for user in USERS}
    # `intruder` has a valid password but no entry in the ACL.
    password_file = make_password_file(tmp_path / "passwd", passwords)
    tls_port, mtls_port = free_port(), free_port()
    broker = PackagedBroker(
        tmp_path,
        password_file,
        extra=tls_listeners(pki, tls_port, mtls_port),
        extra_ports=(tls_port, mtls_port),
    )
    broker.start()
    yield SecureBroker(broker, tls_port, mtls_port, passwords)
    broker.stop()


def client_tls(pki: Pki, user: str | None = None) -> ssl.SSLContext:
    """Trust the test CA; show `user`'s certificate when given."""
    context = ssl.create_default_context(cafile=str(pki.ca))
    if user is not None:
        cert, key = pki.client_certs[user]
        context.load_cert_chain(str(cert), str(key))
    return context


def mqtt_client(
    port: int,
    context: ssl.SSLContext,
    username: str | None = None,
    password: str | None = None,
) -> aiomqtt.Client:
    return aiomqtt.Client(
        LOOPBACK,
        port,
        username=username,
        password=password,
        identifier=f"test-{username or 'anonymous'}-{uuid.uuid4().hex[:6]}",
        tls_context=context,
        timeout=3,
    )


def bridge_config(
    secure: SecureBroker,
    pki: Pki,
    port: int,
    *,
    password_file: Path | None = None,
    certificate: bool = False,
) -> Config:
    """The tests' station on the packaged topics (the ACL names them), as user csbridge over
    TLS; the password from `password_file`, else from $CSBRIDGE_MQTT_PASSWORD."""
    base = station_config(secure.url(port), unique_prefix())
    cert, key = pki.client_certs["csbridge"] if certificate else (None, None)
    mqtt = MqttConfig.model_validate(
        {
            "broker": secure.url(port),
            "client_id": f"csbridge-{uuid.uuid4().hex[:8]}",
            "username": "csbridge",
            "password_file": password_file,
            "ca_file": pki.ca,
            "cert_file": cert,
            "key_file": key,
        }
    )
    assert (mqtt.request_topic, mqtt.response_topic) == (REQUEST_TOPIC, RESPONSE_TOPIC)
    return base.model_copy(update={"mqtt": mqtt})


def bridge_online(topic: str, payload: bytes) -> bool:
    return (topic, payload) == (STATUS_TOPIC, b"online")


def secret_file(path: Path, text: str) -> Path:
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


# -- Josev, and anyone else, as plain clients ------------------------------------------------


class Listener:
    """Every message one client receives, by a reader task."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.received: list[tuple[str, bytes]] = []
        self._arrived = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _read(self) -> None:
        async for message in self.client.messages:
            payload = message.payload
            raw = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
            self.received.append((message.topic.value, raw))
            async with self._arrived:
                self._arrived.notify_all()

    async def wait_for(
        self, found: Callable[[str, bytes], bool], timeout: float = 5.0
    ) -> tuple[str, bytes]:
        async def _find() -> tuple[str, bytes]:
            async with self._arrived:
                while True:
                    for topic, payload in self.received:
                        if found(topic, payload):
                            return topic, payload
                    await self._arrived.wait()

        return await asyncio.wait_for(_find(), timeout)

    def documents(self, topic: str) -> list[dict[str, Any]]:
        parsed = []
        for got_topic, payload in self.received:
            if got_topic == topic:
                document = orjson.loads(payload)
                assert isinstance(document, dict)
                parsed.append(document)
        return parsed


class Josev(Listener):
    """Josev's side of the API: requests on josev/cs, answers checked against their schemas."""

    def __init__(self, client: aiomqtt.Client) -> None:
        super().__init__(client)
        self.codec = EnvelopeCodec(registry(), Direction.TO_JOSEV, 1024 * 1024)

    async def request(self, name: str, timeout: float = 5.0) -> Message:
        message = Message.from_data(name, MessageType.REQUEST, {})
        await self.client.publish(REQUEST_TOPIC, self.codec.encode(message), qos=QOS)

        def answers(topic: str, payload: bytes) -> bool:
            return topic == RESPONSE_TOPIC and orjson.loads(payload).get("id") == message.id

        _, payload = await self.wait_for(answers, timeout)
        answer = self.codec.decode(payload)
        assert (answer.name, answer.type) == (name, MessageType.RESPONSE)
        return answer

    async def boot(self) -> tuple[Message, Message]:
        parameters, status = await asyncio.gather(
            self.request("cs_parameters"), self.request("cs_status_and_limits")
        )
        check_consistent(parameters, status)
        return parameters, status


@contextlib.asynccontextmanager
async def josev_side(
    secure: SecureBroker, pki: Pki, port: int, *, certificate: bool = False
) -> AsyncIterator[Josev]:
    context = client_tls(pki, "josev" if certificate else None)
    async with mqtt_client(port, context, "josev", secure.passwords["josev"]) as client:
        await client.subscribe(RESPONSE_TOPIC, qos=QOS)
        await client.subscribe(STATUS_TOPIC, qos=QOS)
        async with Josev(client) as josev:
            yield josev


# -- the tests -------------------------------------------------------------------------------


async def test_bridge_over_mutual_tls_with_a_password_file(
    secure: SecureBroker, pki: Pki, tmp_path: Path
) -> None:
    """The listener that asks for a client certificate: the bridge shows its own and its
    password from a 0600 file; Josev (its own certificate and password) gets both boot answers."""
    password_file = secret_file(tmp_path / "mqtt-password", secure.passwords["csbridge"])
    config = bridge_config(
        secure, pki, secure.mtls_port, password_file=password_file, certificate=True
    )
    assert exposed_secret_files(config.mqtt) == []
    async with josev_side(secure, pki, secure.mtls_port, certificate=True) as josev:
        station, task = await start_station(config)
        try:
            parameters, status = await josev.boot()
            sock = station.bridge.link.client_socket()
            assert isinstance(sock, ssl.SSLSocket)
            assert sock.version() in ("TLSv1.2", "TLSv1.3")
        finally:
            await stop_bridge(task)
    assert parameters.data["number_of_evses"] == len(config.evse)
    assert {entry["evse_id"] for entry in status.data["evses"]} == {e.evse_id for e in config.evse}


async def test_bridge_takes_its_password_from_the_environment(
    secure: SecureBroker, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """username set, no password_file: $CSBRIDGE_MQTT_PASSWORD (systemd's EnvironmentFile=)."""
    monkeypatch.setenv(PASSWORD_ENV, secure.passwords["csbridge"])
    config = bridge_config(secure, pki, secure.tls_port)
    assert config.mqtt.password_file is None
    async with josev_side(secure, pki, secure.tls_port) as josev:
        station, task = await start_station(config)
        try:
            await josev.boot()
            await josev.wait_for(bridge_online)
        finally:
            await stop_bridge(task)
        assert station.bridge.counters.get("inbound_received") == 2


async def test_clients_without_rights_get_nothing_through(
    secure: SecureBroker, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`intruder` (a valid password, no ACL entries) asks the bridge, fakes an answer to Josev
    and fakes the bridge going offline: none of it arrives anywhere, and it hears nothing. An
    anonymous client does not get in at all. Then Josev, asking the same, is answered."""
    monkeypatch.setenv(PASSWORD_ENV, secure.passwords["csbridge"])
    config = bridge_config(secure, pki, secure.tls_port)
    request = load_fixture("cs_status_and_limits_request") | {"id": str(uuid.uuid4())}
    fake_answer = load_fixture("cs_status_and_limits_response_dc") | {"id": str(uuid.uuid4())}
    tls = client_tls(pki)
    async with josev_side(secure, pki, secure.tls_port) as josev:
        station, task = await start_station(config)
        try:
            await josev.wait_for(bridge_online)
            with pytest.raises(aiomqtt.MqttError):
                async with mqtt_client(secure.tls_port, tls) as anonymous:
                    await anonymous.publish(REQUEST_TOPIC, orjson.dumps(request), qos=QOS)
            intruder_client = mqtt_client(
                secure.tls_port, tls, "intruder", secure.passwords["intruder"]
            )
            async with intruder_client, Listener(intruder_client) as intruder:
                await intruder_client.subscribe("#", qos=QOS)
                await intruder_client.publish(REQUEST_TOPIC, orjson.dumps(request), qos=QOS)
                await intruder_client.publish(RESPONSE_TOPIC, orjson.dumps(fake_answer), qos=QOS)
                await intruder_client.publish(STATUS_TOPIC, b"offline", qos=QOS, retain=True)
                await asyncio.sleep(SETTLE_S)  # a window for what must not arrive

                assert station.bridge.counters.get("inbound_received") == 0
                seen_ids = {document["id"] for document in josev.documents(RESPONSE_TOPIC)}
                assert request["id"] not in seen_ids
                assert fake_answer["id"] not in seen_ids
                assert all(d["type"] == "update" for d in josev.documents(RESPONSE_TOPIC))
                statuses = [payload for topic, payload in josev.received if topic == STATUS_TOPIC]
                assert statuses == [b"online"]

                # The control: the same request from Josev is received and answered, and the
                # intruder, subscribed to everything, still hears nothing of it.
                answer = await josev.request("cs_status_and_limits")
                assert answer.data["evses"]
                assert station.bridge.counters.get("inbound_received") == 1
                await asyncio.sleep(0.2)  # a window for what must not arrive
                assert intruder.received == []
        finally:
            await stop_bridge(task)


@pytest.mark.parametrize("source", ["password_file", "environment"])
async def test_wrong_password_keeps_the_bridge_retrying_and_is_never_shown(
    secure: SecureBroker,
    pki: Pki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    source: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    # Every failed attempt logged, so every line is checked: the limiter of repeated faults is
    # process-wide, and an earlier test may just have spent its one line a minute.
    monkeypatch.setattr(log_limit, "_interval_s", 0.0)
    wrong = f"wrong-{secrets.token_urlsafe(12)}"
    if source == "password_file":
        config = bridge_config(
            secure, pki, secure.tls_port, password_file=secret_file(tmp_path / "pw", wrong)
        )
    else:
        monkeypatch.setenv(PASSWORD_ENV, wrong)
        config = bridge_config(secure, pki, secure.tls_port)

    # What aiomqtt raises for it, which the bridge logs: no password in it either.
    with pytest.raises(aiomqtt.MqttError) as refused:
        async with mqtt_client(secure.tls_port, client_tls(pki), "csbridge", wrong):
            pass

    station = Station(config)
    task = asyncio.create_task(station.run())
    try:
        # Raises at once should the bridge give up on the wrong password.
        await wait_for_station(
            station,
            task,
            lambda running: running.bridge.link.failed_connects >= 3,
            8,
            "three failed connects",
        )
        assert not task.done()
        assert not station.bridge.link.connected.is_set()
        assert station.bridge.link.connects == 0
    finally:
        await stop_bridge(task)

    failures = [r for r in caplog.records if "event=mqtt_connect_failed" in r.getMessage()]
    assert len(failures) >= 3
    formatter = logging.Formatter()
    texts = [caplog.text, str(refused.value), repr(refused.value), secure.broker.log()]
    for record in caplog.records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
        if record.exc_info:
            texts.append(formatter.formatException(record.exc_info))
    for text in texts:
        assert wrong not in text
        assert secure.passwords["csbridge"] not in text


async def test_client_without_a_certificate_is_refused_where_one_is_required(
    secure: SecureBroker, pki: Pki
) -> None:
    """The right password is not enough on the require_certificate listener; the same client
    with a certificate from the CA gets in (so the refusal is about the certificate)."""
    password = secure.passwords["josev"]
    with pytest.raises(aiomqtt.MqttError):
        async with mqtt_client(secure.mtls_port, client_tls(pki), "josev", password) as client:
            await client.publish(REQUEST_TOPIC, b"{}", qos=QOS)
    async with mqtt_client(secure.mtls_port, client_tls(pki, "josev"), "josev", password) as client:
        await client.publish(REQUEST_TOPIC, b"{}", qos=QOS)
    # And the other way round: a certificate does not replace the password.
    with pytest.raises(aiomqtt.MqttError):
        async with mqtt_client(secure.mtls_port, client_tls(pki, "josev"), "josev", "nope"):
            pass


async def test_the_emulator_command_logs_in_like_the_bridge(
    secure: SecureBroker, pki: Pki, tmp_path: Path
) -> None:
    """`csbridge emulate` against the locked-down broker as user josev: the password from a
    file, the private CA, josev's client certificate (the options `csbridge status` shares)."""
    password_file = secret_file(tmp_path / "mqtt-password", secure.passwords["csbridge"])
    config = bridge_config(
        secure, pki, secure.mtls_port, password_file=password_file, certificate=True
    )
    josev_password = secret_file(tmp_path / "josev-password", secure.passwords["josev"])
    cert, key = pki.client_certs["josev"]
    _, task = await start_station(config)
    try:
        emulate = await asyncio.create_subprocess_exec(
            *CSBRIDGE,
            "emulate",
            "--broker",
            secure.url(secure.mtls_port),
            "--duration",
            "0.5",
            "--username",
            "josev",
            "--password-file",
            str(josev_password),
            "--ca-file",
            str(pki.ca),
            "--cert-file",
            str(cert),
            "--key-file",
            str(key),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(emulate.communicate(), 30)
    finally:
        await stop_bridge(task)
    assert emulate.returncode == 0, (out + err).decode()
    assert b"OK: 2 responses" in out
    assert secure.passwords["josev"].encode() not in out + err


async def test_the_emulator_without_a_password_is_refused_and_says_so(
    secure: SecureBroker, pki: Pki
) -> None:
    emulate = await asyncio.create_subprocess_exec(
        *CSBRIDGE,
        "emulate",
        "--broker",
        secure.url(secure.tls_port),
        "--duration",
        "0.5",
        "--username",
        "josev",
        "--ca-file",
        str(pki.ca),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != PASSWORD_ENV},
    )
    out, err = await asyncio.wait_for(emulate.communicate(), 30)
    assert emulate.returncode == 1, (out + err).decode()
    assert b"FAILED" in err, "a broker that refuses the login is said on stderr, in one line"
