"""csbridge's pytest plugin (csbridge.testing.plugin): its example test file passes as a test
engineer runs it, in pytest-asyncio's strict and auto modes, and from a fresh virtual
environment that installs nothing but the built wheel (its parts: tests/unit/test_plugin_parts.py
and tests/integration/test_plugin_fixtures.py)."""

from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.support import FIXTURES, REPO, run_clean

pytest_plugins = ["pytester"]

EXAMPLE = REPO / "examples" / "test_example_station.py"
EXAMPLE_TESTS = 6


def _passed(outcome: str) -> int:
    found = re.search(r"(\d+) passed", outcome)
    return int(found.group(1)) if found else 0


def test_the_example_passes_in_auto_mode(pytester: pytest.Pytester) -> None:
    """In a folder of its own, as copied: no conftest, no ini file; only the plugin. In
    pytest-asyncio's auto mode here; the fresh-venv test below runs its default, strict."""
    shutil.copy(EXAMPLE, pytester.path / EXAMPLE.name)
    result = pytester.runpytest_subprocess("-q", "-o", "asyncio_mode=auto", timeout=120)
    result.assert_outcomes(passed=EXAMPLE_TESTS)


def test_a_marked_config_is_read_next_to_the_test_file(pytester: pytest.Pytester) -> None:
    """@pytest.mark.csbridge_config("station.toml") and the fixtures built on it, in strict
    mode: the station runs that file, on topics of its own."""
    shutil.copy(FIXTURES / "configs" / "reading-station.toml", pytester.path / "station.toml")
    pytester.makepyfile(
        test_marked="""
        import pytest

        pytestmark = pytest.mark.asyncio


        @pytest.mark.csbridge_config("station.toml")
        async def test_reading_station(csbridge_station, csbridge_josev, csbridge_prefix):
            config = csbridge_station.config
            assert config.station.scenario is None  # the file says "demo"
            assert config.mqtt.request_topic == f"{csbridge_prefix}/josev/cs"
            assert config.bus == []
            parameters, _ = await csbridge_josev.boot()
            assert parameters.data["number_of_evses"] == 2
            names = [seen.name for seen in csbridge_josev.seen]
            assert "cs_parameters" in names
            csbridge_josev.assert_no_problems()


        def test_default_is_the_packaged_example(csbridge_station_config, csbridge_can):
            assert [bus.name for bus in csbridge_station_config.bus] == ["sim-can0", "sim-can1"]
            assert csbridge_can.names == ["sim-can0", "sim-can1"]
            assert csbridge_can.tap().name == "sim-can0"
        """
    )
    result = pytester.runpytest_subprocess("-q", timeout=60)
    result.assert_outcomes(passed=2)


def test_without_pytest_asyncio_only_the_async_fixtures_fail(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin loads in every pytest run of an environment holding csbridge: without
    pytest-asyncio that run still works, and an async fixture says what to install."""
    shadow = pytester.mkdir("no_asyncio")
    (shadow / "pytest_asyncio").mkdir()
    (shadow / "pytest_asyncio" / "__init__.py").write_text("raise ImportError('not here')\n")
    pytester.makepyfile(
        test_sync="""
        def test_unrelated():
            assert True


        def test_config_without_asyncio(csbridge_station_config):
            assert csbridge_station_config.evse


        def test_station_needs_asyncio(csbridge_station):
            pass
        """
    )
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    result = pytester.runpytest_subprocess("-q", "-p", "no:asyncio", timeout=60)
    result.assert_outcomes(passed=2, errors=1)
    assert "pip install 'csbridge[testing]'" in result.stdout.str()


@pytest.mark.packaging
@pytest.mark.timeout(300)
def test_the_example_passes_from_a_fresh_venv_with_only_the_wheel(
    built_wheel: Path, tmp_path: Path
) -> None:
    """The issue's check: build the wheel, install it (its testing extra: pytest and
    pytest-asyncio; its dependencies from the package index) into a new virtual environment,
    copy the example test the wheel ships into an empty folder, and run pytest there. About
    20 s with a warm pip cache; the timeout leaves room for a cold one."""
    started = time.monotonic()
    venv = tmp_path / "venv"
    # No pip of its own (ensurepip alone takes seconds): this checkout's pip installs into it,
    # and the venv holds the wheel and its dependencies only. No byte-compiling at install:
    # Python compiles what the run imports.
    run_clean([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    run_clean(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-compile",
            "--disable-pip-version-check",
            f"{built_wheel}[testing]",
        ]
    )

    # The copy comes from the installed package: the example ships with the wheel.
    shipped = run_clean(
        [
            str(python),
            "-c",
            "from csbridge.support.resources import example_config; "
            "print(example_config('test_example_station.py'))",
        ]
    ).strip()
    assert Path(shipped).is_relative_to(venv)
    work = tmp_path / "engineer"
    work.mkdir()
    shutil.copy(shipped, work / "test_example_station.py")
    outcome = run_clean([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=work)
    assert _passed(outcome) == EXAMPLE_TESTS, outcome
    assert time.monotonic() - started < 240
