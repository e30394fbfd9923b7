"""Measured data -> fitted cost model.

The fit has two layers:

1. A *base* cost table: each stage's fixed cost, from kernel tracepoint intervals measured on
   the host (``lbsim.measure.stages``), split among the stages inside each interval by the
   rules in :func:`base_from_stage_intervals`.  Stages that no measured path exercises get
   their cost from a stated rule (``RULES``).
2. A bounded least-squares fit (SciPy ``least_squares``) of a few parameters against the
   measured ping-pong medians and the split medians (one thread writes a message, then reads
   it: the write and the read call apart, which tells the copy in from the copy out), using
   the model's zero-load (``deterministic``) paths:
   one scale per transport's own protocol stages, the per-byte cost of each copy, the
   waker's cost of a cross-CPU wake-up and the wake-up delays into an idle and into a busy
   CPU.  Then the spread (log-normal cv of the stages, and of the wake-up delays) is fitted
   to the measured p90/p50 ratios by full simulation.

The result is a cost-model JSON file with its provenance (host, kernel, data hash, fitted
subset, every fitted value with its bound and whether it sits there).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import math
import platform
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from lbsim.costs import DELAYS, CostModel, StageCost, cost_model_from_dict
from lbsim.model.stages import STAGES

__all__ = ["TRANSPORT_STAGES", "SHARED_RULES", "FitResult", "fit_costs", "load_measured", "PARAMS"]

#: stages scaled with each transport's own protocol work
TRANSPORT_STAGES: dict[str, tuple[str, ...]] = {
    "tcp": ("tcp_sendmsg", "tcp_stream_alloc_skb", "tcp_transmit_skb", "tcp_v4_rcv", "tcp_ack", "tcp_send_ack",
            "tcp_recvmsg", "tcp_cleanup_rbuf", "tcp_add_backlog", "tcp_delack_timer", "tcp_retransmit_timer"),
    "udp": ("udp_sendmsg", "udp_rcv", "udp_recvmsg"),
    "unix_stream": ("unix_stream_sendmsg", "unix_stream_recvmsg"),
    "unix_dgram": ("unix_dgram_sendmsg", "unix_dgram_recvmsg"),
}

#: the scheduler's own stages on a same-CPU hand-over (a wake-up, going to sleep, the switch),
#: scaled together: tracepoint intervals bound them only loosely
SCHED_STAGES: tuple[str, ...] = ("try_to_wake_up", "schedule_timeout", "schedule")

#: the IP and loopback path that TCP and UDP share (transmit down to netif_rx, NET_RX up to ip_rcv),
#: scaled together: their bases come from tracepoint intervals that each tracepoint lengthens
NET_STAGES: tuple[str, ...] = ("ip_output", "dev_queue_xmit", "loopback_xmit", "netif_rx", "net_rx_action",
                               "process_backlog", "ip_rcv")

#: stages no measured path exercises on an unmodified host: cost = the named stage's, and why
SHARED_RULES: dict[str, tuple[str, str]] = {
    "ip_fragment": ("ip_output", "per fragment ip_do_fragment builds an IP header and re-enters ip_finish_output2"),
    "ip_defrag": ("ip_rcv", "per fragment ip_defrag does a hash lookup and queue insert, like ip_rcv's header work"),
    "skb_gso_segment": ("tcp_transmit_skb", "per segment, skb_segment clones the skb and rewrites the TCP header"),
    "net_rps_send_ipi": ("ttwu_queue_wakelist", "both send one IPI to another CPU"),
    "tcp_delack_timer": ("tcp_send_ack", "the timer's work is building and sending the ACK"),
    "tcp_retransmit_timer": ("tcp_send_ack", "the timer re-enters tcp_transmit_skb like an ACK"),
    "tcp_add_backlog": ("process_backlog", "one skb appended to a queue under a lock"),
    "kick_defer_list_purge": ("ttwu_queue_wakelist", "both send one IPI to another CPU"),
}

#: the fitted parameters: name -> (lower bound, upper bound, unit)
PARAMS: dict[str, tuple[float, float, str]] = {
    "scale_tcp": (0.2, 5.0, "x"),
    "scale_udp": (0.05, 5.0, "x"),
    "scale_unix_stream": (0.2, 5.0, "x"),
    "scale_unix_dgram": (0.2, 5.0, "x"),
    "scale_sched": (0.2, 5.0, "x"),
    "scale_net": (0.05, 5.0, "x"),
    "copy_from_user_tcp_ns_per_byte": (0.0, 2.0, "ns/B"),
    "copy_from_user_udp_ns_per_byte": (0.0, 2.0, "ns/B"),
    "copy_from_user_unix_ns_per_byte": (0.0, 2.0, "ns/B"),
    "copy_to_user_ns_per_byte": (0.0, 2.0, "ns/B"),
    "wakeup_remote_idle_ns": (0.0, 200000.0, "ns"),
    "wakeup_remote_busy_ns": (0.0, 200000.0, "ns"),
}
X0 = {"scale_sched": 1.0, "scale_net": 1.0, "scale_tcp": 1.0, "scale_udp": 1.0, "scale_unix_stream": 1.0, "scale_unix_dgram": 1.0,
      "copy_from_user_tcp_ns_per_byte": 0.05, "copy_from_user_udp_ns_per_byte": 0.05,
      "copy_from_user_unix_ns_per_byte": 0.05, "copy_to_user_ns_per_byte": 0.03, "wakeup_remote_idle_ns": 20000.0, "wakeup_remote_busy_ns": 10000.0}

COPY_STAGE = {
    "copy_from_user_tcp_ns_per_byte": ("skb_copy_to_page_nocache",),
    "copy_from_user_udp_ns_per_byte": ("ip_generic_getfrag",),
    "copy_from_user_unix_ns_per_byte": ("skb_copy_datagram_from_iter",),
    "copy_to_user_ns_per_byte": ("skb_copy_datagram_msg",),
}

PINGPONG_METRIC = "rtt_p50_us"
#: split points (one thread writes a message, then reads it): the two calls' medians
SPLIT_METRICS = ("write_p50_us", "read_p50_us")


def load_measured(path: str | Path) -> Any:
    """The long-format measured CSV (see docs): one row per point, metric and repetition."""
    import pandas as pd

    from lbsim.fitdata import with_host_columns

    df = with_host_columns(pd.read_csv(path), path)
    need = {"transport", "workload", "placement", "msg_bytes", "metric", "value"}
    missing = need - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {', '.join(sorted(missing))}")
    if "background" not in df.columns:
        df["background"] = "idle"
    return df


def kernel_fields(df: Any) -> dict[str, Any]:
    """SimConfig kernel fields the measured data fixes for every simulation of the fit (the
    TCP congestion control, when the data names one)."""
    out: dict[str, Any] = {}
    if "tcp_congestion_control" in df.columns:
        vals = df["tcp_congestion_control"].dropna().astype(str).str.strip().unique()
        if len(vals) > 1:
            raise ValueError(f"measured data mixes congestion controls ({', '.join(sorted(vals))}); "
                             "calibrate one at a time")
        if len(vals):
            out["tcp_congestion_control"] = vals[0]
    return out


#: the kernel fields of the data being fitted (set by fit_costs for the simulations it runs)
_KERNEL: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("lbsim_calibrate_kernel", default={})


def data_hash(df: Any) -> str:
    cols = ["transport", "workload", "placement", "msg_bytes", "metric", "value", "background"]
    text = df[cols].sort_values(cols).to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Point:
    transport: str
    placement: str
    background: str
    msg_bytes: int
    measured_us: float
    spread: float  # p90 / p50 - 1
    fitted: bool = False


@dataclass
class FitResult:
    model: CostModel
    params: dict[str, float]
    bounds_hit: list[str]
    residuals: list[dict[str, Any]]
    unidentified: list[str] = field(default_factory=list)
    #: the unix_stream split sizes the page-allocator costs were taken from (empty: not in the data)
    page_step_sizes: list[int] = field(default_factory=list)
    #: and the transports whose split points at those sizes it read
    page_step_transports: list[str] = field(default_factory=list)


def pingpong_points(df: Any, fit_sizes: Iterable[int]) -> list[Point]:
    sizes = set(int(s) for s in fit_sizes)
    pp = df[df.workload == "pingpong"]
    med = pp.groupby(["transport", "placement", "background", "msg_bytes", "metric"])["value"].median()
    pts = []
    for (tr, pl, bg, n), _ in pp.groupby(["transport", "placement", "background", "msg_bytes"]):
        try:
            p50 = float(med[(tr, pl, bg, n, "rtt_p50_us")])
            p90 = float(med[(tr, pl, bg, n, "rtt_p90_us")])
        except KeyError:
            continue
        pts.append(Point(tr, pl, bg, int(n), p50, p90 / p50 - 1.0, fitted=int(n) in sizes))
    return pts


@dataclass
class SplitPoint:
    transport: str
    msg_bytes: int
    write_us: float
    read_us: float
    fitted: bool = False


def split_points(df: Any, fit_sizes: Iterable[int]) -> list[SplitPoint]:
    """The split rows (same CPU, idle): the write and the read call's medians per transport and size."""
    from lbsim.fitdata import at_fit_size

    sizes = set(int(s) for s in fit_sizes)
    sp = df[(df.workload == "split") & (df.background == "idle") & (df.metric.isin(SPLIT_METRICS))]
    med = sp.groupby(["transport", "msg_bytes", "metric"])["value"].median()
    pts = []
    for (tr, n), _ in sp.groupby(["transport", "msg_bytes"]):
        try:
            w, r = float(med[(tr, n, "write_p50_us")]), float(med[(tr, n, "read_p50_us")])
        except KeyError:
            continue
        pts.append(SplitPoint(tr, int(n), w, r, fitted=at_fit_size(tr, int(n), sizes)))
    return pts


