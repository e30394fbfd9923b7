"""The table and figure of ``lbsim validate --stages`` (:mod:`lbsim.validate.stages`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lbsim.validate.stages import StageRow, StagesReport


def _us(v: float | None) -> str:
    return "-" if v is None else f"{v / 1000:.2f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:+.0f}%"


def format_table(rep: StagesReport) -> str:
    s = rep.summary()
    lines = [f"stage-level truth: {rep.host} ({rep.stage_file}), costs {rep.costs}",
             "measured: tracepoint interval medians less the tracing overhead; simulated: the model's stages "
             "inside them, mean per call (per message for copies)",
             f"{'run':<26} {'stage':<8} {'measured us':>11} {'simulated us':>12} {'error':>6} {'spread':>6}  "
             f"{'within':<6} model stages"]
    for r in rep.compared:
        run = f"{r.transport} {r.placement} {r.size} B"
        within = "-" if r.within is None else ("yes" if r.within else "no")
        lines.append(f"{run:<26} {r.row:<8} {_us(r.measured_ns):>11} {_us(r.simulated_ns):>12} "
                     f"{_pct(r.error):>6} {_pct(r.spread).lstrip('+'):>6}  {within:<6} {', '.join(r.model_stages)}")
    excluded = [r for r in rep.rows if r.excluded]
    if excluded:
        lines.append("")
        lines.append(f"not compared ({len(excluded)} rows):")
        for r in excluded:
            lines.append(f"  {r.transport} {r.placement} {r.size} B {r.row}: {r.excluded}")
    med, worst = s["median_abs_error"], s["worst_abs_error"]
    spread_from = next((r.spread_from for r in rep.compared if r.spread_from and r.spread_from != "repeats"),
                       "repeats")
    lines.append("")
    judged = (f"{s['within_spread']} of {s['compared']} stages within the spread between runs (spread: {spread_from})"
              if any(r.spread is not None for r in rep.compared) else
              f"{s['compared']} stages compared, none judged: {spread_from}")
    lines.append(f"{judged}; |error| median {_pct(med).lstrip('+')}, worst "
                 f"{_pct(worst).lstrip('+')}; {s['excluded_base']} rows left out because the costs' base "
                 "read them (circular)")
    return "\n".join(lines)


def stages_figure(rows: list[StageRow], title: str = "") -> Any:
    """Simulated against measured per compared stage; the error bars are the band a simulated value
    must fall in to count as within the spread between runs (log scale: the stages span 0.1 to 20 us)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if not r.excluded and r.measured_ns and r.simulated_ns is not None]
    fig, ax = plt.subplots(figsize=(7.5, max(2.5, 0.26 * len(rows) + 1.2)))
    ys = list(range(len(rows)))[::-1]
    meas = [r.measured_ns / 1000 for r in rows]  # type: ignore[operator]
    up = [m * (r.spread or 0.0) for m, r in zip(meas, rows)]
    down = [min(u, 0.95 * m) for u, m in zip(up, meas)]  # a log axis cannot reach 0
    ax.errorbar(meas, ys, xerr=[down, up], fmt="o", color="black", ms=4, capsize=2,
                label="measured, +- the spread between runs")
    colors = ["tab:green" if r.within else "tab:red" for r in rows]
    ax.scatter([r.simulated_ns / 1000 for r in rows], ys, marker="D", s=22, c=colors, zorder=3,  # type: ignore[operator]
               label="simulated (green: within spread)")
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{r.transport} {r.placement} {r.size} B: {r.row}" for r in rows], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("time per message in the stage (us)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
