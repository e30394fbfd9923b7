"""A causal profile: what speeding up each stage would buy one workload, end to end.

Prices a kernel change before anyone writes it.  For each stage that runs on the workload
(a baseline run's per-stage counts), each stage group (:data:`lbsim.model.stages.STAGE_GROUP`)
and each wake-up delay (:data:`lbsim.costs.DELAYS`), the workload is simulated again with
that cost made 10, 20, 30 and 50 % cheaper (a stage edit, ``stage_scale``), and the change
of p50 and p99 latency and of throughput is recorded.  Like a causal profiler (Curtsinger and
Berger, "Coz", SOSP 2015) it measures the effect of a speed-up on the whole, not where time
is spent: a stage off the critical path buys nothing however long it runs.

Common random numbers: every run uses the workload's seed, and the model draws every stage's
and delay's random cost multipliers from a stream of its own (``SeedSequence.spawn`` in
:class:`lbsim.model.sim.Sim`), so making one stage cheaper leaves the draws of the others as
they were (until the changed timing changes what runs).

The loopback gap: for a loopback workload (tcp, udp) it also runs the same workload on
``unix_stream`` and, for every stage, what removing it (cost 0) saves; from the profile it
reads the speed-up of that stage alone that would close the gap ("cannot alone" where even
removing it does not).

Runs are independent; :func:`causal_profile` runs them on the executors of
:mod:`lbsim.runner` (a local process pool, or Dask).  See docs/guide/whatif.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lbsim.config import SimConfig, make_config
from lbsim.costs import DELAYS, load_costs
from lbsim.model.stages import GROUPS, STAGE_GROUP, STAGES

__all__ = ["SPEEDUPS", "Target", "Profile", "causal_profile", "targets_of", "measure", "format_profile",
           "format_gap", "headline"]

log = logging.getLogger("lbsim.whatif")

#: the default speed-ups (fraction of the cost saved)
SPEEDUPS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)
#: the speed-up the table ranks by (when it is one of the speed-ups; else the largest)
RANK_AT = 0.3
ONE_WAY_TPUT = ("stream", "burst")


@dataclass(frozen=True)
class Target:
    """What a row of the profile speeds up: a stage, a group of stages or a wake-up delay."""

    name: str
    kind: str  # "stage", "group" or "delay"
    members: tuple[str, ...]
    #: times it ran in the baseline (a delay: the cross-CPU wake-ups that may wait on it)
    count: int


@dataclass
class Profile:
    """The causal profile of one workload.  Gains are fractions: of the baseline latency
    saved (p50, p99), of throughput won."""

    config: SimConfig
    speedups: tuple[float, ...]
    baseline: dict[str, Any]
    targets: list[Target]
    #: (target name, speed-up) -> the run's metrics (p50_ns, p99_ns, bytes_per_s, status)
    runs: dict[tuple[str, float], dict[str, Any]]
    #: the unix_stream run of the gap analysis (None: no gap analysis)
    unix: dict[str, Any] | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def primary(self) -> str:
        """The metric the table ranks by: throughput for one-way streams, else p50 latency."""
        return "tput" if self.config.workload in ONE_WAY_TPUT else "p50"

    def gain(self, target: str, speedup: float, metric: str | None = None) -> float:
        metric = metric or self.primary
        if speedup == 0:
            return 0.0
        run, base = self.runs[(target, speedup)], self.baseline
        if metric == "tput":
            return run["bytes_per_s"] / base["bytes_per_s"] - 1.0 if base["bytes_per_s"] else math.nan
        key = f"{metric}_ns"
        return (base[key] - run[key]) / base[key] if base[key] else math.nan

    @property
    def rank_at(self) -> float:
        return RANK_AT if RANK_AT in self.speedups else max(self.speedups)

    def ranked(self) -> list[Target]:
        """Targets by their gain at :attr:`rank_at`, largest first (ties: table order)."""
        return sorted(self.targets, key=lambda t: -self.gain(t.name, self.rank_at))

    def gap(self) -> dict[str, Any] | None:
        """The loopback gap, stage by stage: None without a unix_stream run."""
        if self.unix is None:
            return None
        gap_ns = self.baseline["p50_ns"] - self.unix["p50_ns"]
        rows = []
        for t in self.targets:
            if (t.name, 1.0) not in self.runs:
                continue
            pts = [(0.0, 0.0)] + [(s, self.baseline["p50_ns"] - self.runs[(t.name, s)]["p50_ns"])
                                  for s in (*self.speedups, 1.0) if (t.name, s) in self.runs]
            saved = pts[-1][1]
            rows.append({"target": t.name, "kind": t.kind, "saved_ns": saved,
                         "share": saved / gap_ns if gap_ns > 0 else math.nan,
                         "needed": _crossing(pts, gap_ns) if gap_ns > 0 else math.nan})
        rows.sort(key=lambda r: -r["saved_ns"])
        return {"transport": self.config.transport, "p50_ns": self.baseline["p50_ns"],
                "unix_p50_ns": self.unix["p50_ns"], "gap_ns": gap_ns, "rows": rows}

    def to_dict(self) -> dict[str, Any]:
        """Plain data, without wall or CPU times: the same seed gives the same bytes."""
        def numbers(run: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
            return {k: v for k, v in run.items() if k not in ("cpu_s", "wall_s", "counts") or k in keep}

        return {
            "config": self.config.model_dump(mode="json"), "speedups": list(self.speedups),
            "baseline": numbers(self.baseline, ("counts",)), "primary": self.primary, "rank_at": self.rank_at,
            "unix_stream": numbers(self.unix) if self.unix else None,
            "targets": [{"name": t.name, "kind": t.kind, "members": list(t.members), "count": t.count,
                         "runs": {f"{s:g}": numbers(self.runs[(t.name, s)]) for s in (*self.speedups, 1.0)
                                  if (t.name, s) in self.runs},
                         "gain": {m: {f"{s:g}": self.gain(t.name, s, m) for s in self.speedups}
                                  for m in ("p50", "p99", "tput")}}
                        for t in self.ranked()],
            "gap": self.gap(), "notes": list(self.notes),
        }


def _crossing(points: list[tuple[float, float]], want: float) -> float:
    """The smallest speed-up at which the saving (linear between measured points) reaches
    ``want``; NaN if it never does (not even at 1.0, the stage removed)."""
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if y1 >= want:
            if y1 == y0:
                return x1
            return x0 + (x1 - x0) * max(0.0, want - y0) / (y1 - y0)
    return math.nan


# --------------------------------------------------------------------------------------------
# one run (the unit the executors run)
# --------------------------------------------------------------------------------------------

def measure(config: dict[str, Any]) -> dict[str, Any]:
    """Simulate one configuration (a SimConfig as a dict) and keep what the profile needs."""
    import os
    import time

    from lbsim.simulate import simulate

    t0 = os.times()
    w0 = time.perf_counter()
    r = simulate(make_config(dict(config)))
    t1 = os.times()
    return {"p50_ns": r.latency_ns["p50"], "p99_ns": r.latency_ns["p99"],
            "bytes_per_s": r.throughput["bytes_per_s"], "msgs_per_s": r.throughput["msgs_per_s"],
            "status": r.status, "counts": {s["stage"]: s["count"] for s in r.stages},
            "cpu_s": (t1.user - t0.user) + (t1.system - t0.system), "wall_s": time.perf_counter() - w0}


def targets_of(baseline: dict[str, Any], config: SimConfig) -> list[Target]:
    """The stages that ran (count > 0) and cost something, their groups, and the wake-up
    delays when any wake-up crossed CPUs (a delay is paid on the woken CPU's side)."""
    from lbsim.costs import apply_stage_edits

    model = apply_stage_edits(load_costs(config.costs), config.stage_scale, config.stage_cost, config.stage_remove)
    counts = baseline["counts"]
    ran = [s for s in STAGES if counts.get(s, 0) > 0
           and (model.stages[s].fixed_ns > 0 or model.stages[s].per_byte_ns > 0)]
    out = [Target(s, "stage", (s,), counts[s]) for s in ran]
    for g in GROUPS:
        members = tuple(s for s in ran if STAGE_GROUP[s] == g)
        if len(members) > 1:  # a group of one stage is that stage's row
            out.append(Target(g, "group", members, sum(counts[s] for s in members)))
    remote = counts.get("ttwu_queue_wakelist", 0) + counts.get("net_rps_send_ipi", 0) \
        + counts.get("kick_defer_list_purge", 0)
    if remote:
        out += [Target(d, "delay", (d,), remote) for d in DELAYS if model.delays[d].fixed_ns > 0]
    return out


def _edited(config: SimConfig, target: Target, speedup: float) -> dict[str, Any]:
    scale = dict(config.stage_scale)
    for m in target.members:  # on top of the config's own edits: factors multiply
        scale[m] = scale.get(m, 1.0) * (1.0 - speedup)
    d = config.model_dump(mode="json")
    d["stage_scale"] = scale
    return d


# --------------------------------------------------------------------------------------------
# the profile
# --------------------------------------------------------------------------------------------

def _run_all(configs: dict[Any, dict[str, Any]], executor: str, jobs: int, address: str | None,
             progress: Callable[[int, int], None] | None) -> dict[Any, dict[str, Any]]:
    """Every configuration, in parallel (``serial``: in this process, in order)."""
    out: dict[Any, dict[str, Any]] = {}
    if executor == "serial" or jobs == 1 and address is None and executor == "local":
        for i, (key, cfg) in enumerate(configs.items()):
            out[key] = measure(cfg)
            if progress:
                progress(i + 1, len(configs))
        return out
    from concurrent.futures import as_completed

    from lbsim import runner

    info: dict[str, Any] = {}
    with runner._executor("dask" if address else executor, jobs, address, info) as pool:
        futures = {pool.submit(measure, cfg): key for key, cfg in configs.items()}
        for i, fut in enumerate(as_completed(futures)):
            out[futures[fut]] = fut.result()
            if progress:
                progress(i + 1, len(configs))
    return out


def causal_profile(config: SimConfig | dict[str, Any], speedups: Sequence[float] = SPEEDUPS, *,
                   gap: bool = True, executor: str = "local", jobs: int | None = None, address: str | None = None,
                   progress: Callable[[int, int], None] | None = None) -> Profile:
    """The causal profile of one workload (see the module docstring).  ``executor``: "local"
    (a process pool of ``jobs`` workers, default the CPU count), "dask" (``address``: a
    scheduler, else a local cluster) or "serial" (this process)."""
    import os
    import time

    cfg = config if isinstance(config, SimConfig) else make_config(config)
    speedups = tuple(sorted({float(s) for s in speedups}))
    if not speedups or not all(0 < s < 1 for s in speedups):
        raise ValueError(f"speed-ups {list(speedups)} are not allowed; fractions between 0 and 1 (e.g. 0.1,0.3)")
    jobs = jobs or os.cpu_count() or 1
    w0, t0 = time.perf_counter(), os.times()
    base_cfg = cfg.model_dump(mode="json")
    first: dict[Any, dict[str, Any]] = {"baseline": base_cfg}
    notes = []
    want_gap = gap and cfg.transport in ("tcp", "udp")
    if want_gap:
        try:
            first["unix"] = make_config({**base_cfg, "transport": "unix_stream"}).model_dump(mode="json")
        except ValueError as e:
            want_gap = False
            notes.append(f"no loopback gap: unix_stream cannot run this workload ({e})")
    elif gap:
        notes.append(f"no loopback gap: {cfg.transport} is not a loopback transport (tcp, udp)")
    res = _run_all(first, "serial", 1, None, None)  # here: the targets depend on the baseline's counts
    baseline = res["baseline"]
    if baseline["status"] != "ok":
        raise ValueError(f"the baseline run did not finish ({baseline['status']}): simulate fewer messages "
                         "or raise max_sim_time_ns")
    targets = targets_of(baseline, cfg)
    points = {(t.name, s): _edited(cfg, t, s) for t in targets for s in speedups}
    if want_gap:
        points.update({(t.name, 1.0): _edited(cfg, t, 1.0) for t in targets})
    log.info("lbsim: whatif: %d targets x %d speed-ups = %d runs", len(targets),
             len(speedups) + (1 if want_gap else 0), len(points))
    runs = _run_all(points, executor, jobs, address, progress)
    late = [k for k, r in runs.items() if r["status"] != "ok"]
    if late:
        notes.append(f"{len(late)} run(s) did not finish (e.g. {late[0][0]} at {late[0][1]:g}); their numbers "
                     "cover the simulated time only")
    t1 = os.times()
    cpu = (t1.user - t0.user) + (t1.system - t0.system)
    if executor != "serial" and not (jobs == 1 and executor == "local"):  # the workers' CPU time too
        cpu += sum(r["cpu_s"] for r in runs.values())
    return Profile(config=cfg, speedups=speedups, baseline=baseline, targets=targets, runs=runs,
                   unix=res.get("unix"), wall_s=time.perf_counter() - w0, cpu_s=cpu, notes=notes)


# --------------------------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------------------------

def _what(cfg: SimConfig) -> str:
    where = {"same": "on one CPU", "cross": "across two CPUs"}.get(str(cfg.placement), f"on CPUs {cfg.placement}")
    kind = {"pingpong": "round trip", "rr": "round trip", "split": "write + read"}.get(cfg.workload, "message")
    return f"{cfg.msg_bytes} B {cfg.transport} {kind} {where}"


def headline(p: Profile, target: Target | None = None) -> str:
    """One sentence: "a 30 % cheaper tcp_v4_rcv buys 4.0 % of a 64 B tcp round trip on one CPU"."""
    t = target or p.ranked()[0]
    s = p.rank_at
    g = p.gain(t.name, s)
    if p.primary == "tput":
        return f"a {100 * s:.0f} % cheaper {t.name} buys {100 * g:+.1f} % throughput of a {_what(p.config)} stream"
    return f"a {100 * s:.0f} % cheaper {t.name} buys {100 * g:.1f} % of a {_what(p.config)}"


def format_profile(p: Profile, top: int | None = None) -> str:
    """The ranked table: the primary metric's gain at every speed-up, p99 and throughput at
    the ranking speed-up."""
    b = p.baseline
    lines = [f"causal profile: {_what(p.config)}, {p.config.workload}, {p.config.messages} messages, seed "
             f"{p.config.seed}" + (f", edits {p.config.stage_edits()}" if p.config.stage_edits() else ""),
             f"baseline: p50 {b['p50_ns'] / 1e3:.3f} us  p99 {b['p99_ns'] / 1e3:.3f} us  "
             f"{b['bytes_per_s'] / 1e6:,.1f} MB/s",
             f"gain = {'throughput won' if p.primary == 'tput' else 'share of the p50 latency saved'} (%) when the "
             "cost is made cheaper by the speed-up"]
    r = p.rank_at
    head = f"{'rank':>4s}  {'stage / group / delay':28s} {'kind':6s} {'count':>8s} " + \
        " ".join(f"{f'{100 * s:.0f}%':>7s}" for s in p.speedups) + \
        f"  {f'p99@{100 * r:.0f}%':>8s} {f'tput@{100 * r:.0f}%':>9s}"
    lines += ["", head]
    for i, t in enumerate(p.ranked()[:top] if top else p.ranked()):
        gains = " ".join(f"{100 * p.gain(t.name, s):7.2f}" for s in p.speedups)
        lines.append(f"{i + 1:4d}  {t.name:28s} {t.kind:6s} {t.count:8d} {gains}  "
                     f"{100 * p.gain(t.name, r, 'p99'):8.2f} {100 * p.gain(t.name, r, 'tput'):+9.2f}")
    lines += ["", headline(p)]
    return "\n".join(lines) + "\n"


def format_gap(p: Profile, top: int | None = None) -> str:
    """What a change to loopback would have to save to reach unix_stream's p50."""
    g = p.gap()
    if g is None:
        return "".join(f"note: {n}\n" for n in p.notes)
    lines = [f"loopback gap: {g['transport']} p50 {g['p50_ns'] / 1e3:.3f} us - unix_stream p50 "
             f"{g['unix_p50_ns'] / 1e3:.3f} us = {g['gap_ns'] / 1e3:.3f} us"]
    if g["gap_ns"] <= 0:
        return "\n".join([*lines, f"{g['transport']} is not slower than unix_stream here: no gap to close"]) + "\n"
    lines += [f"{'stage / group / delay':28s} {'kind':6s} {'removed saves':>14s} {'of the gap':>10s}  "
              "speed-up alone that closes it"]
    for row in g["rows"][:top] if top else g["rows"]:
        need = "cannot alone" if math.isnan(row["needed"]) else f"{100 * row['needed']:.0f} %"
        lines.append(f"{row['target']:28s} {row['kind']:6s} {row['saved_ns']:11.0f} ns {100 * row['share']:9.1f}%  "
                     f"{need}")
    return "\n".join(lines) + "\n"
