"""Where the files that ship beside the code live: in the wheel, or in a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
_CHECKOUT_DIR = _PACKAGE_DIR.parent.parent


def resource_dir(name: str) -> Path:
    """Return the folder `name` (schemas, examples): packaged copy first, then the checkout's."""
    for candidate in (_PACKAGE_DIR / name, _CHECKOUT_DIR / name):
        if candidate.is_dir():
            return candidate
    msg = f"resource folder {name!r} is neither packaged nor in the checkout"
    raise FileNotFoundError(msg)


def schema_dir() -> Path:
    return resource_dir("schemas")


def example_config(name: str) -> Path:
    return resource_dir("examples") / name
