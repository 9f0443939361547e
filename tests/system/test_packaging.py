"""What ships in packaging/: the systemd unit, the sysusers file, the production config and the
board's mosquitto config and ACL, each checked by the real tool that will load it.

The broker helpers here (`make_password_file`, `PackagedBroker`) are shared with
tests/system/test_broker_security.py, which runs a station against the same packaged broker config.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest

from csbridge.config import StationConfig, load_config
from csbridge.mqtt.embedded_broker import LOOPBACK, free_port
from csbridge.mqtt.link import MqttLink, Subscription
from csbridge.testing.brokers import (
    MosquittoBroker,
    MosquittoExitedError,
    find_mosquitto,
    mosquitto_required,
)
from csbridge.testing.harness import wait_until
from tests.support import REPO

pytestmark = pytest.mark.packaging

PACKAGING = REPO / "packaging"
UNIT = PACKAGING / "systemd" / "csbridge.service"
SYSUSERS = PACKAGING / "systemd" / "csbridge.sysusers"
STATION_CONFIG = PACKAGING / "csbridge.toml"
BROKER_CONFIG = PACKAGING / "mosquitto" / "csbridge.conf"
BROKER_ACL = PACKAGING / "mosquitto" / "csbridge.acl"
CREDENTIALS_DIR = "/run/credentials/csbridge.service"


# -- the systemd unit ------------------------------------------------------------------------


def unit_sections(text: str) -> dict[str, list[tuple[str, str]]]:
    """(key, value) of every directive, by section, in file order; comments left out."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a directive: {raw!r}"
        assert current is not None, f"directive before any section: {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [value for name, value in section if name == key]


def single(section: list[tuple[str, str]], key: str) -> str:
    found = values(section, key)
    assert len(found) == 1, f"{key}= given {len(found)} times: {found}"
    return found[0]


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return unit_sections(UNIT.read_text(encoding="utf-8"))


def test_unit_is_a_notify_service_with_a_watchdog(unit: dict[str, list[tuple[str, str]]]) -> None:
    service = unit["Service"]
    assert single(service, "Type") == "notify"
    assert single(service, "NotifyAccess") == "main"
    assert single(service, "WatchdogSec") == "10s"
    assert single(service, "Restart") == "on-failure"
    assert single(service, "RestartSec") == "1s"
    assert single(service, "RestartPreventExitStatus") == "2"
    assert single(service, "TimeoutStopSec") == "5s"
    assert single(service, "ExecStart") == (
        "/opt/csbridge/venv/bin/csbridge run --config /etc/csbridge/csbridge.toml"
    )
    # A crash loop ends; the start limit lives in [Unit] (systemd ignores it in [Service]).
    assert single(unit["Unit"], "StartLimitIntervalSec")
    assert int(single(unit["Unit"], "StartLimitBurst")) > 1
    assert "PYTHONUNBUFFERED=1" in values(service, "Environment")


def test_unit_keeps_running_across_broker_restarts(unit: dict[str, list[tuple[str, str]]]) -> None:
    """Ordered after mosquitto and pulling it in, but never bound to it: a broker restart must
    not stop the bridge (it reconnects)."""
    head = unit["Unit"]
    after = " ".join(values(head, "After")).split()
    wants = " ".join(values(head, "Wants")).split()
    assert {"mosquitto.service", "network-online.target"} <= set(after)
    assert {"mosquitto.service", "network-online.target"} <= set(wants)
    for binding in ("Requires", "BindsTo", "Requisite", "PartOf"):
        assert not values(head, binding), f"{binding}= would stop csbridge with the broker"


