"""The replay run in this process: a Vector ASC log gives what a candump log gives, and frames
nobody asked for are counted by reason (the command: tests/system/test_replay.py)."""

from __future__ import annotations

from pathlib import Path

import can

from csbridge.config import load_config
from csbridge.support.resources import example_config
from csbridge.tools.replay import ReplayRun
from tests.support import FIXTURES

LOG = FIXTURES / "can" / "infypower-three-modules.log"
CONFIG = example_config("infypower-dc.toml")


def test_vector_asc_log_gives_the_same_answer(tmp_path: Path) -> None:
    asc = tmp_path / "same.asc"
    with can.ASCWriter(str(asc)) as writer:
        for frame in can.LogReader(str(LOG)):
            frame.channel = 0 if frame.channel == "can0" else 1  # ASC numbers channels
            writer.on_message_received(frame)
    config = load_config(CONFIG)
    from_asc = ReplayRun(config).publications([asc])
    from_candump = ReplayRun(config).publications([LOG])
    currents = [
        p.payload["data"]["evses"][0]["dc"]["max_current"]
        for p in from_asc
        if p.topic == "cs/josev"
    ]
    expected = [
        p.payload["data"]["evses"][0]["dc"]["max_current"]
        for p in from_candump
        if p.topic == "cs/josev"
    ]
    assert currents == expected
    assert 300.0 in currents


def test_frames_nobody_asked_for_are_counted_by_reason(tmp_path: Path) -> None:
    log = tmp_path / "noise.log"
    lines = LOG.read_text().splitlines()[:50]
    lines += [
        "(1700000000.500000) can0 0283F001#00000000",  # a reply of the wrong length
        "(1700000000.600000) can0 0283F009#0000000000000000",  # from an unconfigured address
        "(1700000000.700000) can0 123#00",  # nobody's identifier
        "(1700000000.800000) can0 028AF001#FFFF00960FA00BB8",  # 65535 V: above the rated range
    ]
    log.write_text("\n".join(lines) + "\n")
    run = ReplayRun(load_config(CONFIG))
    run.publications([log])
    outcomes = dict(run.router.outcomes)
    assert outcomes[("infypower-reg", "wrong_dlc")] == 1
    assert outcomes[("infypower-reg", "unknown_address")] == 1
    assert outcomes[("-", "unknown_id")] == 1 or outcomes.get(("infypower-reg", "unknown_id")) == 1
    assert outcomes[("infypower-reg", "out_of_range")] == 1
