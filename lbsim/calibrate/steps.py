"""The fit as a list of steps (:data:`FIT_STEPS`), run in order by :func:`run_fit` on one
:class:`FitState`.  Each step fits a few parameters from some of the measured points with the
model every earlier step left, and says why in its docstring; the fits themselves are in
:mod:`lbsim.calibrate.fits`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from lbsim.calibrate.fits import (
    BOUNCE_FAMILIES,
    BOUNCE_REFIT,
    fit_cache_to_cache_copy,
    fit_cacheline_transfer,
    fit_cold_copy,
    fit_cv,
    fit_kfree_skb,
    fit_params,
    fit_tcp_call_share,
    fit_unix_send_share,
    refit_wakeups,
    with_c2c_pair,
    with_send_share,
)
from lbsim.calibrate.ident import CHECKS
from lbsim.calibrate.pages import PageStep, page_costs, page_step
from lbsim.calibrate.params import (
    PARAMS,
    apply_params,
    at_bound,
    split_kfree_skb,
    with_cold_copies,
    with_delays,
    with_pages,
    with_stage_fixed,
    with_tcp_call_share,
)
from lbsim.calibrate.pool import run_many
from lbsim.calibrate.sim import KERNEL, residual_row
from lbsim.calibrate.split import FitSplit, Key, split_frame
from lbsim.costs import CostModel
from lbsim.fitdata import Point, SplitPoint, kernel_fields, pingpong_points, split_points

log = logging.getLogger("lbsim.calibrate")

#: the order of the fitted values in the result and the cost file (the order the fit grew in)
PARAM_ORDER: tuple[str, ...] = (*PARAMS, "alloc_pages_ns", "free_pages_ns", "tcp_call_scale", "tcp_packet_scale",
                                "unix_stream_send_share", "unix_dgram_send_share",
                                "stage_cv", "delay_cv", *(f"{s}_ns" for s in BOUNCE_FAMILIES), "kfree_skb_ns",
                                "copy_cold_ns_per_byte", "cache_to_cache_copy_ns_per_byte",
                                "cache_to_cache_write_ns_per_byte")


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
    #: the held-out rule's record (lbsim.calibrate.split.FitSplit.record): rule, params, fitted keys
    split: dict[str, Any] = field(default_factory=dict)
    #: what the data pin down, per fitted value (lbsim.calibrate.ident): method, status, flags
    identifiability: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: stages whose cost a measurement set instead of their SHARED_RULES rule, and how
    stage_rules: dict[str, str] = field(default_factory=dict)


@dataclass
class FitState:
    """What the steps read and write: the measured data, the base model (the tracepoint base,
    its page costs once known), the model so far (from :func:`fit_spread` on), the fitted values,
    and the residual rows of each step's points.  :func:`select_points` replaces ``df`` by its
    fitted rows (:mod:`lbsim.calibrate.split`) and puts the held-out ones in ``held_out``, which
    only :func:`simulate_points` reads, for the report."""

    df: Any
    base: CostModel
    fit_sizes: tuple[int, ...] = (64, 4096, 65536)
    #: the stream sizes fitted (None: the fit sizes and 1 MiB; see lbsim.calibrate.split)
    stream_sizes: tuple[int, ...] | None = None
    progress: Callable[[float], None] | None = None
    #: writes per simulated stream (None: each fit's own count; tests set a small one)
    stream_writes: int | None = None
    model: CostModel | None = None
    params: dict[str, float] = field(default_factory=dict)
    bounds_hit: list[str] = field(default_factory=list)
    unidentified: list[str] = field(default_factory=list)
    #: residual rows by step (replaced, not added to, when a step fits a value again)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pts: list[Point] = field(default_factory=list)
    splits: list[SplitPoint] = field(default_factory=list)
    step: PageStep | None = None
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    held_out: Any = None
    fitted_keys: list[Key] = field(default_factory=list)

    @property
    def rule(self) -> FitSplit:
        return FitSplit(self.fit_sizes, self.stream_sizes)

    @property
    def fit_pts(self) -> list[Point]:
        return [p for p in self.pts if p.fitted]

    @property
    def fit_splits(self) -> list[SplitPoint]:
        return [p for p in self.splits if p.fitted]

    def result(self) -> FitResult:
        order = {k: i for i, k in enumerate(PARAM_ORDER)}
        params = dict(sorted(self.params.items(), key=lambda kv: order.get(kv[0], len(order))))
        step = self.step
        assert self.model is not None
        return FitResult(model=self.model, params=params, bounds_hit=self.bounds_hit,
                         residuals=[r for rows in self.rows.values() for r in rows], unidentified=self.unidentified,
                         page_step_sizes=[step.below, step.above] if step else [],
                         page_step_transports=step.transports if step else [],
                         split=self.rule.record(self.fitted_keys) if self.held_out is not None else {},
                         identifiability={k: self.checks[k] for k in params if k in self.checks})


    @property
    def current(self) -> CostModel:
        """The model so far; the steps from :func:`fit_spread` on only run once it is set."""
        if self.model is None:
            raise RuntimeError("a fit step ran before fit_spread set the model")
        return self.model

# --------------------------------------------------------------------------------------------
# the steps, in the order they run
# --------------------------------------------------------------------------------------------

def select_points(st: FitState) -> None:
    """Fits nothing: cuts the data into the fitted and the held-out points by the rule of
    :mod:`lbsim.calibrate.split` (from the points' keys alone), keeps only the fitted rows in
    ``st.df`` (every later step reads those) and the rest in ``st.held_out`` (the report's
    only), and picks the fitted ping-pong points (medians of p50 and p90 over repetitions) and
    split points (medians of the write and the read call).  No fitted ping-pong point is an error."""
    data = st.df if st.held_out is None else pd.concat([st.df, st.held_out])
    st.df, st.held_out, st.fitted_keys = split_frame(data, st.rule)
    st.pts = [replace(p, fitted=True) for p in pingpong_points(st.df, ())]
    if not st.pts:
        raise ValueError("no ping-pong points at the fit sizes")
    st.splits = [replace(p, fitted=True) for p in split_points(st.df, ())]


def seed_page_costs(st: FitState) -> None:
    """``__alloc_pages`` and ``__free_pages``, provisionally: the raw step of unix_stream's split
    write and read across SKB_MAX_HEAD(0) (:func:`lbsim.calibrate.pages.page_step`), so that the
    main fit does not push the step into the copy costs.  :func:`fit_page_costs` takes the copy
    of the step's few more bytes off once the copy costs are fitted.  No step in the data: 0."""
    st.step = page_step(st.splits)
    if st.step is not None:
        st.base = with_pages(st.base, st.step.write_us * 1e3, st.step.read_us * 1e3)


def fit_main(st: FitState) -> None:
    """PARAMS, together: one scale per transport's own protocol stages, one for the scheduler's
    same-CPU hand-over and one for the IP/lo path (tracepoints bound those only loosely), the
    per-byte cost of each copy, and the wake-up delays into an idle and into a busy CPU.  Bounded
    least squares of log(simulated / measured) of the fitted ping-pong p50s and split write and
    read medians: the round trips hold every stage, the split tells the copy in from the copy
    out.  A parameter whose Jacobian column is ~0 is reported as not identified by the data."""
    params, sol = fit_params(st.base, st.fit_pts, st.fit_splits, st.progress)
    st.params.update(params)
    st.bounds_hit = [n for n, v in params.items() if at_bound(n, v)]
    jn = np.linalg.norm(sol.jac, axis=0)
    st.unidentified = [n for n, v in zip(params, jn) if v < 1e-6]


def fit_page_costs(st: FitState) -> None:
    """``alloc_pages_ns`` and ``free_pages_ns`` (the page-allocator call of an AF_UNIX skb's
    page frag, in the write and in the read): the unix_stream split step across SKB_MAX_HEAD(0)
    less the fitted model's own step without them (the copy of the bytes between; read against
    unix_dgram's growth where the sizes are far apart).  No step in the data: not identified."""
    if st.step is None:
        st.unidentified += ["alloc_pages_ns", "free_pages_ns"]  # no AF_UNIX splits either side of 3776 B
        return
    alloc, free = page_costs(apply_params(st.base, st.params, cv=0.0, delay_cv=0.0), st.step)
    st.base = with_pages(st.base, alloc, free)
    st.params["alloc_pages_ns"], st.params["free_pages_ns"] = alloc, free


def fit_spread(st: FitState) -> None:
    """``stage_cv`` (the log-normal spread of every stage) from the fitted same-CPU ping-pongs,
    then ``delay_cv`` (of the wake-up delays) from the fitted cross-CPU ones: the cv whose
    simulated p90/p50 best matches the measured.  Makes the model every later step starts from."""
    same = [p for p in st.fit_pts if p.placement == "same"]
    cross = [p for p in st.fit_pts if p.placement == "cross"]
    cv = fit_cv(st.base, st.params, same, "stage") if same else 0.2
    delay_cv = fit_cv(st.base, st.params, cross, "delay", stage_cv=cv) if cross else 0.2
    st.model = apply_params(st.base, st.params, cv=cv, delay_cv=delay_cv)
    st.params["stage_cv"], st.params["delay_cv"] = cv, delay_cv


def fit_tcp_share(st: FitState) -> None:
    """``tcp_call_scale`` and ``tcp_packet_scale``: TCP's fitted cost shared between its
    per-call and per-packet stages, from the same-CPU TCP streams at the fit sizes up to 4 KiB
    (writes coalesce there: few packets per call), keeping the split's total (one packet per
    call, which fits only the sum) where :func:`fit_main` put it."""
    share, rows = fit_tcp_call_share(st.current, st.df, st.fit_sizes, st.stream_writes)
    if share is not None:
        st.params["tcp_call_scale"], st.params["tcp_packet_scale"] = share
        st.model = with_tcp_call_share(st.current, *share)
    st.rows["tcp_call_share"] = list(rows)


def fit_unix_share(st: FitState) -> None:
    """``unix_stream_send_share`` and ``unix_dgram_send_share``: each AF_UNIX transport's fitted
    protocol cost shared between its send and its receive stage, from the fitted split points
    (one task writes, then reads, on one CPU), keeping their sum where :func:`fit_main` put it.
    fit_main's one scale per transport keeps the ratio of the tracepoint bases, whose receive
    side was timed in a reader that had slept; the ratio decides which side of a stream is the
    faster, and with it how a same-CPU stream alternates (docs/notes/knob-effects.md, item 4)."""
    shares, rows = fit_unix_send_share(st.current, st.fit_splits)
    for tr, share in shares.items():
        st.params[f"{tr}_send_share"] = share
        st.model = with_send_share(st.current, tr, share)
    if not shares:
        st.unidentified += ["unix_stream_send_share", "unix_dgram_send_share"]
    st.rows["unix_send_share"] = rows


def fit_cacheline(st: FitState) -> None:
    """``cacheline_transfer_ns`` (tcp/udp sockets, on UDP alone first) and
    ``cacheline_transfer_unix_ns``: the stall of touching a socket another CPU touched last,
    from the cross-CPU streams of 64 B-4 KiB writes, where nearly every call pays it."""
    bounces, rows = fit_cacheline_transfer(st.current, st.df, writes=st.stream_writes)
    for stage, b in bounces.items():
        st.params[f"{stage}_ns"] = b
        st.model = with_stage_fixed(st.current, stage, b)
    st.rows["cacheline_transfer"] = rows


def fit_kfree(st: FitState) -> None:
    """``kfree_skb_ns``: the part of tcp_recvmsg's cost that frees the skb, which
    skb_attempt_defer_free (net/core/skbuff.c) may move to the sender's CPU; from TCP's
    cross-CPU streams of 64 B-4 KiB writes, where it decides whether the reader keeps up."""
    kfree, _ = fit_kfree_skb(st.current, st.df, st.stream_writes)
    if kfree is not None:
        st.params["kfree_skb_ns"] = kfree
        st.model = split_kfree_skb(st.current, kfree)


def refit_cacheline(st: FitState) -> None:
    """``cacheline_transfer_ns`` again, on UDP's and TCP's cross-CPU streams of small writes,
    once :func:`fit_kfree` has placed the skb free (TCP's streams depend on both); its residual
    rows replace the first pass's for those transports.  Runs only when kfree_skb was fitted."""
    if "kfree_skb_ns" not in st.params:
        return
    refit, rows = fit_cacheline_transfer(st.current, st.df, BOUNCE_REFIT, st.stream_writes)
    for stage, b in refit.items():
        st.params[f"{stage}_ns"] = b
        st.model = with_stage_fixed(st.current, stage, b)
    again = {r["transport"] for r in rows}
    st.rows["cacheline_transfer"] = [r for r in st.rows.get("cacheline_transfer", [])
                                     if r["transport"] not in again] + rows


def fit_cold(st: FitState) -> None:
    """``copy_cold_ns_per_byte``: the per-byte cost of a copy whose data is out of cache, from
    TCP's same-CPU streams of 64 KiB writes and more (megabytes of send buffer queued)."""
    cold, rows = fit_cold_copy(st.current, st.df, st.stream_writes)
    if cold is not None:
        st.params["copy_cold_ns_per_byte"] = cold
        st.model = with_cold_copies(st.current, cold)
        st.rows["cold_copy"] = rows


def fit_c2c(st: FitState) -> None:
    """``cache_to_cache_copy_ns_per_byte`` and ``cache_to_cache_write_ns_per_byte``: the per-byte
    cost of the reader's and the writer's copy of payload the other CPU's cache holds, one pair
    for every transport, from the cross-CPU streams of writes of 16 KiB and more, where they are
    most of a message's cost (apart only where the data carry each side's CPU time)."""
    c2c, rows = fit_cache_to_cache_copy(st.current, st.df, st.stream_writes)
    if c2c is not None:
        st.params["cache_to_cache_copy_ns_per_byte"], st.params["cache_to_cache_write_ns_per_byte"] = c2c
        st.model = with_c2c_pair(st.current, *c2c)
        st.rows["cache_to_cache_copy"] = rows


def refit_wakeup_delays(st: FitState) -> None:
    """``wakeup_remote_idle_ns`` and ``wakeup_remote_busy_ns`` again, from the fitted cross-CPU
    ping-pongs with every stage cost final: :func:`fit_main` set them before the cache-line
    transfer existed, which a cross-CPU round trip pays about four times (Cauchy loss: a few of
    those round trips are bistable on the host)."""
    delays = refit_wakeups(st.current, st.fit_pts)
    if delays is not None:
        st.params.update(delays)
        st.model = with_delays(st.current, delays)
        st.bounds_hit = ([n for n in st.bounds_hit if n not in delays]
                         + [n for n, v in delays.items() if at_bound(n, v)])


def simulate_points(st: FitState) -> None:
    """Fits nothing: the final model's residual at every ping-pong p50 and split write and
    read point, fitted or held out."""
    held = st.held_out if st.held_out is not None else st.df.iloc[:0]
    pts = st.pts + pingpong_points(held, ())
    splits = st.splits + split_points(held, ())
    assert st.model is not None
    sims = run_many([("p50", st.model, (pt,), {"deterministic": True, "messages": 8}) for pt in pts]
                    + [("split", st.model, (sp.transport, sp.msg_bytes), {}) for sp in splits])
    rows = []
    for pt, (sim, _) in zip(pts, sims):
        rows.append(residual_row("rtt_p50_us", pt.transport, pt.placement, pt.background, pt.msg_bytes,
                                 pt.measured_us, sim, pt.fitted))
    for sp, (w, r) in zip(splits, sims[len(pts):]):
        for metric, meas, sim in (("write_p50_us", sp.write_us, w), ("read_p50_us", sp.read_us, r)):
            rows.append(residual_row(metric, sp.transport, "same", "idle", sp.msg_bytes, meas, sim, sp.fitted))
    st.rows["points"] = rows


#: the fit, step by step: each step starts from the model the ones before it left
FIT_STEPS: tuple[Callable[[FitState], None], ...] = (
    select_points, seed_page_costs, fit_main, fit_page_costs, fit_spread, fit_tcp_share, fit_unix_share,
    fit_cacheline,
    fit_kfree, refit_cacheline, fit_cold, fit_c2c, refit_wakeup_delays, simulate_points)


def run_fit(st: FitState, steps: Iterable[Callable[[FitState], None]] = FIT_STEPS) -> FitResult:
    """Run ``steps`` in order on ``st``, every simulation with the kernel fields the data names
    (:func:`lbsim.fitdata.kernel_fields`)."""
    token = KERNEL.set(kernel_fields(st.df))
    checks = CHECKS.set(st.checks)
    try:
        for step in steps:
            log.info("fit step %s", step.__name__)
            step(st)
    finally:
        CHECKS.reset(checks)
        KERNEL.reset(token)
    return st.result()


def fit_costs(df: Any, base: CostModel, fit_sizes: Iterable[int] = (64, 4096, 65536), *,
              progress: Callable[[float], None] | None = None,
              stream_sizes: Iterable[int] | None = None) -> FitResult:
    """Fit PARAMS and the rest (:data:`FIT_STEPS`) to the fitted points of ``df`` (the rule of
    :mod:`lbsim.calibrate.split`, with ``fit_sizes`` and ``stream_sizes``) from the ``base``
    model; ``progress(rms)`` is called at every evaluation of the main fit."""
    streams = None if stream_sizes is None else tuple(int(s) for s in stream_sizes)
    return run_fit(FitState(df=df, base=base, fit_sizes=tuple(int(s) for s in fit_sizes), stream_sizes=streams,
                            progress=progress))
