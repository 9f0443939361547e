"""The command line as a user runs it: real processes, a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiomqtt
import orjson
import pytest

from csbridge.config import Config, broker_address, load_config
from csbridge.mqtt.embedded_broker import free_port
from csbridge.support.resources import example_config
from csbridge.testing.brokers import Broker
from tests.conftest import start_station, stop_bridge
from tests.support import FIXTURES

CSBRIDGE = [sys.executable, "-m", "csbridge"]
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}


def _run(
    *args: str, stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CSBRIDGE, *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        check=False,
    )


def test_validate_accepts_a_valid_message() -> None:
    result = _run(
        "validate", str(FIXTURES / "messages" / "cs_status_and_limits_response_dc_bpt.json")
    )
    assert result.returncode == 0, result.stderr
    assert "valid:" in result.stdout
    assert "cs_status_and_limits/response" in result.stdout


def test_validate_names_what_where_and_why() -> None:
    result = _run("validate", str(FIXTURES / "invalid" / "response_dc_missing_ripple.json"))
    assert result.returncode == 1
    assert "message=cs_status_and_limits" in result.stderr
    assert "where=$.data.evses[0].dc" in result.stderr
    assert "peak_current_ripple" in result.stderr


def test_validate_reads_stdin() -> None:
    result = _run("validate", "-", stdin=b'{"id": "x", "name": "cs_parameters"}')
    assert result.returncode == 1
    assert "where=$" in result.stderr
    ok = _run(
        "validate", "-", stdin=(FIXTURES / "messages" / "cs_parameters_request.json").read_bytes()
    )
    assert ok.returncode == 0


def test_validate_refuses_what_is_not_json() -> None:
    result = _run("validate", "-", stdin=b"\x00\x01")
    assert result.returncode == 1
    assert "not JSON" in result.stderr


def test_check_config_accepts_the_example_and_names_mistakes(tmp_path: Path) -> None:
    result = _run("check-config", str(example_config("sim-station.toml")))
    assert result.returncode == 0, result.stderr
    assert "DE*CSB*E0001: dc, eth1" in result.stdout  # REG modules: no BPT (issue 17)
    assert "DE*CSB*E0002: ac + bpt" in result.stdout
    broken = tmp_path / "broken.toml"
    broken.write_text(
        example_config("sim-station.toml")
        .read_text()
        .replace("max_power_w = 150000", "max_power_w = -5")
    )
    result = _run("check-config", str(broken))
    assert result.returncode == 2
    assert "evse[0].dc_limits.max_power_w" in result.stderr


def test_demo_runs_without_broker_or_hardware_and_exits_zero() -> None:
    result = _run("demo", "--duration", "9", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cs_parameters/response" in result.stdout
    assert "cs_status_and_limits/response" in result.stdout
    assert "cs_status_and_limits/update" in result.stdout
    assert "PROBLEM" not in result.stdout
    assert "DE*CSB*E0001" in result.stdout
    # Piped, each update shows what changed and what binds it (the stack filling up).
    updates = [line for line in result.stdout.splitlines() if "cs_status_and_limits/update" in line]
    assert any(
        "max_current " in line and " A -> " in line and "(bound by " in line for line in updates
    ), updates


async def test_run_on_the_example_station_passes_the_emulator(broker: Broker) -> None:
    """The issue's check: `csbridge run` on examples/sim-station.toml meets Josev's rules."""
    async with _listening(broker.url, "csbridge/status") as status:
        run = subprocess.Popen(
            [
                *CSBRIDGE,
                "run",
                "--config",
                str(example_config("sim-station.toml")),
                "--broker",
                broker.url,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ENV,
        )
        try:
            await _first(status, b"online".__eq__)
            emulate = await asyncio.create_subprocess_exec(
                *CSBRIDGE,
                "emulate",
                "--broker",
                broker.url,
                "--duration",
                "8",
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=ENV,
            )
            # Limits that keep changing while Josev listens, so updates follow its boot however
            # long the emulator takes to start (the stack may be full before it subscribes).
            changing = asyncio.create_task(_changing_external_limit(broker.url))
            try:
                out, err = await asyncio.wait_for(emulate.communicate(), 60)
            finally:
                changing.cancel()
                await asyncio.gather(changing, return_exceptions=True)
            text = out.decode()
            assert emulate.returncode == 0, text + err.decode()
            assert "cs -> josev cs_parameters/response" in text
            assert "cs -> josev cs_status_and_limits/response" in text
            assert "cs_status_and_limits/update" in text, "updates follow the boot"
            assert "OK: 2 responses" in text
        finally:
            run.send_signal(signal.SIGKILL)
            run.wait()
        # Killed without a goodbye: the broker publishes the retained last will.
        await _first(status, b"offline".__eq__)


async def _changing_external_limit(url: str) -> None:
    """An energy manager moving the example's DC EVSE between two limits every half second."""
    host, port, _ = broker_address(url)
    topic = f"{load_config(example_config('sim-station.toml')).mqtt.local_prefix}/DE*CSB*E0001"
    async with aiomqtt.Client(host, port) as client:
        for turn in itertools.count():
            power = 50_000 if turn % 2 else 60_000
            payload = orjson.dumps({"max_power": power, "valid_for": 60})
            await client.publish(f"{topic}/external_limit", payload, qos=1)
            await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def _listening(url: str, topic: str) -> AsyncIterator[aiomqtt.Client]:
    """A client subscribed to `topic`: it gets the retained message first, then each new one."""
    host, port, _ = broker_address(url)
    async with aiomqtt.Client(host, port) as client:
        await client.subscribe(topic, qos=1)
        yield client


