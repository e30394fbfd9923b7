"""How a cross-CPU wake-up costs on this host, by how long the woken CPU has been idle (D) and
how long the waker keeps running after the wake-up (E): docs/notes/idle-wake.md.

Compiles tools/idle-wake/idlewake.c with the system C compiler (into a temporary folder), runs
it in both modes ("spin": the waker polls for the reply and never sleeps; "block": it blocks in
read(), as a ping-pong does) over the D x E grid, and writes one CSV row per point with the
host (kernel, CPU model, cpuidle driver, guest_halt_poll_ns) and the 1-minute loadavg before
each mode.  Needs 2 CPUs and a C compiler.  Bounded: each point stops after --count round
trips or --budget-ms, whichever comes first; the grid runs --reps times.  Run it on a quiet
machine (the cells of one run scatter by tens of per cent: compare repetitions).

  .venv/bin/python tools/idle-wake/idle_wake.py --out data/idle-wake/idle-wake-host.csv
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lbsim.measure import host as lbsim_host

SOURCE = Path(__file__).resolve().parent / "idlewake.c"
DELAYS_US = (0, 4, 8, 10, 12, 14, 16, 18, 20, 25, 30, 50, 100, 300)
AFTER_US = (0, 5, 10, 15, 20, 30, 50)


def _read(path: str) -> str:
    return lbsim_host._read(path) or ""


def host() -> dict[str, str]:
    """The machine, as lbsim measure's host file names it, plus its cpuidle settings."""
    return {"kernel": platform.release(), "cpu_model": lbsim_host._cpu_model() or "",
            "cpuidle_driver": _read("/sys/devices/system/cpu/cpuidle/current_driver"),
            "guest_halt_poll_ns": _read("/sys/module/haltpoll/parameters/guest_halt_poll_ns")}


def _ints(s: str, what: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise SystemExit(f"idle_wake: --{what}: expected comma-separated whole microseconds, got {s!r}")
    if not vals or any(v < 0 or v > 100000 for v in vals):
        raise SystemExit(f"idle_wake: --{what}: each value must be 0..100000 us, got {s!r}")
    return vals


def build(workdir: Path) -> Path:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise SystemExit("idle_wake: no C compiler (cc or gcc) on PATH")
    exe = workdir / "idlewake"
    r = subprocess.run([cc, "-O2", "-o", str(exe), str(SOURCE)], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"idle_wake: {cc} failed on {SOURCE}: {r.stderr.strip().splitlines()[-1:]}")
    return exe


def run(modes: tuple[str, ...], delays: tuple[int, ...], after: tuple[int, ...], count: int,
        budget_ms: int, reps: int = 1) -> list[dict[str, str]]:
    """Every (rep, mode, D, E) point as a CSV row (dict of strings); the repetitions are
    interleaved (the whole grid once per repetition)."""
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("idle_wake: needs 2 CPUs (the waker on CPU 0, the woken task on CPU 1)")
    info = host()
    rows: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="lbsim-idlewake-") as tmp:
        exe = build(Path(tmp))
        for rep, mode in ((r, m) for r in range(reps) for m in modes):
            load = _read("/proc/loadavg").split()[0]
            # a point takes at most budget_ms after 100 warm-up round trips of at most ~D+E+1 ms
            limit = len(delays) * len(after) * (budget_ms / 1000 + 100 * (max(delays) + max(after) + 1000) / 1e6) + 30
            r = subprocess.run([str(exe), mode, str(count), str(budget_ms), ",".join(map(str, delays)),
                                ",".join(map(str, after))], capture_output=True, text=True, timeout=limit)
            if r.returncode:
                raise SystemExit(f"idle_wake: {exe.name} {mode} exited {r.returncode}: {r.stderr.strip()}")
            for row in csv.DictReader(io.StringIO(r.stdout)):
                row.update(info, loadavg=load, rep=str(rep))
                rows.append(row)
    return rows


def summary(rows: list[dict[str, str]]) -> str:
    """Per mode, a D x E table of the one-way wake-up p50 (us): the median over the repetitions
    and, in brackets, their range; the last column is the median share of slow writes (over 5 us,
    the CSV's ``ipi_frac``: an expensive IPI exit; traced, fast writes send IPIs too) at the first E
    (docs/notes/idle-wake.md shows this table)."""
    import statistics

    out = []
    for mode in dict.fromkeys(r["mode"] for r in rows):
        mine = [r for r in rows if r["mode"] == mode]
        ds = list(dict.fromkeys(int(r["delay_us"]) for r in mine))
        es = list(dict.fromkeys(int(r["after_us"]) for r in mine))
        out.append(f"{mode}: one-way wake-up p50 (us), median (range) over repetitions; D rows, E columns")
        out.append("| D (us) | " + " | ".join(f"E = {e}" for e in es) + f" | slow writes, E = {es[0]} |")
        out.append("|---" * (len(es) + 2) + "|")
        for d in ds:
            cells = []
            for e in es:
                v = [int(r["oneway_p50_ns"]) / 1000 for r in mine if int(r["delay_us"]) == d and int(r["after_us"]) == e]
                cells.append(f"{statistics.median(v):.1f} ({min(v):.0f}-{max(v):.0f})" if len(v) > 1
                             else f"{v[0]:.1f}")
            ipi = statistics.median(float(r["ipi_frac"]) for r in mine
                                    if int(r["delay_us"]) == d and int(r["after_us"]) == es[0])
            out.append(f"| {d} | " + " | ".join(cells) + f" | {ipi:.2f} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="idle-wake.csv", help="the CSV to write")
    ap.add_argument("--modes", default="spin,block")
    ap.add_argument("--delays", default=",".join(map(str, DELAYS_US)), help="D: the woken CPU's idle time, us")
    ap.add_argument("--after", default=",".join(map(str, AFTER_US)), help="E: the waker's run after the write, us")
    ap.add_argument("--count", type=int, default=2000, help="round trips per point (after 100 warm-up)")
    ap.add_argument("--budget-ms", type=int, default=1000, help="time limit per point")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the whole grid")
    a = ap.parse_args(argv)
    modes = tuple(m for m in a.modes.split(",") if m)
    if not modes or any(m not in ("spin", "block") for m in modes):
        raise SystemExit(f"idle_wake: --modes: allowed spin, block; got {a.modes!r}")
    if not 1 <= a.count <= 1_000_000 or not 1 <= a.budget_ms <= 60_000 or not 1 <= a.reps <= 100:
        raise SystemExit("idle_wake: --count must be 1..1000000, --budget-ms 1..60000 and --reps 1..100")
    rows = run(modes, _ints(a.delays, "delays"), _ints(a.after, "after"), a.count, a.budget_ms, a.reps)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(summary(rows))
    print(f"wrote {len(rows)} rows to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
