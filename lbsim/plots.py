"""Figures drawn from DataFrames only: these functions never import the simulation model."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402,F401

__all__ = ["latency_cdf", "validation_figure", "TRANSPORT_STYLE", "latency_vs_size", "throughput_vs_size",
           "ratio_heatmap", "stage_breakdown", "queue_drops", "latency_vs_load", "mtu_tso", "kernels_bars", "scaling",
           "costs_caption"]

TRANSPORT_STYLE: dict[str, dict[str, Any]] = {
    "tcp": {"color": "#d62728", "marker": "o"},
    "udp": {"color": "#ff7f0e", "marker": "s"},
    "unix_stream": {"color": "#1f77b4", "marker": "^"},
    "unix_dgram": {"color": "#2ca02c", "marker": "v"},
}


def costs_caption(fig: Any, df: Any) -> str | None:
    """A small caption in the figure's lower right corner naming the cost profile(s) of the rows
    (the ``costs_profile`` column); returns its text, None when the rows do not name one."""
    if "costs_profile" not in getattr(df, "columns", ()):
        return None
    names = sorted({str(v) for v in df["costs_profile"].dropna().unique()})
    if not names:
        return None
    text = f"costs: {', '.join(names)}"
    fig.text(0.995, 0.005, text, ha="right", va="bottom", fontsize="x-small", color="0.4")
    return text


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
        for tr in TRANSPORT_STYLE:
            d = sub[sub.transport == tr].sort_values("msg_bytes")
            if d.empty:
                continue
            ax.plot(d.msg_bytes, d.measured, **_style(tr), label=f"{tr} measured")
            ax.plot(d.msg_bytes, d.simulated, **_style(tr), linestyle="--",
                    fillstyle="none", label=f"{tr} simulated")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        _labels(ax, "message size (bytes)", ylabel, label)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize="small")
    fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------------------------
# Figures of a results folder (the tidy rows of lbsim.load_results).  Each function takes the
# DataFrame (and optionally the Axes to draw on: one Axes, or a sequence for several panels),
# averages over replications and returns the Figure.  Nothing here imports the simulation.

FIG_WIDTH = 7.0  # inches; at dpi 100 a figure is 700 px wide

#: configuration columns that a figure does not plot are pinned to one value (this one if present)
_PIN_PREFERRED: dict[str, Any] = {"kernel": "linux-6.12", "tso": True, "rps_cpus": 0}
_PIN_COLUMNS = ("workload", "kernel", "mtu", "tso", "cpus", "flows", "rate_per_s", "rps_cpus",
                "netdev_max_backlog", "rmem_default", "wmem_default", "unix_max_dgram_qlen", "tcp_rmem",
                "tcp_wmem", "so_sndbuf", "so_rcvbuf", "background", "policy", "costs", "burst_size",
                "burst_gap_ns", "placement", "msg_bytes", "tcp_nodelay", "dev_weight", "netdev_budget",
                "tcp_init_cwnd", "tcp_congestion_control", "hz")

STAGE_GROUP_COLORS: dict[str, str] = {
    "syscall": "#7f7f7f", "copy": "#bcbd22", "tcp": "#d62728", "udp": "#ff7f0e", "ip": "#e377c2",
    "device": "#8c564b", "softirq": "#9467bd", "unix": "#1f77b4", "wakeup": "#17becf", "cache": "#2ca02c",
}


def _ok(df: Any) -> Any:
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    return df[df["value"].notna()]


def _workload(df: Any, workload: str) -> Any:
    d = _ok(df)
    return d[d["workload"] == workload]


def _transports(values: Any) -> list[str]:
    present = [str(v) for v in dict.fromkeys(values)]
    return [t for t in TRANSPORT_STYLE if t in present] + sorted(t for t in present if t not in TRANSPORT_STYLE)


def _style(tr: str) -> dict[str, Any]:
    return TRANSPORT_STYLE.get(tr, {"color": "#444444", "marker": "x"})


def _pin(d: Any, keep: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
    """Keep one value of every configuration column that varies but is not plotted."""
    pinned: dict[str, Any] = {}
    for col in _PIN_COLUMNS:
        if col in keep or col not in d.columns:
            continue
        vals = list(dict.fromkeys(d[col].dropna().tolist()))
        if len(vals) <= 1:
            continue
        pref = _PIN_PREFERRED.get(col)
        v = pref if pref in vals else sorted(vals, key=lambda x: (str(type(x)), x))[0]
        d = d[d[col] == v]
        pinned[col] = v
    return d, pinned


def _note(pinned: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in pinned.items())


def _mean(d: Any, metric: str, by: list[str]) -> Any:
    """Mean over replications of one metric, per ``by`` (rows with missing keys dropped)."""
    sub = d[d["metric"] == metric]
    if sub.empty:
        return sub.assign(mean=[]).loc[:, [*by, "mean"]] if by else sub
    return sub.groupby(by, dropna=True, sort=True)["value"].mean().reset_index(name="mean")


def _axes(ax: Any, n: int, *, ncols: int | None = None, height: float = 3.6, sharey: bool = False) -> tuple[Any, list]:
    """The figure and ``n`` Axes: ``ax`` given (one or a sequence), or new panels side by side."""
    if ax is not None:
        axes = list(getattr(ax, "flat", ax if isinstance(ax, (list, tuple)) else [ax]))
        if len(axes) < n:
            raise ValueError(f"need {n} Axes, got {len(axes)}")
        return axes[0].figure, axes[:n]
    ncols = ncols or min(n, 2)
    nrows = -(-n // ncols)
    fig, axs = plt.subplots(nrows, ncols, figsize=(FIG_WIDTH, height * nrows), squeeze=False,
                            constrained_layout=True, sharey=sharey)
    for extra in list(axs.flat)[n:]:
        extra.set_visible(False)
    return fig, list(axs.flat)[:n]


def _size_axis(ax: Any) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_fmt_bytes))


def _plain_ticks(axis: Any) -> None:
    """Major tick labels as plain numbers (1, 10, 100 rather than 10^n)."""
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _p: f"{v:g}"))


def _labels(ax: Any, xlabel: str, ylabel: str, title: str | None = None) -> None:
    """Axis labels, an optional panel title, and the grid every figure here uses."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)