async def _first(
    client: aiomqtt.Client, matches: Callable[[bytes], bool], timeout: float = 10
) -> None:
    """Until the next message to `client` whose payload `matches`."""
    async with asyncio.timeout(timeout):
        async for message in client.messages:
            if isinstance(message.payload, bytes) and matches(message.payload):
                return


def _full_stack(payload: bytes) -> bool:
    """A cs_status_and_limits update showing all three modules of the example's DC EVSE."""
    message = orjson.loads(payload)
    if (message["name"], message["type"]) != ("cs_status_and_limits", "update"):
        return False
    return any(
        entry["evse_id"] == "DE*CSB*E0001" and entry["dc"]["max_current"] == 240.0
        for entry in message["data"]["evses"]
    )


async def test_the_scenario_passes_against_csbridge_run_on_the_example(broker: Broker) -> None:
    """The issue's check: `csbridge emulate --scenario dc-session` against `csbridge run
    --config examples/sim-station.toml` (modules and IMD on the virtual CAN bus)."""
    text = await _scenario_against_the_example(broker, "dc-session", timeout=90)
    assert "OK: 14 of 14 steps passed" in text


async def test_misuse_passes_against_csbridge_run_on_the_example(broker: Broker) -> None:
    """The issue's check: `csbridge emulate --scenario misuse` against `csbridge run`: every
    out-of-sequence request refused, no module output; the retained setpoint cleared after."""
    text = await _scenario_against_the_example(broker, "misuse", timeout=150)
    assert "OK: 10 of 10 steps passed" in text
    assert "live copy answered rejected" in text, text
    async with _listening(broker.url, f"josev/cs/probe-{os.getpid()}") as probe:
        await probe.subscribe("josev/cs", qos=1)
        await probe.publish(f"josev/cs/probe-{os.getpid()}", b"probe", qos=1)
        kept = []
        async with asyncio.timeout(5):
            async for message in probe.messages:  # the retained come before the live probe
                if message.topic.value != "josev/cs":
                    break
                kept.append(message.payload)
        assert kept == [], "the retained setpoint is cleared at the end"


async def test_the_ac_session_passes_against_csbridge_run_on_the_example(broker: Broker) -> None:
    """The issue's check: `csbridge emulate --scenario ac-session` against `csbridge run` on the
    example's AC EVSE."""
    text = await _scenario_against_the_example(broker, "ac-session", timeout=60)
    assert "OK: 12 of 12 steps passed" in text
    assert "DE*CSB*E0002" in text


