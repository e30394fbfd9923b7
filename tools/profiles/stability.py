"""Stability of a fit: two measurements of one host, each fitted, compared on the grid's round trips.

    python tools/profiles/stability.py HOST_A HOST_B        (data/hosts/<name> folders with costs.json)

Prints, per ping-pong point (idle), the measured drift between the two measurements and the
difference between the two profiles' predictions, and their medians: a stable fit moves its
predictions less than the host itself moved.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

import lbsim


def main(a: str, b: str) -> int:
    keys = ["transport", "placement", "msg_bytes"]
    meds = []
    for d in (a, b):
        df = pd.read_csv(Path(d) / "measured-host.csv")
        q = df[(df.workload == "pingpong") & (df.background == "idle") & (df.metric == "rtt_p50_us")]
        meds.append(q.groupby(keys)["value"].median())
    j = pd.concat(meds, axis=1, keys=["meas_a", "meas_b"]).dropna()
    costs = [lbsim.load_costs(str(Path(d) / "costs.json")) for d in (a, b)]
    rows = []
    for (t, pl, n), r in j.iterrows():
        sims = [lbsim.simulate(transport=t, workload="pingpong", msg_bytes=int(n), placement=pl,
                               messages=2000, seed=1, costs=c).latency_us["p50"] for c in costs]
        rows.append({"transport": t, "placement": pl, "msg_bytes": int(n), **r.to_dict(),
                     "sim_a": sims[0], "sim_b": sims[1]})
    out = pd.DataFrame(rows)
    out["host_drift_pct"] = (out.meas_b / out.meas_a - 1) * 100
    out["profile_diff_pct"] = (out.sim_b / out.sim_a - 1) * 100
    print(out.round(2).to_string(index=False))
    print(f"median |host drift| {out.host_drift_pct.abs().median():.1f} %, "
          f"median |profile difference| {out.profile_diff_pct.abs().median():.1f} % over {len(out)} round trips")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