def _plain_log_y(ax: Any) -> None:
    ax.set_yscale("log")
    _plain_ticks(ax.yaxis)
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _p: f"{v:g}" if f"{v:g}"[0] in "25" else ""))


def _fmt_bytes(x: float, _pos: Any = None) -> str:
    for shift, unit in ((20, "M"), (10, "K")):
        if x >= 1 << shift and x % (1 << shift) == 0:
            return f"{int(x) >> shift}{unit}"
    return f"{x:g}"


def _panels(d: Any, x: str, ax: Any, **kw: Any) -> tuple[Any, list, dict[str, Any], list]:
    """Rows ``d`` against ``x``, a panel per placement: (figure, Axes, pinned values,
    [(Axes, placement, its rows)])."""
    d, pinned = _pin(d, (x, "placement"))
    places = sorted(str(p) for p in d["placement"].dropna().unique()) if "placement" in d.columns else []
    fig, axes = _axes(ax, len(places), **kw)
    return fig, axes, pinned, [(a, pl, d[d["placement"] == pl]) for a, pl in zip(axes, places)]


def _finish(fig: Any, axes: list, title: str, pinned: dict[str, Any]) -> Any:
    legend: dict[str, Any] = {}  # label -> handle, the first of each label over all panels
    for a in axes:
        for h, lab in zip(*a.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    handles, labels = list(legend.values()), list(legend)
    if handles:
        engine = fig.get_layout_engine()
        if engine is not None and type(engine).__name__ == "ConstrainedLayoutEngine":
            ncol = min(4 if max(map(len, labels)) < 15 else 3, len(labels))
            fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize="small")
        else:
            axes[0].legend(handles, labels, fontsize="small")
    note = _note(pinned)
    fig.suptitle(title + (f"\n({note})" if note else ""), fontsize="medium")
    return fig


