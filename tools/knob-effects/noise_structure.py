#!/usr/bin/env python3
"""Is a guest's run-to-run speed change per run or in time?  Round-robin runs of three cross-CPU
streams (the C harness directly, writer on CPU 0, reader on CPU 1, default settings, no knob
changed): each config's throughput CV, its autocorrelation at lags of 1-6 rounds, the correlation
between configs run next to each other, and the spread a no-op setting would show in the knob
grid's ``D V D`` design (each run over the mean of the same config's runs a round before and
after; the max - min of four such ratios over their median, as ``lbsim validate`` computes a
setting's spread).  Correlated neighbours mean the speed moves in time, slower than a round:
interleaving helps.  Uncorrelated ones with the same CV at every run length would mean a speed
drawn per run, which no interleaving cancels.

docs/notes/knob-effects.md ("Why so many 25/1/1 points are left out").  Measure on a quiet
machine: the tool refuses to start above a 1-minute load average of 1.5.

Usage:  python tools/knob-effects/noise_structure.py [--rounds 40] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from lbsim.measure.harness import run_harness

#: (transport, write size, writes per run): runs of 15-70 ms on the AMD guests
CONFIGS = (("unix_stream", 16384, 2000), ("tcp", 1024, 8000), ("udp", 1024, 8000))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 and a.std() > 0 and b.std() > 0 else float("nan")


def aa_spread(x: np.ndarray, reps: int = 4) -> float:
    """Median over windows of ``reps`` consecutive ``D V D`` triples (V = D: a no-op) of the
    ratios' max - min over their median: the spread a setting that does nothing would get."""
    ratios = x[1:-1] / ((x[:-2] + x[2:]) / 2)
    triples = ratios[::2]  # each run used once as V
    if len(triples) < reps:
        return float("nan")
    spans = [(w.max() - w.min()) / np.median(w)
             for w in (triples[i:i + reps] for i in range(0, len(triples) - reps + 1, reps))]
    return float(np.median(spans))


def structure(series: dict[str, list[float]], lags: int = 6) -> dict:
    """Per config: n, median, CV, autocorrelation by lag (in rounds), the no-op spread; and the
    correlation between each pair of configs' runs of the same round."""
    out: dict = {"configs": {}, "between": {}}
    arrays = {k: np.asarray(v, float) for k, v in series.items()}
    for k, x in arrays.items():
        out["configs"][k] = {
            "n": int(len(x)), "median": float(np.median(x)), "cv": float(x.std() / x.mean()),
            "autocorr": [_corr(x[:-lag], x[lag:]) for lag in range(1, min(lags, len(x) - 2) + 1)],
            "noop_spread": aa_spread(x)}
    keys = list(arrays)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            n = min(len(arrays[a]), len(arrays[b]))
            out["between"][f"{a}/{b}"] = _corr(arrays[a][:n], arrays[b][:n])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40, help="rounds of the three runs (at most 400)")
    ap.add_argument("--max-seconds", type=float, default=300, help="wall-time bound")
    ap.add_argument("--json", help="write the runs and the figures here")
    a = ap.parse_args(argv)
    load = float(Path("/proc/loadavg").read_text().split()[0])
    if load > 1.5:
        print(f"noise_structure: load average {load} > 1.5: measure on a quiet machine", file=sys.stderr)
        return 2
    series: dict[str, list[float]] = {t: [] for t, _, _ in CONFIGS}
    t_end = time.monotonic() + a.max_seconds
    for _ in range(min(a.rounds, 400)):
        if time.monotonic() > t_end:
            break
        for t, size, count in CONFIGS:
            r = run_harness(t, "stream", size, count, max(5, count // 20), 0, 1, 2)
            series[t].append(r["throughput_Bps"] / 1e6)
    fig = structure(series)
    for k, c in fig["configs"].items():
        print(f"{k:12s} n {c['n']:3d}  median {c['median']:7.0f} MB/s  CV {c['cv']:.2f}  autocorr "
              + " ".join(f"{v:+.2f}" for v in c["autocorr"]) + f"  no-op spread {c['noop_spread']:.2f}")
    for k, v in fig["between"].items():
        print(f"same round, {k}: correlation {v:+.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"loadavg_before": load, "runs_MBps": series, **fig}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