@dataclass
class PageStep:
    """unix_stream's split write and read grow by ``write_us`` and ``read_us`` more from
    ``below`` (no page frag) to ``above`` bytes (one page frag) than ``reference``'s do (None:
    the growth itself)."""

    below: int
    above: int
    write_us: float
    read_us: float
    reference: str | None = None

    @property
    def transports(self) -> list[str]:
        """The transports whose split points the step was read from."""
        return ["unix_stream"] + ([self.reference] if self.reference else [])


#: the widest size gap a page step is read across on its own: 256 B more of copy costs a few ns
PAGE_STEP_MAX_GAP = 256


def page_step(splits: list[SplitPoint]) -> PageStep | None:
    """What the page frag a unix_stream skb takes past SKB_MAX_HEAD(0) = 3776 B costs
    (``page_calls_unix_stream``), from the split: the growth of unix_stream's write and read
    from the largest size with no page call to the smallest with one (at most 4 KiB).

    Sizes at most ``PAGE_STEP_MAX_GAP`` apart (``lbsim measure``'s grid has 3776 and 3840 B)
    give the step directly.  Sizes further apart (1024 and 4096 B in older grids) give it
    against unix_dgram's growth between the same sizes, which takes no page up to 7872 B and
    whose copies cost the same per byte: the difference of the two growths."""
    from lbsim.model.skb import page_calls_unix_dgram, page_calls_unix_stream

    us = {p.msg_bytes: p for p in splits if p.transport == "unix_stream"}
    dg = {p.msg_bytes: p for p in splits if p.transport == "unix_dgram" and page_calls_unix_dgram(p.msg_bytes) == 0}

    def ends(sizes: Iterable[int]) -> tuple[int, int] | None:
        below = [n for n in sizes if page_calls_unix_stream(n) == 0]
        above = [n for n in sizes if page_calls_unix_stream(n) == 1 and n <= 4096]
        return (max(below), min(above)) if below and above else None

    near = ends(us)
    if near is not None and near[1] - near[0] <= PAGE_STEP_MAX_GAP:
        a, b = near
        return PageStep(a, b, us[b].write_us - us[a].write_us, us[b].read_us - us[a].read_us)
    both = ends(set(us) & set(dg))
    if both is None:
        return None
    a, b = both
    return PageStep(a, b, (us[b].write_us - us[a].write_us) - (dg[b].write_us - dg[a].write_us),
                    (us[b].read_us - us[a].read_us) - (dg[b].read_us - dg[a].read_us), "unix_dgram")


def with_pages(model: CostModel, alloc_ns: float, free_ns: float) -> CostModel:
    """``model`` with the page-allocator call costs (floored at 0: a step within noise)."""
    m = with_stage_fixed(model, "__alloc_pages", max(float(alloc_ns), 0.0))
    return with_stage_fixed(m, "__free_pages", max(float(free_ns), 0.0))


def _page_costs(model: CostModel, step: PageStep) -> tuple[float, float]:
    """The step less the model's own step without page calls (its copies of the bytes
    between, and the reference's growth when there is one), in ns."""
    m = with_pages(model, 0.0, 0.0)

    def growth(tr: str) -> tuple[float, float]:
        w0, r0 = _sim_split_us(m, tr, step.below)
        w1, r1 = _sim_split_us(m, tr, step.above)
        return w1 - w0, r1 - r0

    w, r = growth("unix_stream")
    if step.reference is not None:
        wr, rr = growth(step.reference)
        w, r = w - wr, r - rr
    return (step.write_us - w) * 1e3, (step.read_us - r) * 1e3