def latency_vs_size(df: Any, ax: Any = None) -> Any:
    """Ping-pong round trip against message size: p50 line, band up to p99; a panel per placement."""
    fig, axes, pinned, panels = _panels(_workload(df, "pingpong"), "msg_bytes", ax)
    for a, pl, dp in panels:
        p50 = _mean(dp, "latency_us_p50", ["transport", "msg_bytes"])
        p99 = _mean(dp, "latency_us_p99", ["transport", "msg_bytes"])
        for tr in _transports(p50["transport"]):
            st = _style(tr)
            x = p50[p50.transport == tr].sort_values("msg_bytes")
            y = p99[p99.transport == tr].set_index("msg_bytes")["mean"].reindex(x.msg_bytes)
            a.plot(x.msg_bytes, x["mean"], **_style(tr), label=tr)
            a.fill_between(x.msg_bytes.astype(float), x["mean"].to_numpy(float), y.to_numpy(float),
                           color=st["color"], alpha=0.15, linewidth=0)
        _size_axis(a)
        _plain_log_y(a)
        _labels(a, "message size (bytes)", "round trip (µs)", f"placement {pl}")
    return _finish(fig, axes, "Ping-pong latency: p50 (line), band to p99", pinned)


def throughput_vs_size(df: Any, ax: Any = None) -> Any:
    """Stream throughput (MB/s) against write size; a panel per placement."""
    fig, axes, pinned, panels = _panels(_workload(df, "stream"), "msg_bytes", ax)
    for a, pl, dp in panels:
        m = _mean(dp, "throughput_bytes_per_s", ["transport", "msg_bytes"])
        for tr in _transports(m["transport"]):
            x = m[m.transport == tr].sort_values("msg_bytes")
            a.plot(x.msg_bytes, x["mean"] / 1e6, **_style(tr), label=tr)
        _size_axis(a)
        _plain_log_y(a)
        _labels(a, "write size (bytes)", "throughput (MB/s)", f"placement {pl}")
    return _finish(fig, axes, "Stream throughput against write size", pinned)


_RATIO_PANELS = (
    ("pingpong", "latency_us_p50", "ping-pong p50 latency ÷ unix_stream (>1: slower)"),
    ("stream", "throughput_bytes_per_s", "stream throughput ÷ unix_stream (>1: faster)"),
)


def ratio_tables(df: Any) -> list[tuple[str, Any]]:
    """Per panel (ping-pong p50, stream throughput): a table transport/placement × msg_bytes of
    the ratio to unix_stream.  Panels without unix_stream and another transport are left out."""
    d = _ok(df)
    out = []
    for wl, metric, title in _RATIO_PANELS:
        dw = d[d["workload"] == wl]
        dw, pinned = _pin(dw, ("msg_bytes", "placement"))
        m = _mean(dw, metric, ["transport", "placement", "msg_bytes"])
        if m.empty or "unix_stream" not in set(m.transport) or m.transport.nunique() < 2:
            continue
        ref = m[m.transport == "unix_stream"].set_index(["placement", "msg_bytes"])["mean"]
        m = m[m.transport != "unix_stream"].copy()
        m["ratio"] = m["mean"].to_numpy(float) / ref.reindex(
            list(zip(m.placement, m.msg_bytes))).to_numpy(float)
        order = {t: i for i, t in enumerate(_transports(m.transport))}
        m["row"] = [f"{t} / {p}" for t, p in zip(m.transport, m.placement)]
        m = m.sort_values(["transport", "placement"], key=lambda s: s.map(order) if s.name == "transport" else s)
        table = m.pivot_table(index="row", columns="msg_bytes", values="ratio", sort=False)
        if table.notna().to_numpy().any():
            out.append((title + (f" ({_note(pinned)})" if pinned else ""), table))
    return out


def ratio_heatmap(df: Any, ax: Any = None) -> Any:
    """Ratio to unix_stream over message size × placement: ping-pong p50 and/or stream throughput."""
    import numpy as np
    from matplotlib.colors import LogNorm

    tables = ratio_tables(df)
    heights = [max(1.6, 0.32 * len(t) + 1.2) for _, t in tables]
    if ax is None:
        fig, axs = plt.subplots(len(tables), 1, figsize=(FIG_WIDTH, sum(heights) + 0.4), squeeze=False,
                                constrained_layout=True, gridspec_kw={"height_ratios": heights})
        axes = list(axs.flat)
    else:
        fig, axes = _axes(ax, len(tables))
    for a, (title, t) in zip(axes, tables):
        v = t.to_numpy(float)
        finite = v[np.isfinite(v) & (v > 0)]
        span = float(np.max(np.abs(np.log10(finite)))) if finite.size else 0.0
        lim = 10 ** min(max(span, np.log10(1.5)), 2.0)  # symmetric in log around 1, 1.5x .. 100x
        im = a.imshow(v, aspect="auto", cmap="RdBu_r", norm=LogNorm(vmin=1 / lim, vmax=lim))
        for (i, j), val in np.ndenumerate(v):
            if np.isfinite(val):
                a.text(j, i, f"{val:.2g}×", ha="center", va="center", fontsize="small")
        a.set_xticks(range(len(t.columns)), [_fmt_bytes(float(c)) for c in t.columns])
        a.set_yticks(range(len(t.index)), list(t.index))
        for lab in a.get_yticklabels():
            lab.set_color(_style(lab.get_text().split(" / ")[0])["color"])
        a.set(xlabel="message size (bytes)", ylabel="transport / placement")
        a.set_title(title, fontsize="medium")
        fig.colorbar(im, ax=a, label="ratio (×)")
    fig.suptitle("Ratio to unix_stream", fontsize="medium")
    return fig


def stage_breakdown_table(df: Any) -> tuple[Any, dict[str, Any]]:
    """ns per delivered message per transport × stage group, for the smallest size on one CPU."""
    d = _ok(df)
    d = d[d["metric"].isin(["stage_busy_ns", "messages_delivered"])]
    for col, v in (("workload", "pingpong"), ("placement", "same")):
        if col in d.columns and (d[col] == v).any():
            d = d[d[col] == v]
    if "msg_bytes" in d.columns and d["msg_bytes"].notna().any():
        d = d[d["msg_bytes"] == d["msg_bytes"].min()]
    d, pinned = _pin(d, ())
    for col in ("workload", "placement", "msg_bytes"):
        if col in d.columns and d[col].notna().any():
            pinned.setdefault(col, d[col].dropna().iloc[0])
    busy = d[d["metric"] == "stage_busy_ns"]
    per_run = busy.groupby(["transport", "run_id", "stage_group"])["value"].sum().reset_index()
    msgs = d[d["metric"] == "messages_delivered"].groupby("run_id")["value"].sum()
    per_run["per_msg"] = per_run["value"].to_numpy(float) / msgs.reindex(per_run.run_id).to_numpy(float)
    per_run = per_run[per_run["per_msg"].notna() & (per_run["per_msg"] > 0)]
    table = per_run.groupby(["transport", "stage_group"])["per_msg"].mean().unstack(fill_value=0.0)
    table = table.reindex(_transports(table.index)) if len(table) else table
    return table, pinned


