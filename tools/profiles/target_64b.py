"""The profiles issue's target: 64 B same-CPU round trips with a profile, against a measurement of
the host that the profile was NOT fitted on.

    python tools/profiles/target_64b.py PROFILE DATA_FOLDER [--messages N]

PROFILE is what ``--costs`` takes (``auto`` = what ``lbsim simulate`` picks with no flags here);
DATA_FOLDER a ``data/hosts/<name>`` folder with ``measured-host.csv``. Prints each transport's
measured p50 (median over the repetitions), the simulated p50 and the error, then the largest and
the median |error| (target: each within 15 %, the median within 10 %).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import pandas as pd

import lbsim
from lbsim.costs import load_costs

TRANSPORTS = ("tcp", "udp", "unix_stream", "unix_dgram")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("data")
    ap.add_argument("--messages", type=int, default=20000)
    a = ap.parse_args()
    costs = load_costs(a.profile)
    csv = Path(a.data) / "measured-host.csv"
    fitted_on = (costs.provenance.get("profile") or {}).get("data_sha256") or ""
    sha = hashlib.sha256(csv.read_bytes()).hexdigest()
    if fitted_on and sha.startswith(fitted_on[:16]):
        print(f"{csv}: the data this profile was fitted on; pick another measurement", file=sys.stderr)
        return 2
    df = pd.read_csv(csv)
    q = df[(df.workload == "pingpong") & (df.placement == "same") & (df.msg_bytes == 64)
           & (df.metric == "rtt_p50_us")]
    if "background" in q.columns:
        q = q[q.background.astype(str) == "idle"]
    meas = q.groupby("transport")["value"].median()
    rows = []
    for t in TRANSPORTS:
        sim = lbsim.simulate(transport=t, workload="pingpong", msg_bytes=64, placement="same",
                             messages=a.messages, seed=1, costs=costs).latency_us["p50"]
        rows.append({"transport": t, "measured_p50_us": meas[t], "simulated_p50_us": sim,
                     "error_pct": 100.0 * (sim / meas[t] - 1.0)})
    out = pd.DataFrame(rows)
    print(f"profile {costs.name} against {csv}")
    print(out.round(2).to_string(index=False))
    err = out.error_pct.abs()
    print(json.dumps({"max_abs_error_pct": round(float(err.max()), 1),
                      "median_abs_error_pct": round(float(err.median()), 1),
                      "within_targets": bool(err.max() <= 15.0 and err.median() <= 10.0)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
