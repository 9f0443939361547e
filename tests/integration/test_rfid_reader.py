"""The serial RFID reader against a real pseudo-terminal: what a reader prints on its serial
line is written to the pty's master end, and csbridge opens the slave end through pyserial
as it would /dev/ttyUSB0. The port is a symlink (as /dev/serial/by-id/ links are), so a reader
unplugged and plugged in again is a new pty behind the same name."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest

from csbridge.config import ConfigError, SerialReaderConfig, parse_config
from csbridge.sources.rfid import SerialTokenReader, Token, serial_readers
from csbridge.testing.harness import wait_until
from tests.support import small_station

EVSE = "DE*CSB*E0001"
CARD = Token("04A2B9C1", "ISO14443")


class Pty:
    """A pseudo-terminal behind a stable name: `write` is the reader's output."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master, self.slave = os.openpty()
        link.symlink_to(os.ttyname(self.slave))

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def release_slave(self) -> None:
        """Once csbridge holds the port: closing the master then hangs it up."""
        if self.slave >= 0:
            os.close(self.slave)
            self.slave = -1

    def unplug(self) -> None:
        self.release_slave()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
        self.link.unlink(missing_ok=True)

    def plug_in_again(self) -> None:
        self.unplug()
        self.master, self.slave = os.openpty()
        self.link.symlink_to(os.ttyname(self.slave))


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[Pty]:
    terminal = Pty(tmp_path / "ttyRFID")
    yield terminal
    terminal.unplug()


def _config(port: Path, card: str = "ISO14443") -> SerialReaderConfig:
    return SerialReaderConfig.model_validate(
        {"kind": "serial", "port": str(port), "token_type": card}
    )


@asynccontextmanager
async def running(reader: SerialTokenReader) -> AsyncIterator[SerialTokenReader]:
    task = asyncio.create_task(reader.run())
    try:
        yield reader
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def _opened(reader: SerialTokenReader, pty: Pty, opens: int = 1) -> None:
    await wait_until(lambda: reader.is_open and reader.counts.opens == opens, what="port open")
    pty.release_slave()


def _ports_held() -> set[str]:
    held = set()
    for fd in os.listdir("/proc/self/fd"):
        with suppress(OSError):
            held.add(os.readlink(f"/proc/self/fd/{fd}"))
    return held


async def test_each_card_reaches_the_callback_once_in_its_canonical_spelling(pty: Pty) -> None:
    seen: list[tuple[str, Token]] = []
    reader = SerialTokenReader(EVSE, _config(pty.link), lambda e, t: seen.append((e, t)))
    async with running(reader):
        await _opened(reader, pty)
        pty.write(b"04a2b9c1\r\n")
        pty.write(b"04A2B9C1")  # the reader repeats it while the card lies there,
        pty.write(b"E05C80\r\n")  # and lines arrive in any chunks
        pty.write(b"0102030405060708090A\n\r\n")
        await wait_until(lambda: len(seen) == 3, what="three cards")
    assert seen == [
        (EVSE, CARD),
        (EVSE, Token("04A2B9C1E05C80", "ISO14443")),
        (EVSE, Token("0102030405060708090A", "ISO14443")),
    ]
    assert reader.counts.tokens == 3
    assert not reader.counts.garbage


async def test_a_card_held_on_the_reader_is_reported_again_only_after_two_quiet_seconds(
    pty: Pty,
) -> None:
    clock = FakeClock()
    seen: list[Token] = []
    reader = SerialTokenReader(
        EVSE, _config(pty.link), lambda _, token: seen.append(token), clock=clock
    )
    async with running(reader):
        await _opened(reader, pty)
        pty.write(b"04A2B9C1\r\n")
        await wait_until(lambda: len(seen) == 1)
        clock.now += 1.5
        pty.write(b"04a2b9c1\r\n")
        await wait_until(lambda: reader.counts.debounced == 1, what="the repeat debounced")
        clock.now += 1.9  # quiet for less than 2 s since the last sighting
        pty.write(b"04A2B9C1\r\n")
        await wait_until(lambda: reader.counts.debounced == 2)
        clock.now += 2.0
        pty.write(b"04A2B9C1\r\n")
        await wait_until(lambda: len(seen) == 2, what="the card presented again")
    assert seen == [CARD, CARD]


async def test_garbage_is_counted_by_kind_logged_once_per_kind_and_the_reader_goes_on(
    pty: Pty, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="csbridge.rfid")
    seen: list[Token] = []
    reader = SerialTokenReader(EVSE, _config(pty.link), lambda _, token: seen.append(token))
    async with running(reader):
        await _opened(reader, pty)
        for _ in range(3):
            pty.write(b"NOT A CARD\r\n")
            pty.write(b"hello\r\n")
            pty.write(b"04A2B9\r\n")
            pty.write(b"\xff\xfe\x00\x01\r\n")
            pty.write(b"\x02" * 200 + b"\r\n")  # a binary protocol at the wrong baud rate
        pty.write(b"\r\n\r\n04A2B9C1\r\n")
        await wait_until(lambda: seen == [CARD], what="the card after the garbage")
    assert reader.counts.garbage == {
        "whitespace": 3,
        "not_hex": 3,
        "uid_length": 3,
        "not_ascii": 3,
        "too_long": 3,
    }
    logged = [r.getMessage() for r in caplog.records if "rfid_garbage" in r.getMessage()]
    assert len(logged) == 5
    assert logged[1] == (
        f"event=rfid_garbage evse_id={EVSE} port={pty.link} kind=not_hex line=b'hello\\r' -- "
        "not a card UID; later lines of this kind are only counted"
    )


