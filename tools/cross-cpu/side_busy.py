#!/usr/bin/env python3
"""Which side of a cross-CPU stream does the work: each side's CPU time per message on the host (the
harness's ``cpu_busy_sender`` / ``cpu_busy_receiver`` columns of a measured CSV) against the model's,
with the model's largest stages on each side (from its trace).

A stream is as fast as its slower side, so a fit on throughput alone pins the bottleneck side's work and
leaves the other side's free; a knob that moves work between the sides (a buffer size, RPS, the MTU) then
comes out wrong.  Reads measured data only: no harness run, no knob changed.

Usage:  python tools/cross-cpu/side_busy.py MEASURED.csv --costs PROFILE [--sizes 1024,4096] [--stages 4]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

import pandas as pd

import lbsim


def _host(csv: str) -> pd.DataFrame:
    d = pd.read_csv(csv)
    d = d[(d.workload == "stream") & (d.placement == "cross")]
    if "background" in d:
        d = d[d.background.fillna("idle") == "idle"]
    want = ["throughput_MBps", "msgs_per_s", "cpu_busy_sender", "cpu_busy_receiver"]
    p = d[d.metric.isin(want)].groupby(["transport", "msg_bytes", "metric"])["value"].median().unstack("metric")
    if "cpu_busy_sender" not in p:
        raise SystemExit(f"{csv}: no cpu_busy_sender rows (measured before the harness recorded them)")
    return p.dropna(subset=["cpu_busy_sender"])


def _model(transport: str, size: int, costs: str, nstages: int) -> tuple[float, float, float, dict[int, list]]:
    r = lbsim.simulate(transport=transport, workload="stream", msg_bytes=size, placement="cross",
                       messages=max(200, min(5000, (16 << 20) // size)), costs=costs, seed=1, trace=True)
    sides = r.side_busy()
    assert sides is not None
    per: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for _msg, stage, cpu, _ctx, start, end, _kind in r.trace or ():
        per[cpu][stage] += end - start
    n = r.counters["messages_delivered"] or 1
    top = {c: sorted(((s, ns / n / 1e3) for s, ns in st.items()), key=lambda x: -x[1])[:nstages]
           for c, st in per.items()}
    return r.throughput["msgs_per_s"], sides[0], sides[1], top


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("measured")
    ap.add_argument("--costs", required=True, help="a profile name or cost file")
    ap.add_argument("--sizes", default="", help="comma-separated (default: every size measured)")
    ap.add_argument("--stages", type=int, default=4, help="the model's largest stages shown per side")
    a = ap.parse_args()
    host = _host(a.measured)
    sizes = {int(s) for s in a.sizes.split(",") if s}
    print("us of CPU per message: host writer/reader | model writer/reader (busy shares in brackets)")
    for (tr, size), row in host.iterrows():
        if sizes and size not in sizes:
            continue
        rate = row["msgs_per_s"]
        hw, hr = row["cpu_busy_sender"] / rate * 1e6, row["cpu_busy_receiver"] / rate * 1e6
        mrate, mw, mr, top = _model(tr, int(size), a.costs, a.stages)
        print(f"{tr:11s} {size:8d} B  host {hw:7.2f} / {hr:7.2f} ({row['cpu_busy_sender']:.2f}/"
              f"{row['cpu_busy_receiver']:.2f})  model {mw / mrate * 1e6:7.2f} / {mr / mrate * 1e6:7.2f} "
              f"({mw:.2f}/{mr:.2f})  MB/s host {row['throughput_MBps']:.0f} model {mrate * size / 1e6:.0f}")
        for cpu, side in ((0, "writer"), (1, "reader")):
            print(f"    model {side}: " + ", ".join(f"{s} {us:.2f}" for s, us in top.get(cpu, [])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
