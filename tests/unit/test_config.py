"""Every configuration mistake is named by its key, with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from csbridge.config import ConfigError, load_config, parse_config
from csbridge.support.resources import example_config

GOOD = """
[station]
sw_version = "1.0"
hw_version = "rev-a"

[[evse]]
evse_id = "DE*CSB*E0009"
kind = "dc"
network_interface = "eth1"
connectors = [{ id = 1, connector_type = "DC_extended" }]

[evse.dc_limits]
max_current_a = 200
max_voltage_v = 1000
max_power_w = 150000
peak_current_ripple_a = 2
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "station.toml")
    assert str(caught.value).startswith("station.toml: ")
    return caught.value.problems


def test_shipped_example_is_valid() -> None:
    config = load_config(example_config("sim-station.toml"))
    assert [(e.evse_id, e.kind.value, e.bpt) for e in config.evse] == [
        ("DE*CSB*E0001", "dc", False),  # REG modules cannot import: no BPT (issue 17)
        ("DE*CSB*E0002", "ac", True),
    ]


def test_minimal_dc_station_gets_the_defaults() -> None:
    config = parse_config(GOOD)
    assert config.mqtt.request_topic == "josev/cs"
    assert config.mqtt.response_topic == "cs/josev"
    assert config.mqtt.max_payload_bytes == 64 * 1024
    assert config.evse[0].dc_limits is not None
    assert config.evse[0].dc_limits.min_current_a == 0.0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("max_power_w = 150000", "max_power_w = -1"),
            "evse[0].dc_limits.max_power_w: Input should be greater than or equal to 0",
        ),
        (
            ("max_power_w = 150000", "max_power_w = nan"),
            "evse[0].dc_limits.max_power_w: Input should be a finite number",
        ),
        (
            ("max_power_w = 150000", 'max_power_w = "lots"'),
            "evse[0].dc_limits.max_power_w: Input should be a valid number",
        ),
        (
            ("max_current_a = 200", "max_current_a = 200\nmin_current_a = 300"),
            "evse[0].dc_limits: min_current_a (300.0) is above max_current_a (200.0)",
        ),
        (('kind = "dc"', 'kind = "ac"'), "evse[0]: a ac EVSE needs [ac_limits]"),
        (('kind = "dc"', 'kind = "dc"\nbpt = true'), "evse[0]: bpt = true needs [dc_bpt_limits]"),
        (
            ("DC_extended", "AC_three_phase_core"),
            "evse[0]: connectors[0].connector_type AC_three_phase_core does not fit a dc EVSE",
        ),
        (("DC_extended", "Type2"), "evse[0].connectors[0].connector_type: Input should be"),
        (('network_interface = "eth1"\n', ""), "evse[0].network_interface: Field required"),
        (("network_interface", "network_interfaces"), "evse[0].network_interfaces: unknown key"),
        (
            ('evse_id = "DE*CSB*E0009"', 'evse_id = "' + "X" * 38 + '"'),
            "evse[0].evse_id: String should have at most 37 characters",
        ),
        (
            ("[station]", '[mqtt]\nbroker = "http://x"\n[station]'),
            "mqtt.broker: broker URL 'http://x' must start with mqtt:// or mqtts://",
        ),
        (
            ("[station]", '[mqtt]\nrequest_topic = "josev/#"\n[station]'),
            "mqtt.request_topic: a topic to publish or answer on cannot hold wildcards",
        ),
        (('hw_version = "rev-a"', ""), "station.hw_version: Field required"),
        (("[station]", "[station"), "(top level)"),
    ],
)
def test_mistake_is_named_by_key_and_reason(change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    problems = _problems(GOOD.replace(old, new, 1))
    if expected == "(top level)":
        assert problems[0].startswith("not valid TOML")
    else:
        assert any(problem.startswith(expected) for problem in problems), problems


def test_duplicate_evse_ids_are_refused() -> None:
    evse = GOOD[GOOD.index("[[evse]]") :]
    problems = _problems(GOOD + evse)
    assert problems == ["(top level): evse_id must be unique across EVSEs, repeated: DE*CSB*E0009"]


def test_unreadable_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(Path("/nonexistent/station.toml"))
