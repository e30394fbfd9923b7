#!/usr/bin/env python3
"""Which CPU is the bottleneck of a cross-CPU stream: each CPU's busy fraction on the host, from
/proc/stat around one C-harness stream run (writer on CPU 0, reader on CPU 1), against the model's.

A stream is as fast as its slower side: the side whose CPU is busy all the time.  The fitted costs
reproduce a stream's throughput; this checks they put the work on the right side (docs/notes/
knob-effects.md, "Which side of an AF_UNIX stream across CPUs is the bottleneck").  Counting only:
no knob changed, no root needed; run it on a quiet machine (the other CPU time counts too).
"""

from __future__ import annotations

import argparse
import sys

import lbsim
from lbsim.measure.harness import run_harness


def _cpu_times() -> dict[int, tuple[int, int]]:
    """cpuN -> (busy jiffies, total jiffies) from /proc/stat."""
    out = {}
    for ln in open("/proc/stat"):
        f = ln.split()
        if f[0].startswith("cpu") and f[0] != "cpu":
            v = [int(x) for x in f[1:]]
            idle = v[3] + v[4]
            out[int(f[0][3:])] = (sum(v) - idle, sum(v))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transports", default="unix_stream,unix_dgram,tcp,udp")
    ap.add_argument("--sizes", default="1024,4096")
    ap.add_argument("--costs", default="auto")
    ap.add_argument("--count", type=int, default=1000000, help="messages per run (bounded by 3 s)")
    args = ap.parse_args()
    for t in args.transports.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            a = _cpu_times()
            r = run_harness(t, "stream", size, args.count, 1000, 0, 1, max_seconds=3)
            b = _cpu_times()
            # busy jiffies (USER_HZ 100) over the stream's measured window (elapsed_ns): set-up and
            # warm-up add a few jiffies, so a value may pass 1 a little
            window = r["elapsed_ns"] / 1e9 * 100
            busy = {c: (b[c][0] - a[c][0]) / window for c in (0, 1)}
            sim = lbsim.simulate(transport=t, workload="stream", msg_bytes=size, messages=20000, placement="cross",
                                 costs=args.costs, seed=1)
            sb = {row["cpu"]: row["busy_frac"] for row in sim.cpu}
            print(f"{t:11s} {size:6d} B  host {r['throughput_Bps'] / 1e6:8.1f} MB/s  busy writer {busy[0]:.2f}"
                  f" reader {busy[1]:.2f}  sleeps/msg w {r.get('sleeps_per_msg_sender')} r "
                  f"{r.get('sleeps_per_msg_receiver')} | model {sim.throughput['bytes_per_s'] / 1e6:8.1f} MB/s"
                  f"  busy writer {sb[0]:.2f} reader {sb[1]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
