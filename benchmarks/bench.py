"""How fast is lbsim?  Simulated round trips (or messages) per wall-clock second, against SimPy's
own ceiling measured in the same run.

Reference: an 8-station tandem of FIFO single servers driven by SimPy Timeout callbacks (no
processes, no Resource), deques, Poisson arrivals at rate 0.8 and exponential service at rate
1.0 drawn up front from numpy.random.default_rng(1) as Python lists, 10^5 customers.  lbsim's
figure is reported as a ratio to the reference's customers per second.

Each lbsim point runs in a fresh subprocess, so its peak RSS is its own.  Run on a quiet
machine (the 1-min loadavg is printed):

    .venv/bin/python benchmarks/bench.py --quick     # 10^4 and 10^5, 3 repetitions (< 5 min)
    .venv/bin/python benchmarks/bench.py             # also 10^6, and the shipped sweeps at 1 and N jobs

The sweeps are every shipped experiment's full sweep (experiments/*.toml), run one after the
other with 1 job and then with one job per CPU; the total (minutes per job count) gives the
parallel efficiency T1 / (N * TN).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

TRANSPORTS = ("tcp", "udp", "unix_stream", "unix_dgram")
ROOT = Path(__file__).resolve().parent.parent


def reference(n: int = 100_000, stations: int = 8) -> float:
    """Customers per second of the bare SimPy tandem."""
    import numpy as np
    import simpy

    rng = np.random.default_rng(1)
    inter = rng.exponential(1 / 0.8, n).tolist()
    serv = [rng.exponential(1.0, n).tolist() for _ in range(stations)]
    env = simpy.Environment()
    queues = [deque() for _ in range(stations)]
    busy = [False] * stations
    done = [0]

    def start(k: int) -> None:
        ev = env.timeout(serv[k][queues[k][0]])
        ev.callbacks.append(lambda _e, k=k: finish(k))
        busy[k] = True

    def finish(k: int) -> None:
        c = queues[k].popleft()
        busy[k] = False
        if k + 1 < stations:
            arrive(k + 1, c)
        else:
            done[0] += 1
        if queues[k]:
            start(k)

    def arrive(k: int, c: int) -> None:
        queues[k].append(c)
        if not busy[k]:
            start(k)

    t = 0.0
    for c, gap in enumerate(inter):
        t += gap
        ev = env.timeout(t)
        ev.callbacks.append(lambda _e, c=c: arrive(0, c))
    t0 = time.perf_counter()
    env.run()
    dt = time.perf_counter() - t0
    assert done[0] == n
    return n / dt


CHILD = """
import json, resource, sys, time, lbsim
cfg = json.loads(sys.argv[1])
lbsim.simulate(**{**cfg, "messages": 50})
t = time.perf_counter(); lbsim.simulate(**cfg); dt = time.perf_counter() - t
# VmHWM: this process's peak RSS (ru_maxrss would also count the parent's pages from before exec)
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")]
print(json.dumps({"wall_s": dt, "maxrss_kb": hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def run_point(transport: str, workload: str, n: int) -> dict:
    cfg = {"transport": transport, "workload": workload, "msg_bytes": 64, "messages": n, "placement": "same",
           "max_sim_time_ns": 1e13}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    r = json.loads(out.stdout)
    r["rate"] = n / r["wall_s"]
    return r


def sweep_time(name: str, jobs: int) -> float:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lbsim.cli", "run", f"experiments/{name}.toml", "--jobs", str(jobs),
                        "--out", d, "--quiet", "--force"], check=True, cwd=ROOT)
        return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10^4 and 10^5 only, no sweeps")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    a = ap.parse_args(argv)
    sizes = (10_000, 100_000) if a.quick else (10_000, 100_000, 1_000_000)
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"loadavg (1 min) before: {load}; cpus: {os.cpu_count()}")
    refs = [reference() for _ in range(a.reps)]
    ref = statistics.median(refs)
    print(f"reference (8-station SimPy tandem, 10^5 customers): {ref:,.0f} customers/s "
          f"(min {min(refs):,.0f}, max {max(refs):,.0f})")
    rows = []
    print(f"{'transport':12s} {'workload':9s} {'n':>9s} {'per s (median)':>15s} {'spread':>8s} "
          f"{'x reference':>11s} {'peak RSS':>9s}")
    for workload in ("pingpong", "stream"):
        for tr in TRANSPORTS:
            for n in sizes:
                reps = [run_point(tr, workload, n) for _ in range(a.reps if n < 1_000_000 else 1)]
                rates = [r["rate"] for r in reps]
                med = statistics.median(rates)
                spread = (max(rates) - min(rates)) / med if len(rates) > 1 else 0.0
                rss = max(r["maxrss_kb"] for r in reps) / 1024
                rows.append({"transport": tr, "workload": workload, "n": n, "rate": med, "spread": spread,
                             "ratio": med / ref, "maxrss_mb": rss})
                print(f"{tr:12s} {workload:9s} {n:9,d} {med:15,.0f} {100 * spread:7.1f}% {med / ref:11.3f} "
                      f"{rss:8.0f}M")
    sweeps = []
    if not a.quick:
        jobs = os.cpu_count() or 1
        names = sorted(p.stem for p in (ROOT / "experiments").glob("*.toml"))
        tot1 = totn = 0.0
        print(f"{'sweep':20s} {'1 job':>8s} {f'{jobs} jobs':>8s} {'efficiency':>10s}")
        for name in names:
            t1 = sweep_time(name, 1)
            tn = sweep_time(name, jobs)
            tot1 += t1
            totn += tn
            eff = t1 / (tn * jobs)
            sweeps.append({"experiment": name, "jobs1_s": t1, "jobsN_s": tn, "jobs": jobs, "efficiency": eff})
            print(f"{name:20s} {t1:7.1f}s {tn:7.1f}s {100 * eff:9.0f}%")
        eff = tot1 / (totn * jobs)
        sweeps.append({"experiment": "all", "jobs1_s": tot1, "jobsN_s": totn, "jobs": jobs, "efficiency": eff})
        print(f"{'all shipped sweeps':20s} {tot1:7.1f}s {totn:7.1f}s {100 * eff:9.0f}%")
    print(f"loadavg (1 min) after: {Path('/proc/loadavg').read_text().split()[0]}")
    if a.json:
        Path(a.json).write_text(json.dumps({"reference": ref, "points": rows, "sweeps": sweeps}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
