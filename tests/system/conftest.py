"""What the system tests share: csbridge's wheel, built from this checkout once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support import REPO, run_clean


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """csbridge's wheel (no dependencies), as `pip wheel` builds it from this checkout; built
    at the first test that asks for it, reused by every other one."""
    wheels = tmp_path_factory.mktemp("wheels")
    run_clean(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)]
    )
    (wheel,) = wheels.glob("csbridge-*.whl")
    return wheel
