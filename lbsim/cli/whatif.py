"""lbsim whatif: a causal profile of one workload (lbsim.whatif), as a table and a figure."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from lbsim.cli._common import FIGURE_FORMATS, InputError, add_sim_options, config_from_args, log, output_file

__all__ = ["add_commands"]


def _speedups(text: str) -> list[float]:
    try:
        vals = [float(x) / 100.0 for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--speedups: {text!r} is not a comma-separated list of percentages") from None
    if not vals or not all(0 < v < 1 for v in vals):
        raise InputError(f"--speedups: percentages must be between 0 and 100 (got {text!r})")
    return vals


def _finite(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def cmd_whatif(a: argparse.Namespace) -> int:
    from lbsim import whatif

    plot = output_file(a.plot, "--plot", FIGURE_FORMATS) if a.plot else None
    speedups = _speedups(a.speedups)
    if a.jobs is not None and a.jobs < 1:
        raise InputError(f"--jobs: must be >= 1 (got {a.jobs})")
    cfg = config_from_args(a)
    last = [0]

    def progress(done: int, total: int) -> None:
        if done * 10 // total > last[0]:
            last[0] = done * 10 // total
            log.info(f"lbsim: whatif {done}/{total} runs")

    log.info(f"lbsim: whatif: baseline {cfg.transport} {cfg.workload} {cfg.msg_bytes} B ...")
    try:
        p = whatif.causal_profile(cfg, speedups, gap=not a.no_gap, executor="dask" if a.dask else "local",
                                  jobs=a.jobs, address=a.dask, progress=progress)
    except ValueError as e:
        raise InputError(str(e)) from None
    from lbsim.profiles import resolve_run

    costs = resolve_run(cfg.costs)[1]  # the profile the runs used, named in every output
    if a.json:
        print(json.dumps({**p.to_dict(), "costs_profile": costs.name}, default=_finite))
    else:
        print(whatif.format_profile(p, a.top))
        print(whatif.format_gap(p, a.top), end="")
        print(f"costs: {costs.label}")
    log.info(f"lbsim: whatif: {len(p.runs) + 1 + (p.unix is not None)} runs in {p.wall_s:.1f} s wall, "
             f"{p.cpu_s:.1f} s CPU")
    if plot:
        from lbsim.whatif_plot import profile_figure

        profile_figure(p, lines=a.lines).savefig(plot, dpi=120)
        log.info(f"lbsim: wrote {plot}")
    return 0


def add_commands(sub: Any, parent: argparse.ArgumentParser) -> None:
    w = sub.add_parser("whatif", parents=[parent],
                       help="a causal profile: what speeding up each stage would buy a workload",
                       description="A causal profile of one workload: the end-to-end effect (p50, p99, "
                                   "throughput) of making each stage, stage group and wake-up delay 10, 20, 30 "
                                   "and 50 %% cheaper, with common random numbers; for tcp/udp also what each "
                                   "stage would have to save to reach unix_stream's latency. "
                                   "See docs/guide/whatif.md.")
    add_sim_options(w, transport=True)
    w.add_argument("--speedups", default="10,20,30,50", metavar="PCT,...",
                   help="speed-ups in percent of the cost (default 10,20,30,50)")
    w.add_argument("--top", type=int, default=None, metavar="N", help="print only the N largest effects")
    w.add_argument("--lines", type=int, default=8, metavar="N", help="lines in the --plot profile (default 8)")
    w.add_argument("--plot", default=None, metavar="FILE", help="draw the profile and the gap (PNG, SVG or PDF)")
    w.add_argument("--no-gap", action="store_true", help="skip the loopback-vs-unix_stream gap")
    w.add_argument("--jobs", type=int, default=None, help="parallel workers (default: the number of CPUs)")
    w.add_argument("--dask", default=None, metavar="ADDRESS", help="run on this Dask scheduler")
    w.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    w.set_defaults(func=cmd_whatif)