def _sim_split_us(model: CostModel, transport: str, n: int, messages: int = 64) -> tuple[float, float]:
    """The model's write and read call (median, us) of the split workload, zero-load path: 64 calls
    each, past TCP's quick-ACK budget of a new connection (16), as after the harness's warm-up."""
    from lbsim.config import make_config
    from lbsim.model.host import run_model

    cfg = make_config(transport=transport, workload="split", msg_bytes=n, messages=messages, deterministic=True,
                      **_KERNEL.get())
    c = run_model(cfg, model)["counters"]
    return c["split_write_p50_ns"] / 1e3, c["split_read_p50_ns"] / 1e3


def apply_params(base: CostModel, p: dict[str, float], *, cv: float, delay_cv: float) -> CostModel:
    stages: dict[str, StageCost] = {}
    scale_of = {s: p[f"scale_{t}"] for t, ss in TRANSPORT_STAGES.items() for s in ss}
    scale_of.update({s: p["scale_sched"] for s in SCHED_STAGES})
    scale_of.update({s: p["scale_net"] for s in NET_STAGES})
    per_byte = {s: p[name] for name, ss in COPY_STAGE.items() for s in ss}
    for s in STAGES:
        b = base.stages[s]
        fixed = b.fixed_ns * scale_of.get(s, 1.0)
        stages[s] = StageCost(fixed, per_byte.get(s, b.per_byte_ns), cv)
    for s, (src, _) in SHARED_RULES.items():
        stages[s] = StageCost(stages[src].fixed_ns, 0.0, cv)
    delays = {"wakeup_remote_idle_ns": StageCost(p["wakeup_remote_idle_ns"], 0.0, delay_cv),
              "wakeup_remote_busy_ns": StageCost(p["wakeup_remote_busy_ns"], 0.0, delay_cv)}
    return CostModel(name=base.name, stages=stages, delays=delays, provenance=dict(base.provenance),
                     cache_bytes=base.cache_bytes)


def _sim_p50_us(model: CostModel, pt: Point, *, deterministic: bool, messages: int, seed: int = 0) -> tuple[float, float]:
    from lbsim.config import make_config
    from lbsim.model.host import run_model

    cfg = make_config(transport=pt.transport, workload="pingpong", msg_bytes=pt.msg_bytes, messages=messages,
                      placement=pt.placement, background=[1] if pt.background == "busy" else "idle",
                      deterministic=deterministic, seed=seed, **_KERNEL.get())
    raw = run_model(cfg, model)
    samples = raw["latency_samples"]
    tail = samples[min(len(samples) - 1, 4):] if deterministic else samples
    p50, p90 = np.percentile(tail, [50, 90])
    return float(p50) / 1e3, float(p90 / p50 - 1.0)


def fit_costs(df: Any, base: CostModel, fit_sizes: Iterable[int] = (64, 4096, 65536), *,
              progress: Any = None) -> FitResult:
    """Fit PARAMS (and the spread) to the ping-pong medians at ``fit_sizes``; every simulation
    runs with the kernel fields the data names (:func:`kernel_fields`)."""
    token = _KERNEL.set(kernel_fields(df))
    try:
        return _fit_costs(df, base, fit_sizes, progress=progress)
    finally:
        _KERNEL.reset(token)


def _fit_costs(df: Any, base: CostModel, fit_sizes: Iterable[int], *, progress: Any) -> FitResult:
    from scipy.optimize import least_squares

    pts = pingpong_points(df, fit_sizes)
    fit_pts = [p for p in pts if p.fitted]
    if not fit_pts:
        raise ValueError("no ping-pong points at the fit sizes")
    splits = split_points(df, fit_sizes)
    fit_splits = [p for p in splits if p.fitted]
    step = page_step(splits)
    if step is not None:  # the raw step first; the copy of its few more bytes comes off after the fit
        base = with_pages(base, step.write_us * 1e3, step.read_us * 1e3)
    names = list(PARAMS)
    lo = np.array([PARAMS[n][0] for n in names])
    hi = np.array([PARAMS[n][1] for n in names])
    x0 = np.array([X0[n] for n in names])
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)

    def resid(x: np.ndarray) -> np.ndarray:
        model = apply_params(base, dict(zip(names, x)), cv=0.0, delay_cv=0.0)
        out = []
        for pt in fit_pts:
            sim, _ = _sim_p50_us(model, pt, deterministic=True, messages=8)
            out.append(math.log(sim / pt.measured_us))
        for sp in fit_splits:
            w, r = _sim_split_us(model, sp.transport, sp.msg_bytes)
            out += [math.log(w / sp.write_us), math.log(r / sp.read_us)]
        if progress:
            progress(float(np.sqrt(np.mean(np.square(out)))))
        return np.array(out)

    sol = least_squares(resid, x0, bounds=(lo, hi), x_scale="jac", diff_step=1e-3, max_nfev=400)
    params = dict(zip(names, sol.x.tolist()))
    if step is not None:
        alloc, free = _page_costs(apply_params(base, params, cv=0.0, delay_cv=0.0), step)
        base = with_pages(base, alloc, free)
        params["alloc_pages_ns"], params["free_pages_ns"] = alloc, free
    bounds_hit = [n for n, v in params.items() if _at_bound(n, v)]
    # identifiability: columns of the Jacobian with (near) zero norm
    jn = np.linalg.norm(sol.jac, axis=0)
    unidentified = [n for n, v in zip(names, jn) if v < 1e-6]
    if step is None:
        unidentified += ["alloc_pages_ns", "free_pages_ns"]  # no AF_UNIX splits either side of 3776 B
    # spread: one cv for the stages (same-CPU points) and one for the wake-up delays (cross-CPU)
    same = [p for p in fit_pts if p.placement == "same"]
    cross = [p for p in fit_pts if p.placement == "cross"]
    cv = _fit_cv(base, params, same, "stage") if same else 0.2
    delay_cv = _fit_cv(base, params, cross, "delay", stage_cv=cv) if cross else 0.2
    model = apply_params(base, params, cv=cv, delay_cv=delay_cv)
    share, share_rows = _fit_tcp_call_share(model, df, fit_sizes)
    if share is not None:
        params["tcp_call_scale"], params["tcp_packet_scale"] = share
        model = with_tcp_call_share(model, *share)
    rows = list(share_rows)
    params["stage_cv"] = cv
    params["delay_cv"] = delay_cv
    bounces, bounce_rows = _fit_cacheline_transfer(model, df)
    for stage, b in bounces.items():
        params[f"{stage}_ns"] = b
        model = with_stage_fixed(model, stage, b)
    kfree, _ = _fit_kfree_skb(model, df)
    if kfree is not None:
        params["kfree_skb_ns"] = kfree
        model = split_kfree_skb(model, kfree)
        refit, refit_rows = _fit_cacheline_transfer(model, df, BOUNCE_REFIT)
        for stage, b in refit.items():
            params[f"{stage}_ns"] = b
            model = with_stage_fixed(model, stage, b)
        again = {r["transport"] for r in refit_rows}
        bounce_rows = [r for r in bounce_rows if r["transport"] not in again] + refit_rows
    rows += bounce_rows
    cold, cold_rows = _fit_cold_copy(model, df)
    if cold is not None:
        params["copy_cold_ns_per_byte"] = cold
        model = with_cold_copies(model, cold)
        rows += cold_rows
    c2c, c2c_rows = _fit_cache_to_cache_copy(model, df)
    if c2c is not None:
        params["cache_to_cache_copy_ns_per_byte"] = c2c
        model = with_stages(model, ("cache_to_cache_copy",), per_byte_ns=c2c)
        rows += c2c_rows
    delays = _refit_wakeups(model, fit_pts)
    if delays is not None:
        params.update(delays)
        model = with_delays(model, delays)
        bounds_hit = [n for n in bounds_hit if n not in delays] + [n for n, v in delays.items() if _at_bound(n, v)]
    for pt in pts:
        sim, _ = _sim_p50_us(model, pt, deterministic=True, messages=8)
        rows.append({"transport": pt.transport, "placement": pt.placement, "background": pt.background,
                     "msg_bytes": pt.msg_bytes, "measured_us": pt.measured_us, "simulated_us": sim,
                     "error_pct": 100 * (sim / pt.measured_us - 1), "fitted": pt.fitted, "metric": "rtt_p50_us"})
    for sp in splits:
        w, r = _sim_split_us(model, sp.transport, sp.msg_bytes)
        for metric, meas, sim in (("write_p50_us", sp.write_us, w), ("read_p50_us", sp.read_us, r)):
            rows.append({"transport": sp.transport, "placement": "same", "background": "idle",
                         "msg_bytes": sp.msg_bytes, "measured_us": meas, "simulated_us": sim,
                         "error_pct": 100 * (sim / meas - 1), "fitted": sp.fitted, "metric": metric})
    return FitResult(model=model, params=params, bounds_hit=bounds_hit, residuals=rows, unidentified=unidentified,
                     page_step_sizes=[step.below, step.above] if step else [],
                     page_step_transports=step.transports if step else [])


