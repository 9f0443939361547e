"""`[[bus]]` on any interface python-can knows: the name checked against python-can's registry,
the interface's own options passed to can.Bus (seen on a real virtual bus), the bit rate given
to the adapters python-can opens, check-config's bus warnings, and the adapter set-ups of
docs/deploy.md checked by check-config itself."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import can
import pytest
from can.interfaces import BACKENDS
from typer.testing import CliRunner

from csbridge.config import BusConfig, ConfigError, parse_config
from csbridge.sources.can import DeviceRouter, bus_warnings
from csbridge.sources.can.bus import BusLink
from csbridge.sources.readings import SourceReading
from csbridge.support import Counters
from csbridge.tools.cli import app
from tests.support import REPO

PACKAGED = (REPO / "packaging" / "csbridge.toml").read_text(encoding="utf-8")
CAN0 = """[[bus]]
name = "can0"
interface = "socketcan"
bitrate = 125000            # checked against each profile on the bus; the link is set by the OS
controller_address = 0xF0
"""
"""The packaged configuration's can0: three Infypower modules (125 kbit/s) on it."""


def _with_can0(bus: str) -> str:
    assert CAN0 in PACKAGED
    return PACKAGED.replace(CAN0, bus)


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        parse_config(text)
    return refused.value.problems


@pytest.mark.parametrize("interface", sorted(BACKENDS))
def test_every_interface_python_can_knows_is_accepted(interface: str) -> None:
    bus = BusConfig(name="can0", interface=interface)
    assert bus.bus_arguments()["interface"] == interface


def test_a_made_up_interface_is_one_problem_naming_key_value_and_close_names() -> None:
    problems = _problems(_with_can0('[[bus]]\nname = "can0"\ninterface = "pcann"\n'))
    assert len(problems) == 1
    (problem,) = problems
    assert problem.startswith("bus[0].interface: not an interface python-can knows")
    assert "(got 'pcann')" in problem
    assert re.search(r"did you mean [a-z_, ]*\bpcan\b", problem), problem
    assert "\n" not in problem


def test_a_name_close_to_nothing_lists_every_interface() -> None:
    (problem,) = _problems(_with_can0('[[bus]]\nname = "can0"\ninterface = "zzzz"\n'))
    assert all(name in problem for name in ("socketcan", "virtual", "pcan", "slcan"))


@pytest.mark.parametrize(
    ("key", "instead"),
    [
        ("bitrate", "bitrate"),
        ("channel", "channel"),
        ("interface", "interface"),
        ("bustype", "interface"),
        ("can_filters", ""),
    ],
)
def test_an_option_that_is_no_interface_option_is_refused(key: str, instead: str) -> None:
    bus = f'[[bus]]\nname = "can0"\ninterface = "pcan"\n\n[bus.options]\n{key} = 1\n'
    (problem,) = _problems(_with_can0(bus))
    assert problem.startswith(f"bus[0].options: {key}: not an interface option")
    assert (f"`{instead}`" in problem) if instead else ("csbridge sets it" in problem)


def test_the_bitrate_goes_to_adapters_python_can_opens_not_to_socketcan_or_virtual() -> None:
    assert BusConfig(name="a", interface="pcan", bitrate=250000).bus_arguments() == {
        "channel": "a",
        "interface": "pcan",
        "bitrate": 250000,
    }
    for interface in ("socketcan", "virtual"):  # as before: the OS sets a link's rate
        arguments = BusConfig(name="a", interface=interface, bitrate=250000).bus_arguments()
        assert arguments == {"channel": "a", "interface": interface}


def test_options_keep_toml_types() -> None:
    bus = _with_can0(
        '[[bus]]\nname = "can0"\ninterface = "slcan"\nchannel = "/dev/ttyACM0"\nbitrate = 125000\n'
        "\n[bus.options]\ntty_baudrate = 115200\nsleep_after_open = 0.5\nrtscts = false\n"
    )
    arguments = parse_config(bus).bus[0].bus_arguments()
    assert arguments == {
        "channel": "/dev/ttyACM0",
        "interface": "slcan",
        "bitrate": 125000,
        "tty_baudrate": 115200,
        "sleep_after_open": 0.5,
        "rtscts": False,
    }
    assert type(arguments["tty_baudrate"]) is int
    assert type(arguments["rtscts"]) is bool


class _NoSink:
    def store(self, evse_id: str, reading: SourceReading) -> bool:
        return False

    def evaluate(self, evse_ids: Iterable[str]) -> None:
        return None


def _virtual_link(options: str) -> BusLink:
    channel = f"test-{uuid.uuid4().hex}"
    text = _with_can0(
        f'[[bus]]\nname = "can0"\ninterface = "virtual"\nchannel = "{channel}"\n{options}'
    )
    router = DeviceRouter(parse_config(text))
    return BusLink(router.routes["can0"], router, _NoSink(), Counters(), time.monotonic)