async def test_an_iso15693_reader_reads_8_byte_uids(pty: Pty) -> None:
    seen: list[Token] = []
    reader = SerialTokenReader(
        EVSE, _config(pty.link, "ISO15693"), lambda _, token: seen.append(token)
    )
    async with running(reader):
        await _opened(reader, pty)
        pty.write(b"04A2B9C1\r\ne004010012345678\r\n")
        await wait_until(lambda: len(seen) == 1)
    assert seen == [Token("E004010012345678", "ISO15693")]
    assert reader.counts.garbage == {"uid_length": 1}


async def test_a_reader_unplugged_and_plugged_in_again_is_reopened(
    pty: Pty, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="csbridge.rfid")
    seen: list[Token] = []
    reader = SerialTokenReader(
        EVSE, _config(pty.link), lambda _, token: seen.append(token), reopen_delays_s=(0.05, 0.1)
    )
    async with running(reader):
        await _opened(reader, pty)
        pty.write(b"04A2B9C1\r\n")
        await wait_until(lambda: len(seen) == 1)
        pty.unplug()
        await wait_until(lambda: reader.counts.port_failures == 1, what="the port failed")
        assert not reader.is_open
        await wait_until(lambda: reader.counts.open_failures >= 2, what="retries while gone")
        pty.plug_in_again()
        await _opened(reader, pty, opens=2)
        pty.write(b"04A2B9C2\r\n")
        await wait_until(lambda: len(seen) == 2, what="a card on the reader plugged in again")
    assert seen == [CARD, Token("04A2B9C2", "ISO14443")]
    messages = [r.getMessage() for r in caplog.records]
    failed = [m for m in messages if m.startswith("event=rfid_port_failed")]
    assert len(failed) == 1
    assert failed[0].endswith("-- opening it again repeats=0")
    open_failed = [m for m in messages if m.startswith("event=rfid_open_failed")]
    assert len(open_failed) == 1, "retries are logged at most once a minute"
    assert f"event=rfid_reopened evse_id={EVSE} port={pty.link} opens=2" in messages


async def test_a_port_missing_at_start_is_opened_when_it_appears(tmp_path: Path) -> None:
    link = tmp_path / "ttyLATE"
    seen: list[Token] = []
    reader = SerialTokenReader(
        EVSE, _config(link), lambda _, token: seen.append(token), reopen_delays_s=(0.05,)
    )
    async with running(reader):
        await wait_until(lambda: reader.counts.open_failures >= 2, what="open retried")
        late = Pty(link)
        try:
            await _opened(reader, late)
            late.write(b"04A2B9C1\n")
            await wait_until(lambda: seen == [CARD])
        finally:
            late.unplug()


async def test_a_failing_callback_is_logged_and_the_next_card_still_arrives(
    pty: Pty, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Token] = []

    def fragile(_: str, token: Token) -> None:
        seen.append(token)
        if len(seen) == 1:
            raise RuntimeError("a consumer's bug")

    caplog.set_level(logging.ERROR, logger="csbridge.rfid")
    reader = SerialTokenReader(EVSE, _config(pty.link), fragile)
    async with running(reader):
        await _opened(reader, pty)
        pty.write(b"04A2B9C1\r\n04A2B9C2\r\n")
        await wait_until(lambda: len(seen) == 2)
    assert [r.getMessage() for r in caplog.records] == [
        f"event=rfid_callback_failed evse_id={EVSE}"
    ]


async def test_cancelling_the_reader_closes_the_port(pty: Pty) -> None:
    reader = SerialTokenReader(EVSE, _config(pty.link), lambda _, __: None)
    device = os.ttyname(pty.slave)
    async with running(reader):
        await _opened(reader, pty)
        assert device in _ports_held()
    assert not reader.is_open
    assert device not in _ports_held()


def test_readers_are_built_for_the_evses_that_configure_one(tmp_path: Path) -> None:
    config = parse_config(
        small_station(
            (EVSE, f'[evse.authorization]\nreader = {{ kind = "serial", port = "{tmp_path}" }}'),
            ("DE*CSB*E0002", ""),
        )
    )
    readers = serial_readers(config, lambda _, __: None)
    assert [(r.evse_id, r.config.port) for r in readers] == [(EVSE, str(tmp_path))]


def test_without_pyserial_a_serial_reader_is_a_config_error_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "serial", None)  # what `import serial` meets uninstalled
    with pytest.raises(ConfigError) as caught:
        SerialTokenReader(EVSE, _config(Path("/dev/ttyUSB0")), lambda _, __: None)
    assert str(caught.value) == (
        f'evse {EVSE}: authorization.reader: kind = "serial" needs pyserial: '
        'pip install "csbridge[rfid]"'
    )
