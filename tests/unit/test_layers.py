"""The tree reads as the data flow: each package imports only packages on floors below its own,
never a module inside another package (only what that package's `__all__` offers), and no two
packages import each other. `python -m tests.unit.test_layers` prints the floors and who imports
whom.
"""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

FLOORS: tuple[tuple[str, ...], ...] = (
    ("testing",),
    ("tools", "tools.scenarios"),
    ("service",),
    ("session", "protocol"),
    ("power", "engine"),
    ("limits",),
    ("sources.simulated", "sources.everest", "sources.rfid"),
    ("sources.can", "sources.meters"),
    ("sources",),
    ("mqtt", "messages"),
    ("config",),
    ("support",),
)
"""Top to bottom; a package may import those on lower floors (and its own subpackages' parent).
sources.simulated sits above sources.can because the simulated CAN devices speak through the
profiles' codecs; support sits below config because ConfigError derives from support's error
base."""

TOP_FLOORS = ("testing", "tools", "tools.scenarios")
"""Their __init__ exports nothing, so that each command imports only what it runs; the plugin
reaches into tools' modules (the emulator) directly."""

COMPATIBILITY = {"csbridge.station", "csbridge.resources", "csbridge.__main__"}
"""Modules kept where the documentation showed them, re-exporting from their new home."""


@dataclass(frozen=True, slots=True)
class ImportEdge:
    importer: str
    """The importing module."""
    target: str
    """The module named after `from` (or by `import`)."""
    names: tuple[str, ...]
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted((SRC / "csbridge").rglob("*.py"))}
PACKAGES = {_module_name(path) for path in (SRC / "csbridge").rglob("__init__.py")}


def package_of(module: str) -> str:
    """`csbridge.sources.can.codec` -> `sources.can`; a package is its own."""
    package = module if module in PACKAGES else module.rsplit(".", 1)[0]
    return package.removeprefix("csbridge").removeprefix(".")


def floor_of(package: str) -> int:
    for floor, packages in enumerate(FLOORS):
        if package in packages:
            return floor
    msg = f"package {package!r} is on no floor: add it to FLOORS"
    raise AssertionError(msg)


def edges() -> list[ImportEdge]:
    """Every import of csbridge code by csbridge code, including those inside functions."""
    found = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("csbridge"):
                names = tuple(alias.name for alias in node.names)
                found.append(ImportEdge(module, str(node.module), names, node.lineno))
            elif isinstance(node, ast.Import):
                found.extend(
                    ImportEdge(module, alias.name, (), node.lineno)
                    for alias in node.names
                    if alias.name.startswith("csbridge")
                )
    return found


def cross_package(edge: ImportEdge) -> tuple[str, str] | None:
    """(importer's package, target's package) when they differ and neither holds the other."""
    if edge.importer in COMPATIBILITY:
        return None
    mine, theirs = package_of(edge.importer), package_of(edge.target)
    if mine == theirs or mine.startswith(f"{theirs}.") or theirs.startswith(f"{mine}."):
        return None
    return mine, theirs


def test_every_package_has_a_floor() -> None:
    for package in PACKAGES - {"csbridge"}:
        floor_of(package_of(package))


def test_no_import_runs_upward() -> None:
    upward = [
        f"{edge.importer}:{edge.line} imports {edge.target} ({pair[0]} -> {pair[1]})"
        for edge in edges()
        if (pair := cross_package(edge)) is not None and floor_of(pair[1]) <= floor_of(pair[0])
    ]
    assert upward == []


def test_no_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in edges():
        pair = cross_package(edge)
        if pair is not None:
            graph[pair[0]].add(pair[1])
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(package: str, trail: tuple[str, ...]) -> None:
        assert package not in visiting, f"cycle: {' -> '.join((*trail, package))}"
        if package in done:
            return
        visiting.add(package)
        for target in sorted(graph[package]):
            visit(target, (*trail, package))
        visiting.discard(package)
        done.add(package)

    for package in sorted(graph):
        visit(package, ())


def test_other_packages_are_reached_through_their_public_names() -> None:
    private = []
    for edge in edges():
        pair = cross_package(edge)
        if pair is None or (pair[0] in TOP_FLOORS and pair[1] in TOP_FLOORS):
            continue
        if edge.target not in PACKAGES:
            private.append(f"{edge.importer}:{edge.line} imports the module {edge.target}")
            continue
        offered = set(importlib.import_module(edge.target).__all__)
        private += [
            f"{edge.importer}:{edge.line} imports {name} from {edge.target}, not in its __all__"
            for name in edge.names
            if name not in offered
        ]
    assert private == []


@pytest.mark.parametrize("package", sorted(PACKAGES - {"csbridge"}))
def test_each_package_declares_what_it_offers(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__doc__, f"{package} says in its docstring what it holds"
    offered = getattr(module, "__all__", None)
    assert isinstance(offered, list), f"{package} declares __all__"
    for name in offered:
        assert hasattr(module, name) or package_of(package) in TOP_FLOORS, (package, name)


def main() -> None:
    """The floors, each package with the packages it imports."""
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in edges():
        pair = cross_package(edge)
        if pair is not None:
            graph[pair[0]].add(pair[1])
    for floor, packages in enumerate(FLOORS, start=1):
        for package in packages:
            imports = ", ".join(sorted(graph[package])) or "-"
            print(f"{floor:>2}  {package:<18} imports {imports}")


if __name__ == "__main__":
    main()
