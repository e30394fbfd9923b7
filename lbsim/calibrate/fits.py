"""The fits behind the fit steps (:mod:`lbsim.calibrate.steps`): each takes the cost model so
far and measured points, and returns the fitted value(s) and the residual rows of the points it
was fitted on.  Every simulation is the model's zero-load (deterministic) path.

``writes``, where a fit takes it, is the number of writes of every simulated stream (None: the
fit's own count, as the calibration runs it; tests pass a small one).  The simulations of one
evaluation (and of a whole grid) run together on every core (:func:`lbsim.calibrate.pool.run_many`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lbsim.calibrate.ident import fixed_point_check, grid_check, lsq_check, scalar_check
from lbsim.calibrate.params import (
    KFREE_HOSTS,
    PARAMS,
    TRANSPORT_STAGES,
    WAKEUP_DELAYS,
    X0,
    apply_params,
    split_kfree_skb,
    with_cold_copies,
    with_delays,
    with_stage_fixed,
    with_stages,
    with_tcp_call_share,
)
from lbsim.calibrate.pool import run_many
from lbsim.calibrate.sim import stream_row
from lbsim.costs import CostModel
from lbsim.fitdata import Point, SplitPoint, log_error, mean_sq_log_error, stream_messages

#: a stream point as the stream fits pass it: (transport, placement, size, measured MB/s, writes)
StreamPt = tuple[str, str, Any, Any, "int | None"]


def _p50(model: CostModel, pt: Point, **kw: Any) -> tuple[str, CostModel, tuple[Any, ...], dict[str, Any]]:
    """A zero-load ping-pong task for :func:`run_many` (8 round trips unless ``kw`` says else)."""
    return ("p50", model, (pt,), {"deterministic": True, "messages": 8, **kw})


def _stream(model: CostModel, transport: str, placement: str, n: Any, messages: int | None,
            ) -> tuple[str, CostModel, tuple[Any, ...], dict[str, Any]]:
    return ("stream", model, (transport, placement, int(n), messages), {})


def _errs(models: list[CostModel], pts: Sequence[StreamPt]) -> list[float]:
    """The mean squared log error of each model's streams at ``pts`` ((transport, placement,
    size, measured MB/s, writes) each), all simulated at once."""
    sims = run_many([_stream(m, tr, pl, n, w) for m in models for tr, pl, n, _, w in pts])
    k = len(pts)
    return [mean_sq_log_error(zip(sims[i * k:(i + 1) * k], (p[3] for p in pts))) for i in range(len(models))]


def _jacobian_batch(tasks: Callable[[np.ndarray], list[Any]]) -> dict[str, Any]:
    """``least_squares``' ``workers`` (SciPy >= 1.16; else nothing): a map that first runs the
    simulations of every finite-difference point of a Jacobian at once (:func:`run_many`), then
    maps as usual, each evaluation finding its results memoised: the same numbers, one batch."""
    import inspect

    from scipy.optimize import least_squares

    if "workers" not in inspect.signature(least_squares).parameters:
        return {}

    def batch_map(f: Callable[[np.ndarray], Any], xs: Iterable[np.ndarray]) -> list[Any]:
        xs = [np.array(x, copy=True) for x in xs]
        run_many([t for x in xs for t in tasks(x)])
        return [f(x) for x in xs]

    return {"workers": batch_map}


def fit_params(base: CostModel, fit_pts: list[Point], fit_splits: list[SplitPoint],
               progress: Callable[[float], None] | None = None) -> tuple[dict[str, float], Any]:
    """Bounded least squares of every PARAMS value from X0: the residuals are log(simulated /
    measured) of the ping-pong p50s and the split write and read medians.  Returns the values
    and SciPy's solution (its ``jac`` tells which parameters the points identify).
    ``progress(rms)`` is called at every evaluation."""
    from scipy.optimize import least_squares

    names = list(PARAMS)
    lo = np.array([PARAMS[n][0] for n in names])
    hi = np.array([PARAMS[n][1] for n in names])
    x0 = np.array([X0[n] for n in names])
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)

    def tasks(x: np.ndarray) -> list[Any]:
        model = apply_params(base, dict(zip(names, x)), cv=0.0, delay_cv=0.0)
        return ([_p50(model, pt) for pt in fit_pts]
                + [("split", model, (sp.transport, sp.msg_bytes), {}) for sp in fit_splits])

    def resid(x: np.ndarray) -> np.ndarray:
        sims = run_many(tasks(x))
        out = [log_error(sim, pt.measured_us) for (sim, _), pt in zip(sims, fit_pts)]
        for (w, r), sp in zip(sims[len(fit_pts):], fit_splits):
            out += [log_error(w, sp.write_us), log_error(r, sp.read_us)]
        if progress:
            progress(float(np.sqrt(np.mean(np.square(out)))))
        return np.array(out)

    sol = least_squares(resid, x0, bounds=(lo, hi), x_scale="jac", diff_step=1e-3, max_nfev=400,
                        **_jacobian_batch(tasks))
    lsq_check(names, sol, lo, hi)
    return dict(zip(names, sol.x.tolist())), sol


def fit_cv(base: CostModel, params: dict[str, float], pts: list[Point], which: str, stage_cv: float = 0.0) -> float:
    """Choose the cv (of the stages, ``which="stage"``, or of the delays, ``"delay"``, with the
    stages at ``stage_cv``) whose simulated p90/p50 spread (median over the first 4 points, 600
    round trips, seed 1) best matches the measured one (median over ``pts``), on a grid."""
    target = float(np.median([p.spread for p in pts]))
    grid = [0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0]
    best, best_err = grid[0], float("inf")
    models = [apply_params(base, params, cv=c if which == "stage" else stage_cv,
                           delay_cv=c if which == "delay" else 0.0) for c in grid]
    sims = run_many([_p50(m, p, deterministic=False, messages=600, seed=1) for m in models for p in pts[:4]])
    k = len(pts[:4])
    for i, c in enumerate(grid):
        spreads = [s[1] for s in sims[i * k:(i + 1) * k]]
        err = abs(float(np.median(spreads)) - target)
        if err < best_err:
            best, best_err = c, err
    grid_check(f"{which}_cv", best, grid)
    return best


def refit_wakeups(model: CostModel, fit_pts: list[Point]) -> dict[str, float] | None:
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

    def tasks(x: np.ndarray) -> list[Any]:
        m = with_delays(model, dict(zip(WAKEUP_DELAYS, x)))
        return [_p50(m, pt) for pt in cross]

    def resid(x: np.ndarray) -> np.ndarray:
        sims = run_many(tasks(x))
        return np.array([log_error(sim[0], pt.measured_us) for sim, pt in zip(sims, cross)])

    # a robust loss (Cauchy, scale 10 %): a few cross-CPU round trips are bistable on the host (a
    # unix_stream 64 KiB one spreads by 94 % between repetitions) and would pull both delays
    sol = least_squares(resid, x0, bounds=(lo, hi), x_scale="jac", diff_step=1e-3, max_nfev=60,
                        loss="cauchy", f_scale=0.1, **_jacobian_batch(tasks))
    lsq_check(WAKEUP_DELAYS, sol, lo, hi)
    return dict(zip(WAKEUP_DELAYS, (float(v) for v in sol.x)))


def grid_then_brent(err: Callable[[float], float], hi: float, points: int, xatol: float,
                    batch: Callable[[list[float]], list[float]] | None = None, lo: float = 0.0) -> float:
    """Minimise ``err`` on [lo, hi] when it is not unimodal (a regime flips somewhere): the best
    of ``points`` grid values first (``batch``, when given, errs of the whole grid at once), then
    Brent's method inside that grid cell."""
    from scipy.optimize import minimize_scalar

    grid = np.linspace(lo, hi, points)
    errs = batch([float(g) for g in grid]) if batch else [err(float(g)) for g in grid]
    i = int(np.argmin(errs))
    left, right = float(grid[max(i - 1, 0)]), float(grid[min(i + 1, len(grid) - 1)])
    sol = minimize_scalar(err, bounds=(left, right), method="bounded", options={"xatol": xatol})
    return float(sol.x) if sol.fun <= errs[i] else float(grid[i])