def test_unit_is_sandboxed(unit: dict[str, list[tuple[str, str]]]) -> None:
    service = unit["Service"]
    assert single(service, "User") == "csbridge"
    assert single(service, "Group") == "csbridge"
    assert single(service, "NoNewPrivileges") == "yes"
    assert single(service, "ProtectSystem") == "strict"
    assert single(service, "ProtectHome") == "yes"
    assert single(service, "PrivateTmp") == "yes"
    assert single(service, "CapabilityBoundingSet") == ""
    families = set(single(service, "RestrictAddressFamilies").split())
    assert families == {"AF_INET", "AF_INET6", "AF_UNIX", "AF_CAN"}
    assert single(service, "MemoryMax") == "128M"
    for flag in (
        "ProtectKernelTunables",
        "ProtectControlGroups",
        "RestrictRealtime",
        "LockPersonality",
    ):
        assert single(service, flag) == "yes", flag
    assert single(service, "SystemCallArchitectures") == "native"
    assert single(service, "ConfigurationDirectory") == "csbridge"
    assert "/etc/csbridge" in single(service, "ReadOnlyPaths").split()
    # The one writable place: the state directory, where [station] state_dir points by default.
    assert single(service, "StateDirectory") == "csbridge"
    assert StationConfig.model_fields["state_dir"].default == Path("/var/lib/csbridge")
    # CAN interfaces and the loopback broker live in the host's network namespace.
    assert not values(service, "PrivateNetwork")


def test_unit_credential_is_where_the_config_reads_the_password(
    unit: dict[str, list[tuple[str, str]]],
) -> None:
    credential = single(unit["Service"], "LoadCredential")
    name, _, source = credential.partition(":")
    assert source == "/etc/csbridge/mqtt-password"
    mqtt = load_config(STATION_CONFIG).mqtt
    assert mqtt.username == "csbridge"
    assert mqtt.password_file == Path(CREDENTIALS_DIR) / name


def test_every_unit_directive_says_why() -> None:
    """Each directive (or each run of directives) sits under a comment that explains it."""
    unexplained = []
    explained = False
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#"):
            explained = True
        elif not line or line.startswith("["):
            explained = False
        elif not explained:
            unexplained.append(line)
    assert unexplained == []


