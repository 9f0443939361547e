"""Shared helpers for the tests: fixture files by name and per-test station configs."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson

from csbridge.config import Config, load_config

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


def load_fixture(name: str, folder: str = "messages") -> dict[str, Any]:
    """A message from fixtures/<folder>/<name>.json."""
    document: dict[str, Any] = orjson.loads((FIXTURES / folder / f"{name}.json").read_bytes())
    return document


def fixture_names(folder: str) -> list[str]:
    return sorted(path.stem for path in (FIXTURES / folder).glob("*.json"))


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def station_config(broker_url: str, prefix: str, *, scenario: str | None = None) -> Config:
    """The tests' station (fixtures/configs/reading-station.toml, no scenario unless asked), on
    its own topics and client id so tests never collide."""
    base = load_config(FIXTURES / "configs" / "reading-station.toml")
    raw = base.model_dump(mode="json", exclude_none=True)
    raw["station"]["scenario"] = scenario
    raw["mqtt"].update(
        broker=broker_url,
        client_id=f"csbridge-{prefix}",
        request_topic=f"{prefix}/josev/cs",
        response_topic=f"{prefix}/cs/josev",
        status_topic=f"{prefix}/csbridge/status",
        local_prefix=f"{prefix}/csbridge",
    )
    return Config.model_validate(raw)


def wire_station_config(broker_url: str, prefix: str) -> Config:
    """examples/sim-station.toml (modules and IMD on virtual CAN buses), on channels and topics
    of this test's own: python-can's virtual buses are shared by everything in the process."""
    from csbridge.resources import example_config  # noqa: PLC0415

    raw = load_config(example_config("sim-station.toml")).model_dump(mode="json", exclude_none=True)
    raw["station"]["scenario"] = None
    raw["reporting"]["settle_s"] = 0.2  # the stack fills up module by module: keep tests short
    for bus in raw["bus"]:
        bus["channel"] = f"{prefix}-{bus['name']}"
    raw["mqtt"].update(
        broker=broker_url,
        client_id=f"csbridge-{prefix}",
        request_topic=f"{prefix}/josev/cs",
        response_topic=f"{prefix}/cs/josev",
        status_topic=f"{prefix}/csbridge/status",
        local_prefix=f"{prefix}/csbridge",
    )
    return Config.model_validate(raw)


def walk(value: Any, path: str = "$") -> list[tuple[str, Any]]:
    """Every (path, leaf) in a JSON document."""
    if isinstance(value, dict):
        return [item for key, child in value.items() for item in walk(child, f"{path}.{key}")]
    if isinstance(value, list):
        return [
            item for index, child in enumerate(value) for item in walk(child, f"{path}[{index}]")
        ]
    return [(path, value)]
