"""The knob-effect report (:mod:`lbsim.validate.effects`): its summary, JSON form and tables."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lbsim.jsonsafe import strict

__all__ = ["EffectsReport", "summarise_effects"]


def _name(r: Any) -> str:
    return f"{r['group']} {r['setting']}: {r['transport']} {r['workload']} {r['placement']} {int(r['msg_bytes'])} B"


def summarise_effects(rows: pd.DataFrame, max_spread: float) -> dict[str, Any]:
    """Direction right on every real effect?, median and worst |effect error| over the real
    effects, and the points left out for their spread (the summary counts neither those nor the
    settings the model cannot express)."""
    if rows.empty:
        return {"settings": 0}
    modelled = rows[rows["not_modelled"] == ""]
    kept = modelled[~modelled["left_out"]]
    real = kept[kept["real"]]
    err = real["effect_error_pct"].abs()
    worst = None
    if len(err.dropna()):
        j: Any = err.idxmax()  # a label of real's index
        row = real.loc[j]
        worst = {"point": _name(row), "effect_error_pct": float(row["effect_error_pct"]),
                 "measured_effect": float(row["measured_effect"]),
                 "simulated_effect": float(row["simulated_effect"])}
    wrong = real[real["direction_agrees"] != True]  # noqa: E712 (None: no simulated effect)
    left = modelled[modelled["left_out"]]
    return {
        "settings": int(len(rows)), "not_modelled": int(len(rows) - len(modelled)),
        "left_out": int(len(left)), "left_out_fraction": float(len(left) / len(modelled)) if len(modelled) else 0.0,
        "left_out_within_a_fifth": bool(len(left) <= len(modelled) / 5),
        "left_out_points": [_name(r) for _, r in left.iterrows()], "max_spread_pct": 100.0 * max_spread,
        "real": int(len(real)), "direction_right": int(len(real) - len(wrong)),
        "direction_right_on_every_real_effect": bool(len(wrong) == 0 and len(real) > 0),
        "direction_wrong_points": [_name(r) for _, r in wrong.iterrows()],
        "median_abs_effect_error_pct": float(err.median()) if len(err.dropna()) else None,
        "worst": worst,
        "not_real": int(len(kept) - len(real)),
        "median_abs_effect_error_pct_all_kept": (float(kept["effect_error_pct"].abs().median())
                                                 if kept["effect_error_pct"].notna().any() else None),
    }


def effect_verdict(r: Any, words: tuple[str, str, str] = ("ok", "WRONG", "(not real)"),
                   no_effect_below: float = 0.005) -> str:
    """One effect row's verdict: the host run failed, not modelled, or (right, wrong, not real)
    as ``words``, a wrong direction where the model shows no effect (|simulated - 1| below
    ``no_effect_below``) said so, and a point left out for its spread marked."""
    if r.get("host_failed"):
        return "host run failed (the harness could not finish it: run_failed)"
    if r["not_modelled"]:
        return f"not modelled: {r['not_modelled']}"
    verdict = (words[0] if r["direction_agrees"] else words[1]) if r["real"] else words[2]
    if r["real"] and not r["direction_agrees"] and abs(r["simulated_effect"] - 1.0) < no_effect_below:
        verdict += " (model: no effect)"
    if r["left_out"]:
        verdict += " [left out: spread]"
    return verdict


def _f(x: Any, fmt: str = "{:.2f}") -> str:
    return fmt.format(x) if isinstance(x, (int, float, np.floating)) and math.isfinite(float(x)) else "-"


@dataclass
class EffectsReport:
    """``rows``: one per knob setting and run point: group, knob, setting, transport, workload,
    placement, msg_bytes, metric, measured_effect (median over repetitions of setting /
    default), spread (max - min of those ratios), spread_pct, reps, simulated_effect,
    sim_setting, sim_default, effect_error_pct (100 (simulated / measured - 1)), real (|measured
    - 1| > spread), left_out (spread_pct > max_spread), direction_agrees, not_modelled (the
    reason, or "").  ``drops``: per datagram stream point of the RPS / backlog / rcvbuf
    groups and setting (the default included): measured_ and simulated_ backlog, rcvbuf and lost
    fractions of the messages sent.  ``summary``: :func:`summarise_effects`."""

    rows: pd.DataFrame
    drops: pd.DataFrame
    summary: dict[str, Any]
    source: str = ""
    costs_name: str = ""
    costs_hash: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return strict({"source": self.source, "costs": {"name": self.costs_name, "hash": self.costs_hash},
                          "settings": self.settings, "summary": self.summary,
                          "effects": self.rows.to_dict(orient="records"),
                          "drops": self.drops.to_dict(orient="records")})

    def effects_table(self) -> str:
        head = (f"{'knob':<19} {'setting':<24} {'point':<31} {'meas':>6} {'spread':>6} {'sim':>6} "
                f"{'error%':>7}  dir")
        lines = [head, "-" * len(head)]
        for _, r in self.rows.iterrows():
            pt = f"{r['transport']} {r['workload'][:6]} {r['placement']} {int(r['msg_bytes'])}"
            verdict = effect_verdict(r)
            lines.append(f"{r['knob']:<19} {r['setting']:<24} {pt:<31} {_f(r['measured_effect']):>6} "
                         f"{_f(r['spread']):>6} {_f(r['simulated_effect']):>6} "
                         f"{_f(r['effect_error_pct'], '{:+.0f}'):>7}  {verdict}")
        return "\n".join(lines)

    def drops_table(self) -> str:
        if self.drops.empty:
            return "(no datagram stream points in the RPS / backlog / rcvbuf groups)"
        head = (f"{'group':<19} {'setting':<24} {'point':<22} {'backlog m/s':>13} {'rcvbuf m/s':>13} "
                f"{'lost m/s':>13}")
        lines = ["drops, % of messages sent (measured / simulated)", head, "-" * len(head)]
        for _, r in self.drops.iterrows():
            pt = f"{r['transport']} {r['placement']} {int(r['msg_bytes'])}"
            cells = [f"{_f(100 * r['measured_' + k], '{:.1f}')}/{_f(100 * r['simulated_' + k], '{:.1f}')}"
                     for k in ("backlog", "rcvbuf", "lost")]
            lines.append(f"{r['group']:<19} {r['setting']:<24} {pt:<22} " + " ".join(f"{c:>13}" for c in cells))
        return "\n".join(lines)

    def summary_text(self) -> str:
        s = self.summary
        if not s.get("settings"):
            return "no knob settings with a default at the same point"
        worst = s.get("worst") or {}
        lines = [
            f"{s['settings']} knob settings x points; {s['not_modelled']} not modelled; "
            f"{s['left_out']} left out for spread > {s['max_spread_pct']:.0f} % "
            f"({100 * s['left_out_fraction']:.0f} % of the modelled, "
            f"{'within' if s['left_out_within_a_fifth'] else 'MORE than'} a fifth)",
            f"real effects (|effect - 1| > spread): {s['real']}; direction right on "
            f"{s['direction_right']}/{s['real']}"
            + ("" if s["direction_right_on_every_real_effect"] else
               " - wrong: " + "; ".join(s["direction_wrong_points"])),
            f"median |effect error| over real effects: {_f(s['median_abs_effect_error_pct'], '{:.1f}')} %; worst "
            f"{_f(worst.get('effect_error_pct'), '{:+.0f}')} % ({worst.get('point', '-')}: measured "
            f"{_f(worst.get('measured_effect'))}, simulated {_f(worst.get('simulated_effect'))})",
            f"{self.settings.get('simulations', 0)} simulations on {self.settings.get('workers', 1)} processes "
            f"in {self.settings.get('elapsed_s', 0):.0f} s",
        ]
        return "\n".join(lines)

    def format_table(self) -> str:
        return "\n\n".join([f"knob effects: {self.source} against costs {self.costs_name} ({self.costs_hash})",
                            self.effects_table(), self.drops_table(), self.summary_text()])