def _at_bound(name: str, value: float) -> bool:
    if name not in PARAMS:
        return False
    lo, hi, _ = PARAMS[name]
    return value <= lo * (1 + 1e-6) + 1e-9 or value >= hi * (1 - 1e-6)


#: the cross-CPU wake-up delays, fitted again once every stage cost is final
WAKEUP_DELAYS = ("wakeup_remote_idle_ns", "wakeup_remote_busy_ns")


def with_delays(model: CostModel, delays: dict[str, float]) -> CostModel:
    """``model`` with the named wake-up delays' fixed costs replaced (their spread kept)."""
    new = dict(model.delays)
    for name, v in delays.items():
        new[name] = replace(new[name], fixed_ns=v)
    return replace(model, delays=new)


def _refit_wakeups(model: CostModel, fit_pts: list[Point]) -> dict[str, float] | None:
    """Fit the two cross-CPU wake-up delays again to the fitted cross-CPU ping-pongs, with every
    stage cost final.  The main fit sets them before the cache-line transfer exists; that is paid
    about four times per cross-CPU round trip, which is noise against a 40-90 us round trip but
    +20-60 % against a 17-23 us one.  Returns None when the data has no such points."""
    from scipy.optimize import least_squares

    cross = [p for p in fit_pts if p.placement == "cross"]
    if not cross:
        return None
    lo = np.array([PARAMS[n][0] for n in WAKEUP_DELAYS])
    hi = np.array([PARAMS[n][1] for n in WAKEUP_DELAYS])
    x0 = np.clip([model.delays[n].fixed_ns for n in WAKEUP_DELAYS], lo + 1e-9, hi - 1e-9)

    def resid(x: np.ndarray) -> np.ndarray:
        m = with_delays(model, dict(zip(WAKEUP_DELAYS, x)))
        return np.array([math.log(_sim_p50_us(m, pt, deterministic=True, messages=8)[0] / pt.measured_us)
                         for pt in cross])

    # a robust loss (Cauchy, scale 10 %): a few cross-CPU round trips are bistable on the host (a
    # unix_stream 64 KiB one spreads by 94 % between repetitions) and would pull both delays
    sol = least_squares(resid, x0, bounds=(lo, hi), x_scale="jac", diff_step=1e-3, max_nfev=60,
                        loss="cauchy", f_scale=0.1)
    return dict(zip(WAKEUP_DELAYS, (float(v) for v in sol.x)))


def with_stages(model: CostModel, names: Iterable[str], **fields: Any) -> CostModel:
    """``model`` with the given StageCost fields replaced in each named stage."""
    stages = dict(model.stages)
    for s in names:
        stages[s] = replace(stages[s], **fields)
    return replace(model, stages=stages)


def with_stage_fixed(model: CostModel, stage: str, fixed_ns: float) -> CostModel:
    return with_stages(model, (stage,), fixed_ns=fixed_ns)


#: TCP's stages run once per system call, and those run once per packet.  A ping-pong and a split
#: run one packet per call, so they fit only the sum; a stream on one CPU, whose writes coalesce
#: into a few large skbs, tells the two apart.
TCP_CALL_STAGES = ("tcp_sendmsg", "tcp_recvmsg", "tcp_cleanup_rbuf")
TCP_PACKET_STAGES = ("tcp_stream_alloc_skb", "tcp_transmit_skb", "tcp_v4_rcv", "tcp_ack", "tcp_send_ack")


def with_tcp_call_share(model: CostModel, call: float, packet: float) -> CostModel:
    """``model`` with TCP's per-call stages x ``call`` and its per-packet stages x ``packet``
    (and the SHARED_RULES stages that copy a per-packet one)."""
    stages = dict(model.stages)
    for names, k in ((TCP_CALL_STAGES, call), (TCP_PACKET_STAGES, packet)):
        for s in names:
            stages[s] = replace(stages[s], fixed_ns=stages[s].fixed_ns * k)
    for s, (src, _) in SHARED_RULES.items():
        if src in TCP_PACKET_STAGES:
            stages[s] = replace(stages[s], fixed_ns=stages[src].fixed_ns)
    return replace(model, stages=stages)


