"""Read sidecost's per-call dump (SIDECOST_DUMP=PREFIX) and say how the two sides of a cross-CPU stream overlap.

For each writer call: was the reader, at the call's start, inside a short read (< 5 us: running), inside a long
one (asleep, or in a long call), or in user space between two reads (running).  Prints the writer's median call time
in each case, the same for the reader against the writer, and the share of wall time each side spends in calls.

Usage:  SIDECOST_DUMP=/tmp/x ./sidecost unix_stream 16384 20000 0 1;  python timeline.py /tmp/x
"""
import sys

import numpy as np


def load(path):
    a = np.loadtxt(path)
    return a[:, 0], a[:, 1]


def against(s0, d0, s1, d1, slow=5000.0):
    """For calls (s0, d0): the state of the other side (s1, d1) at each call's start."""
    i = np.searchsorted(s1, s0, side="right") - 1
    ok = i >= 0
    inside = ok & (s0 < s1[np.clip(i, 0, None)] + d1[np.clip(i, 0, None)])
    long_ = inside & (d1[np.clip(i, 0, None)] >= slow)
    short = inside & ~long_
    between = ok & ~inside
    return {"other in a short call": short, "other in a long call": long_, "other between calls": between}


def main(prefix):
    ws, wd = load(prefix + ".writer")
    rs, rd = load(prefix + ".reader")
    t0, t1 = ws[0], max(ws[-1] + wd[-1], rs[-1] + rd[-1])  # from the first write (the reader waits for it)
    print(f"{len(ws)} writes, {len(rs)} reads over {(t1 - t0) / 1e3:.0f} us")
    for name, (s0, d0, s1, d1) in (("writer", (ws, wd, rs, rd)), ("reader", (rs, rd, ws, wd))):
        busy = (np.minimum(s0 + d0, t1) - np.maximum(s0, t0)).clip(0).sum()  # call time inside [t0, t1]
        print(f"{name}: in calls {busy / (t1 - t0):.0%} of the time; its calls under 5 us, by the other side's state:")
        for state, m in against(s0, d0, s1, d1).items():
            fast = m & (d0 < 5000)
            med = np.median(d0[fast]) / 1e3 if fast.any() else float("nan")
            print(f"  {state:22s} {m.mean():6.1%} of its calls, median {med:5.2f} us")


if __name__ == "__main__":
    main(sys.argv[1])
