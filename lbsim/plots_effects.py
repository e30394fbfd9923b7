"""The knob-effect figure of ``lbsim validate KNOBS.csv --figure``: measured against simulated effect."""

from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402

from lbsim.plots import TRANSPORT_STYLE  # noqa: E402

__all__ = ["effects_figure"]

_MARKERS = {"pingpong": "o", "stream": "s"}


def effects_figure(rows: Any, *, title: str = "knob effects: simulated against measured") -> Any:
    """One panel per knob: each modelled setting x point at (measured effect, simulated effect),
    log-log, with the repetitions' spread as a horizontal bar and the diagonal (a perfect model).
    Filled: real effects (larger than their spread); hollow: not real or left out for spread.
    ``rows``: :attr:`lbsim.validate.effects_report.EffectsReport.rows`."""
    data = rows[(rows["not_modelled"] == "")] if len(rows) else rows
    knobs = sorted(set(data["knob"])) if len(data) else []
    n = max(1, len(knobs))
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.0 * nrows), squeeze=False,
                             constrained_layout=True)
    for ax in axes.flat[len(knobs):]:
        ax.set_visible(False)
    for ax, knob in zip(axes.flat, knobs):
        sub = data[data["knob"] == knob]
        vals = [v for v in (*sub["measured_effect"], *sub["simulated_effect"]) if v > 0 and math.isfinite(v)]
        lo, hi = (min(vals) / 1.3, max(vals) * 1.3) if vals else (0.5, 2.0)
        lo, hi = min(lo, 0.8), max(hi, 1.25)
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=0.8, zorder=0)
        ax.axhline(1, color="0.85", lw=0.6, zorder=0)
        ax.axvline(1, color="0.85", lw=0.6, zorder=0)
        for _, r in sub.iterrows():
            m, s = r["measured_effect"], r["simulated_effect"]
            if not (m > 0 and s > 0):
                continue
            color = TRANSPORT_STYLE.get(r["transport"], {}).get("color", "k")
            filled = bool(r["real"]) and not bool(r["left_out"])
            half = r["spread"] / 2 if math.isfinite(r["spread"]) else 0.0
            ax.errorbar([m], [s], xerr=[[min(half, m * 0.99)], [half]], fmt="none", ecolor=color, lw=0.7, alpha=0.6)
            ax.scatter([m], [s], marker=_MARKERS.get(r["workload"], "o"), s=22, edgecolors=color,
                       facecolors=color if filled else "none", linewidths=0.9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers, no crowded minor labels
            axis.set_major_formatter(mticker.FuncFormatter(lambda v, _p: f"{v:g}"))
            axis.set_minor_formatter(mticker.NullFormatter())
        ax.set_title(knob, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("measured effect", fontsize=8)
        ax.set_ylabel("simulated effect", fontsize=8)
    handles = [plt.Line2D([], [], ls="", marker="o", color=st["color"], label=t) for t, st in TRANSPORT_STYLE.items()]
    handles += [plt.Line2D([], [], ls="", marker=mk, color="k", mfc="none", label=w) for w, mk in _MARKERS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig
