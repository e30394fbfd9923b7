"""One ping-pong round trip through the kernel stages, printed like ftrace's function_graph.

A deterministic run (every cost at its mean) with ``trace=True``; a few warm-up round trips,
then one steady-state round trip is cut out of the trace by time: all records that start
between the client's send call (``t0``) and the return of the receive that completes the
reply (``t0 + latency``), where ``latency`` is that round trip's simulated latency sample.
Pure TCP ACKs (msg -1) are included because they fall in the window.

The bottom line of :func:`format_function_graph` splits the round trip ``X`` into ``Y``, the
time some CPU runs a stage of this round trip (the union of the records' intervals, clipped
to the window), and ``Z = X - Y``, the time no CPU does (a CPU waking from idle after the
wake-up IPI).  On one CPU the printed durations add up to ``Y``; across CPUs, stages that run
in parallel with the path (e.g. the receiver's ACK work) are reported separately.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from lbsim.model.stages import GROUPS, STAGE_GROUP

__all__ = ["trace_run", "round_trip_records", "format_function_graph", "timeline_figure", "few_round_trips",
           "path_split", "WARMUP",
           "GROUP_COLOR"]

#: warm-up round trips before the one shown (the first pays for cold caches and slow start)
WARMUP = 4

#: one colour per stage group (matplotlib's tab10)
GROUP_COLOR: dict[str, str] = dict(zip(GROUPS, (
    "#7f7f7f", "#bcbd22", "#d62728", "#ff7f0e", "#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#2ca02c",
    "#17becf")))

# nesting level of a stage inside its context (task: under the syscall; softirq: under do_softirq)
_LEVEL: dict[str, int] = {
    "syscall": 0, "schedule": 0, "net_rx_action": 0,
    "tcp_sendmsg": 1, "tcp_recvmsg": 1, "udp_sendmsg": 1, "udp_recvmsg": 1, "unix_stream_sendmsg": 1,
    "unix_dgram_sendmsg": 1, "unix_stream_recvmsg": 1, "unix_dgram_recvmsg": 1, "process_backlog": 1,
    "tcp_delack_timer": 1, "tcp_retransmit_timer": 1, "schedule_timeout": 1,
    "try_to_wake_up": 3, "ttwu_queue_wakelist": 3, "send_call_function_single_ipi": 4, "net_rps_send_ipi": 3,
}
_TASK_BASE = 1
_SOFTIRQ_BASE = 2


def trace_run(transport: str = "tcp", *, msg_bytes: int = 64, placement: Any = "same", kernel: str = "linux-6.12",
              round_trips: int = 3, **fields: Any) -> Any:
    """A deterministic traced ping-pong run: ``WARMUP`` + ``round_trips`` round trips."""
    from lbsim.simulate import simulate

    return simulate(transport=transport, workload="pingpong", msg_bytes=msg_bytes, placement=placement,
                    kernel=kernel, messages=WARMUP + round_trips, flows=1, deterministic=True, trace=True,
                    **fields)


def round_trip_records(result: Any, index: int | None = None, count: int = 1) -> pd.DataFrame:
    """The records of round trips ``index .. index+count-1`` (default: the first after warm-up).

    Columns: those of ``Result.trace_frame()`` plus ``group`` and ``dur_ns``, sorted by start.
    ``attrs``: ``t0_ns`` (client's send call), ``t_end_ns``, ``latency_ns`` (the sum of the
    round trips' simulated latency samples: ``t_end_ns - t0_ns``), ``transport``, ``index``.
    """
    cfg = result.config
    if cfg.workload != "pingpong" or cfg.flows != 1:
        raise ValueError("round_trip_records needs a one-flow pingpong run")
    samples = result.latency_samples_ns
    if index is None:
        index = min(WARMUP, len(samples) - count)
    if index < 0 or index + count > len(samples):
        raise ValueError(f"round trips {index}..{index + count - 1} not in the run ({len(samples)} round trips)")
    df = result.trace_frame()
    # one flow, one id counter: the client's i-th request is message 2i, the reply 2i+1
    client = df[df.context.str.startswith("client")]
    t0 = float(client[client.msg == 2 * index].start_ns.min())
    latency = float(sum(samples[index:index + count]))
    t_end = t0 + latency
    eps = 1e-6 * max(latency, 1.0)
    ends = df.end_ns.to_numpy()
    if not ((abs(ends - t_end) <= eps).any()):
        raise RuntimeError("round trip window does not end at a record (trace and latency disagree)")
    out = df[(df.start_ns >= t0 - eps) & (df.start_ns < t_end - eps)].copy()
    out["group"] = out.stage.map(STAGE_GROUP)
    out["dur_ns"] = out.end_ns - out.start_ns
    out = out.sort_values(["start_ns", "cpu"], kind="stable").reset_index(drop=True)
    out.attrs.update(t0_ns=t0, t_end_ns=t_end, latency_ns=latency, transport=cfg.transport, index=index, count=count,
                     placement=cfg.placement, msg_bytes=cfg.msg_bytes)
    return out


def _union(df: pd.DataFrame, t0: float, t_end: float) -> tuple[float, list[tuple[float, float]]]:
    """Covered time of the records' intervals clipped to [t0, t_end], and the gaps."""
    busy = 0.0
    gaps: list[tuple[float, float]] = []
    cur = t0
    for s, e in sorted(zip(df.start_ns.clip(t0, t_end), df.end_ns.clip(t0, t_end))):
        if s > cur:
            gaps.append((cur, s))
            cur = s
        if e > cur:
            busy += e - cur
            cur = e
    if t_end > cur:
        gaps.append((cur, t_end))
    return busy, gaps


def path_split(df: pd.DataFrame, latency_ns: float | None = None) -> dict[str, float]:
    """X (round trip), Y (some CPU runs a stage), Z = X - Y, W (sum of durations - Y: parallel)."""
    t0 = df.attrs["t0_ns"]
    x = float(latency_ns if latency_ns is not None else df.attrs["latency_ns"])
    y, _ = _union(df, t0, t0 + x)
    total = float((df.end_ns.clip(upper=t0 + x) - df.start_ns).sum())
    return {"X": x, "Y": y, "Z": x - y, "W": max(total - y, 0.0)}


def _dur(ns: float) -> str:
    us = ns / 1000.0
    mark = "!" if us > 100 else "+" if us > 10 else " "
    return f"{mark} {us:8.3f} us "


def format_function_graph(df: pd.DataFrame, latency_ns: float | None = None) -> str:
    """function_graph-style text of the records of :func:`round_trip_records`."""
    t0 = df.attrs["t0_ns"]
    x = float(latency_ns if latency_ns is not None else df.attrs["latency_ns"])
    t_end = t0 + x
    blank = " " * 14
    events: list[tuple[float, int, int, str]] = []  # (time, order, seq, line)
    seq = 0

    def add(t: float, order: int, line: str) -> None:
        nonlocal seq
        events.append((t, order, seq, line))
        seq += 1

    # per CPU: consecutive records of one context form a block
    for cpu, recs in df.groupby("cpu", sort=True):
        last_task: str | None = None
        block: list[Any] = []

        # cpu bound as a default: flush is redefined per CPU and must use this iteration's
        def flush(block: list[Any], cpu: Any = cpu) -> None:
            nonlocal last_task
            if not block:
                return
            ctx, kind = block[0].context, block[0].kind
            start, end = block[0].start_ns, min(max(r.end_ns for r in block), t_end)
            if kind == "softirq":
                add(start, 1, f" {cpu:>2d}) {blank} |  {'  ' * _SOFTIRQ_BASE}do_softirq {{".ljust(60) + f"[{ctx}]")
                for r in block:
                    depth = _SOFTIRQ_BASE + 1 + _LEVEL.get(r.stage, 2)
                    add(r.start_ns, 2, f" {cpu:>2d}) {_dur(min(r.end_ns, t_end) - r.start_ns)} |  "
                                       f"{'  ' * depth}{r.stage}")
                add(end, 0, f" {cpu:>2d}) {_dur(end - start)} |  {'  ' * _SOFTIRQ_BASE}}} /* do_softirq */")
                return
            if last_task is not None and ctx != last_task:
                add(start, 1, " " + "-" * 42 + f"\n {cpu:>2d})  {last_task} => {ctx}\n " + "-" * 42)
            last_task = ctx
            for i, r in enumerate(block):
                depth = _TASK_BASE + _LEVEL.get(r.stage, 2)
                line = f" {cpu:>2d}) {_dur(min(r.end_ns, t_end) - r.start_ns)} |  {'  ' * depth}{r.stage}"
                if i == 0:
                    line = line.ljust(60) + f"[{ctx}]"
                add(r.start_ns, 2, line)

        for r in recs.itertuples(index=False):
            if block and (r.context != block[-1].context or r.start_ns > block[-1].end_ns + 1e-6):
                flush(block)
                block = []
            block.append(r)
        flush(block)

    _, gaps = _union(df, t0, t_end)
    for s, e in gaps:
        if e - s > 1e-6:
            add(s, 0, f"  -) {_dur(e - s)} |  /* no CPU busy: idle, waiting for the wake-up IPI */")

    tr = df.attrs.get("transport", "?")
    head = (f"# lbsim trace: {tr}, {df.attrs.get('msg_bytes', '?')} B, placement {df.attrs.get('placement', '?')}, "
            f"round trip #{df.attrs.get('index', '?')} (deterministic, after warm-up)\n"
            f"# CPU  DURATION            FUNCTION CALLS\n"
            f"# |     |   |               |   |   |   |")
    lines = [head] + [ev[3] for ev in sorted(events)]
    sp = path_split(df, x)
    lines.append(f"round trip: {sp['X'] / 1e3:.3f} us (sum of stages on the path: {sp['Y'] / 1e3:.3f} us, "
                 f"idle/IPI wait: {sp['Z'] / 1e3:.3f} us)")
    if sp["W"] > 1e-6 * x:
        lines.append(f"  (plus {sp['W'] / 1e3:.3f} us of stages running in parallel on another CPU, off the path)")
    return "\n".join(lines) + "\n"


def timeline_figure(dfs: dict[str, pd.DataFrame]) -> Any:
    """Per-CPU Gantt chart, one subplot per entry of ``dfs`` (label -> round_trip_records)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from lbsim.plots import TRANSPORT_STYLE

    fig = Figure(figsize=(12, 2.2 + 1.6 * len(dfs)), layout="constrained")
    axes = fig.subplots(len(dfs), 1, squeeze=False)[:, 0]
    xmax = max(d.attrs["latency_ns"] for d in dfs.values()) / 1e3
    used: set[str] = set()
    for ax, (label, df) in zip(axes, dfs.items()):
        t0 = df.attrs["t0_ns"]
        cpus = sorted(int(c) for c in df.cpu.unique()) or [0]
        r: Any  # a row namedtuple of df's columns
        for r in df.itertuples(index=False):
            left, width = (r.start_ns - t0) / 1e3, r.dur_ns / 1e3
            if width <= 0:
                continue
            used.add(r.group)
            ax.barh(r.cpu, width, left=left, height=0.6, color=GROUP_COLOR[r.group], edgecolor="white",
                    linewidth=0.3)
            fit = int(width / xmax * 160)  # characters of 6 pt text that fit in the box (12 in wide)
            if fit >= 4:
                name = r.stage if len(r.stage) <= fit else r.stage[:fit - 1] + "…"
                ax.text(left + width / 2, r.cpu, name, ha="center", va="center", fontsize=6, clip_on=True)
        # round-trip boundaries
        for b in pd.Series(df.attrs.get("bounds_ns", [])):
            ax.axvline((b - t0) / 1e3, color="k", linewidth=0.5, linestyle=":")
        ax.set_yticks(cpus, [f"CPU {c}" for c in cpus])
        ax.set_ylim(max(cpus) + 0.6, min(cpus) - 0.6)
        ax.set_xlim(0, xmax)
        ax.set_xlabel("time since the client's send() (µs)")
        tr = df.attrs.get("transport", label)
        ax.set_title(f"{label}: {df.attrs['latency_ns'] / 1e3:.2f} µs for {df.attrs.get('count', 1)} round trip(s)",
                     color=TRANSPORT_STYLE.get(tr, {}).get("color", "k"), loc="left")
        ax.grid(True, axis="x", alpha=0.3)
    handles = [Patch(color=GROUP_COLOR[g], label=g) for g in GROUPS if g in used]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize="small")
    return fig


def few_round_trips(result: Any, count: int = 3) -> pd.DataFrame:
    """:func:`round_trip_records` of ``count`` round trips after warm-up, for the timeline."""
    index = min(WARMUP, len(result.latency_samples_ns) - count)
    df = round_trip_records(result, index=index, count=count)
    s = result.latency_samples_ns
    df.attrs["count"] = count
    df.attrs["bounds_ns"] = [df.attrs["t0_ns"] + float(sum(s[index:index + k])) for k in range(1, count)]
    return df
