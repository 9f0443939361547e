"""Mutated messages for differential tests: a corpus document with one to three deletions,
replacements or additions anywhere in it, the odd values chosen by the caller."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st


def _containers(document: Any) -> list[Any]:
    found = [document]
    children = document.values() if isinstance(document, dict) else document
    for child in children:
        if isinstance(child, dict | list):
            found.extend(_containers(child))
    return found


def mutations(
    corpus: Sequence[Any], odd_values: st.SearchStrategy[Any], added_keys: st.SearchStrategy[str]
) -> st.SearchStrategy[Any]:
    @st.composite
    def mutated(draw: st.DrawFn) -> Any:
        document = copy.deepcopy(draw(st.sampled_from(list(corpus))))
        for _ in range(draw(st.integers(1, 3))):
            target = draw(st.sampled_from(_containers(document)))
            operation = draw(st.sampled_from(["delete", "replace", "add"]))
            # Drawn values are copied: the strategy's own examples must never be mutated.
            if isinstance(target, dict):
                keys = sorted(target)
                if operation == "add" or not keys:
                    target[draw(added_keys)] = copy.deepcopy(draw(odd_values))
                elif operation == "delete":
                    del target[draw(st.sampled_from(keys))]
                else:
                    target[draw(st.sampled_from(keys))] = copy.deepcopy(draw(odd_values))
            elif target:
                index = draw(st.integers(0, len(target) - 1))
                if operation == "delete":
                    del target[index]
                elif operation == "replace":
                    target[index] = copy.deepcopy(draw(odd_values))
                else:
                    target.append(copy.deepcopy(target[index]))
        return document

    return mutated()
