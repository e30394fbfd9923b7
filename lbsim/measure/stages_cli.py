"""``lbsim measure --stages``: per-stage kernel timing table (see :mod:`lbsim.measure.stages`).

    python -m lbsim.measure.stages_cli --transports tcp,udp,unix_stream,unix_dgram \\
        --sizes 64 --placements same,cross --count 2000 [--busy] [--json]

One traced run (plus one untraced run for the overhead) per transport x size x
placement.  The table has one column per run and one row per stage: the median in
nanoseconds and, after ``x``, how many times the interval occurred per round trip
(``-`` where the stage does not exist or could not be matched; see ``unmatched``).
Exit status: 0 ok, 1 a run failed, 2 bad arguments or tracing unavailable.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from .harness import TRANSPORTS, HarnessError, HarnessUnavailable
from .stages import PLACEMENTS, STAGE_ORDER, StagesUnavailable, measure_stages, \
    tracefs_available

__all__ = ["main", "format_table"]


def _csv(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def _fmt_ns(v: Optional[float]) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}"


def format_table(results: Sequence[dict]) -> str:
    """A plain-text table of per-stage medians (ns), one column per result dict."""
    cols = [f"{r['transport']}/{r['placement']}" + ("/busy" if r.get("busy") else "")
            + (f"/{r['size']}B" if len({x['size'] for x in results}) > 1 else "")
            for r in results]
    rows: list[tuple[str, list[str]]] = []
    for st in STAGE_ORDER:
        if not any(st in r["stages"] for r in results):
            continue
        cells = []
        for r in results:
            s = r["stages"].get(st)
            cells.append("-" if s is None else f"{s['median_ns']:,.0f} x{s['per_rtt']:.2f}")
        rows.append((st, cells))
    rows.append(("", [""] * len(results)))
    rows.append(("rtt traced (trace)", [_fmt_ns(r["rtt_traced_median_ns"]) for r in results]))
    rows.append(("rtt traced (harness p50)",
                 [_fmt_ns(r["rtt_traced_harness_p50_ns"]) for r in results]))
    rows.append(("rtt untraced (harness p50)",
                 [_fmt_ns(r["rtt_untraced_median_ns"]) for r in results]))
    rows.append(("events per rtt", [f"{r['events_per_rtt']:.1f}" for r in results]))
    rows.append(("overhead ns/event", [_fmt_ns(r["overhead_ns_per_event"]) for r in results]))
    rows.append(("wakeups l/r/early/none",
                 ["/".join(str(r["wakeups"].get(k, 0)) for k in ("local", "remote", "early",
                                                                 "none")) for r in results]))
    rows.append(("unmatched", [str(sum(r["unmatched"].values())) for r in results]))
    rows.append(("lost+overrun", [str(r["lost_events"] + r["overrun"] + r["dropped_events"])
                                  for r in results]))
    w0 = max(len(n) for n, _ in rows)
    ws = [max(len(c), *(len(cells[i]) for _, cells in rows)) for i, c in enumerate(cols)]
    out = ["stage (median ns x per-rtt)".ljust(w0) + "  "
           + "  ".join(c.rjust(w) for c, w in zip(cols, ws))]
    out.append("-" * len(out[0]))
    for name, cells in rows:
        out.append(name.ljust(w0) + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, ws)))
    return "\n".join(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="lbsim measure --stages",
                                 description="per-stage kernel timing from tracepoints "
                                             "(root, tracefs)")
    ap.add_argument("--transports", default=",".join(TRANSPORTS))
    ap.add_argument("--sizes", default="64")
    ap.add_argument("--placements", default="same,cross")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--busy", action="store_true",
                    help="nice-19 spinner on the peer's CPU during the runs")
    ap.add_argument("--json", action="store_true", help="print the result dicts as JSON")
    a = ap.parse_args(argv)

    transports, placements = _csv(a.transports), _csv(a.placements)
    bad = [t for t in transports if t not in TRANSPORTS] + \
          [p for p in placements if p not in PLACEMENTS]
    try:
        sizes = [int(s) for s in _csv(a.sizes)]
    except ValueError:
        bad.append(a.sizes)
        sizes = []
    if bad or not transports or not placements or not sizes or a.count < 1 or \
            any(s < 1 for s in sizes):
        print(f"lbsim: invalid --transports/--sizes/--placements/--count: "
              f"{', '.join(map(str, bad)) or 'empty or < 1'}", file=sys.stderr)
        return 2
    ok, why = tracefs_available()
    if not ok:
        print(f"lbsim: per-stage tracing unavailable: {why}", file=sys.stderr)
        return 2

    results, failed = [], 0
    for size in sizes:
        for t in transports:
            for p in placements:
                try:
                    results.append(measure_stages(t, size=size, placement=p, count=a.count,
                                                  busy=a.busy))
                except (StagesUnavailable, HarnessUnavailable) as e:
                    print(f"lbsim: per-stage tracing unavailable: {e}", file=sys.stderr)
                    return 2
                except (HarnessError, ValueError) as e:
                    print(f"lbsim: {t} {size} B {p}: {e}", file=sys.stderr)
                    failed += 1
    if a.json:
        json.dump(results, sys.stdout, indent=1)
        print()
    elif results:
        print(format_table(results))
        notes = sorted({n for r in results for n in r["notes"]})
        for n in notes:
            print(f"note: {n}")
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
