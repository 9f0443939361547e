"""[evse.authorization]: absent is free-vend; a bad mode, a misplaced allowlist_file or an
unknown key is refused by its key; the allowlist file itself may appear after the start."""

from __future__ import annotations

from pathlib import Path

import pytest

from csbridge.config import ConfigError, SerialReaderConfig, parse_config
from csbridge.testing.harness import isolated_config
from tests.unit.test_config import GOOD

STATION = GOOD
"""A valid station (test_config's) to add an [evse.authorization] table to."""


def _with(table: str) -> str:
    return STATION + "\n[evse.authorization]\n" + table


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "station.toml")
    return caught.value.problems


def test_an_evse_without_the_table_is_free_vend() -> None:
    authorization = parse_config(STATION).evse[0].authorization
    assert authorization.mode == "free"
    assert authorization.allowlist_file is None
    assert authorization.reader is None
    assert authorization.josev_timeout_s == 30.0


def test_allowlist_mode_takes_a_file_that_does_not_exist_yet(tmp_path: Path) -> None:
    missing = tmp_path / "later" / "allowlist.txt"
    config = parse_config(_with(f'mode = "allowlist"\nallowlist_file = "{missing}"'))
    assert config.evse[0].authorization.allowlist_file == missing


def test_josev_mode_with_its_timeout_and_a_serial_reader() -> None:
    config = parse_config(
        _with(
            'mode = "josev"\njosev_timeout_s = 12.5\n'
            'reader = { kind = "serial", port = "/dev/ttyUSB0", baudrate = 115200, '
            'token_type = "ISO15693" }'
        )
    )
    authorization = config.evse[0].authorization
    assert authorization.josev_timeout_s == 12.5
    assert authorization.reader == SerialReaderConfig.model_validate(
        {"kind": "serial", "port": "/dev/ttyUSB0", "baudrate": 115200, "token_type": "ISO15693"}
    )


def test_a_reader_defaults_to_9600_baud_and_iso14443_cards() -> None:
    config = parse_config(_with('reader = { kind = "serial", port = "/dev/ttyACM0" }'))
    reader = config.evse[0].authorization.reader
    assert reader is not None
    assert (reader.baudrate, reader.token_type) == (9600, "ISO14443")


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('mode = "paid"', "evse[0].authorization.mode: Input should be 'free', 'allowlist' or"),
        ('mode = "allowlist"', 'evse[0].authorization: mode = "allowlist" needs allowlist_file'),
        (
            'allowlist_file = "/etc/csbridge/allowlist.txt"',
            'evse[0].authorization: allowlist_file is only read with mode = "allowlist" '
            '(mode is "free")',
        ),
        (
            'mode = "josev"\nallowlist_file = "/etc/csbridge/allowlist.txt"',
            'evse[0].authorization: allowlist_file is only read with mode = "allowlist" '
            '(mode is "josev")',
        ),
        (
            'mode = "josev"\njosev_timeout_s = 0',
            "evse[0].authorization.josev_timeout_s: Input should be greater than 0",
        ),
        (
            'mode = "josev"\njosev_timeout_s = -5',
            "evse[0].authorization.josev_timeout_s: Input should be greater than 0",
        ),
        (
            'mode = "free"\ntimeout_s = 5',
            "evse[0].authorization.timeout_s: unknown key (misspelt, or in the wrong table?)",
        ),
        (
            'reader = { kind = "pcsc", port = "/dev/ttyUSB0" }',
            "evse[0].authorization.reader.kind: Input should be 'serial'",
        ),
        ('reader = { kind = "serial" }', "evse[0].authorization.reader.port: Field required"),
        (
            'reader = { kind = "serial", port = "" }',
            "evse[0].authorization.reader.port: String should have at least 1 character",
        ),
        (
            'reader = { kind = "serial", port = "/dev/ttyUSB0", baudrate = 0 }',
            "evse[0].authorization.reader.baudrate: Input should be greater than 0",
        ),
        (
            'reader = { kind = "serial", port = "/dev/ttyUSB0", token_type = "key_code" }',
            "evse[0].authorization.reader.token_type: Input should be 'ISO14443' or 'ISO15693'",
        ),
        (
            'reader = { kind = "serial", port = "/dev/ttyUSB0", parity = "N" }',
            "evse[0].authorization.reader.parity: unknown key",
        ),
    ],
)
def test_a_mistake_is_named_by_its_key(table: str, expected: str) -> None:
    problems = _problems(_with(table))
    assert any(problem.startswith(expected) for problem in problems), problems


def test_the_table_survives_the_test_harness_round_trip(tmp_path: Path) -> None:
    # isolated_config rebuilds a config from its own dump: the defaults must validate again.
    allowlist = tmp_path / "allowlist.txt"
    for table in ("", 'mode = "josev"', f'mode = "allowlist"\nallowlist_file = "{allowlist}"'):
        config = parse_config(_with(table) if table else STATION)
        again = isolated_config(config, "mqtt://127.0.0.1:1883", "t0")
        assert again.evse[0].authorization == config.evse[0].authorization
