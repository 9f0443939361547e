"""`check-config --dump`'s TOML writer (tools/toml_text.py): what it writes, tomllib reads back
to the same values, and every shipped example's effective configuration survives the trip."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csbridge.config import load_config, parse_config
from csbridge.support import resource_dir
from csbridge.tools.toml_text import toml_document
from tests.support import examples

EXAMPLES = sorted(resource_dir("examples").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_an_examples_effective_configuration_reads_back_the_same(path: Path) -> None:
    config = load_config(path)
    text = toml_document(config.model_dump(mode="json"))
    assert parse_config(text, "dump") == config


def test_absent_settings_are_comments_and_awkward_keys_are_quoted() -> None:
    document = {
        "top": 1,
        "station": {"scenario": None, "nameplate_kw": {"DE*CSB*E0001": 22.5}, "empty": {}},
        "evse": [{"id": 'a\n"b"', "points": [[70.0, 250.0]], "module": [{"n": True}]}],
    }
    text = toml_document(document)
    assert "# scenario: not set" in text.splitlines()
    assert '"DE*CSB*E0001" = 22.5' in text
    assert text.index("top = 1") < text.index("[station]"), "a table's own keys come first"
    assert tomllib.loads(text) == {
        "top": 1,
        "station": {"nameplate_kw": {"DE*CSB*E0001": 22.5}, "empty": {}},
        "evse": [{"id": 'a\n"b"', "points": [[70.0, 250.0]], "module": [{"n": True}]}],
    }


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


_scalars = (
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
_keys = st.text(min_size=1, max_size=8)
_documents = st.recursive(
    st.dictionaries(_keys, _scalars | st.none() | st.lists(_scalars, max_size=3), max_size=4),
    lambda inner: st.dictionaries(
        _keys, inner | st.lists(inner, min_size=1, max_size=2), max_size=3
    ),
    max_leaves=12,
)


@settings(max_examples=examples(1000))
@given(_documents)
def test_any_document_reads_back_without_its_absent_keys(document: dict[str, Any]) -> None:
    assert tomllib.loads(toml_document(document)) == _without_none(document)
