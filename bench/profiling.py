"""`python -m bench --profile NAME`: one quick run of a benchmark under pyinstrument.

The report (bench/results/profile-NAME.txt, and .html for a browser) opens with csbridge's own
functions ranked, because the wall-clock profile of a latency benchmark is mostly the event loop
waiting: each csbridge function with its inclusive time, and its own time (its code plus the
library and built-in calls it makes directly, up to the next csbridge function; blocking
waits left out), then
pyinstrument's self-time list and call tree.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import common
from bench.common import RESULTS

if TYPE_CHECKING:
    from pyinstrument.frame import Frame
    from pyinstrument.session import Session

SAMPLE_INTERVAL_S = 0.0002
"""A boot answer or a frame's update takes under a millisecond: sample finer than that."""
PACKAGE_MARK = "/csbridge/"


WAITING = frozenset({"poll", "select", "acquire", "sleep", "wait", "waitpid"})
"""Built-ins that block: time spent waiting in them is nobody's cost."""


def _waiting(frame: Frame) -> bool:
    return frame.file_path == "<built-in>" and frame.function.rsplit(".", 1)[-1] in WAITING


def _name(frame: Frame) -> str | None:
    path = frame.file_path or ""
    if PACKAGE_MARK not in path or "/bench/" in path or "/csbridge/testing/" in path:
        return None  # the benchmark's own code and its broker helpers are not the product
    short = "csbridge/" + path.rsplit(PACKAGE_MARK, 1)[1]
    owner = f"{frame.class_name}." if frame.class_name else ""
    return f"{owner}{frame.function}  {short}:{frame.line_no}"


def csbridge_hot_spots(root: Frame, top: int = 40) -> str:
    inclusive: collections.defaultdict[str, float] = collections.defaultdict(float)
    own: collections.defaultdict[str, float] = collections.defaultdict(float)
    # Iterative walk: (frame, the nearest csbridge function above it, those on the stack).
    stack: list[tuple[Frame, str | None, frozenset[str]]] = [(root, None, frozenset())]
    while stack:
        frame, owner, active = stack.pop()
        if frame.is_synthetic or _waiting(frame):
            continue  # synthetic: already in its parent's total_self_time
        name = _name(frame)
        if name is not None:
            if name not in active:  # recursion: count the outermost call only
                inclusive[name] += frame.time
            owner, active = name, active | {name}
        if owner is not None:
            own[owner] += frame.total_self_time
        stack.extend((child, owner, active) for child in frame.children)
    total = sum(own.values())
    lines = [
        f"csbridge's own time in all: {total:.3f} s of {root.time:.3f} s profiled",
        f"{'inclusive s':>12}{'own s':>9}{'own %':>7}  function",
    ]
    for name, seconds in sorted(inclusive.items(), key=lambda item: -item[1])[:top]:
        share = 100 * own[name] / total if total else 0.0
        lines.append(f"{seconds:12.4f}{own[name]:9.4f}{share:7.1f}  {name}")
    lines += ["", "by own time:"]
    for name, seconds in sorted(own.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"{inclusive[name]:12.4f}{seconds:9.4f}{100 * seconds / total:7.1f}  {name}")
    return "\n".join(lines) + "\n"


def _session(run: Callable[[bool], dict[str, Any]], child_process: bool, name: str) -> Any:
    from pyinstrument import Profiler  # noqa: PLC0415 - a dev tool, only for --profile
    from pyinstrument.session import Session  # noqa: PLC0415

    if child_process:
        # The bridge under test is a child: pyinstrument runs it and leaves its session here.
        session_path = RESULTS / f"profile-{name}.pyisession"
        common.profile_bridge_to = session_path
        try:
            result = run(True)
        finally:
            common.profile_bridge_to = None
        session: Session = Session.load(str(session_path))
        session_path.unlink()
        return result, session
    # async_mode disabled: sample the main thread as it is, the event loop included.
    profiler = Profiler(interval=SAMPLE_INTERVAL_S, async_mode="disabled")
    profiler.start()
    result = run(True)
    return result, profiler.stop()


def profile(
    name: str,
    run: Callable[[bool], dict[str, Any]],
    print_table: Callable[[dict[str, Any]], None],
    child_process: bool,
) -> Path:
    from pyinstrument.renderers import ConsoleRenderer, HTMLRenderer  # noqa: PLC0415

    RESULTS.mkdir(exist_ok=True)
    result, session = _session(run, child_process, name)
    print("(figures taken under the profiler: not comparable, not written to results)")
    print_table(result)
    root = session.root_frame()
    hot = csbridge_hot_spots(root) if root is not None else "nothing sampled\n"
    flat = ConsoleRenderer(unicode=True, color=False, flat=True, show_all=True).render(session)
    tree = ConsoleRenderer(
        unicode=True, color=False, processor_options={"filter_threshold": 0.002}
    ).render(session)
    target = RESULTS / f"profile-{name}.txt"
    target.write_text(
        f"# csbridge functions\n\n{hot}\n# self time, every function\n\n{flat}\n"
        f"# call tree (library frames folded)\n\n{tree}",
        encoding="utf-8",
    )
    target.with_suffix(".html").write_text(HTMLRenderer().render(session), encoding="utf-8")
    print()
    print("\n".join(hot.splitlines()[:25]))
    return target
