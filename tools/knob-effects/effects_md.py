"""Markdown tables of a knob-effect report (`lbsim validate KNOBS.csv --json`), for docs/notes/knob-effects.md.

    python tools/knob-effects/effects_md.py REPORT.json [--per-knob] [--rows]

--per-knob: one line per knob (settings x points, real effects, direction right, median and worst |effect
error| over the real effects not left out for spread); --rows: every setting x point.
"""

from __future__ import annotations

import argparse
import json
import sys

import pandas as pd


def _f(x: float, fmt: str = "{:.2f}") -> str:
    return "-" if pd.isna(x) else fmt.format(x)


def per_knob(r: pd.DataFrame) -> str:
    lines = ["| knob | settings x points | real (kept) | direction right | median \\|error\\| | worst \\|error\\| |",
             "|---|---:|---:|---:|---:|---:|"]
    for knob, g in r.groupby("knob", sort=True):
        kept = g[g.real & ~g.left_out & g.not_modelled.eq("")]
        err = kept.effect_error_pct.abs()
        right = int(kept.direction_agrees.fillna(False).astype(bool).sum())
        lines.append(f"| {knob} | {len(g)} | {len(kept)} | {right} of {len(kept)} | "
                     f"{_f(err.median(), '{:.1f} %')} | {_f(err.max(), '{:.0f} %')} |")
    return "\n".join(lines)


def rows(r: pd.DataFrame) -> str:
    lines = ["| knob | setting | point | measured | spread | simulated | error | verdict |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for _, x in r.sort_values(["knob", "setting", "transport", "workload", "placement", "msg_bytes"]).iterrows():
        if x.get("host_failed"):
            verdict = "host run failed"
        elif x.not_modelled:
            verdict = "not modelled"
        elif not x.real:
            verdict = "not real"
        else:
            verdict = "right" if x.direction_agrees else "**wrong**"
            if abs(x.simulated_effect - 1.0) < 0.01 and not x.direction_agrees:
                verdict += " (model: none)"
        if x.left_out:
            verdict += " (left out)"
        pt = f"{x.transport} {x.workload} {x.placement} {int(x.msg_bytes)}"
        lines.append(f"| {x.knob} | {x.setting} | {pt} | {_f(x.measured_effect)} | {_f(x.spread)} | "
                     f"{_f(x.simulated_effect)} | {_f(x.effect_error_pct, '{:+.0f} %')} | {verdict} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report")
    ap.add_argument("--per-knob", action="store_true")
    ap.add_argument("--rows", action="store_true")
    a = ap.parse_args()
    r = pd.DataFrame(json.load(open(a.report))["effects"])
    r["not_modelled"] = r["not_modelled"].fillna("")
    if a.per_knob or not a.rows:
        print(per_knob(r))
    if a.rows:
        print(rows(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
