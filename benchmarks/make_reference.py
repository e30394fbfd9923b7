"""Write tests/data/reference_outputs.json: fixed-seed runs whose numbers every optimisation
must reproduce (event times and counters exactly, float statistics to 1e-12 relative).

Regenerate only in a commit that says why the model's results changed:
    .venv/bin/python benchmarks/make_reference.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import lbsim
from lbsim.profiles import DEFAULT_PROFILE, ENV_VAR

CASES = [
    dict(transport=t, workload=w, placement=p, messages=300, msg_bytes=n, seed=3, **extra)
    for t in ("tcp", "udp", "unix_stream", "unix_dgram")
    for p in ("same", "cross")
    for (w, n, extra) in (("pingpong", 64, {}), ("pingpong", 65000, {}), ("stream", 1024, {}),
                          ("rr", 256, {"flows": 3}), ("poisson", 512, {"rate_per_s": 100000.0}),
                          ("burst", 128, {"burst_size": 100, "burst_gap_ns": 50000}))
] + [
    # knob paths the default cases never reach: a set (clamped) buffer on each transport, a small
    # MTU, RPS with a short backlog
    dict(transport=t, workload="stream", placement="cross", messages=300, msg_bytes=1024, seed=3, **extra)
    for t in ("tcp", "udp", "unix_stream", "unix_dgram")
    for extra in ({"so_rcvbuf": 4096}, {"so_sndbuf": 1})
] + [
    dict(transport="tcp", workload="stream", placement="same", messages=200, msg_bytes=65536, seed=3, mtu=1500),
    dict(transport="udp", workload="stream", placement="cross", messages=300, msg_bytes=64, seed=3,
         rps_cpus=2, netdev_max_backlog=10),  # steer to CPU 1, the receiver's
    # BBR (the hosts' congestion control): internal pacing on lo, with and without TSO
    dict(transport="tcp", workload="stream", placement="cross", messages=300, msg_bytes=1024, seed=3,
         tcp_congestion_control="bbr", so_rcvbuf=1),
    dict(transport="tcp", workload="stream", placement="same", messages=200, msg_bytes=65536, seed=3,
         tcp_congestion_control="bbr", mtu=1500, tso=False),
    dict(transport="udp", workload="stream", placement="cross", messages=300, msg_bytes=64, seed=3,
         senders=2, rps_cpus=3),
    # IP fragments: kmalloc_large skbs at MTU 9000, the fragments' truesize at 1500
    dict(transport="udp", workload="pingpong", placement="cross", messages=300, msg_bytes=16384, seed=3, mtu=9000),
    dict(transport="udp", workload="stream", placement="same", messages=300, msg_bytes=16384, seed=3, mtu=1500),
    # 6.18: UDP's reader defers the free to the writer's CPU; its receive-buffer rule
    dict(transport="udp", workload="stream", placement="cross", messages=300, msg_bytes=1024, seed=3,
         kernel="linux-6.18"),
    dict(transport="udp", workload="stream", placement="cross", messages=300, msg_bytes=1024, seed=3,
         kernel="linux-6.18", so_rcvbuf=1),
    # the unix_dgram server's reply to a path (unix_find_other), at a measured guest's cost
    dict(transport="unix_dgram", workload="pingpong", placement="cross", messages=300, msg_bytes=64, seed=3,
         stage_cost={"unix_find_other": {"fixed_ns": 1065.66}}),
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
    # the default costs' profile, whatever host this runs on (costs "auto" would pick this host's)
    os.environ[ENV_VAR] = DEFAULT_PROFILE
    out = Path(__file__).resolve().parent.parent / "tests" / "data" / "reference_outputs.json"
    data = {"costs_hash": lbsim.load_costs().hash, "cases": [fingerprint(c) for c in CASES]}
    out.write_text(json.dumps(data, indent=1, default=float) + "\n")
    print(f"wrote {len(CASES)} cases to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
