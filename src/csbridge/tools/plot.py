"""`csbridge replay --plot FILE.png`: the reported limits, present values and isolation state of
each EVSE over the log's time, dropouts and faults marked, so a vendor sees what a mapping does.

Needs the optional `plot` extra (matplotlib)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from csbridge.tools.replay import Publication

ISOLATION_LEVEL = {"fault": 0, "invalid": 1, "no_imd": 1, "warning": 2, "valid": 3}


PLOT_EXTRA_HINT = "install the plot extra: pip install 'csbridge[plot]'"


class PlotUnavailableError(Exception):
    """matplotlib is not installed: `pip install 'csbridge[plot]'`."""


def plot_available() -> bool:
    """Whether matplotlib imports, asked before a replay so a missing extra costs no replay."""
    try:
        import matplotlib  # noqa: F401, PLC0415 - optional extra
    except ImportError:
        return False
    return True


def _series(
    publications: Sequence[Publication], response_topic: str
) -> dict[str, list[tuple[float, dict[str, Any]]]]:
    by_evse: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
    for publication in publications:
        if publication.topic != response_topic:
            continue
        for entry in publication.payload["data"]["evses"]:
            by_evse[entry["evse_id"]].append((publication.t, entry))
    return by_evse


def _dropouts(publications: Sequence[Publication]) -> list[tuple[float, str]]:
    """(time, label) where a module of any EVSE stops counting."""
    marks = []
    healthy: dict[str, bool] = {}
    for publication in publications:
        if not publication.topic.endswith("/limits"):
            continue
        for name, module in publication.payload["sources"].get("modules", {}).items():
            now_healthy = module["state"] == "healthy"
            if healthy.get(name, True) and not now_healthy and name in healthy:
                marks.append((publication.t, f"{name} {module['state']}"))
            healthy[name] = now_healthy
    return marks


def plot_publications(publications: Sequence[Publication], response_topic: str, path: Path) -> None:
    try:
        import matplotlib  # noqa: PLC0415 - optional extra

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as error:
        raise PlotUnavailableError(str(error)) from None
    series = _series(publications, response_topic)
    if not series:
        raise ValueError("nothing was published: no EVSE to plot")
    start = min(t for points in series.values() for t, _ in points)
    figure, axes = plt.subplots(
        2 * len(series), 1, figsize=(11, 4.5 * len(series)), sharex=True, squeeze=False
    )
    dropouts = _dropouts(publications)
    for index, (evse_id, points) in enumerate(sorted(series.items())):
        limits_axis, state_axis = axes[2 * index][0], axes[2 * index + 1][0]
        times = [t - start for t, _ in points]
        block = "dc" if "dc" in points[0][1] else "ac"
        if block == "dc":
            for key, label in (
                ("max_current", "max current A"),
                ("present_current", "present current A"),
            ):
                limits_axis.step(
                    times, [e["dc"][key] for _, e in points], where="post", label=label
                )
            power_axis = limits_axis.twinx()
            power_axis.step(
                times,
                [e["dc"]["max_power"] / 1000 for _, e in points],
                where="post",
                color="tab:red",
                label="max power kW",
            )
            power_axis.set_ylabel("kW")
            power_axis.legend(loc="upper right")
            isolation = [
                ISOLATION_LEVEL.get(e["dc"].get("isolation_status", "no_imd"), 1) for _, e in points
            ]
            state_axis.step(
                times,
                isolation,
                where="post",
                label="isolation (0 fault, 1 invalid, 2 warning, 3 valid)",
            )
        else:
            limits_axis.step(
                times,
                [e["ac"]["max_current"]["l1"] for _, e in points],
                where="post",
                label="max current per phase A",
            )
        ready = [1 if e["status_code"] == "evse_ready" else 0 for _, e in points]
        state_axis.step(times, ready, where="post", label="evse_ready")
        for t, e in points:
            if e["status_code"] not in (
                "evse_ready",
                "evse_not_ready",
                "evse_isolation_monitoring_active",
            ):
                state_axis.axvline(t - start, color="red", alpha=0.3)
        for t, label in dropouts:
            limits_axis.axvline(t - start, color="grey", linestyle="--")
            limits_axis.annotate(label, (t - start, 0), rotation=90, fontsize=8, va="bottom")
        limits_axis.set_title(evse_id)
        limits_axis.legend(loc="upper left")
        state_axis.legend(loc="upper left")
        state_axis.set_yticks([0, 1, 2, 3])
    axes[-1][0].set_xlabel("seconds into the log")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
