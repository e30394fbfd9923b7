"""Figures drawn from DataFrames only: these functions never import the simulation model."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["validation_figure", "TRANSPORT_STYLE"]

TRANSPORT_STYLE: dict[str, dict[str, Any]] = {
    "tcp": {"color": "#d62728", "marker": "o"},
    "udp": {"color": "#ff7f0e", "marker": "s"},
    "unix_stream": {"color": "#1f77b4", "marker": "^"},
    "unix_dgram": {"color": "#2ca02c", "marker": "v"},
}


def validation_figure(rows: Any, *, title: str = "lbsim against the host kernel") -> Any:
    """Measured (lines) and simulated (dashed) curves side by side.

    ``rows`` has the columns of :class:`lbsim.validate.ValidationReport` rows: transport,
    workload, placement, background, msg_bytes, metric, measured, simulated.  Panels: ping-pong
    p50 round trip against size (one CPU; across CPUs) and stream throughput against write
    size (one CPU; across CPUs).
    """
    panels = [
        ("pingpong", "same", "rtt_p50_us", "ping-pong p50, one CPU", "round trip (µs)"),
        ("pingpong", "cross", "rtt_p50_us", "ping-pong p50, across CPUs (peer idle)", "round trip (µs)"),
        ("stream", "same", "throughput_MBps", "stream, one CPU", "throughput (MB/s)"),
        ("stream", "cross", "throughput_MBps", "stream, across CPUs", "throughput (MB/s)"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    for ax, (wl, pl, metric, label, ylabel) in zip(axes.flat, panels):
        sub = rows[(rows.workload == wl) & (rows.placement == pl) & (rows.metric == metric)]
        if "background" in sub.columns:
            sub = sub[sub.background == "idle"]
        for tr, st in TRANSPORT_STYLE.items():
            d = sub[sub.transport == tr].sort_values("msg_bytes")
            if d.empty:
                continue
            ax.plot(d.msg_bytes, d.measured, color=st["color"], marker=st["marker"], label=f"{tr} measured")
            ax.plot(d.msg_bytes, d.simulated, color=st["color"], marker=st["marker"], linestyle="--",
                    fillstyle="none", label=f"{tr} simulated")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("message size (bytes)")
        ax.set_ylabel(ylabel)
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize="small")
    fig.suptitle(title)
    return fig