def csbridge_script() -> Path:
    """The console script of the Python running the tests, as a venv installs it."""
    found = shutil.which("csbridge", path=str(Path(sys.executable).parent))
    return Path(found) if found else Path(sys.prefix) / "bin" / "csbridge"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify`: every directive known and well formed, the binary executable.
    verify checks that ExecStart's binary exists, so the copy points at this venv's script. It
    does not resolve User=: a missing csbridge user is not its business (sysusers below)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    script = csbridge_script()
    assert os.access(script, os.X_OK), f"no csbridge console script at {script}"
    text = UNIT.read_text(encoding="utf-8")
    copied, count = re.subn(
        r"^ExecStart=/opt/csbridge/venv/bin/csbridge ",
        f"ExecStart={script} ",
        text,
        flags=re.MULTILINE,
    )
    assert count == 1
    unit_file = tmp_path / UNIT.name
    unit_file.write_text(copied, encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", str(unit_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"},
    )
    ours = [line for line in result.stderr.splitlines() if UNIT.name in line]
    assert ours == [], result.stderr
    assert result.returncode == 0, result.stderr


def test_unit_exposure_stays_low() -> None:
    """`systemd-analyze security` scores the sandbox from 0 (locked down) to 10 (exposed); the
    unit scores about 1.9. A drop-in or edit that loosens it past 2.5 fails here."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=25", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("this systemd-analyze cannot score a unit file offline (systemd < 250)")
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert score is not None, result.stdout + result.stderr
    assert float(score.group(1)) <= 2.5, result.stdout
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="systemd-sysusers writes a passwd file as root")
def test_sysusers_creates_the_service_user(tmp_path: Path) -> None:
    sysusers = shutil.which("systemd-sysusers")
    if sysusers is None:
        pytest.skip("systemd-sysusers is not installed")
    (tmp_path / "etc").mkdir()
    subprocess.run(
        [sysusers, f"--root={tmp_path}", "-"],
        input=SYSUSERS.read_bytes(),
        capture_output=True,
        timeout=30,
        check=True,
    )
    users = {
        line.split(":")[0]: line for line in (tmp_path / "etc/passwd").read_text().splitlines()
    }
    groups = {line.split(":")[0] for line in (tmp_path / "etc/group").read_text().splitlines()}
    assert "csbridge" in users
    assert "csbridge" in groups
    assert users["csbridge"].endswith(":/usr/sbin/nologin")


# -- the production configuration -------------------------------------------------------------


def test_production_config_passes_check_config(tmp_path: Path) -> None:
    """As on the charger, where systemd hands csbridge its broker password as a credential
    file that check-config reads as run does (here a file of the test's own)."""
    password = tmp_path / "mqtt-password"
    password.write_text("secret\n", encoding="utf-8")
    config = tmp_path / "csbridge.toml"
    config.write_text(
        STATION_CONFIG.read_text(encoding="utf-8").replace(
            "/run/credentials/csbridge.service/mqtt-password", str(password)
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "csbridge", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok" in result.stdout


def test_production_config_uses_the_topics_the_acl_grants() -> None:
    config = load_config(STATION_CONFIG)
    acl = BROKER_ACL.read_text(encoding="utf-8")
    granted = acl_grants(acl)["csbridge"]
    mqtt = config.mqtt
    assert ("read", mqtt.request_topic) in granted
    assert ("write", mqtt.response_topic) in granted
    assert ("readwrite", f"{mqtt.local_prefix}/#") in granted
    assert mqtt.status_topic.startswith(f"{mqtt.local_prefix}/")
    assert [bus.interface for bus in config.bus] == ["socketcan", "socketcan"]
    assert config.bus[0].name == "can0"
    assert config.metrics.listen == "127.0.0.1:9108"


def test_production_config_notices_a_stopped_broker_within_ten_seconds() -> None:
    """keepalive_s = 5: a silent broker is given up after two keepalives (measured with a
    SIGSTOPped mosquitto in tests/integration/test_mqtt_stopped_broker.py)."""
    assert load_config(STATION_CONFIG).mqtt.keepalive_s == 5


def test_networkd_files_set_up_the_configured_buses() -> None:
    """Each bus of the production config has a .network file with its bitrate and an automatic
    restart after bus-off; the file's sections and keys are as systemd.network(5) has them."""
    config = load_config(STATION_CONFIG)
    for bus in config.bus:
        sections = unit_sections((PACKAGING / "networkd" / f"80-{bus.name}.network").read_text())
        assert single(sections["Match"], "Name") == bus.interface_channel
        assert single(sections["Link"], "RequiredForOnline") == "no"
        assert int(single(sections["CAN"], "BitRate")) == bus.bitrate
        assert single(sections["CAN"], "RestartSec") == "100ms"


def acl_grants(text: str) -> dict[str, set[tuple[str, str]]]:
    """user -> {(access, topic)} from a mosquitto ACL file."""
    grants: dict[str, set[tuple[str, str]]] = {}
    user: str | None = None
    for raw in text.splitlines():
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user":
            user = words[1]
            grants.setdefault(user, set())
        elif words[0] == "topic":
            assert user is not None, f"an entry for anonymous clients: {raw!r}"
            access, topic = (words[1], words[2]) if len(words) == 3 else ("readwrite", words[1])
            grants[user].add((access, topic))
    return grants


# -- the board's broker -----------------------------------------------------------------------


def find_mosquitto_passwd() -> str | None:
    return shutil.which("mosquitto_passwd") or shutil.which(
        "mosquitto_passwd", path="/usr/bin:/usr/sbin:/usr/local/bin"
    )


def require_mosquitto() -> tuple[str, str]:
    """(mosquitto, mosquitto_passwd), or skip (fail under CSBRIDGE_REQUIRE_MOSQUITTO=1)."""
    broker, passwd = find_mosquitto(), find_mosquitto_passwd()
    if broker is None or passwd is None:
        if mosquitto_required():
            pytest.fail("CSBRIDGE_REQUIRE_MOSQUITTO=1 but mosquitto or mosquitto_passwd is missing")
        pytest.skip("needs mosquitto and mosquitto_passwd")
    return broker, passwd


def make_password_file(path: Path, users: dict[str, str]) -> Path:
    """A mosquitto password file (salted hashes) made by mosquitto_passwd -b, mode 0600."""
    _, passwd = require_mosquitto()
    path.touch(mode=0o600)
    for user, password in users.items():
        subprocess.run(
            [passwd, "-b", str(path), user, password],
            capture_output=True,
            timeout=30,
            check=True,
        )
    path.chmod(0o600)
    return path


def adapted_broker_config(
    workdir: Path, port: int, password_file: Path, extra: str = "", source: Path = BROKER_CONFIG
) -> str:
    """packaging's mosquitto config with only what a test cannot share moved: the loopback
    listener to `port`, the password file, the ACL (the shipped one, in place), the persistence
    directory into `workdir`, and the user (mosquitto started as root would otherwise drop to
    the mosquitto user, which cannot read pytest's private tmp). Each replaced line must exist
    exactly once, so a change to the shipped file cannot slip past the tests."""
    text = source.read_text(encoding="utf-8")
    data = workdir / "persistence"
    data.mkdir(exist_ok=True)
    replacements = {
        "listener 1883 127.0.0.1": f"listener {port} {LOOPBACK}",
        "user mosquitto": f"user {pwd.getpwuid(os.geteuid()).pw_name}",
        "password_file /etc/mosquitto/passwd": f"password_file {password_file}",
        "acl_file /etc/mosquitto/acl": f"acl_file {BROKER_ACL}",
        "persistence_location /var/lib/mosquitto/": f"persistence_location {data}/",
    }
    for shipped, replacement in replacements.items():
        pattern = rf"^{re.escape(shipped)}$"
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == 1, f"{source.name}: expected one line {shipped!r}, found {count}"
    return text + ("\n" + extra if extra else "")


class PackagedBroker(MosquittoBroker):
    """mosquitto on the packaged config (adapted as above) plus optional extra listeners; a
    config it refuses fails the test with mosquitto's own words."""

    def __init__(
        self,
        workdir: Path,
        password_file: Path,
        extra: str = "",
        extra_ports: tuple[int, ...] = (),
        port: int | None = None,
    ) -> None:
        binary, _ = require_mosquitto()
        port = port or free_port()
        text = adapted_broker_config(workdir, port, password_file, extra)
        super().__init__(workdir, binary, port, config_text=text, extra_ports=extra_ports)

    def start(self) -> None:
        try:
            super().start()
        except MosquittoExitedError:
            pytest.fail(f"mosquitto refused the packaged config:\n{self.log()}")
        except TimeoutError:
            pytest.fail(f"mosquitto did not listen on {self.ports}:\n{self.log()}")


PASSWORDS = {
    "csbridge": "bridge-secret-1",
    "josev": "josev-secret-2",
    "josev-slac": "josev-slac-secret-6",
    "energy-manager": "em-secret-3",
    "operator": "operator-secret-4",
    "monitor": "monitor-secret-5",
}


@pytest.fixture
def packaged_broker(tmp_path: Path) -> Iterator[PackagedBroker]:
    password_file = make_password_file(tmp_path / "passwd", PASSWORDS)
    broker = PackagedBroker(tmp_path, password_file)
    broker.start()
    yield broker
    broker.stop()


def _client(broker: PackagedBroker, user: str | None) -> aiomqtt.Client:
    return aiomqtt.Client(
        LOOPBACK,
        broker.port,
        username=user,
        password=PASSWORDS[user] if user else None,
        identifier=f"test-{user or 'anonymous'}",
        timeout=3,
    )


async def _received(client: aiomqtt.Client, within_s: float) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []

    async def collect() -> None:
        async for message in client.messages:
            payload = message.payload
            got.append((message.topic.value, bytes(payload) if isinstance(payload, bytes) else b""))

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(collect(), within_s)
    return got


async def test_packaged_broker_applies_the_acl(packaged_broker: PackagedBroker) -> None:
    """Loaded by a real mosquitto: every role reaches what the ACL grants it, nothing else,
    and nobody gets in without a password."""
    async with (
        _client(packaged_broker, "monitor") as monitor,
        _client(packaged_broker, "csbridge") as bridge,
        _client(packaged_broker, "energy-manager") as manager,
        _client(packaged_broker, "josev") as josev,
    ):
        await monitor.subscribe("#", qos=1)
        await bridge.subscribe("csbridge/+/external_limit", qos=1)
        await bridge.subscribe("josev/cs", qos=1)
        await josev.subscribe("cs/josev", qos=1)
        await josev.subscribe("csbridge/#", qos=1)
        await manager.publish("csbridge/E1/external_limit", b'{"max_power": 11000}', qos=1)
        await manager.publish("csbridge/E1/operator", b'{"enabled": false}', qos=1)  # not its own
        await manager.publish("josev/cs", b"from the energy manager", qos=1)  # not its own
        await josev.publish("josev/cs", b"from josev", qos=1)
        await bridge.publish("csbridge/E1/limits", b"limits", qos=1)
        await bridge.publish("cs/josev", b"answer", qos=1)
        await bridge.publish("csbridge/status", b"online", qos=1)
        to_bridge = await _received(bridge, 0.5)
        to_josev = await _received(josev, 0.2)
        to_monitor = await _received(monitor, 0.2)
    assert sorted(to_bridge) == [
        ("csbridge/E1/external_limit", b'{"max_power": 11000}'),
        ("josev/cs", b"from josev"),
    ]
    # Josev hears the answer and whether the bridge is online, none of csbridge's other topics.
    assert sorted(to_josev) == [("cs/josev", b"answer"), ("csbridge/status", b"online")]
    # The monitor sees csbridge's reports, not Josev's exchange nor anyone's commands.
    assert sorted(topic for topic, _ in to_monitor) == ["csbridge/E1/limits", "csbridge/status"]
    with pytest.raises(aiomqtt.MqttError):
        async with _client(packaged_broker, None):
            pass


async def test_packaged_broker_keeps_retained_commands_across_a_restart(
    packaged_broker: PackagedBroker,
) -> None:
    """persistence true: an operator's retained disable survives a broker restart (mosquitto
    saves on SIGTERM, as systemd stops it), so a reboot never re-enables an EVSE by itself."""
    async with _client(packaged_broker, "operator") as operator:
        await operator.publish("csbridge/E1/operator", b'{"enabled": false}', qos=1, retain=True)
    packaged_broker.stop()
    assert list((packaged_broker.config_path.parent / "persistence").glob("mosquitto.db"))
    packaged_broker.start()
    async with _client(packaged_broker, "csbridge") as bridge:
        await bridge.subscribe("csbridge/+/operator", qos=1)
        got = await _received(bridge, 1.0)
    assert got == [("csbridge/E1/operator", b'{"enabled": false}')]


def test_packaged_broker_refuses_a_broken_acl(tmp_path: Path) -> None:
    """The proof above is only worth something if mosquitto rejects a bad ACL instead of
    starting without one."""
    password_file = make_password_file(tmp_path / "passwd", {"csbridge": "x"})
    bad_acl = tmp_path / "bad.acl"
    bad_acl.write_text("user csbridge\ntopic sometimes josev/cs\n", encoding="utf-8")
    broker = PackagedBroker(tmp_path, password_file)
    text = broker.config_path.read_text(encoding="utf-8")
    broker.config_path.write_text(text.replace(str(BROKER_ACL), str(bad_acl)), encoding="utf-8")
    with pytest.raises(pytest.fail.Exception, match="Invalid topic access type"):
        broker.start()
    assert not broker.running


# -- client ids bound to users ----------------------------------------------------------------

CLIENT_ID_BINDING = "use_username_as_clientid true"


class BridgeLink:
    """csbridge's own MQTT link, logged in as the packaged config has it (user `csbridge`,
    client id `csbridge`), and every message it receives."""

    def __init__(self, broker: PackagedBroker, workdir: Path) -> None:
        password = workdir / "mqtt-password"
        password.write_text(PASSWORDS["csbridge"] + "\n", encoding="utf-8")
        password.chmod(0o600)
        shipped = load_config(STATION_CONFIG).mqtt
        assert (shipped.username, shipped.client_id) == ("csbridge", "csbridge")
        config = shipped.model_copy(update={"broker": broker.url, "password_file": password})
        self.received: list[tuple[str, bytes]] = []
        self.link = MqttLink(
            config,
            [Subscription(config.request_topic)],
            on_message=self._take,
            on_connected=self._nothing,
        )

    async def _take(self, topic: str, payload: bytes, retained: bool) -> None:
        self.received.append((topic, payload))

    async def _nothing(self) -> None:
        return None


@contextlib.asynccontextmanager
async def running_bridge(broker: PackagedBroker, workdir: Path) -> AsyncIterator[BridgeLink]:
    bridge = BridgeLink(broker, workdir)
    task = asyncio.create_task(bridge.link.run())
    try:
        await wait_until(bridge.link.connected.is_set, 5, "the bridge connected")
        yield bridge
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _pose_as_the_bridge(broker: PackagedBroker, user: str, times: int) -> None:
    """Log in as `user` asking for the bridge's client id, `times` times (the issue saw 4
    takeovers in 3 s)."""
    for _ in range(times):
        async with aiomqtt.Client(
            LOOPBACK,
            broker.port,
            username=user,
            password=PASSWORDS[user],
            identifier="csbridge",
            timeout=3,
        ):
            pass


async def test_packaged_broker_keeps_the_bridge_s_client_id_to_its_user(
    packaged_broker: PackagedBroker, tmp_path: Path
) -> None:
    """A logged-in `monitor` that asks for client id `csbridge` gets its own session: the
    bridge stays connected and keeps hearing Josev."""
    async with running_bridge(packaged_broker, tmp_path) as bridge:
        await _pose_as_the_bridge(packaged_broker, "monitor", 4)
        async with _client(packaged_broker, "josev") as josev:
            await josev.publish("josev/cs", b"still there", qos=1)
            await wait_until(
                lambda: ("josev/cs", b"still there") in bridge.received, 3, "the bridge hears"
            )
        assert (bridge.link.connects, bridge.link.losses) == (1, 0)
        assert bridge.link.connected.is_set()


async def test_without_the_binding_a_monitor_login_displaces_the_bridge(tmp_path: Path) -> None:
    """The same config without its one line: the monitor knocks the bridge off, as in the
    issue. This is what the test above would catch if the line went."""
    password_file = make_password_file(tmp_path / "passwd", PASSWORDS)
    broker = PackagedBroker(tmp_path, password_file)
    text = broker.config_path.read_text(encoding="utf-8")
    assert text.count(f"\n{CLIENT_ID_BINDING}\n") == 1
    broker.config_path.write_text(text.replace(f"\n{CLIENT_ID_BINDING}\n", "\n"), "utf-8")
    broker.start()
    try:
        async with running_bridge(broker, tmp_path) as bridge:
            await _pose_as_the_bridge(broker, "monitor", 1)
            await wait_until(lambda: bridge.link.losses >= 1, 3, "the bridge knocked off")
    finally:
        broker.stop()


def test_every_listener_binds_client_ids_to_users() -> None:
    """use_username_as_clientid belongs to the listener above it: each listener, the commented
    TLS one included, carries it before the next listener starts."""
    # Directives, with those commented out as `#directive` (comments read `# text`).
    lines = [
        line.removeprefix("#").strip()
        for line in BROKER_CONFIG.read_text(encoding="utf-8").splitlines()
        if not line.startswith("# ")
    ]
    blocks: list[list[str]] = []
    for line in lines:
        if re.match(r"listener \d+ ", line):
            blocks.append([])
        elif blocks:
            blocks[-1].append(line)
    assert len(blocks) == 2
    assert all(CLIENT_ID_BINDING in block for block in blocks)