def _fit_tcp_call_share(model: CostModel, df: Any, fit_sizes: Iterable[int],
                        ) -> tuple[tuple[float, float] | None, list[dict[str, Any]]]:
    """Share TCP's fitted cost between its per-call and per-packet stages: fitted to the TCP
    streams on one CPU at the fit sizes up to 4 KiB (their writes coalesce: a few packets per
    many calls), keeping the split calls' zero-load total at those sizes (where every call is
    one packet) as the main fit left it.  Returns ((call, packet) scales, residual rows)."""
    from lbsim.fitdata import stream_messages

    sizes = sorted(int(n) for n in fit_sizes if int(n) <= 4096)
    st = df[(df.workload == "stream") & (df.metric == "throughput_MBps") & (df.placement == "same")
            & (df.background == "idle") & (df.transport == "tcp") & (df.msg_bytes.isin(sizes))]
    meas = st.groupby("msg_bytes")["value"].median()
    if meas.empty:
        return None, []

    def split_total(m: CostModel) -> float:
        return sum(sum(_sim_split_us(m, "tcp", n)) for n in sizes)

    # the split total is linear in the stage costs (one task, zero load): its call and packet parts
    t0 = split_total(model)
    call_part = split_total(with_tcp_call_share(model, 2.0, 1.0)) - t0
    packet_part = split_total(with_tcp_call_share(model, 1.0, 2.0)) - t0
    if call_part <= 0 or packet_part <= 0:
        return None, []

    def pair(k: float) -> tuple[float, float]:
        return k, 1.0 - (k - 1.0) * call_part / packet_part

    def sim(m: CostModel, n: int) -> float:
        return _sim_stream_MBps(m, "tcp", "same", n, messages=stream_messages(n))

    def err(k: float) -> float:
        m = with_tcp_call_share(model, *pair(k))
        return float(np.mean([math.log(sim(m, int(n)) / v) ** 2 for n, v in meas.items()]))

    # per-packet stages at no less than 5 % of the main fit's
    hi = min(8.0, 1.0 + 0.95 * packet_part / call_part)
    k = _grid_then_brent(err, hi, 17, xatol=0.02)
    m = with_tcp_call_share(model, *pair(k))
    return pair(k), [_stream_row("tcp", "same", n, v, sim(m, int(n))) for n, v in meas.items()]


def _grid_then_brent(err: Any, hi: float, points: int, xatol: float) -> float:
    """Minimise ``err`` on [0, hi] when it is not unimodal (a regime flips somewhere): the best
    of ``points`` grid values first, then Brent's method inside that grid cell."""
    from scipy.optimize import minimize_scalar

    grid = np.linspace(0.0, hi, points)
    errs = [err(float(g)) for g in grid]
    i = int(np.argmin(errs))
    lo, up = float(grid[max(i - 1, 0)]), float(grid[min(i + 1, len(grid) - 1)])
    sol = minimize_scalar(err, bounds=(lo, up), method="bounded", options={"xatol": xatol})
    return float(sol.x) if sol.fun <= errs[i] else float(grid[i])


#: the cache-line transfer stages (tcp and udp sockets pay the first, AF_UNIX sockets the
#: second) and the transports each is fitted on.  The first pass fits tcp/udp sockets on UDP
#: alone: TCP's cross-CPU streams of small writes also depend on where the skb free runs
#: (``__kfree_skb``, fitted next); then the tcp/udp value is fitted again on both.
BOUNCE_FAMILIES: dict[str, tuple[str, ...]] = {
    "cacheline_transfer": ("udp",),
    "cacheline_transfer_unix": ("unix_stream", "unix_dgram"),
}
BOUNCE_REFIT: dict[str, tuple[str, ...]] = {"cacheline_transfer": ("udp", "tcp")}


