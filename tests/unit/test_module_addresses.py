"""A module address its profile's identifiers cannot carry is a configuration error: commands to
it would be refused (or masked into another module's), so the EVSE could not switch it off."""

from __future__ import annotations

import re

import pytest

from csbridge.config import ConfigError, parse_config
from csbridge.sources.can import DeviceRouter
from csbridge.support import example_config


def _with_first_module_at(address: int) -> str:
    text = example_config("infypower-dc.toml").read_text(encoding="utf-8")
    # The example's modules are Infypower REG (8-bit address field); a uugreen module has 7.
    text = text.replace('profile = "infypower-reg"', 'profile = "uugreen-ur1000x0"', 1)
    return re.sub(r"^address = \S+", f"address = {address}", text, count=1, flags=re.MULTILINE)


def test_an_address_beyond_the_profiles_field_is_refused_by_its_key() -> None:
    config = parse_config(_with_first_module_at(0x80))
    with pytest.raises(ConfigError) as refused:
        DeviceRouter(config)
    assert refused.value.problems == [
        "evse[0].module[0].address: 128: uugreen-ur1000x0 carries addresses 0-127 (7 bits)"
    ]


def test_the_widest_address_the_field_carries_is_accepted() -> None:
    DeviceRouter(parse_config(_with_first_module_at(0x7F)))
