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

from lbsim.validate.effects_report import effect_verdict, summarise_effects


def _f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if x is None or pd.isna(x) else fmt.format(x)


def per_knob(r: pd.DataFrame, max_spread: float) -> str:
    lines = ["| knob | settings x points | real (kept) | direction right | median \\|error\\| | worst \\|error\\| |",
             "|---|---:|---:|---:|---:|---:|"]
    for knob, g in r.groupby("knob", sort=True):
        s = summarise_effects(g, max_spread)
        worst = abs(s["worst"]["effect_error_pct"]) if s["worst"] else float("nan")
        lines.append(f"| {knob} | {len(g)} | {s['real']} | {s['direction_right']} of {s['real']} | "
                     f"{_f(s['median_abs_effect_error_pct'], '{:.1f} %')} | {_f(worst, '{:.0f} %')} |")
    return "\n".join(lines)


def rows(r: pd.DataFrame) -> str:
    lines = ["| knob | setting | point | measured | spread | simulated | error | verdict |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for _, x in r.sort_values(["knob", "setting", "transport", "workload", "placement", "msg_bytes"]).iterrows():
        # a wrong direction where the model moves less than 1 %: "no effect" (the notes count these)
        verdict = effect_verdict(x, words=("right", "**wrong**", "not real"), no_effect_below=0.01)
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
    report = json.load(open(a.report))
    r = pd.DataFrame(report["effects"])
    r["not_modelled"] = r["not_modelled"].fillna("")
    if a.per_knob or not a.rows:
        print(per_knob(r, report["settings"]["max_spread"]))
    if a.rows:
        print(rows(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
