"""A card reader on a serial port: each card's UID as one ASCII line of hex digits, handed to a
callback as a Token for the reader's EVSE.

The port is owned by a thread of its own, which opens it, reads it with a short timeout (so it
sees a stop request) and closes it; only bytes cross to the event loop, which cuts lines, reads
UIDs and debounces. Closing the port in the thread that reads it matters: closing it from the
loop while the thread sits in a read would free the descriptor for reuse under that read.

A port that cannot be opened, or that fails while open (a USB reader pulled, the device gone),
is opened again with backoff while the EVSE keeps working without its reader.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from types import ModuleType

from csbridge.config import Config, ConfigError, SerialReaderConfig
from csbridge.sources.rfid.lines import Debouncer, Garbage, LineSplitter, read_line
from csbridge.sources.rfid.token import Token
from csbridge.support import Clock, RateLimitedLog

log = logging.getLogger("csbridge.rfid")

TokenCallback = Callable[[str, Token], None]
"""Called in the event loop with the reader's EVSE id and each card presented."""

READ_TIMEOUT_S = 0.2
"""The longest a read blocks: how soon the reading thread notices it should stop."""
STOP_WAIT_S = 1.0
"""How long a cancelled reader waits for its thread to close the port."""
REOPEN_DELAYS_S = (0.5, 1.0, 2.0, 5.0)
"""Between attempts to open the port again; the last repeats."""
STABLE_AFTER_S = 10.0
"""A port open this long starts its backoff afresh when it fails."""
PYSERIAL_MISSING = 'kind = "serial" needs pyserial: pip install "csbridge[rfid]"'


def require_pyserial(evse_id: str) -> ModuleType:
    """pyserial, imported only where a serial reader is configured."""
    try:
        import serial  # noqa: PLC0415 - an optional extra, needed only with a serial reader
    except ImportError:
        raise ConfigError(
            f"evse {evse_id}", [f"authorization.reader: {PYSERIAL_MISSING}"]
        ) from None
    return serial


@dataclass(slots=True)
class ReaderCounts:
    """What the reader saw since it started; the metrics read these."""

    tokens: int = 0
    """Cards handed to the callback."""
    debounced: int = 0
    """Sightings of a card still on the reader, not handed on."""
    garbage: Counter[str] = field(default_factory=Counter)
    """Lines that name no card, by kind (not_ascii, not_hex, uid_length, too_long, ...)."""
    opens: int = 0
    open_failures: int = 0
    port_failures: int = 0
    """The port failed while open (the reader was unplugged)."""