def _hears_itself(link: BusLink) -> bool:
    bus = link.open()
    try:
        bus.send(can.Message(arbitration_id=0x123, data=b"\x01\x02", is_extended_id=False))
        frame = bus.recv(0.2)
    finally:
        bus.shutdown()
    return frame is not None and frame.arbitration_id == 0x123


def test_an_option_reaches_can_bus_on_a_real_virtual_bus() -> None:
    """receive_own_messages, which csbridge otherwise sets to false: the bus hears its own."""
    assert _hears_itself(_virtual_link("\n[bus.options]\nreceive_own_messages = true\n"))


def test_without_options_a_bus_opens_as_before() -> None:
    assert not _hears_itself(_virtual_link(""))


def _warnings(text: str) -> list[str]:
    config = parse_config(text)
    return bus_warnings(config, DeviceRouter(config))


def test_an_adapter_without_a_bitrate_is_warned_of_with_the_profiles_rate() -> None:
    bus = '[[bus]]\nname = "can0"\ninterface = "pcan"\nchannel = "PCAN_USBBUS1"\n'
    (warning,) = _warnings(_with_can0(bus))
    assert warning.startswith("bus[0] (can0): interface pcan opens at its driver's default")
    assert "infypower-reg 125000 bit/s" in warning
    assert warning.endswith("set bitrate = 125000")


def test_socketcan_without_a_bitrate_is_not_warned_of() -> None:
    """The OS sets a SocketCAN link's rate: nothing for csbridge to set."""
    assert _warnings(_with_can0('[[bus]]\nname = "can0"\ninterface = "socketcan"\n')) == []


def test_a_bitrate_that_differs_from_a_profile_is_refused_naming_both() -> None:
    bus = '[[bus]]\nname = "can0"\ninterface = "pcan"\nbitrate = 500000\n'
    with pytest.raises(ConfigError) as refused:
        DeviceRouter(parse_config(_with_can0(bus)))
    assert any(
        "bus can0 runs at 500000 bit/s; infypower-reg: 125000" in p for p in refused.value.problems
    )


def test_profiles_that_disagree_on_one_bus_without_a_bitrate_are_warned_of() -> None:
    text = _with_can0('[[bus]]\nname = "can0"\ninterface = "socketcan"\n')
    text = text.replace('"bender-iso165c", bus = "can1"', '"bender-iso165c", bus = "can0"')
    (warning,) = _warnings(text)
    assert warning.startswith("bus[0] (can0): its profiles talk at different bit rates")
    assert "bender-iso165c 250000 bit/s" in warning
    assert "infypower-reg 125000 bit/s" in warning


def test_a_driver_that_cannot_be_loaded_here_is_warned_of(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin registered with python-can whose module is not installed."""
    monkeypatch.setitem(BACKENDS, "csbridge_test_adapter", ("csbridge_no_such_driver", "Bus"))
    bus = '[[bus]]\nname = "can0"\ninterface = "csbridge_test_adapter"\nbitrate = 125000\n'
    (warning,) = _warnings(_with_can0(bus))
    assert warning.startswith("bus[0] (can0): interface csbridge_test_adapter: python-can cannot")
    assert "csbridge_no_such_driver" in warning


def _deploy_snippets() -> list[str]:
    """The fenced TOML blocks of docs/deploy.md's section on other adapters."""
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    start = text.index("### Other adapters")
    end = text.index("\n## ", start)
    return re.findall(r"```toml\n(.*?)```", text[start:end], flags=re.DOTALL)


def test_the_deploy_guide_shows_a_pcan_and_an_slcan_set_up() -> None:
    interfaces = [parse_config(_with_can0(s)).bus[0].interface for s in _deploy_snippets()]
    assert interfaces == ["pcan", "slcan"]


def _station_file(tmp_path: Path, text: str) -> Path:
    """The packaged configuration as check-config reads it on a charger: its broker password
    file must exist (systemd's credential, here a file of the test's own)."""
    password = tmp_path / "mqtt-password"
    password.write_text("secret\n", encoding="utf-8")
    path = tmp_path / "csbridge.toml"
    path.write_text(
        text.replace("/run/credentials/csbridge.service/mqtt-password", str(password)),
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("index", [0, 1])
def test_each_adapter_set_up_of_the_deploy_guide_passes_check_config(
    index: int, tmp_path: Path
) -> None:
    path = _station_file(tmp_path, _with_can0(_deploy_snippets()[index]))
    result = CliRunner().invoke(app, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output


def test_check_config_prints_the_bus_warning(tmp_path: Path) -> None:
    path = _station_file(tmp_path, _with_can0('[[bus]]\nname = "can0"\ninterface = "slcan"\n'))
    result = CliRunner().invoke(app, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning: bus[0] (can0): interface slcan opens at its driver's default" in result.output


def test_a_made_up_interface_fails_check_config_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "csbridge.toml"
    path.write_text(_with_can0('[[bus]]\nname = "can0"\ninterface = "kvasr"\n'), encoding="utf-8")
    result = CliRunner().invoke(app, ["check-config", str(path)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if "kvasr" in line]
    assert len(lines) == 1
    assert "bus[0].interface" in lines[0]
    assert "kvaser" in lines[0]
