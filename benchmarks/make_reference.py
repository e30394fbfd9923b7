"""Write tests/data/reference_outputs.json: fixed-seed runs whose numbers every optimisation
must reproduce (event times and counters exactly, float statistics to 1e-12 relative).

Regenerate only in a commit that says why the model's results changed:
    .venv/bin/python benchmarks/make_reference.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lbsim

CASES = [
    dict(transport=t, workload=w, placement=p, messages=300, msg_bytes=n, seed=3, **extra)
    for t in ("tcp", "udp", "unix_stream", "unix_dgram")
    for p in ("same", "cross")
    for (w, n, extra) in (("pingpong", 64, {}), ("pingpong", 65000, {}), ("stream", 1024, {}),
                          ("rr", 256, {"flows": 3}), ("poisson", 512, {"rate_per_s": 100000.0}),
                          ("burst", 128, {"burst_size": 100, "burst_gap_ns": 50000}))
]


def fingerprint(cfg: dict) -> dict:
    r = lbsim.simulate(**cfg)
    s = r.latency_samples_ns
    return {
        "config": cfg,
        "sim_time_ns": r.sim_time_ns,
        "counters": r.counters,
        "latency_ns": r.latency_ns,
        "first_samples_ns": s[:20].tolist(),
        "sample_sum_ns": float(s.sum()),
        "stage_busy_ns": {row["stage"]: row["busy_ns"] for row in r.stages},
        "stage_count": {row["stage"]: row["count"] for row in r.stages},
    }


def main() -> int:
    out = Path(__file__).resolve().parent.parent / "tests" / "data" / "reference_outputs.json"
    data = {"costs_hash": lbsim.load_costs().hash, "cases": [fingerprint(c) for c in CASES]}
    out.write_text(json.dumps(data, indent=1, default=float) + "\n")
    print(f"wrote {len(CASES)} cases to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
