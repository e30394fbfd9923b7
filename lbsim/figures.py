"""Which figures a results folder supports, and writing them (PNG) from stored rows.

``draw_all(df, outdir)`` looks at the columns and values of the tidy results (as returned by
:func:`lbsim.load_results`) and draws every figure whose data is present; nothing here runs or
imports the simulation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbsim import plots

__all__ = ["FIGURES", "Figure", "applicable", "draw_all"]


def _ok(df: Any) -> Any:
    d = df[df["status"] == "ok"] if "status" in df.columns else df
    return d[d["value"].notna()] if "value" in d.columns else d


def _has(d: Any, *cols: str) -> bool:
    return all(c in d.columns for c in cols)


def _metric_rows(d: Any, metric: str, workload: str | None = None) -> Any:
    if not _has(d, "metric", "value", "transport"):
        return d.iloc[0:0]
    sub = d[d["metric"] == metric]
    if workload is not None:
        sub = sub[sub["workload"] == workload] if "workload" in sub.columns else sub.iloc[0:0]
    return sub


def _n(d: Any, col: str) -> int:
    return int(d[col].nunique(dropna=True)) if col in d.columns else 0


def _swept(d: Any, metric: str, workload: str, x: str, other: str) -> bool:
    """Rows of ``metric`` for ``workload`` with an ``x`` column taking at least two values
    (and an ``other`` column): a curve against ``x`` can be drawn."""
    r = _metric_rows(d, metric, workload)
    return _has(r, x, other) and _n(r, x) >= 2


def _latency_vs_size(d: Any) -> bool:
    return _swept(d, "latency_us_p50", "pingpong", "msg_bytes", "placement")


def _throughput_vs_size(d: Any) -> bool:
    return _swept(d, "throughput_bytes_per_s", "stream", "msg_bytes", "placement")


def _ratio(d: Any) -> bool:
    return _has(d, "msg_bytes", "placement", "workload") and bool(plots.ratio_tables(d))


def _stages(d: Any) -> bool:
    if not _has(d, "stage_group", "run_id") or _metric_rows(d, "stage_busy_ns").empty:
        return False
    table, _ = plots.stage_breakdown_table(d)
    return len(table) > 0


def _queues(d: Any) -> bool:
    if not _has(d, "netdev_max_backlog") or _n(d, "netdev_max_backlog") < 2:
        return False
    return any(not _metric_rows(d, m).empty for m, _, _ in plots.QUEUE_METRICS)


def _load(d: Any) -> bool:
    return _swept(d, "latency_us_p50", "poisson", "rate_per_s", "placement")


def _mtu(d: Any) -> bool:
    return _swept(d, "throughput_bytes_per_s", "stream", "mtu", "tso")


def _kernels(d: Any) -> bool:
    if not _has(d, "kernel", "workload"):
        return False
    return any(_n(_metric_rows(d, m, wl), "kernel") >= 2
               for wl, m in (("pingpong", "latency_us_p50"), ("stream", "throughput_bytes_per_s")))


def _cdf(d: Any) -> bool:
    return len(_metric_rows(d, "latency_us_p999")) > 0 and _has(d, "placement", "transport")


def _scaling(d: Any) -> bool:
    r = _metric_rows(d, "throughput_msgs_per_s", "rr")
    return _has(r, "flows", "cpus") and (_n(r, "flows") >= 2 or _n(r, "cpus") >= 2)


@dataclass(frozen=True)
class Figure:
    name: str                      # file stem under figures/
    title: str
    applies: Callable[[Any], bool]  # the (status ok) rows -> whether the data is there
    draw: Callable[..., Any]       # plots.<function>(df, ax=None) -> matplotlib Figure


FIGURES: tuple[Figure, ...] = (
    Figure("latency_vs_size", "ping-pong latency (p50, band to p99) against message size", _latency_vs_size,
           plots.latency_vs_size),
    Figure("latency_cdf", "latency distribution per transport (p50 to p99.9)", _cdf, plots.latency_cdf),
    Figure("throughput_vs_size", "stream throughput against write size", _throughput_vs_size,
           plots.throughput_vs_size),
    Figure("ratio_to_unix_stream", "ratio to unix_stream over message size x placement", _ratio,
           plots.ratio_heatmap),
    Figure("stage_breakdown", "where the time goes: CPU time per message per stage group", _stages,
           plots.stage_breakdown),
    Figure("queue_drops", "drops and blocked time against netdev_max_backlog, with/without RPS", _queues,
           plots.queue_drops),
    Figure("latency_vs_load", "latency (p50, p99) against offered load", _load, plots.latency_vs_load),
    Figure("mtu_tso", "stream throughput against MTU, TSO on/off", _mtu, plots.mtu_tso),
    Figure("kernels", "the two kernel profiles per transport", _kernels, plots.kernels_bars),
    Figure("scaling", "request/response throughput against flows and CPUs", _scaling, plots.scaling),
)


def applicable(df: Any) -> list[Figure]:
    """The figures whose data is present in ``df``."""
    d = _ok(df)
    if d.empty:
        return []
    return [f for f in FIGURES if f.applies(d)]


def draw_all(df: Any, outdir: str | Path, *, formats: tuple[str, ...] = ("png",),
             dpi: int = 100) -> list[Path]:
    """Draw every applicable figure into ``outdir`` (created) as ``<name>.png`` (and any other
    of matplotlib's ``formats``), each with a caption naming the cost profile of its rows.

    Returns the paths written, in figure order.  Figures are 7 in wide: 700 px at ``dpi`` 100.
    """
    import matplotlib.pyplot as plt

    out = Path(outdir)
    written: list[Path] = []
    d = _ok(df)
    for f in applicable(df):
        out.mkdir(parents=True, exist_ok=True)
        fig = f.draw(d)
        plots.costs_caption(fig, d)
        try:
            for fmt in formats:
                path = out / f"{f.name}.{fmt}"
                fig.savefig(path, dpi=dpi)
                written.append(path)
        finally:
            plt.close(fig)
    return written
