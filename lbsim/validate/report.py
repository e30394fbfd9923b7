"""The validation report: its verdict, its JSON form and its text tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lbsim.fitdata import PARAM_COLUMNS
from lbsim.jsonsafe import strict

#: the metrics of the order check and of :meth:`ValidationReport.passes`
HEADLINE = ("rtt_p50_us", "throughput_MBps")


def _point_name(r: Any, params: Sequence[str] = ()) -> str:
    extra = "".join(f" {p}={r[p]}" for p in params if p in r and not pd.isna(r[p]) and str(r[p]) != "")
    return f"{r['transport']} {r['workload']} {r['placement']}/{r['background']} {int(r['msg_bytes'])} B{extra}"


@dataclass
class ValidationReport:
    """The comparison of one measured data set with the model.

    ``rows``: one row per point and metric (transport, workload, placement, background,
    msg_bytes, [policy, mtu, cpus, kernel as measured], metric, measured (median over reps),
    simulated, error_pct (100 (sim/meas - 1); NaN when measured is 0), diff (sim - meas),
    spread (max - min over reps), spread_pct (100 spread / measured), reps, fitted, status).
    ``summary``: per metric and split ("held-out", "fitted", "all"): count, n_error,
    median_abs_error_pct, worst_abs_error_pct, worst_point.
    ``order``: the transport order check (see :func:`order_check`).
    """

    rows: pd.DataFrame
    summary: list[dict[str, Any]]
    order: dict[str, Any]
    fit_sizes: list[int] = field(default_factory=list)
    costs_name: str = ""
    costs_hash: str = ""
    source: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # --- verdict ---------------------------------------------------------------------------------
    def headline(self, max_error_pct: float | None = None) -> list[dict[str, Any]]:
        """Held-out median |error| of rtt_p50_us and throughput_MBps, and whether each is within
        ``max_error_pct``; a metric without held-out points passes with a note."""
        out = []
        for m in HEADLINE:
            s = next((d for d in self.summary if d["metric"] == m and d["split"] == "held-out"), None)
            med = s["median_abs_error_pct"] if s and s["n_error"] else None
            ok = True if (med is None or max_error_pct is None) else bool(med <= max_error_pct)
            note = "" if med is not None else "no held-out points: counts as passing"
            out.append({"metric": m, "held_out_median_abs_error_pct": med, "max_error_pct": max_error_pct,
                        "ok": ok, "note": note})
        return out

    def passes(self, max_error_pct: float) -> bool:
        """Held-out median |error| of rtt_p50_us AND throughput_MBps both <= ``max_error_pct``."""
        return all(h["ok"] for h in self.headline(max_error_pct))

    # --- output ----------------------------------------------------------------------------------
    def to_dict(self, max_error_pct: float | None = None) -> dict[str, Any]:
        rows = [{k: strict(v) for k, v in r.items()} for r in self.rows.to_dict(orient="records")]
        out = {
            "source": self.source,
            "costs": {"name": self.costs_name, "hash": self.costs_hash},
            "fit_sizes": list(self.fit_sizes),
            "settings": dict(self.settings),
            "summary": strict(self.summary),
            "order": strict(self.order),
            "headline": strict(self.headline(max_error_pct)),
            "notes": list(self.notes),
            "rows": rows,
        }
        if max_error_pct is not None:
            out["passes"] = self.passes(max_error_pct)
        return out

    def format_summary(self) -> str:
        """The held-out summary, then the fitted one, then the order check."""
        lines = [f"costs: {self.costs_name} [{self.costs_hash}]; measured: {self.source}; "
                 f"fit sizes: {', '.join(map(str, self.fit_sizes)) or 'none'}"]
        const = self.settings.get("constant_columns", {})
        if const:
            sim_as = self.settings.get("simulated_as", {})
            lines.append("every point: " + ", ".join(
                f"{k}={v}" + (f" (simulated as {sim_as[k]})" if k in sim_as and sim_as[k] != v else "")
                for k, v in const.items()))
        for split, title in (("held-out", "held-out points (message sizes not fitted)"),
                             ("fitted", "fitted points (message sizes the costs were fitted on)")):
            lines.append("")
            lines.append(f"{title}: |error| = |simulated / measured - 1|")
            lines.append(f"  {'metric':16s} {'points':>6s} {'median':>8s} {'worst':>8s}  worst point")
            any_row = False
            for s in self.summary:
                if s["split"] != split:
                    continue
                any_row = True
                med, worst = s["median_abs_error_pct"], s["worst_abs_error_pct"]
                med_s = "-" if med is None or not math.isfinite(med) else f"{med:7.1f}%"
                worst_s = "-" if worst is None or not math.isfinite(worst) else f"{worst:7.1f}%"
                pts = f"{s['count']}" + ("" if s["n_error"] == s["count"] else f"({s['n_error']})")
                lines.append(f"  {s['metric']:16s} {pts:>6s} {med_s:>8s} {worst_s:>8s}  {s['worst_point'] or ''}")
            if not any_row:
                lines.append("  (none)")
        lines.append("  (n) = points with an error: measured 0 has none (e.g. no loss)"
                     if any(s["n_error"] != s["count"] for s in self.summary) else "")
        if lines[-1] == "":
            lines.pop()
        o = self.order
        lines.append("")
        lines.append(f"order check ({', '.join(o['metrics'])}): {o['checked']} transport pairs in {o['cells']} "
                     f"cells differ by more than the repetitions' spread; model agrees on {o['agreed']}, "
                     f"disagrees on {len(o['disagreements'])} ({o['within_spread']} pairs within spread, "
                     "not checked)")
        for d in o["disagreements"]:
            unit = d["metric"]
            lines.append(f"  {d['cell']} {unit}: measured {d['a']} {d['measured_a']:.4g} vs {d['b']} "
                         f"{d['measured_b']:.4g}; simulated {d['simulated_a']:.4g} vs {d['simulated_b']:.4g}")
        return "\n".join(lines)

    def format_points(self) -> str:
        df = self.rows
        if df.empty:
            return "(no points)"
        const = self.settings.get("constant_columns", {})
        params = [p for p in PARAM_COLUMNS if p in df.columns and p not in const]
        width = {p: min(24, max(len(p), *(len(str(v)) for v in df[p] if not pd.isna(v)))) for p in params}
        head = (f"{'transport':11s} {'workload':8s} {'placement':9s} {'bg':4s} {'bytes':>8s} "
                + "".join(f"{p:>{width[p]}s} " for p in params)
                + f"{'metric':15s} {'measured':>11s} {'simulated':>11s} {'error':>8s} {'spread':>7s}  fit")
        out = [head]
        r: Any  # a row namedtuple of df's columns
        for r in df.itertuples(index=False):
            d = r._asdict()
            err = d["error_pct"]
            sp = d["spread_pct"]
            out.append(
                f"{d['transport']:11s} {d['workload']:8s} {d['placement']:9s} {d['background']:4s} "
                f"{int(d['msg_bytes']):>8d} "
                + "".join(f"{'' if pd.isna(d[p]) else str(d[p])[:width[p]]:>{width[p]}s} " for p in params)
                + f"{d['metric']:15s} {_num(d['measured']):>11s} {_num(d['simulated']):>11s} "
                f"{('-' if not math.isfinite(err) else f'{err:+.1f}%'):>8s} "
                f"{('-' if not math.isfinite(sp) else f'{sp:.1f}%'):>7s}  {'yes' if d['fitted'] else ''}"
                + ("" if d["status"] == "ok" else f"  [{d['status']}]"))
        return "\n".join(out)

    def format_table(self, max_error_pct: float | None = None) -> str:
        """Held-out summary, fitted summary, order check, then every point (sorted by transport,
        workload, placement, size, metric)."""
        parts = [self.format_summary()]
        if max_error_pct is not None:
            parts.append(self.format_verdict(max_error_pct))
        if self.notes:
            parts.append("\n".join(f"note: {n}" for n in self.notes))
        parts.append("points (measured = median over repetitions; spread = (max - min) / median):\n"
                     + self.format_points())
        return "\n\n".join(parts)

    def format_verdict(self, max_error_pct: float) -> str:
        lines = []
        for h in self.headline(max_error_pct):
            v = h["held_out_median_abs_error_pct"]
            lines.append(f"{h['metric']}: held-out median |error| "
                         + (f"{v:.1f}% {'<=' if h['ok'] else '>'} {max_error_pct:g}%" if v is not None else h["note"]))
        lines.append(f"{'PASS' if self.passes(max_error_pct) else 'FAIL'} (--max-error {max_error_pct:g})")
        return "\n".join(lines)


def _num(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    a = abs(x)
    if a >= 1e5:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.1f}"
    return f"{x:.3f}"