class SerialTokenReader:
    """One EVSE's serial reader; `run` until cancelled."""

    def __init__(
        self,
        evse_id: str,
        config: SerialReaderConfig,
        on_token: TokenCallback,
        *,
        clock: Clock = time.monotonic,
        reopen_delays_s: Sequence[float] = REOPEN_DELAYS_S,
    ) -> None:
        self._serial = require_pyserial(evse_id)
        self.evse_id = evse_id
        self.config = config
        self.counts = ReaderCounts()
        self.is_open = False
        self._on_token = on_token
        self._clock = clock
        self._reopen_delays_s = tuple(reopen_delays_s)
        self._debouncer = Debouncer(clock)
        self._splitter = LineSplitter()
        self._faults = RateLimitedLog(log)
        self._garbage_logged: set[str] = set()

    async def run(self) -> None:
        """Keep the port open and its cards flowing; on a failure open it again. Until
        cancelled."""
        loop = asyncio.get_running_loop()
        log.info(
            "event=rfid_reader evse_id=%s port=%s baudrate=%d token_type=%s",
            self.evse_id,
            self.config.port,
            self.config.baudrate,
            self.config.token_type,
        )
        attempt = 0
        while True:
            opened_at = time.monotonic()
            failure = await self._one_opening(loop)
            was_open, self.is_open = self.is_open, False
            if was_open and time.monotonic() - opened_at >= STABLE_AFTER_S:
                attempt = 0
            self._failed(failure, was_open)
            await asyncio.sleep(self._reopen_delays_s[min(attempt, len(self._reopen_delays_s) - 1)])
            attempt += 1

    async def _one_opening(self, loop: asyncio.AbstractEventLoop) -> BaseException:
        """Open the port and read it until it fails; the failure."""
        self._splitter = LineSplitter()  # a line cut short by the last failure is lost
        stop = threading.Event()
        ended: asyncio.Future[BaseException] = loop.create_future()
        thread = threading.Thread(
            target=self._serve_port,
            args=(loop, stop, ended),
            name=f"rfid-{self.evse_id}",
            daemon=True,
        )
        thread.start()
        try:
            return await asyncio.shield(ended)
        except asyncio.CancelledError:
            stop.set()
            with suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(ended), STOP_WAIT_S)
            self.is_open = False
            raise

    def _serve_port(
        self,
        loop: asyncio.AbstractEventLoop,
        stop: threading.Event,
        ended: asyncio.Future[BaseException],
    ) -> None:
        """The reading thread: open, read until stopped or failed, close, report how it ended."""
        failure: BaseException = asyncio.CancelledError()
        try:
            port = self._serial.Serial(
                self.config.port,
                self.config.baudrate,
                timeout=READ_TIMEOUT_S,
                exclusive=True,
            )
        except Exception as error:  # every open failure is retried, whatever pyserial raised
            failure = error
        else:
            try:
                loop.call_soon_threadsafe(self._opened)
                while not stop.is_set():
                    data = port.read(port.in_waiting or 1)
                    if data:
                        loop.call_soon_threadsafe(self._on_bytes, data)
            except Exception as error:  # a failing port ends this opening; the loop reopens
                failure = error
            finally:
                with suppress(Exception):
                    port.close()
        with suppress(RuntimeError):  # the loop is closed: nobody is left to tell
            loop.call_soon_threadsafe(_settle, ended, failure)

    def _opened(self) -> None:
        self.is_open = True
        self.counts.opens += 1
        if self.counts.opens > 1:
            log.info(
                "event=rfid_reopened evse_id=%s port=%s opens=%d",
                self.evse_id,
                self.config.port,
                self.counts.opens,
            )

    def _failed(self, failure: BaseException, was_open: bool) -> None:
        if was_open:
            self.counts.port_failures += 1
            self._faults.error(
                "lost",
                "event=rfid_port_failed evse_id=%s port=%s why=%s -- opening it again",
                self.evse_id,
                self.config.port,
                failure,
            )
        else:
            self.counts.open_failures += 1
            self._faults.error(
                "open",
                "event=rfid_open_failed evse_id=%s port=%s why=%s -- trying again",
                self.evse_id,
                self.config.port,
                failure,
            )

    def _on_bytes(self, data: bytes) -> None:
        for line in self._splitter.feed(data):
            seen = line if isinstance(line, Garbage) else read_line(line, self.config.token_type)
            if isinstance(seen, Garbage):
                self._garbage(seen)
            elif seen is not None:
                self._card(seen)

    def _card(self, token: Token) -> None:
        if not self._debouncer.admit(token):
            self.counts.debounced += 1
            return
        self.counts.tokens += 1
        # The UID in the journal is how an operator learns a new card's entry for the allowlist.
        log.info(
            "event=rfid_token evse_id=%s token_type=%s id_token=%s",
            self.evse_id,
            token.token_type,
            token.id_token,
        )
        try:
            self._on_token(self.evse_id, token)
        except Exception:  # a consumer's bug must not silence the reader
            log.exception("event=rfid_callback_failed evse_id=%s", self.evse_id)

    def _garbage(self, garbage: Garbage) -> None:
        self.counts.garbage[garbage.kind] += 1
        if garbage.kind in self._garbage_logged:
            return
        self._garbage_logged.add(garbage.kind)
        log.warning(
            "event=rfid_garbage evse_id=%s port=%s kind=%s line=%r -- not a card UID; "
            "later lines of this kind are only counted",
            self.evse_id,
            self.config.port,
            garbage.kind,
            garbage.line[:32],
        )


def _settle(ended: asyncio.Future[BaseException], failure: BaseException) -> None:
    if not ended.done():
        ended.set_result(failure)


def serial_readers(config: Config, on_token: TokenCallback) -> list[SerialTokenReader]:
    """A reader for each EVSE that has one configured (pyserial is imported only then)."""
    return [
        SerialTokenReader(evse.evse_id, evse.authorization.reader, on_token)
        for evse in config.evse
        if evse.authorization.reader is not None
    ]