def _rows(m: CostModel, pts: Sequence[StreamPt]) -> list[dict[str, Any]]:
    """The residual rows of ``m``'s streams at ``pts`` (as :func:`_errs` takes them)."""
    sims = run_many([_stream(m, tr, pl, n, w) for tr, pl, n, _, w in pts])
    return [stream_row(tr, pl, n, v, s) for (tr, pl, n, v, _), s in zip(pts, sims)]


def _stream_medians(df: Any, by: str | list[str], metric: str = "throughput_MBps", **where: Any) -> Any:
    """The median idle-background stream ``metric`` (throughput) per ``by`` of the rows matching
    ``where`` (a column's value, or a predicate of the column)."""
    mask = (df.workload == "stream") & (df.metric == metric) & (df.background == "idle")
    for col, want in where.items():
        mask &= want(df[col]) if callable(want) else (df[col] == want)
    return df[mask].groupby(by)["value"].median()


def fit_tcp_call_share(model: CostModel, df: Any, fit_sizes: Iterable[int], writes: int | None = None,
                       ) -> tuple[tuple[float, float] | None, list[dict[str, Any]]]:
    """Share TCP's fitted cost between its per-call and per-packet stages: fitted to the TCP
    streams on one CPU at the fit sizes up to 4 KiB (their writes coalesce: a few packets per
    many calls), keeping the split calls' zero-load total at those sizes (where every call is
    one packet) as the main fit left it.  Returns ((call, packet) scales, residual rows)."""
    sizes = sorted(int(n) for n in fit_sizes if int(n) <= 4096)
    meas = _stream_medians(df, "msg_bytes", placement="same", transport="tcp",
                           msg_bytes=lambda c: c.isin(sizes))
    if meas.empty:
        return None, []

    def split_total(m: CostModel) -> float:
        return sum(sum(w_r) for w_r in run_many([("split", m, ("tcp", n), {}) for n in sizes]))

    # the split total is linear in the stage costs (one task, zero load): its call and packet parts
    t0 = split_total(model)
    call_part = split_total(with_tcp_call_share(model, 2.0, 1.0)) - t0
    packet_part = split_total(with_tcp_call_share(model, 1.0, 2.0)) - t0
    if call_part <= 0 or packet_part <= 0:
        return None, []

    def pair(k: float) -> tuple[float, float]:
        return k, 1.0 - (k - 1.0) * call_part / packet_part

    pts = [("tcp", "same", int(n), v, writes or stream_messages(int(n))) for n, v in meas.items()]

    def errs(ks: list[float]) -> list[float]:
        return _errs([with_tcp_call_share(model, *pair(k)) for k in ks], pts)

    # per-packet stages at no less than 5 % of the main fit's
    hi = min(8.0, 1.0 + 0.95 * packet_part / call_part)
    k = grid_then_brent(lambda x: errs([x])[0], hi, 17, xatol=0.02, batch=errs)
    scalar_check("tcp_call_scale", lambda x: errs([x])[0], k, 0.0, hi, 0.02, np.linspace(0.0, hi, 17), errs)
    m = with_tcp_call_share(model, *pair(k))
    return pair(k), _rows(m, pts)