def _fit_cacheline_transfer(model: CostModel, df: Any, families: dict[str, tuple[str, ...]] | None = None,
                            ) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The stall of touching a socket another CPU touched last, one value per socket family:
    fitted to the cross-CPU streams of small writes (64 B to 4 KiB), where it is paid on nearly
    every call; ping-pong pays it about four times per round trip, which is why the wake-up
    delays are fitted again afterwards (:func:`_refit_wakeups`).  Streams run as many messages
    as ``lbsim validate`` simulates."""
    from scipy.optimize import minimize_scalar

    st = df[(df.workload == "stream") & (df.metric == "throughput_MBps") & (df.placement == "cross")
            & (df.msg_bytes <= 4096) & (df.background == "idle")]
    meas = st.groupby(["transport", "msg_bytes"])["value"].median()
    fitted: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    if meas.empty:
        return fitted, rows

    def sim(m: CostModel, tr: str, n: int) -> float:
        from lbsim.fitdata import stream_messages

        return _sim_stream_MBps(m, tr, "cross", n, messages=stream_messages(n))

    families = BOUNCE_FAMILIES if families is None else families
    for stage, transports in families.items():
        pts = [((tr, n), v) for (tr, n), v in meas.items() if tr in transports]
        if not pts:
            continue

        def err(b: float, stage: str = stage, pts: list = pts) -> float:
            m = with_stage_fixed(model, stage, b)
            return float(np.mean([math.log(sim(m, tr, int(n)) / v) ** 2 for (tr, n), v in pts]))

        sol = minimize_scalar(err, bounds=(0.0, 3000.0), method="bounded", options={"xatol": 5.0})
        b = float(sol.x)
        fitted[stage] = b
        model = with_stage_fixed(model, stage, b)
    fitted_on = {tr for trs in families.values() for tr in trs}
    for (tr, n), v in meas.items():
        if tr not in fitted_on:
            continue
        rows.append(_stream_row(tr, "cross", n, v, sim(model, tr, int(n))))
    return fitted, rows


def split_kfree_skb(model: CostModel, kfree: float) -> CostModel:
    """Move ``kfree`` ns of tcp_recvmsg's fixed cost (the tracepoint interval holds both) to
    ``__kfree_skb``, which skb_attempt_defer_free may run on another CPU."""
    m = with_stage_fixed(model, "__kfree_skb", kfree)
    return with_stage_fixed(m, "tcp_recvmsg", model.stages["tcp_recvmsg"].fixed_ns - kfree)


def _fit_kfree_skb(model: CostModel, df: Any) -> tuple[float | None, list[dict[str, Any]]]:
    """The part of a TCP read that frees the skb: identified by TCP's cross-CPU streams of
    64 B-4 KiB writes, where skb_attempt_defer_free moves it to the sender's CPU and so decides
    whether the reader keeps up (a segment per write) or falls behind (writes coalesce).
    Same-CPU and ping-pong results hardly depend on it: the free stays on the path."""
    from lbsim.fitdata import stream_messages

    st = df[(df.workload == "stream") & (df.metric == "throughput_MBps") & (df.placement == "cross")
            & (df.msg_bytes <= 4096) & (df.background == "idle") & (df.transport == "tcp")]
    meas = st.groupby("msg_bytes")["value"].median()
    if meas.empty:
        return None, []
    top = model.stages["tcp_recvmsg"].fixed_ns

    def sim(m: CostModel, n: int) -> float:
        return _sim_stream_MBps(m, "tcp", "cross", n, messages=stream_messages(n))

    def err(x: float) -> float:
        m = split_kfree_skb(model, x)
        return float(np.mean([math.log(sim(m, int(n)) / v) ** 2 for n, v in meas.items()]))

    x = _grid_then_brent(err, top, 9, xatol=2.0)  # the regime flips with x
    m = split_kfree_skb(model, x)
    return x, [_stream_row("tcp", "cross", n, v, sim(m, int(n))) for n, v in meas.items()]


COPY_STAGES = ("skb_copy_to_page_nocache", "ip_generic_getfrag", "skb_copy_datagram_from_iter", "skb_copy_datagram_msg")


def with_cold_copies(model: CostModel, cold: float) -> CostModel:
    stages = dict(model.stages)
    for s in COPY_STAGES:
        stages[s] = replace(stages[s], per_byte_cold_ns=max(cold, stages[s].per_byte_ns))
    return replace(model, stages=stages)


def _stream_row(transport: str, placement: str, msg_bytes: Any, measured: Any, simulated: float) -> dict[str, Any]:
    """A residual row of a fitted stream point (idle background, MB/s)."""
    return {"transport": transport, "placement": placement, "background": "idle", "msg_bytes": int(msg_bytes),
            "measured_us": float(measured), "simulated_us": simulated,
            "error_pct": 100 * (simulated / float(measured) - 1), "fitted": True, "metric": "throughput_MBps"}


def _sim_stream_MBps(model: CostModel, transport: str, placement: str, size: int,
                     messages: int | None = None) -> float:
    """Deterministic stream throughput (MB/s); by default about 32 MB of writes."""
    from lbsim.config import make_config
    from lbsim.model.host import run_model

    if messages is None:
        messages = max(50, min(2000, (32 << 20) // size))
    cfg = make_config(transport=transport, workload="stream", msg_bytes=size, messages=messages,
                      placement=placement, deterministic=True, **_KERNEL.get())
    return float(run_model(cfg, model)["throughput"]["bytes_per_s"]) / 1e6


def _fit_cold_copy(model: CostModel, df: Any) -> tuple[float | None, list[dict[str, Any]]]:
    """The per-byte cost of a copy whose data is not in cache: fitted to TCP same-CPU streams
    of 64 KiB writes and larger, where megabytes of send buffer are queued."""
    from scipy.optimize import minimize_scalar

    st = df[(df.workload == "stream") & (df.metric == "throughput_MBps") & (df.transport == "tcp")
            & (df.placement == "same") & (df.msg_bytes >= 65536)]
    meas = st.groupby("msg_bytes")["value"].median()
    if meas.empty:
        return None, []

    def err(c: float) -> float:
        m = with_cold_copies(model, c)
        return float(np.mean([math.log(_sim_stream_MBps(m, "tcp", "same", int(n)) / v) ** 2 for n, v in meas.items()]))

    sol = minimize_scalar(err, bounds=(0.0, 2.0), method="bounded", options={"xatol": 1e-3})
    cold = float(sol.x)
    m = with_cold_copies(model, cold)
    return cold, [_stream_row("tcp", "same", n, v, _sim_stream_MBps(m, "tcp", "same", int(n)))
                  for n, v in meas.items()]


#: cross-CPU streams of writes this large are where copying the payload between the two CPUs'
#: caches costs most of a message
C2C_MIN_BYTES = 16384


def _fit_cache_to_cache_copy(model: CostModel, df: Any) -> tuple[float | None, list[dict[str, Any]]]:
    """The per-byte cost of copying payload that the other CPU's cache holds (the reader's copy of
    data written on the other CPU, the writer's copy into buffers read there last): one value for
    every transport, fitted to the cross-CPU streams of writes of 16 KiB and more.  (Fitted per
    socket family, AF_UNIX's came out 0: its cross-CPU streams are bound by wake-ups in the model.)"""
    st = df[(df.workload == "stream") & (df.metric == "throughput_MBps") & (df.placement == "cross")
            & (df.msg_bytes >= C2C_MIN_BYTES) & (df.background == "idle")]
    meas = st.groupby(["transport", "msg_bytes"])["value"].median()
    if meas.empty:
        return None, []

    def with_c2c(x: float) -> CostModel:
        return with_stages(model, ("cache_to_cache_copy",), per_byte_ns=x)

    def err(x: float) -> float:
        m = with_c2c(x)
        return float(np.mean([math.log(_sim_stream_MBps(m, tr, "cross", int(n)) / v) ** 2
                              for (tr, n), v in meas.items()]))

    x = _grid_then_brent(err, 0.3, 13, xatol=2e-3)  # the writer and reader regimes flip with x
    m = with_c2c(x)
    return x, [_stream_row(tr, "cross", n, v, _sim_stream_MBps(m, tr, "cross", int(n))) for (tr, n), v in meas.items()]


def _fit_cv(base: CostModel, params: dict[str, float], pts: list[Point], which: str, stage_cv: float = 0.0) -> float:
    """Choose the cv whose simulated p90/p50 spread best matches the measured one."""
    target = float(np.median([p.spread for p in pts]))
    grid = [0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0]
    best, best_err = grid[0], float("inf")
    for c in grid:
        model = apply_params(base, params, cv=c if which == "stage" else stage_cv, delay_cv=c if which == "delay" else 0.0)
        spreads = [_sim_p50_us(model, p, deterministic=False, messages=600, seed=1)[1] for p in pts[:4]]
        err = abs(float(np.median(spreads)) - target)
        if err < best_err:
            best, best_err = c, err
    return best


def write_cost_file(res: FitResult, path: str | Path, *, df: Any, fit_sizes: Iterable[int], base_source: str,
                    host: dict[str, Any] | None = None) -> None:
    data = res.model.to_dict()
    # named after the measured machine (the data's .host.json), not the one running the fit
    if host is None:
        node, kernel = platform.node() or "host", platform.release()
    else:
        uname = str(host.get("uname") or "").split()
        node, kernel = (uname[1] if len(uname) > 1 else "host"), host.get("kernel") or "unknown kernel"
    data["name"] = f"calibrated on {node} ({kernel})"
    data["provenance"] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": host or {"kernel": platform.release(), "machine": platform.machine(),
                         "note": "no .host.json beside the data: the machine that ran the fit"},
        "data_sha256_16": data_hash(df),
        "fit_sizes": sorted(int(s) for s in fit_sizes),
        "simulated_with": kernel_fields(df),
        "base": base_source,
        "method": "bounded least squares (scipy.optimize.least_squares) of log(simulated/measured) ping-pong "
                  "p50 round trips and split write/read medians (one thread writes, then reads: the copy in "
                  "and the copy out apart) at the fit sizes, zero-load deterministic model with the data's TCP "
                  "congestion control (simulated_with); the IP/lo path stages scaled together (scale_net); spread (log-normal cv) "
                  "matched to the measured p90/p50; the cross-CPU cache-line transfer fitted to cross-CPU "
                  "stream throughput at writes <= 4 KiB; the out-of-cache copy cost fitted to TCP same-CPU "
                  "stream throughput at writes >= 64 KiB; the cache-to-cache copy cost fitted to cross-CPU stream "
                  "throughput at writes >= 16 KiB; "
                  "the cost of an AF_UNIX skb's page-allocator call (__alloc_pages in the write, __free_pages in the "
                  "read) from the unix_stream split step across SKB_MAX_HEAD(0) (page_step_sizes; where those "
                  "sizes are more than 256 B apart, less unix_dgram's growth between them), less the model's "
                  "own step without them; then the cross-CPU wake-up delays fitted again to the "
                  "cross-CPU ping-pong p50s at the fit sizes (Cauchy loss, scale 0.1), every stage cost final; cache_bytes = the measured host's L2 (l2_bytes in the data's .host.json, else this machine's)",
        "params": {k: {"value": v, "bounds": list(PARAMS[k][:2]) if k in PARAMS else None,
                       "at_bound": k in res.bounds_hit} for k, v in res.params.items()},
        "unidentified": res.unidentified,
        "page_step_sizes": res.page_step_sizes,
        "page_step_transports": res.page_step_transports,
        "rules": {k: f"= {v[0]}: {v[1]}" for k, v in SHARED_RULES.items()},
    }
    Path(path).write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")


