"""csbridge's pytest plugin, its parts without a broker: the entry point registers it, the docs
show its example file as it is, and isolated configs share no topic, channel or port (the
example run as a test engineer runs it: tests/system/test_plugin.py)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import re

import pytest

from csbridge.config import Config, load_config
from csbridge.support.resources import example_config
from csbridge.testing import plugin
from csbridge.testing.harness import isolated_config, wait_until
from tests.support import REPO

EXAMPLE = REPO / "examples" / "test_example_station.py"
DOCS = REPO / "docs" / "testing.md"


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


async def test_wait_until_awaits_a_round_trip_and_names_what_never_came() -> None:
    answers = iter([False, False, True])
    asked = 0

    async def third_time_lucky() -> bool:
        nonlocal asked
        asked += 1
        return next(answers)

    assert await wait_until(third_time_lucky, 5, "the third answer", every=0.001) < 5
    assert asked == 3

    never = asyncio.Event()

    async def no_answer() -> bool:
        await never.wait()  # a round trip that never comes back
        return True

    with pytest.raises(TimeoutError, match=r"the answer not met within 0\.05 s"):
        await wait_until(no_answer, 0.05, "the answer")
