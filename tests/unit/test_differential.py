"""jsonschema-rs (fast path) and jsonschema (oracle) give the same verdict on every message:
all fixtures, valid and invalid, and thousands of mutations of them."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csbridge.messages.registry import ENVELOPE, Backend, SchemaRegistry, fast_backend_available
from tests.mutations import mutations
from tests.support import fixture_names, load_fixture, schema_oracle

pytestmark = pytest.mark.skipif(not fast_backend_available(), reason="no jsonschema-rs wheel here")

FAST = SchemaRegistry(backend=Backend.FAST) if fast_backend_available() else None
REFERENCE = SchemaRegistry(backend=Backend.REFERENCE)
CORPUS = [load_fixture(n) for n in fixture_names("messages")] + [
    load_fixture(n, "invalid") for n in fixture_names("invalid")
]

ODD_VALUES = st.sampled_from(
    [
        None,
        True,
        0,
        -1,
        1.5,
        -0.0,
        1e308,
        2**63,
        "",
        "200",
        "evse_ready",
        "EVSE_Ready",
        "79ac862e-d0a7-4eef-98b5-c827be3bd669\n",
        "79AC862E-D0A7-4EEF-98B5-C827BE3BD669",
        "x" * 38,
        [],
        {},
        {"l1": 1, "l2": 2, "l3": 3},
        [{"evse_id": "A", "status_code": "evse_ready"}],
    ]
)


mutated = functools.partial(
    mutations,
    CORPUS,
    ODD_VALUES,
    st.sampled_from(["extra", "evse_id", "dc", "ac_bpt", "dc_bpt", "l4", "id"]),
)


def _verdicts(document: Any) -> dict[str, bool]:
    assert FAST is not None
    return {title: FAST.violation(title, document) is None for title in FAST.titles()}


def _reference_verdicts(document: Any) -> dict[str, bool]:
    return {title: validator.is_valid(document) for title, validator in schema_oracle().items()}


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_backends_agree_on_fixtures(index: int) -> None:
    assert _verdicts(CORPUS[index]) == _reference_verdicts(CORPUS[index])


# The "thousands of mutations" the docstring promises: the same count under every profile.
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_backends_agree_on_mutations(document: Any) -> None:
    assert _verdicts(document) == _reference_verdicts(document)


def test_mutations_reach_both_verdicts() -> None:
    """The corpus is no tautology: it holds envelope-valid and envelope-invalid messages."""
    verdicts = {REFERENCE.violation(ENVELOPE, document) is None for document in CORPUS}
    assert verdicts == {True, False}