def base_model(stage_fixed_ns: dict[str, float], name: str = "base", cache_bytes: int = 2 << 20) -> CostModel:
    """A cost model with the given fixed costs (others 0), no per-byte costs, no spread."""
    stages = {s: {"fixed_ns": float(stage_fixed_ns.get(s, 0.0))} for s in STAGES}
    return cost_model_from_dict({"name": name, "stages": stages, "cache_bytes": cache_bytes,
                                 "delays": {d: {"mean_ns": 0.0} for d in DELAYS}})


def cache_bytes_of(host: dict[str, Any] | None) -> int:
    """The measured host's per-core L2 (``l2_bytes`` in the data's ``.host.json``, written by
    ``lbsim measure``), else this machine's: the fit reproduces on any machine only when the data
    says it."""
    from lbsim.measure.host import l2_bytes

    v = (host or {}).get("l2_bytes")
    if isinstance(v, int) and not isinstance(v, bool) and v > 0:
        return v
    return l2_bytes() or (2 << 20)


def _T(med: dict[str, float], key: str, ov: float, floor: float = 10.0) -> float:
    """A tracepoint interval's median minus the tracing overhead of one event."""
    v = med.get(key)
    if v is None or v != v:
        raise KeyError(key)
    return max(float(v) - ov, floor)


