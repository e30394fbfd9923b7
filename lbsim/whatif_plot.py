"""The figure of ``lbsim whatif --plot``: the causal profile and the loopback gap."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["profile_figure"]


def profile_figure(p: Any, lines: int = 8) -> Any:
    """Left: gain against speed-up, one line per target (the ``lines`` largest effects).
    Right (tcp/udp): what removing each stage saves against the gap to unix_stream."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gap = p.gap()
    fig, axes = plt.subplots(1, 2 if gap else 1, figsize=(12 if gap else 6.5, 4.8), squeeze=False)
    ax = axes[0][0]
    xs = [0.0, *p.speedups]
    for t in p.ranked()[:lines]:
        ys = [0.0] + [100 * p.gain(t.name, s) for s in p.speedups]
        ax.plot([100 * x for x in xs], ys, marker="o", ms=3, label=f"{t.name} ({t.kind})"
                if t.kind != "stage" else t.name, ls="--" if t.kind != "stage" else "-")
    metric = "throughput won" if p.primary == "tput" else "p50 latency saved"
    ax.set_xlabel("speed-up of the stage (% of its cost)")
    ax.set_ylabel(f"{metric} (%)")
    c = p.config
    ax.set_title(f"causal profile: {c.msg_bytes} B {c.transport} {c.workload}, placement {c.placement}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    if gap:
        ax2 = axes[0][1]
        rows = gap["rows"][:lines + 4][::-1]
        colors = {"stage": "tab:blue", "group": "tab:orange", "delay": "tab:green"}
        ax2.barh([r["target"] if r["kind"] == "stage" else f"{r['target']} ({r['kind']})" for r in rows],
                 [r["saved_ns"] for r in rows], color=[colors[r["kind"]] for r in rows])
        ax2.axvline(gap["gap_ns"], color="tab:red", ls="--", label=f"gap to unix_stream {gap['gap_ns']:.0f} ns")
        for i, r in enumerate(rows):
            need = "cannot alone" if math.isnan(r["needed"]) else f"{100 * r['needed']:.0f} % closes it"
            ax2.text(max(r["saved_ns"], 0) + 5, i, need, va="center", fontsize=7)
        ax2.set_xlabel("p50 saved when the stage costs nothing (ns)")
        ax2.set_title(f"{gap['transport']} -> unix_stream: each stage (or group) alone", fontsize=10)
        ax2.tick_params(axis="y", labelsize=7)
        ax2.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