#: each AF_UNIX transport's send and receive stage (its TRANSPORT_STAGES): fit_main scales both by
#: one factor, so their ratio is the tracepoint bases' (docs/notes/knob-effects.md, items 4 and 7)
UNIX_SIDES: dict[str, tuple[str, ...]] = {tr: TRANSPORT_STAGES[tr] for tr in ("unix_stream", "unix_dgram")}


def with_send_share(model: CostModel, transport: str, share: float) -> CostModel:
    """``model`` with ``share`` of the AF_UNIX transport's send + receive fixed cost on the send stage."""
    send, recv = UNIX_SIDES[transport]
    total = model.stages[send].fixed_ns + model.stages[recv].fixed_ns
    return with_stage_fixed(with_stage_fixed(model, send, share * total), recv, (1.0 - share) * total)


def fit_unix_send_share(model: CostModel, splits: Sequence[SplitPoint],
                        ) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Each AF_UNIX transport's share of its send + receive fixed cost paid by the send stage
    (in [0, 1]), from its fitted split points: the write and the read call of one task on one
    CPU, so the sum stays where fit_main put it and only the ratio moves.  Returns the shares and
    residual rows (the split's write and read, simulated against measured)."""
    shares: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    for tr in UNIX_SIDES:
        pts = [p for p in splits if p.transport == tr and p.write_us > 0 and p.read_us > 0]
        if not pts:
            continue

        def errs(xs: list[float], tr: str = tr, pts: list[SplitPoint] = pts) -> list[float]:
            sims = run_many([("split", with_send_share(model, tr, x), (tr, p.msg_bytes), {}) for x in xs for p in pts])
            out = []
            for i in range(len(xs)):
                got = sims[i * len(pts):(i + 1) * len(pts)]
                out.append(mean_sq_log_error([(w, p.write_us) for (w, _), p in zip(got, pts)]
                                             + [(r, p.read_us) for (_, r), p in zip(got, pts)]))
            return out

        x = grid_then_brent(lambda v: errs([v])[0], 1.0, 21, xatol=1e-3, batch=errs)
        scalar_check(f"{tr}_send_share", lambda v: errs([v])[0], x, 0.0, 1.0, 1e-3, np.linspace(0.0, 1.0, 21), errs)
        shares[tr] = x
        m = with_send_share(model, tr, x)
        for p, (w, r) in zip(pts, run_many([("split", m, (tr, p.msg_bytes), {}) for p in pts])):
            rows.append({"transport": tr, "msg_bytes": p.msg_bytes, "write_us": w, "write_measured_us": p.write_us,
                         "read_us": r, "read_measured_us": p.read_us})
    return shares, rows


#: the cache-line transfer stages (tcp and udp sockets pay the first, AF_UNIX sockets the
#: second) and the transports each is fitted on.  The first pass fits tcp/udp sockets on UDP
#: alone: TCP's cross-CPU streams of small writes also depend on where the skb free runs
#: (``__kfree_skb``, fitted next); then the tcp/udp value is fitted again on both.
BOUNCE_FAMILIES: dict[str, tuple[str, ...]] = {
    "cacheline_transfer": ("udp",),
    "cacheline_transfer_unix": ("unix_stream", "unix_dgram"),
}
BOUNCE_REFIT: dict[str, tuple[str, ...]] = {"cacheline_transfer": ("udp", "tcp")}

#: physical bounds of a cache-line transfer stage, ns: the lines of one socket object moving to
#: another core, each line a few tens to a couple of hundred ns (more across AMD CCDs), a few
#: lines per object, partly overlapped.  A fit that wants more is a different mechanism, so it
#: ends at the bound and is reported there (lbsim/calibrate/ident.py), never stretched to µs.
CACHELINE_BOUNDS_NS = (10.0, 1000.0)
#: grid points over those bounds before the Brent search (about 124 ns apart)
CACHELINE_GRID = 9


def fit_cacheline_transfer(model: CostModel, df: Any, families: dict[str, tuple[str, ...]] | None = None,
                           writes: int | None = None) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The stall of touching a socket another CPU touched last, one value per socket family
    (``families``: stage -> the transports it is fitted on; default BOUNCE_FAMILIES):
    fitted to the cross-CPU streams of small writes (64 B to 4 KiB), where it is paid on nearly
    every call; ping-pong pays it about four times per round trip, which is why the wake-up
    delays are fitted again afterwards (:func:`refit_wakeups`).  Streams run as many messages
    as ``lbsim validate`` simulates."""
    meas = _stream_medians(df, ["transport", "msg_bytes"], placement="cross", msg_bytes=lambda c: c <= 4096)
    fitted: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    if meas.empty:
        return fitted, rows

    def point(tr: str, n: Any, v: float) -> tuple[str, str, int, float, int | None]:
        return (tr, "cross", int(n), v, writes or stream_messages(int(n)))

    families = BOUNCE_FAMILIES if families is None else families
    for stage, transports in families.items():
        pts = [point(tr, n, v) for (tr, n), v in meas.items() if tr in transports]
        if not pts:
            continue

        def errs(bs: list[float], stage: str = stage, pts: list = pts, model: CostModel = model) -> list[float]:
            return _errs([with_stage_fixed(model, stage, b) for b in bs], pts)

        def err(b: float, errs: Callable[[list[float]], list[float]] = errs) -> float:
            return errs([b])[0]

        # a grid first: where TCP's streams take part, a regime flips (the reader keeps up or
        # falls behind and writes coalesce) and a bounded Brent search alone can stop in a far
        # worse basin (the Xeon v769 refit of 2026-12-07: 391 ns, error 12x the grid's best)
        lo, hi = CACHELINE_BOUNDS_NS
        b = grid_then_brent(err, hi, CACHELINE_GRID, 5.0, batch=errs, lo=lo)
        scalar_check(f"{stage}_ns", err, b, lo, hi, 5.0, np.linspace(lo, hi, CACHELINE_GRID), errs)
        fitted[stage] = b
        model = with_stage_fixed(model, stage, b)
    fitted_on = {tr for trs in families.values() for tr in trs}
    rows = _rows(model, [point(tr, n, v) for (tr, n), v in meas.items() if tr in fitted_on])
    return fitted, rows


def fit_kfree_skb(model: CostModel, df: Any, writes: int | None = None) -> tuple[float | None, list[dict[str, Any]]]:
    """The part of a TCP read that frees the skb: identified by TCP's cross-CPU streams of
    64 B-4 KiB writes, where skb_attempt_defer_free moves it to the sender's CPU and so decides
    whether the reader keeps up (a segment per write) or falls behind (writes coalesce).
    Same-CPU and ping-pong results hardly depend on it: the free stays on the path.  The same
    free leaves udp_recvmsg (skb_consume_udp), so it is at most the smaller of the two calls."""
    meas = _stream_medians(df, "msg_bytes", placement="cross", transport="tcp", msg_bytes=lambda c: c <= 4096)
    if meas.empty:
        return None, []
    top = min(model.stages[s].fixed_ns for s in KFREE_HOSTS)  # each interval holds one free

    pts = [("tcp", "cross", int(n), v, writes or stream_messages(int(n))) for n, v in meas.items()]

    def errs(xs: list[float]) -> list[float]:
        return _errs([split_kfree_skb(model, x) for x in xs], pts)

    x = grid_then_brent(lambda x: errs([x])[0], top, 9, xatol=2.0, batch=errs)  # the regime flips with x
    scalar_check("kfree_skb_ns", lambda x: errs([x])[0], x, 0.0, top, 2.0, np.linspace(0.0, top, 9), errs)
    return x, _rows(split_kfree_skb(model, x), pts)


def fit_cold_copy(model: CostModel, df: Any, writes: int | None = None) -> tuple[float | None, list[dict[str, Any]]]:
    """The per-byte cost of a copy whose data is not in cache: fitted to TCP same-CPU streams
    of 64 KiB writes and larger, where megabytes of send buffer are queued."""
    from scipy.optimize import minimize_scalar

    st = df[(df.workload == "stream") & (df.metric == "throughput_MBps") & (df.transport == "tcp")
            & (df.placement == "same") & (df.msg_bytes >= 65536)]  # any background, unlike the others
    meas = st.groupby("msg_bytes")["value"].median()
    if meas.empty:
        return None, []

    pts = [("tcp", "same", int(n), v, writes) for n, v in meas.items()]

    def err(c: float) -> float:
        return _errs([with_cold_copies(model, c)], pts)[0]

    sol = minimize_scalar(err, bounds=(0.0, 2.0), method="bounded", options={"xatol": 1e-3})
    cold = float(sol.x)
    scalar_check("copy_cold_ns_per_byte", err, cold, 0.0, 2.0, 1e-3)
    return cold, _rows(with_cold_copies(model, cold), pts)


#: cross-CPU streams of writes this large are where copying the payload between the two CPUs'
#: caches costs most of a message
C2C_MIN_BYTES = 16384


#: the per-byte cross-CPU copy costs' physical range (ns/B): 1 ns/B is a 64-byte line fetched in 64 ns,
#: a whole cache-to-cache miss per line with no overlap at all
C2C_BOUNDS = (0.0, 1.0)


def fit_cache_to_cache_copy(model: CostModel, df: Any, writes: int | None = None,
                            ) -> tuple[tuple[float, float] | None, list[dict[str, Any]]]:
    """The per-byte costs of copying payload that the other CPU's cache holds: the reader's copy of
    data written on the other CPU (``cache_to_cache_copy``) and the writer's copy into buffers
    read there last (``cache_to_cache_write``), one pair for every transport, from the cross-CPU
    streams of writes of 16 KiB and more, where they are most of a message's cost.  Returns
    ((read, write), residual rows).

    The throughput fixes one value for both (the slower side's), the one the fit gives where
    the data lack each side's CPU time; with ``cpu_busy_sender`` / ``cpu_busy_receiver`` rows,
    :func:`_fit_c2c_sides` then moves each side's value to its own CPU time per message."""
    meas = _stream_medians(df, ["transport", "msg_bytes"], placement="cross", msg_bytes=lambda c: c >= C2C_MIN_BYTES)
    if meas.empty:
        return None, []

    def with_c2c(x: float) -> CostModel:
        return with_c2c_pair(model, x, x)

    pts = [(tr, "cross", int(n), v, writes) for (tr, n), v in meas.items()]

    def errs(xs: list[float]) -> list[float]:
        return _errs([with_c2c(x) for x in xs], pts)

    x = grid_then_brent(lambda x: errs([x])[0], 0.3, 13, xatol=2e-3, batch=errs)  # the regimes flip with x
    scalar_check("cache_to_cache_copy_ns_per_byte", lambda x: errs([x])[0], x, 0.0, 0.3, 2e-3,
                 np.linspace(0.0, 0.3, 13), errs)
    pair = (x, x)
    sides = _side_medians(df)
    if sides:
        pair = _fit_c2c_sides(model, sides, x, writes)
    return pair, _rows(with_c2c_pair(model, *pair), pts)


def with_c2c_pair(model: CostModel, read: float, write: float) -> CostModel:
    """``model`` with the reader's and the writer's per-byte cross-CPU copy costs."""
    return with_stages(with_stages(model, ("cache_to_cache_copy",), per_byte_ns=read),
                       ("cache_to_cache_write",), per_byte_ns=write)


def _side_medians(df: Any) -> dict[tuple[str, int], tuple[float, float, float]]:
    """(transport, size) -> (messages/s, writer's busy share, reader's) of the idle cross-CPU
    streams of C2C_MIN_BYTES and more that carry each side's CPU time (medians)."""
    cols = ("msgs_per_s", "cpu_busy_sender", "cpu_busy_receiver")
    med = pd.concat({m: _stream_medians(df, ["transport", "msg_bytes"], m, placement="cross",
                                        msg_bytes=lambda c: c >= C2C_MIN_BYTES) for m in cols}, axis=1).dropna()
    if med.empty:
        return {}
    med = med[(med.msgs_per_s > 0) & (med.cpu_busy_sender > 0) & (med.cpu_busy_receiver > 0)]
    return {(str(tr), int(n)): (float(r.msgs_per_s), float(r.cpu_busy_sender), float(r.cpu_busy_receiver))
            for (tr, n), r in med.iterrows()}


#: fixed-point steps of :func:`_fit_c2c_sides`, and the change (ns/B) below which it stops
SIDE_STEPS, SIDE_XTOL = 8, 2e-3


def _fit_c2c_sides(model: CostModel, sides: dict[tuple[str, int], tuple[float, float, float]], x0: float,
                   writes: int | None) -> tuple[float, float]:
    """Each copy's per-byte cost from its side's CPU time per message (busy share / messages per
    second), measured against simulated: each side pays its copy once per byte, so the per-byte
    gap (median over the points) is the step; repeated from ``x0`` for both until it moves less
    than SIDE_XTOL (the sleeps a faster side adds make it not quite linear)."""
    lo, hi = C2C_BOUNDS
    read = write = x0
    host = {k: (bw / rate * 1e9, br / rate * 1e9) for k, (rate, bw, br) in sides.items()}  # ns per message
    steps, moved = 0, float("inf")
    while steps < SIDE_STEPS and moved >= SIDE_XTOL:
        m = with_c2c_pair(model, read, write)
        sims = run_many([("sides", m, (tr, n, writes), {}) for tr, n in host])
        gaps_w, gaps_r = [], []
        for (tr, n), (rate, bw, br) in zip(host, sims):
            hw, hr = host[(tr, n)]
            gaps_w.append((hw - bw / rate * 1e9) / n)
            gaps_r.append((hr - br / rate * 1e9) / n)
        new_w = float(np.clip(write + np.median(gaps_w), lo, hi))
        new_r = float(np.clip(read + np.median(gaps_r), lo, hi))
        moved = max(abs(new_w - write), abs(new_r - read))
        read, write, steps = new_r, new_w, steps + 1
    for name, v in (("cache_to_cache_copy_ns_per_byte", read), ("cache_to_cache_write_ns_per_byte", write)):
        fixed_point_check(name, v, lo, hi, SIDE_XTOL, moved, steps, SIDE_STEPS, len(host))
    return read, write