def base_from_stage_intervals(stages: dict[str, Any]) -> tuple[dict[str, float], dict[str, float], dict[str, str]]:
    """Stage fixed costs (ns) and per-byte copy-out cost from tracepoint intervals.

    Returns (fixed_ns by stage, per_byte_ns by stage, the rule used for each stage).  Every
    interval is its median minus the measured tracing overhead per event of its run; the split
    of an interval among the stages inside it is the stated rule beside each stage.
    """
    runs = {(r["transport"], r["placement"], r["size"]): r["result"] for r in stages["runs"]}

    def med(tr: str, pl: str = "same", size: int = 64) -> tuple[dict[str, float], float]:
        r = runs[(tr, pl, size)]
        ov = min(max(float(r.get("overhead_ns_per_event") or 0.0), 0.0), 250.0)
        return r["medians"], ov

    f: dict[str, float] = {}
    rule: dict[str, str] = {}

    def put(stage: str, value: float, why: str) -> None:
        f[stage] = max(float(value), 5.0)
        rule[stage] = why

    mt, ot = med("tcp")
    mu, ou = med("udp")
    ms, os_ = med("unix_stream")
    md, od = med("unix_dgram")
    put("syscall", stages["null_syscall_ns"], "getppid() round trip (entry_SYSCALL_64 .. sysret), per call")
    lo = (_T(mt, "dev_to_netif_rx", ot) + _T(mu, "dev_to_netif_rx", ou)) / 2
    put("dev_queue_xmit", lo / 2, "net_dev_queue -> netif_rx_entry (tcp, udp), half")
    put("loopback_xmit", lo / 2, "net_dev_queue -> netif_rx_entry (tcp, udp), half")
    put("netif_rx", (_T(mt, "netif_rx_to_softirq", ot) + _T(mu, "netif_rx_to_softirq", ou)) / 2,
        "netif_rx_entry -> softirq_entry (tcp, udp)")
    sq = (_T(mt, "softirq_to_receive_skb", ot) + _T(mu, "softirq_to_receive_skb", ou)) / 2
    tail = (_T(mt, "softirq_tail", ot) + _T(mu, "softirq_tail", ou)) / 2
    put("net_rx_action", sq / 2 + tail, "half of softirq_entry -> netif_receive_skb, plus sched_wakeup -> softirq_exit")
    put("process_backlog", sq / 2, "half of softirq_entry -> netif_receive_skb")
    rx_udp = _T(mu, "receive_skb_to_waking", ou)
    put("ip_rcv", rx_udp / 3, "a third of netif_receive_skb -> sched_waking (udp)")
    put("udp_rcv", rx_udp / 3, "a third of netif_receive_skb -> sched_waking (udp)")
    put("sock_def_readable", rx_udp / 3, "a third of netif_receive_skb -> sched_waking (udp)")
    wake = [_T(m, "waking_to_wakeup", o) for m, o in ((mt, ot), (mu, ou), (ms, os_), (md, od))]
    put("try_to_wake_up", float(np.mean(wake)), "sched_waking -> sched_wakeup, same CPU (all transports)")
    quads = ((mt, ot), (mu, ou), (ms, os_), (md, od))
    put("schedule", float(np.mean([_T(m, "switch", o) for m, o in quads])),
        "last event on the CPU -> sched_switch to the woken task (all transports)")
    put("schedule_timeout", float(np.mean([_T(m, "recv_entry_to_switch_out", o) for m, o in quads])),
        "sys_enter_recvfrom -> sched_switch out of the task going to sleep (all transports)")
    tx_udp = _T(mu, "send_to_dev", ou)
    put("ip_output", tx_udp / 2, "half of sys_enter_sendto -> net_dev_queue (udp)")
    put("udp_sendmsg", tx_udp / 2 + _T(mu, "after_softirq_to_exit", ou),
        "half of sys_enter_sendto -> net_dev_queue, plus softirq_exit -> sys_exit_sendto (udp)")
    put("udp_recvmsg", _T(mu, "switch_in_to_exit", ou), "sched_switch in -> sys_exit_recvfrom (udp)")
    tx_tcp = max(_T(mt, "send_to_dev", ot) - f["ip_output"], 30.0)
    put("tcp_sendmsg", 0.5 * tx_tcp + _T(mt, "after_softirq_to_exit", ot),
        "half of send_to_dev beyond ip_output, plus softirq_exit -> sys_exit_sendto (tcp)")
    put("tcp_stream_alloc_skb", 0.2 * tx_tcp, "a fifth of send_to_dev beyond ip_output (tcp)")
    put("tcp_transmit_skb", 0.3 * tx_tcp, "three tenths of send_to_dev beyond ip_output (tcp)")
    put("tcp_send_ack", f["tcp_transmit_skb"], "as tcp_transmit_skb: a pure ACK is built and transmitted alike")
    rx_tcp = max(_T(mt, "receive_skb_to_waking", ot) - f["ip_rcv"] - f["sock_def_readable"], 30.0)
    put("tcp_v4_rcv", rx_tcp * 2 / 3, "two thirds of netif_receive_skb -> sched_waking beyond ip_rcv (tcp)")
    put("tcp_ack", rx_tcp / 3, "a third of netif_receive_skb -> sched_waking beyond ip_rcv (tcp)")
    put("tcp_recvmsg", _T(mt, "switch_in_to_copy", ot), "sched_switch in -> skb_copy_datagram_iovec (tcp)")
    put("tcp_cleanup_rbuf", _T(mt, "copy_to_exit", ot), "skb_copy_datagram_iovec -> sys_exit_recvfrom (tcp)")
    for tr, m, o in (("unix_stream", ms, os_), ("unix_dgram", md, od)):
        send = _T(m, "send_to_waking", o) + _T(m, "waking_to_exit", o) - f["try_to_wake_up"] - f["sock_def_readable"]
        put(f"{tr}_sendmsg", send, f"sys_enter_sendto -> sys_exit_sendto less the wake-up ({tr})")
        put(f"{tr}_recvmsg", _T(m, "switch_in_to_copy", o) + _T(m, "copy_to_exit", o),
            f"sched_switch in -> sys_exit_recvfrom ({tr})")
    # the waker's side of a cross-CPU wake-up: sched_waking -> end of the waking context
    cross = []
    for tr, key in (("tcp", "softirq_tail"), ("udp", "softirq_tail"), ("unix_stream", "waking_to_exit"),
                    ("unix_dgram", "waking_to_exit")):
        m, o = med(tr, "cross")
        if key in m and m[key] == m[key]:
            cross.append(_T(m, key, o))
    put("ttwu_queue_wakelist", f["try_to_wake_up"],
        "as try_to_wake_up: queueing on a running CPU's wakelist (its IPI is the busy wake-up delay)")
    put("send_call_function_single_ipi", float(np.median(cross)) - f["ttwu_queue_wakelist"],
        "sched_waking -> softirq_exit / sys_exit_sendto across CPUs into an idle CPU (IPI to a halted vCPU, "
        "VM exit), median of transports, less ttwu_queue_wakelist")
    # copy #2 per byte: copy_to_exit grows with the size copied (tcp, 64 B and 64 KiB)
    per_byte: dict[str, float] = {}
    slopes = []
    for tr in ("tcp", "unix_stream"):
        if (tr, "same", 65536) in runs:
            big, ob = med(tr, "same", 65536)
            small, osm = med(tr, "same", 64)
            key = "copy_to_exit"
            slopes.append((_T(big, key, ob) - _T(small, key, osm)) / (65536 - 64))
    per_byte["skb_copy_datagram_msg"] = max(float(np.mean(slopes)), 0.0) if slopes else 0.05
    rule["skb_copy_datagram_msg"] = "slope of skb_copy_datagram_iovec -> sys_exit_recvfrom, 64 B vs 64 KiB (tcp, unix_stream)"
    return f, per_byte, rule


def calibrate_from_files(measured_csv: str | Path, stages_json: str | Path, out: str | Path,
                         fit_sizes: Iterable[int] = (64, 4096, 65536), progress: Any = None) -> FitResult:
    """The whole calibration: base from tracepoints, fit to the measured grid, write the file."""
    df = load_measured(measured_csv)
    stages = json.loads(Path(stages_json).read_text())
    fixed, per_byte, rules = base_from_stage_intervals(stages)
    host_file = Path(str(measured_csv) + ".host.json")
    host = json.loads(host_file.read_text()) if host_file.exists() else None
    base = base_model(fixed, name="tracepoint base", cache_bytes=cache_bytes_of(host))
    base = CostModel(name=base.name, stages={s: StageCost(c.fixed_ns, per_byte.get(s, 0.0), 0.0)
                                             for s, c in base.stages.items()},
                     delays=base.delays, provenance={}, cache_bytes=base.cache_bytes)
    res = fit_costs(df, base, fit_sizes, progress=progress)
    write_cost_file(res, out, df=df, fit_sizes=fit_sizes, base_source=f"{Path(stages_json).name}: " +
                    "; ".join(f"{k}: {v}" for k, v in rules.items()), host=host)
    return res


def main(argv: list[str] | None = None) -> int:
    """python -m lbsim.calibrate MEASURED.csv STAGES.json -o COSTS.json [--fit-sizes 64,4096,65536]"""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m lbsim.calibrate", description=main.__doc__)
    ap.add_argument("measured")
    ap.add_argument("stages")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--fit-sizes", default="64,4096,65536")
    a = ap.parse_args(argv)
    sizes = [int(x) for x in a.fit_sizes.split(",")]
    res = calibrate_from_files(a.measured, a.stages, a.out, fit_sizes=sizes)
    for k, v in res.params.items():
        lo_hi = PARAMS.get(k)
        bound = f"  bounds {lo_hi[0]:g}..{lo_hi[1]:g}" if lo_hi else ""
        print(f"{k:34s} {v:12.4f}{bound}{'  AT BOUND' if k in res.bounds_hit else ''}")
    if res.unidentified:
        print("not identified by the data:", ", ".join(res.unidentified))
    print(f"{'point':60s} {'measured':>9s} {'simulated':>9s} {'error':>7s}")
    for r in sorted(res.residuals, key=lambda r: (not r["fitted"], r["transport"], r["placement"], r["msg_bytes"])):
        name = (f"{r['metric']} {r['transport']} {r['placement']}/{r['background']} {r['msg_bytes']} B"
                f"{' (fit)' if r['fitted'] else ''}")
        print(f"{name:44s} {r['measured_us']:9.2f} {r['simulated_us']:9.2f} {r['error_pct']:6.1f}%")
    print(f"wrote {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
