"""Measure this host for a cost model: end-to-end grid, tracepoint stages, null syscall.

Writes, under the output folder (default lbsim/data/):
  measured-host.csv (+ .host.json)   ping-pong, stream and split grid (long format, see docs)
  stages-host.json                   per-stage tracepoint intervals (needs root + tracefs)
Run it on a quiet machine: nothing else running (the 1-min loadavg is recorded per run).
The grid is lbsim.measure.grid's, which `lbsim calibrate` (no argument) also measures, fits,
validates and installs as this host's profile in one command.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from lbsim.measure.grid import loadavg1, measure_host_grid


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="lbsim/data")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a small grid, for checking the script")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")   # measure()'s progress, on stderr
    t0 = time.time()
    print(f"loadavg before: {loadavg1()}", file=sys.stderr)
    data = measure_host_grid(a.out, reps=a.reps, quick=a.quick,
                             progress=lambda m: print(m, file=sys.stderr))
    if data.stages is None:  # not root, no tracefs: the grid alone is still data
        print(f"stages not traced: {data.stages_unavailable}", file=sys.stderr)
    print(f"done in {time.time() - t0:.0f} s; loadavg after {loadavg1()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
