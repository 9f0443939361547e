"""`python -m csbridge.testing.play_lem_dcbm --port 8710`: the played LEM DCBM (lem_dcbm.py) as
a process of its own on loopback, for a station run by hand that names it as a signing meter
(examples/bpt-station.toml). It serves until SIGTERM or Ctrl-C.

It signs what it is asked to and measures nothing: its energy registers stay where they are
(the station's measuring meter counts the energy; this one only shows the signed records'
path end to end). Needs the `testing` extra (cryptography).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from csbridge.testing.lem_dcbm import PlayedLemDcbm

DEFAULT_PORT = 8710
"""The port examples/bpt-station.toml names."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m csbridge.testing.play_lem_dcbm")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0: any free port")
    parser.add_argument("--meter-id", default="LEM0000001")
    arguments = parser.parse_args(argv)
    stopped = threading.Event()
    for each in (signal.SIGTERM, signal.SIGINT):
        signal.signal(each, lambda *_: stopped.set())
    meter = PlayedLemDcbm(arguments.meter_id, port=arguments.port)
    try:
        meter.start()
    except OSError as error:
        print(f"event=played_meter_refused port={arguments.port} -- {error}", file=sys.stderr)
        return 1
    # The line a test (or a person) waits for: where the meter is.
    print(f"serving {meter.url}", flush=True)
    try:
        stopped.wait()
    finally:
        meter.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
