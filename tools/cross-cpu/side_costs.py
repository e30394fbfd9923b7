"""What one call costs on each side of a one-way stream, on one CPU and across CPUs (docs/notes/cross-cpu.md).

Runs ``sidecost.c`` (compiled here with the system C compiler) for each transport, placement and size, REPS
interleaved repetitions, and prints the median over repetitions of: each side's median call time among the calls
under 5 us (a call that sleeps or takes an expensive IPI exit is longer), the share of longer calls, voluntary
context switches per write, and the throughput.  With ``--costs FILE`` (or ``default``) it prints the model's
figures for the same points beside them: each side's median CPU time per message from the trace (the writer's
side holds the softirq work of its CPU, as the host's write call does on loopback), the share of messages whose
side took 5 us or more, and blocked writes per write.

Usage (on a quiet machine):  python tools/cross-cpu/side_costs.py [--reps 3] [--costs FILE] [--out CSV]
"""
from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from lbsim.measure.host import _loadavg, host_info

HERE = Path(__file__).resolve().parent
TRANSPORTS = ("tcp", "udp", "unix_stream", "unix_dgram")
SIZES = (1024, 4096, 16384, 65536)
KEYS = ("w_fast_p50", "w_slow_frac", "r_fast_p50", "r_slow_frac", "w_nvcsw_per_write", "MBps")


def count_for(size: int) -> int:
    return 20000 if size <= 16384 else 5000


def build(workdir: Path) -> Path:
    exe = workdir / "sidecost"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(HERE / "sidecost.c")], check=True)
    return exe


def parse(out: str, count: int) -> dict[str, float]:
    row: dict[str, float] = {}
    for ln in out.splitlines():
        f = ln.split()
        if f and f[0] in ("writer", "reader"):
            kv = dict(zip(f[1::2], f[2::2]))
            s = f[0][0]
            row[f"{s}_fast_p50"] = float(kv["fast_p50"]) / 1000
            row[f"{s}_slow_frac"] = float(kv["slow_frac"])
            if s == "w":
                row["w_nvcsw_per_write"] = float(kv["nvcsw"]) / count
        elif f and f[0] == "throughput_MBps":
            row["MBps"] = float(f[1])
    return row


def measure(exe: Path, reps: int, sizes: tuple[int, ...]) -> list[dict]:
    rows = []
    for rep in range(reps):
        for n in sizes:
            for tr in TRANSPORTS:
                if tr == "udp" and n > 16384:
                    continue  # 65536 B does not fit a UDP datagram
                for pl, (cw, cr) in (("same", (0, 0)), ("cross", (0, 1))):
                    load = _loadavg()
                    p = subprocess.run([str(exe), tr, str(n), str(count_for(n)), str(cw), str(cr)],
                                       capture_output=True, text=True, check=True, timeout=120)
                    rows.append(dict(parse(p.stdout, count_for(n)), transport=tr, placement=pl, msg_bytes=n,
                                     rep=rep, loadavg=load[0] if load else ""))
    return rows


def model_row(costs: str, tr: str, pl: str, n: int) -> dict[str, float]:
    from lbsim.costs import load_costs
    from lbsim.simulate import simulate

    msgs = 4000
    r = simulate(dict(transport=tr, workload="stream", placement=pl, msg_bytes=n, messages=msgs, seed=1),
                 costs=load_costs(costs), trace=True)
    df = r.trace_frame()
    df["dur"] = df.end_ns - df.start_ns
    reader = df.context.str.startswith("server")
    per_w = df[~reader].groupby("msg").dur.sum() / 1000
    per_r = df[reader].groupby("msg").dur.sum() / 1000
    c = r.counters
    return {"w_fast_p50": float(per_w[per_w < 5].median()), "w_slow_frac": float((per_w >= 5).mean()),
            "r_fast_p50": float(per_r[per_r < 5].median()), "r_slow_frac": float((per_r >= 5).mean()),
            "w_nvcsw_per_write": c["sender_blocked_count"] / msgs, "MBps": r.throughput["bytes_per_s"] / 1e6}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--costs", help="also simulate each point with this cost file ('default': the shipped one)")
    ap.add_argument("--out", help="write every repetition's row to this CSV")
    a = ap.parse_args(argv)
    sizes = tuple(int(s) for s in a.sizes.split(","))
    info = host_info()
    print(f"# host: {info.get('kernel')}, {info.get('cpu_model')}, loadavg before {_loadavg()}")
    with tempfile.TemporaryDirectory() as d:
        rows = measure(build(Path(d)), a.reps, sizes)
    if a.out:
        with open(a.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["transport", "placement", "msg_bytes", "rep", "loadavg", *KEYS])
            w.writeheader()
            w.writerows(rows)
    print("transport   place  bytes | host: write us, slow | read us, slow | blocks/write | MB/s"
          + (" || model: the same" if a.costs else ""))
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["transport"], r["placement"], r["msg_bytes"]), []).append(r)
    for (tr, pl, n), rs in groups.items():
        med = {k: statistics.median(r[k] for r in rs) for k in KEYS}
        line = (f"{tr:11s} {pl:5s} {n:6d} | {med['w_fast_p50']:5.2f} {med['w_slow_frac']:5.3f} | "
                f"{med['r_fast_p50']:5.2f} {med['r_slow_frac']:5.3f} | {med['w_nvcsw_per_write']:6.3f} | "
                f"{med['MBps']:6.0f}")
        if a.costs:
            m = model_row(a.costs, tr, pl, n)
            line += (f" || {m['w_fast_p50']:5.2f} {m['w_slow_frac']:5.3f} | {m['r_fast_p50']:5.2f} "
                     f"{m['r_slow_frac']:5.3f} | {m['w_nvcsw_per_write']:6.3f} | {m['MBps']:6.0f}")
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
