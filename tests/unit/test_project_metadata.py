"""pyproject.toml's promises about interpreters and addresses agree with each other and with
scripts/test-interpreters, which tests those interpreters."""

from __future__ import annotations

import re
import tomllib

from tests.support import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
SCRIPT = (REPO / "scripts" / "test-interpreters").read_text(encoding="utf-8")


def _classified_versions() -> list[tuple[int, int]]:
    found = (
        re.fullmatch(r"Programming Language :: Python :: (\d+)\.(\d+)", classifier)
        for classifier in PROJECT["classifiers"]
    )
    return sorted((int(match[1]), int(match[2])) for match in found if match is not None)


def test_the_script_tests_every_classified_python() -> None:
    defaults = re.search(r"versions=\(([\d. ]+)\)", SCRIPT)
    assert defaults is not None
    tested = sorted(tuple(int(part) for part in v.split(".")) for v in defaults[1].split())
    assert tested == _classified_versions()


def test_the_oldest_classified_python_is_the_one_required() -> None:
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", PROJECT["requires-python"])
    assert minimum is not None
    assert _classified_versions()[0] == (int(minimum[1]), int(minimum[2]))


def test_project_urls() -> None:
    urls = PROJECT["urls"]
    assert set(urls) == {"Homepage", "Documentation", "Issues", "Source"}
    assert all(url.startswith("https://") for url in urls.values())