async def test_each_of_josev_s_services_has_a_login_of_its_own(
    packaged_broker: PackagedBroker,
) -> None:
    """With ids bound to users, two programs on one login would close each other's
    connection: Josev's SECC and SLAC service connect as `josev` and `josev-slac`, side by
    side, each reaching Josev's topics; a second login as `josev` replaces the first."""
    async with (
        _client(packaged_broker, "josev") as secc,
        _client(packaged_broker, "josev-slac") as slac,
        _client(packaged_broker, "csbridge") as bridge,
    ):
        await secc.subscribe("cs/josev", qos=1)
        await slac.subscribe("cs/josev", qos=1)
        await bridge.subscribe("josev/cs", qos=1)
        await slac.publish("josev/cs", b"from slac", qos=1)
        await secc.publish("josev/cs", b"from the secc", qos=1)
        await bridge.publish("cs/josev", b"cp_status", qos=1)
        to_bridge = await _received(bridge, 0.5)
        to_secc = await _received(secc, 0.2)
        to_slac = await _received(slac, 0.2)
        assert sorted(to_bridge) == [("josev/cs", b"from slac"), ("josev/cs", b"from the secc")]
        assert to_secc == to_slac == [("cs/josev", b"cp_status")]
        async with _client(packaged_broker, "josev"):
            with pytest.raises(aiomqtt.MqttError):
                await secc.publish("josev/cs", b"after the second login", qos=1, timeout=3)
