"""csbridge's pytest plugin (csbridge.testing.plugin): its example test file passes as a test
engineer runs it, in pytest-asyncio's strict and auto modes, and from a fresh virtual
environment that installs nothing but the built wheel; its parts behave as docs/testing.md
says."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import pytest

from csbridge.config import Config, load_config
from csbridge.service.station import Station
from csbridge.support.resources import example_config
from csbridge.testing import plugin
from csbridge.testing.brokers import Broker
from csbridge.testing.harness import isolated_config, start_station
from csbridge.testing.josev import JosevClient
from csbridge.tools.emulator import EmulatorError
from tests.support import FIXTURES, REPO

pytest_plugins = ["pytester"]

EXAMPLE = REPO / "examples" / "test_example_station.py"
DOCS = REPO / "docs" / "testing.md"
EXAMPLE_TESTS = 5
DC = "DE*CSB*E0001"


def _passed(outcome: str) -> int:
    found = re.search(r"(\d+) passed", outcome)
    return int(found.group(1)) if found else 0


# -- the example, run as a test engineer runs it ---------------------------------------------


def test_the_plugin_is_registered_through_its_entry_point(request: pytest.FixtureRequest) -> None:
    (entry,) = [
        ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.name == "csbridge"
    ]
    assert entry.value == "csbridge.testing.plugin"
    assert request.config.pluginmanager.get_plugin("csbridge") is plugin


def test_the_docs_show_the_example_file_as_it_is() -> None:
    """docs/testing.md holds the whole file to copy: it must not drift from the tested one."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert EXAMPLE.read_text(encoding="utf-8") in blocks


def test_the_example_passes_in_auto_mode(pytester: pytest.Pytester) -> None:
    """In a folder of its own, as copied: no conftest, no ini file; only the plugin. In
    pytest-asyncio's auto mode here; the fresh-venv test below runs its default, strict."""
    shutil.copy(EXAMPLE, pytester.path / EXAMPLE.name)
    result = pytester.runpytest_subprocess("-q", "-o", "asyncio_mode=auto", timeout=120)
    result.assert_outcomes(passed=EXAMPLE_TESTS)


def test_a_marked_config_is_read_next_to_the_test_file(pytester: pytest.Pytester) -> None:
    """@pytest.mark.csbridge_config("station.toml") and the fixtures built on it, in strict
    mode: the station runs that file, on topics of its own."""
    shutil.copy(FIXTURES / "configs" / "reading-station.toml", pytester.path / "station.toml")
    pytester.makepyfile(
        test_marked="""
        import pytest

        pytestmark = pytest.mark.asyncio


        @pytest.mark.csbridge_config("station.toml")
        async def test_reading_station(csbridge_station, csbridge_josev, csbridge_prefix):
            config = csbridge_station.config
            assert config.station.scenario is None  # the file says "demo"
            assert config.mqtt.request_topic == f"{csbridge_prefix}/josev/cs"
            assert config.bus == []
            parameters, _ = await csbridge_josev.boot()
            assert parameters.data["number_of_evses"] == 2
            names = [seen.name for seen in csbridge_josev.seen]
            assert "cs_parameters" in names
            csbridge_josev.assert_no_problems()


        def test_default_is_the_packaged_example(csbridge_station_config, csbridge_can):
            assert [bus.name for bus in csbridge_station_config.bus] == ["sim-can0", "sim-can1"]
            assert csbridge_can.names == ["sim-can0", "sim-can1"]
            assert csbridge_can.tap().name == "sim-can0"
        """
    )
    result = pytester.runpytest_subprocess("-q", timeout=60)
    result.assert_outcomes(passed=2)


def test_without_pytest_asyncio_only_the_async_fixtures_fail(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin loads in every pytest run of an environment holding csbridge: without
    pytest-asyncio that run still works, and an async fixture says what to install."""
    shadow = pytester.mkdir("no_asyncio")
    (shadow / "pytest_asyncio").mkdir()
    (shadow / "pytest_asyncio" / "__init__.py").write_text("raise ImportError('not here')\n")
    pytester.makepyfile(
        test_sync="""
        def test_unrelated():
            assert True


        def test_config_without_asyncio(csbridge_station_config):
            assert csbridge_station_config.evse


        def test_station_needs_asyncio(csbridge_station):
            pass
        """
    )
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    result = pytester.runpytest_subprocess("-q", "-p", "no:asyncio", timeout=60)
    result.assert_outcomes(passed=2, errors=1)
    assert "pip install 'csbridge[testing]'" in result.stdout.str()


@pytest.mark.timeout(300)
def test_the_example_passes_from_a_fresh_venv_with_only_the_wheel(tmp_path: Path) -> None:
    """The issue's check: build the wheel, install it (its testing extra: pytest and
    pytest-asyncio; its dependencies from the package index) into a new virtual environment,
    copy the example test the wheel ships into an empty folder, and run pytest there. About
    45 s with a warm pip cache; the timeout leaves room for a cold one."""
    started = time.monotonic()
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)])
    (wheel,) = wheels.glob("csbridge-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", f"{wheel}[testing]"])

    # The copy comes from the installed package: the example ships with the wheel.
    shipped = _run(
        [
            str(python),
            "-c",
            "from csbridge.support.resources import example_config; "
            "print(example_config('test_example_station.py'))",
        ]
    ).strip()
    assert Path(shipped).is_relative_to(venv)
    work = tmp_path / "engineer"
    work.mkdir()
    shutil.copy(shipped, work / "test_example_station.py")
    outcome = _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=work)
    assert _passed(outcome) == EXAMPLE_TESTS, outcome
    assert time.monotonic() - started < 240


def _run(command: list[str], cwd: Path | None = None) -> str:
    """The command's output; its output in the failure when it fails. Outside this checkout
    and its venv: no PYTHONPATH, no VIRTUAL_ENV, so nothing leaks into the fresh one."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        command,
        cwd=cwd or Path("/"),
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{command} failed:\n{output}"
    return result.stdout


