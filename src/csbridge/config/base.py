"""What every configuration model shares: strict models, checked number types, the error."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from csbridge.support import CsbridgeError

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class ConfigError(CsbridgeError):
    """The configuration cannot be used; each line names the file, the key and why."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(
            "\n".join(problems), "\n".join(f"{source}: {problem}" for problem in problems)
        )
        self.source = source
        self.problems = problems


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _location(loc: tuple[int | str, ...]) -> str:
    rendered = ""
    for part in loc:
        if isinstance(part, int):
            rendered += f"[{part}]"
        else:
            rendered += f".{part}" if rendered else str(part)
    return rendered or "(top level)"


def describe_validation_error(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(part for part in item["loc"] if not _is_union_tag(part))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (misspelt, or in the wrong table?)"
        value = item.get("input")
        shown = (
            ""
            if isinstance(value, dict | list) or item["type"] == "missing"
            else f" (got {value!r})"
        )
        problems.append(f"{_location(loc)}: {message}{shown}")
    return problems


def _is_union_tag(part: int | str) -> bool:
    # pydantic names the union member it tried (e.g. "function-after[...]"): not a key.
    return isinstance(part, str) and ("[" in part or part.startswith("literal"))