async def _scenario_against_the_example(broker: Broker, scenario: str, timeout: float) -> str:
    """`csbridge emulate --scenario <scenario>` against `csbridge run --config
    examples/sim-station.toml`, once its stack is full; what emulate printed (exit 0 asserted,
    else the station's log shown too). The station logs to a file: a pipe nobody reads would
    stall it once full."""
    with tempfile.TemporaryFile() as station_log:
        async with _listening(broker.url, "cs/josev") as josev_topic:
            run = await asyncio.create_subprocess_exec(
                *CSBRIDGE,
                "run",
                "--config",
                str(example_config("sim-station.toml")),
                "--broker",
                broker.url,
                stdout=subprocess.DEVNULL,
                stderr=station_log,
            )
            try:
                await _first(josev_topic, _full_stack, 15)  # the stack fills up module by module
                emulate = await asyncio.create_subprocess_exec(
                    *CSBRIDGE,
                    "emulate",
                    "--broker",
                    broker.url,
                    "--scenario",
                    scenario,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    # COLUMNS over the caller's own: a wrapped detail cell splits its words.
                    env=ENV,
                )
                out, err = await asyncio.wait_for(emulate.communicate(), timeout)
            finally:
                run.kill()
                await run.wait()
        text = out.decode()
        if emulate.returncode != 0:
            station_log.seek(0)
            log_tail = station_log.read()[-20_000:].decode(errors="replace")
            pytest.fail(f"{text}{err.decode()}\n-- the station's log --\n{log_tail}")
        return text


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "mqtt://"])
def test_emulate_refuses_a_bad_broker_url(url: str) -> None:
    result = _run("emulate", "--broker", url)
    assert result.returncode == 2


# -- what users expect of a command line (issue 19) ------------------------------------------


def test_version_is_the_installed_packages_in_one_line() -> None:
    from importlib.metadata import version  # noqa: PLC0415

    result = _run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"csbridge {version('csbridge')}\n"


def test_completion_prints_a_bash_script_that_completes_commands() -> None:
    # Named, not guessed: typer's --show-completion finds no shell under a detached runner.
    script = _run("completion", "bash")
    assert script.returncode == 0, script.stderr
    assert "complete -o default -F _csbridge_completion csbridge" in script.stdout
    assert "_CSBRIDGE_COMPLETE=complete_bash" in script.stdout
    # What the script does on <TAB>: the program answers from these variables.
    completing = {**ENV, "_CSBRIDGE_COMPLETE": "complete_bash"}
    answer = subprocess.run(
        CSBRIDGE,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**completing, "COMP_WORDS": "csbridge stat", "COMP_CWORD": "1"},
    )
    assert answer.stdout.split() == ["status"]


def test_validate_takes_many_files_and_json_lines_with_file_and_line(tmp_path: Path) -> None:
    good = FIXTURES / "messages" / "cs_parameters_request.json"
    bad = FIXTURES / "invalid" / "response_dc_missing_ripple.json"
    lines = tmp_path / "messages.jsonl"
    one_line = b" ".join(good.read_bytes().split())
    lines.write_bytes(one_line + b"\n\n" + b" ".join(bad.read_bytes().split()) + b"\n")

    both = _run("validate", str(good), str(bad))
    assert both.returncode == 1
    assert both.stdout == f"valid: {good}:1: cs_parameters/request\n"
    assert both.stderr.startswith(f"invalid: {bad}:1: message=cs_status_and_limits where=")
    assert len(both.stderr.splitlines()) == 1

    jsonl = _run("validate", "--lines", str(lines))
    assert jsonl.returncode == 1
    assert jsonl.stdout == f"valid: {lines}:1: cs_parameters/request\n"
    assert jsonl.stderr.startswith(f"invalid: {lines}:3: message=cs_status_and_limits ")

    piped = _run("validate", "--lines", "-", stdin=one_line + b"\n" + one_line + b"\n")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines() == [
        "valid: <stdin>:1: cs_parameters/request",
        "valid: <stdin>:2: cs_parameters/request",
    ]