# -- the parts -------------------------------------------------------------------------------


def test_isolated_configs_share_no_topic_channel_or_port() -> None:
    raw = load_config(example_config("sim-station.toml")).model_dump(mode="json", exclude_none=True)
    raw["station"]["scenario"] = "demo"
    raw["mqtt"].update(
        broker="mqtts://broker.example:8883",
        ca_file="/etc/csbridge/ca.pem",
        username="csbridge",
        password_file="/etc/csbridge/mqtt-password",  # noqa: S106 - a path, no secret
    )
    raw["metrics"] = {"listen": "127.0.0.1:9108"}
    module = raw["evse"][0]["module"][0]
    del module["can"], module["simulated"]
    module["everest"] = {"module_id": "psu1"}
    source = Config.model_validate(raw)

    first = isolated_config(source, "mqtt://127.0.0.1:1", "ta", settle_s=0.2)
    second = isolated_config(source, "mqtt://127.0.0.1:1", "tb")
    for config, prefix in ((first, "ta"), (second, "tb")):
        mqtt = config.mqtt
        assert mqtt.broker == "mqtt://127.0.0.1:1"
        assert (mqtt.username, mqtt.password_file, mqtt.ca_file) == (None, None, None)
        assert mqtt.client_id == f"csbridge-{prefix}"
        assert mqtt.request_topic == f"{prefix}/josev/cs"
        assert mqtt.response_topic == f"{prefix}/cs/josev"
        assert mqtt.status_topic == f"{prefix}/csbridge/status"
        assert mqtt.local_prefix == f"{prefix}/csbridge"
        assert [bus.name for bus in config.bus] == ["sim-can0", "sim-can1"]
        assert [bus.interface_channel for bus in config.bus] == [
            f"{prefix}-sim-can0",
            f"{prefix}-sim-can1",
        ]
        everest = config.evse[0].module[0].everest
        assert everest is not None
        assert everest.topic_prefix == f"{prefix}/everest_api/1"
        assert config.station.scenario is None
        assert config.metrics.listen is not None
        assert config.metrics.listen != "127.0.0.1:9108"
    assert first.metrics.listen != second.metrics.listen
    assert first.reporting.settle_s == 0.2
    assert second.reporting.settle_s == source.reporting.settle_s


async def test_josev_waits_only_past_its_mark_and_says_where_things_stand(
    csbridge_station: Station, csbridge_josev: JosevClient
) -> None:
    """The project's own station (fixtures/configs/reading-station.toml, via conftest.py)."""
    first = await csbridge_josev.wait_for_update()  # the station's full state as it connects
    assert first.name == "cs_status_and_limits"
    entry = await csbridge_josev.wait_for_evse(DC, lambda e: e["status_code"] == "evse_ready")
    assert entry["evse_id"] == DC

    since = csbridge_josev.mark()
    with pytest.raises(EmulatorError, match=f"Josev's view: .*{re.escape(DC)}: evse_ready"):
        await csbridge_josev.wait_for_update(lambda message: message is first, 0.3, since=since)

    await csbridge_josev.boot()
    incoming = csbridge_josev.seen
    assert {seen.name for seen in incoming} >= {"cs_parameters", "cs_status_and_limits"}
    assert all(not seen.outgoing for seen in incoming)
    assert len(csbridge_josev.exchanges) == len(incoming) + 2  # and the two requests it sent
    csbridge_josev.assert_no_problems()


async def test_josev_reports_an_invalid_message_as_a_problem(
    csbridge_josev: JosevClient, raw_client: aiomqtt.Client
) -> None:
    await raw_client.publish(csbridge_josev.response_topic, b'{"not": "a message"}', qos=1)
    async with asyncio.timeout(5):
        while not csbridge_josev.problems:
            await asyncio.sleep(0.01)
    assert csbridge_josev.seen[-1].problem is not None
    with pytest.raises(AssertionError, match="station sent an invalid message"):
        csbridge_josev.assert_no_problems()


async def test_simulate_needs_the_station_config(broker: Broker) -> None:
    async with JosevClient.connect(broker.url, request_topic="x/req", response_topic="x/resp") as c:
        with pytest.raises(EmulatorError, match="for_config"):
            await c.simulate(DC, "plug_in")


async def test_a_station_that_cannot_connect_times_out_saying_so(
    csbridge_config_factory: plugin.ConfigFactory,
) -> None:
    config = csbridge_config_factory().with_broker("mqtt://127.0.0.1:1")
    with pytest.raises(TimeoutError, match=r"no broker connection within 0\.5 s .*NOT connected"):
        await start_station(config, connect_timeout=0.5)