def stage_breakdown(df: Any, ax: Any = None) -> Any:
    """Where the time goes: stacked bar per transport of CPU time per stage group per message."""
    table, pinned = stage_breakdown_table(df)
    fig, (a,) = _axes(ax, 1, height=4.2)
    groups = [g for g in STAGE_GROUP_COLORS if g in table.columns] + sorted(
        g for g in table.columns if g not in STAGE_GROUP_COLORS)
    bottom = [0.0] * len(table)
    x = list(range(len(table)))
    for g in groups:
        vals = table[g].to_numpy(float) / 1e3
        a.bar(x, vals, bottom=bottom, color=STAGE_GROUP_COLORS.get(g), label=g, edgecolor="white", linewidth=0.5)
        bottom = [b + v for b, v in zip(bottom, vals)]
    a.set_xticks(x, list(table.index))
    for lab in a.get_xticklabels():
        lab.set_color(_style(lab.get_text())["color"])
    a.set(ylabel="CPU time per delivered message (µs)", xlabel="transport")
    a.grid(True, axis="y", alpha=0.3)
    a.legend(title="stage group", fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle("Where the time goes" + (f"\n({_note(pinned)})" if pinned else ""), fontsize="medium")
    return fig


QUEUE_METRICS = (
    ("messages_dropped", "messages dropped", 1.0),
    ("softnet_dropped", "softnet backlog drops (packets)", 1.0),
    ("udp_rcvbuf_errors", "UDP receive-buffer errors", 1.0),
    ("sender_blocked_ns", "sender blocked (ms)", 1e-6),
)


def queue_drops(df: Any, ax: Any = None) -> Any:
    """Drops and blocked time against netdev_max_backlog, solid without RPS and dashed with."""
    d = _ok(df)
    d, pinned = _pin(d, ("netdev_max_backlog", "rps_cpus"))
    present = [q for q in QUEUE_METRICS if (d["metric"] == q[0]).any()]
    fig, axes = _axes(ax, len(present), height=3.0)
    has_rps = "rps_cpus" in d.columns and d["rps_cpus"].notna().any()
    by = ["transport", "netdev_max_backlog"] + (["rps_cpus"] if has_rps else [])
    for a, (metric, label, scale) in zip(axes, present):
        m = _mean(d, metric, by)
        for tr in _transports(m["transport"]):
            mt = m[m.transport == tr]
            rps_values = sorted(mt["rps_cpus"].unique()) if has_rps else [None]
            for rps in rps_values:
                x = (mt if rps is None else mt[mt.rps_cpus == rps]).sort_values("netdev_max_backlog")
                on = rps is not None and rps != 0
                a.plot(x.netdev_max_backlog, x["mean"] * scale, **_style(tr),
                       linestyle="--" if on else "-", fillstyle="none" if on else "full",
                       label=tr + ("" if rps is None else (f", RPS mask {rps:#x}" if on else ", no RPS")))
        a.set_xscale("log")
        _plain_ticks(a.xaxis)
        a.set_yscale("symlog", linthresh=1.0)
        _plain_ticks(a.yaxis)
        a.set_ylim(bottom=0)
        _labels(a, "netdev_max_backlog (packets)", label)
    return _finish(fig, axes, "Drops and blocked time against queue limits", pinned)


def latency_vs_load(df: Any, ax: Any = None) -> Any:
    """Poisson arrivals: p50 (solid) and p99 (dashed) latency against offered rate; panel per placement."""
    fig, axes, pinned, panels = _panels(_workload(df, "poisson"), "rate_per_s", ax, sharey=True)
    for a, pl, dp in panels:
        for metric, ls, q in (("latency_us_p50", "-", "p50"), ("latency_us_p99", "--", "p99")):
            m = _mean(dp, metric, ["transport", "rate_per_s"])
            for tr in _transports(m["transport"]):
                x = m[m.transport == tr].sort_values("rate_per_s")
                a.plot(x.rate_per_s / 1e3, x["mean"], **_style(tr), linestyle=ls,
                       fillstyle="full" if q == "p50" else "none", label=f"{tr} {q}")
        a.set_xscale("log")
        _plain_ticks(a.xaxis)
        a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        _plain_log_y(a)
        _labels(a, "offered load (thousand messages/s)", "one-way latency (µs)", f"placement {pl}")
    return _finish(fig, axes, "Latency against offered load (p50 solid, p99 dashed)", pinned)


def mtu_tso(df: Any, ax: Any = None) -> Any:
    """Stream throughput against the lo MTU; a line per transport and TSO setting."""
    d = _workload(df, "stream")
    d, pinned = _pin(d, ("mtu", "tso"))
    fig, (a,) = _axes(ax, 1, height=4.0)
    m = _mean(d, "throughput_bytes_per_s", ["transport", "tso", "mtu"])
    for tr in _transports(m["transport"]):
        mt = m[m.transport == tr]
        for tso in sorted(mt["tso"].unique(), reverse=True):
            x = mt[mt.tso == tso].sort_values("mtu")
            a.plot(x.mtu, x["mean"] / 1e6, **_style(tr),
                   linestyle="-" if tso else "--", fillstyle="full" if tso else "none",
                   label=f"{tr}, TSO {'on' if tso else 'off'}")
    a.set_xscale("log", base=2)
    _plain_ticks(a.xaxis)
    a.set_xticks(sorted(m["mtu"].unique()))
    _labels(a, "lo MTU (bytes)", "throughput (MB/s)")
    return _finish(fig, [a], "Stream throughput against MTU, with and without TSO", pinned)


def kernels_bars(df: Any, ax: Any = None) -> Any:
    """Bars per transport, one per kernel: ping-pong p50 and/or stream throughput."""
    d = _ok(df)
    panels = []
    for wl, metric, label, scale in (("pingpong", "latency_us_p50", "p50 round trip (µs)", 1.0),
                                     ("stream", "throughput_bytes_per_s", "throughput (MB/s)", 1e-6)):
        dw, pinned = _pin(d[d["workload"] == wl], ("kernel",))
        m = _mean(dw, metric, ["transport", "kernel"])
        if not m.empty:
            panels.append((wl, label, scale, m, pinned))
    fig, axes = _axes(ax, len(panels), ncols=1, height=3.0)
    hatches = ["", "//", "..", "xx"]
    for a, (wl, label, scale, m, pinned) in zip(axes, panels):
        trs = _transports(m["transport"])
        kernels = sorted(m["kernel"].unique())
        w = 0.8 / len(kernels)
        for k, kern in enumerate(kernels):
            mk = m[m.kernel == kern].set_index("transport")["mean"].reindex(trs)
            a.bar([i + (k - (len(kernels) - 1) / 2) * w for i in range(len(trs))], mk.to_numpy(float) * scale,
                  width=w, color=[_style(t)["color"] for t in trs], alpha=1.0 - 0.45 * k,
                  hatch=hatches[k % len(hatches)], edgecolor="black", linewidth=0.5, label=kern)
        a.set_xticks(range(len(trs)), trs)
        a.set(xlabel="transport", ylabel=label)
        a.set_title(wl + (f" ({_note(pinned)})" if pinned else ""), fontsize="medium")
        a.grid(True, axis="y", alpha=0.3)
        if a is axes[0]:
            a.legend(title="kernel", fontsize="small")
    fig.suptitle("Kernel profiles", fontsize="medium")
    return fig


def scaling(df: Any, ax: Any = None) -> Any:
    """Request/response: messages per second against flows; a line per transport and CPU count."""
    d = _workload(df, "rr")
    d, pinned = _pin(d, ("flows", "cpus"))
    fig, (a,) = _axes(ax, 1, height=4.0)
    m = _mean(d, "throughput_msgs_per_s", ["transport", "cpus", "flows"])
    styles = ["-", "--", ":", "-."]
    cpus = sorted(m["cpus"].unique())
    for tr in _transports(m["transport"]):
        for i, c in enumerate(cpus):
            x = m[(m.transport == tr) & (m.cpus == c)].sort_values("flows")
            if x.empty:
                continue
            a.plot(x.flows, x["mean"] / 1e3, **_style(tr),
                   linestyle=styles[i % len(styles)], label=f"{tr}, {c} CPUs")
    a.set_xscale("log", base=2)
    _plain_ticks(a.xaxis)
    _labels(a, "flows (concurrent request/response pairs)", "throughput (thousand messages/s)")
    return _finish(fig, [a], "Scaling with CPUs and flows (request/response)", pinned)


_QUANTILES = (("latency_us_p50", 0.50), ("latency_us_p90", 0.90), ("latency_us_p99", 0.99),
              ("latency_us_p999", 0.999))


def latency_cdf(df: Any, ax: Any = None) -> Any:
    """Latency distribution per transport from the stored quantiles (p50, p90, p99, p99.9):
    the fraction of messages at or under each latency, with the tail stretched (logit scale).
    A panel per placement, for the smallest message size."""
    d = _ok(df)
    d = d[d["metric"].isin([m for m, _ in _QUANTILES])]
    if "msg_bytes" in d.columns and len(d):
        d = d[d["msg_bytes"] == d["msg_bytes"].min()]
    fig, axes, pinned, panels = _panels(d, "placement", ax)
    for a, pl, dp in panels:
        for tr in _transports(dp["transport"]):
            xs, ys = [], []
            for metric, q in _QUANTILES:
                v = dp[(dp.transport == tr) & (dp.metric == metric)]["value"].mean()
                if v == v:
                    xs.append(v)
                    ys.append(q)
            a.plot(xs, ys, **_style(tr), label=tr, drawstyle="default")
        a.set_xscale("log")
        a.set_yscale("logit")
        _labels(a, "latency (µs)", "fraction of messages ≤ latency", f"placement {pl}")
    size = int(d["msg_bytes"].min()) if "msg_bytes" in d.columns and len(d) else None
    title = "Latency distribution (p50, p90, p99, p99.9)" + (f", {size} B" if size else "")
    return _finish(fig, axes, title, pinned)
