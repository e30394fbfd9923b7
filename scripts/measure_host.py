"""Measure this host for the default cost model: end-to-end grid, tracepoint stages, null syscall.

Writes, under the output folder (default lbsim/data/):
  measured-host.csv (+ .host.json)   ping-pong, stream and split grid (long format, see docs)
  stages-host.json                   per-stage tracepoint intervals (needs root + tracefs)
Run it on a quiet machine: nothing else running (the 1-min loadavg is recorded per run).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from lbsim.measure import measure, write_csv
from lbsim.measure.harness import null_syscall_ns

TRANSPORTS = ("tcp", "udp", "unix_stream", "unix_dgram")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="lbsim/data")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a small grid, for checking the script")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")   # measure()'s progress, on stderr
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    load0 = Path("/proc/loadavg").read_text().split()[0]
    print(f"loadavg before: {load0}", file=sys.stderr)
    pp_sizes = (64, 4096) if a.quick else (16, 64, 256, 1024, 4096, 16384, 65536, 262144)
    st_sizes = (1024,) if a.quick else (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
    # the split (one thread writes, then reads back; same CPU, up to 64 KiB): lbsim calibrate
    # tells the copy in from the copy out by it; 65507 B is UDP's largest datagram (its 65536
    # is skipped as too large) and is measured on every transport to compare with it; 3776 and
    # 3840 B straddle SKB_MAX_HEAD(0), where a unix_stream skb's data moves into a page frag:
    # the step gives the page allocator's cost (lbsim.calibrate.page_step)
    sp_sizes = (64,) if a.quick else (16, 64, 256, 1024, 3776, 3840, 4096, 16384, 65507, 65536)
    frames = [
        measure(TRANSPORTS, ("pingpong",), pp_sizes, ("same", "cross"), reps=a.reps, count_pingpong=2000),
        measure(TRANSPORTS, ("pingpong",), (64, 4096, 65536), ("cross",), reps=a.reps, count_pingpong=2000,
                busy=True),
        measure(TRANSPORTS, ("stream",), st_sizes, ("same", "cross"), reps=a.reps),
        measure(TRANSPORTS, ("split",), sp_sizes, ("same",), reps=a.reps),
    ]
    import pandas as pd

    df = pd.concat(frames, ignore_index=True)
    df.attrs["host"] = frames[0].attrs.get("host", {})
    write_csv(df, out / "measured-host.csv")
    stages: dict[str, object] = {"null_syscall_ns": null_syscall_ns(), "runs": []}
    try:
        from lbsim.measure.stages import StagesUnavailable, measure_stages

        for tr in TRANSPORTS:
            for pl in ("same", "cross"):
                for size in ((64,) if pl == "cross" or a.quick else (64, 65536)):
                    if tr == "udp" and size > 65507:
                        size = 65507
                    r = measure_stages(tr, size=size, placement=pl, count=2000)
                    stages["runs"].append({"transport": tr, "placement": pl, "size": size, "result": r})
                    print(f"stages {tr} {pl} {size}: done", file=sys.stderr)
    except StagesUnavailable as e:  # not root, no tracefs: the grid alone still calibrates
        stages["unavailable"] = str(e)
    stages["loadavg_before"] = load0
    stages["loadavg_after"] = Path("/proc/loadavg").read_text().split()[0]
    (out / "stages-host.json").write_text(json.dumps(stages, indent=1, default=str) + "\n")
    print(f"done in {time.time() - t0:.0f} s; loadavg after {stages['loadavg_after']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