def test_init_writes_a_starter_that_check_config_passes_and_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    profiles = ("huawei-r4850", "bender-iso165c", "generic-charger-board")
    written = _run("init", *profiles, "-o", str(path))
    assert written.returncode == 0, written.stderr
    assert "[[evse.module]]" in path.read_text(encoding="utf-8")
    checked = _run("check-config", str(path))
    assert checked.returncode == 0, checked.stderr
    again = _run("init", "huawei-r4850", "-o", str(path))
    assert again.returncode == 2
    assert again.stderr == f"init error {path}: exists; --force overwrites it\n"
    assert "bender-iso165c" in path.read_text(encoding="utf-8"), "kept as it was"
    forced = _run("init", "huawei-r4850", "-o", str(path), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "bender-iso165c" not in path.read_text(encoding="utf-8")


def test_check_config_json_is_the_verdict_alone_on_stdout(tmp_path: Path) -> None:
    good = _run("check-config", "--json", str(example_config("sim-station.toml")))
    assert good.returncode == 0, good.stderr
    report = orjson.loads(good.stdout)
    assert (report["ok"], report["problems"], report["warnings"]) == (True, [], [])
    assert [evse["evse_id"] for evse in report["evses"]] == ["DE*CSB*E0001", "DE*CSB*E0002"]
    broken = tmp_path / "broken.toml"
    broken.write_text(
        example_config("sim-station.toml")
        .read_text()
        .replace("max_power_w = 150000", "max_power_w = -5")
    )
    bad = _run("check-config", "--json", str(broken))
    assert bad.returncode == 2
    assert bad.stderr == ""
    (line,) = bad.stdout.splitlines()
    report = orjson.loads(line)
    assert report["ok"] is False
    assert any("evse[0].dc_limits.max_power_w" in problem for problem in report["problems"])


def test_check_config_dump_is_the_effective_configuration_without_secrets(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("hunter2\n", encoding="utf-8")
    secret.chmod(0o600)
    path = tmp_path / "station.toml"
    path.write_text(
        example_config("sim-station.toml")
        .read_text()
        .replace(
            'client_id = "csbridge-sim"',
            f'client_id = "csbridge-sim"\nusername = "bridge"\npassword_file = "{secret}"',
        )
    )
    dumped = _run("check-config", "--dump", str(path))
    assert dumped.returncode == 0, dumped.stderr
    assert 'password_file = "<removed>"' in dumped.stdout
    assert str(secret) not in dumped.stdout
    assert "settle_s = 1.0" in dumped.stdout, "a default the file does not set"
    assert "# listen: not set" in dumped.stdout
    copy = tmp_path / "dumped.toml"
    copy.write_text(dumped.stdout.replace('"<removed>"', f'"{secret}"'), encoding="utf-8")
    again = _run("check-config", "--dump", str(copy))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[1:] == dumped.stdout.splitlines()[1:]


async def test_emulate_json_is_each_exchange_then_the_result(
    config: Config, broker: Broker
) -> None:
    _, task = await start_station(config)
    try:
        emulate = await asyncio.create_subprocess_exec(
            *CSBRIDGE,
            "emulate",
            "--broker",
            broker.url,
            "--request-topic",
            config.mqtt.request_topic,
            "--response-topic",
            config.mqtt.response_topic,
            "--duration",
            "1",
            "--json",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ENV,
        )
        out, err = await asyncio.wait_for(emulate.communicate(), 60)
    finally:
        await stop_bridge(task)
    assert emulate.returncode == 0, out.decode() + err.decode()
    documents = [orjson.loads(line) for line in out.splitlines()]
    answered = {(d["name"], d["type"]) for d in documents if d.get("direction") == "cs -> josev"}
    assert {("cs_parameters", "response"), ("cs_status_and_limits", "response")} <= answered
    assert documents[-1] == {
        "result": "ok",
        "ok": True,
        "responses": 2,
        "updates": documents[-1]["updates"],
        "problems": [],
    }


def test_an_emulated_scenario_without_a_broker_is_a_failed_json_result() -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    result = _run("emulate", "--broker", url, "--scenario", "dc-session", "--json")
    assert result.returncode == 1
    report = orjson.loads(result.stdout)
    assert (report["scenario"], report["result"], report["steps"]) == ("dc-session", "failed", [])
    assert report["error"].startswith(f"broker {url}: ")
