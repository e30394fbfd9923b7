#!/usr/bin/env python3
"""What a wake-up onto a busy CPU costs that CPU: the host against the model.

A cross-CPU ping-pong (client on CPU 0, server on CPU 1) runs while a nice-19 spinner
(`spingaps.c`, compiled here with the system C compiler) owns CPU 1, as the harness's busy
background does. The spinner counts the time it lost between two clock reads longer than
``--thresh-ns``: each round trip takes from it the server's run, the switches to and from the
server, and whatever the guest kernel cannot see (the exits of the IPIs that reach CPU 1).
A spinner run alone, interleaved, gives the background loss (ticks, housekeeping) per second,
which is taken off. Beside them, `ipicost.c` prices one IPI alone: its spinner on CPU 1 loses, per
membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) called on CPU 0, what receiving an IPI costs a busy
CPU, with no task woken (net of the same stretch without calls), and a tgkill of a signal the spinner
takes, against one it blocks, prices sending a reschedule IPI to a running vCPU. The model's figure is CPU 1's time outside the background task per round trip
(the server's stages and the switches), from a traced simulation of the same point.

Default settings only: no knob is changed. Bounded: ``--count`` round trips per run (harness
limit 10 s), ``--reps`` interleaved repetitions. Run it on a quiet machine.

  .venv/bin/python tools/cross-cpu/busy_target.py --costs amd-epyc-v1300-2026-12-06
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import lbsim
from lbsim.measure.harness import run_harness

SOURCE = Path(__file__).resolve().parent / "spingaps.c"
IPI_SOURCE = Path(__file__).resolve().parent / "ipicost.c"
TRANSPORTS = ("unix_stream", "unix_dgram", "udp", "tcp")


def build(workdir: Path, source: Path = SOURCE) -> Path:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise SystemExit("busy_target: no C compiler (cc or gcc) on PATH")
    exe = workdir / source.stem
    r = subprocess.run([cc, "-O2", "-pthread", "-o", str(exe), str(source)], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"busy_target: {cc} failed on {source}: {r.stderr.strip().splitlines()[-1:]}")
    return exe


def _ipicost(exe: Path, mode: str, calls: int, thresh_ns: int) -> dict:
    r = subprocess.run([str(exe), mode, str(calls), "100", str(thresh_ns)], capture_output=True, text=True,
                       timeout=120)
    if r.returncode:
        raise SystemExit(f"busy_target: ipicost {mode} exited {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def ipi_receive(exe: Path, calls: int, thresh_ns: int) -> dict:
    """What one IPI takes from a busy CPU 1 (us, net of the background) and the membarrier call (us);
    with ``send_us``: what sending a reschedule IPI to a running vCPU costs the sender (tgkill of a
    signal the spinner takes, less tgkill of one it blocks)."""
    out = ipi_from(_ipicost(exe, "membarrier", calls, thresh_ns))
    signal_p50 = _ipicost(exe, "signal", calls, thresh_ns)["call_p50_ns"]
    blocked_p50 = _ipicost(exe, "blocked", calls, thresh_ns)["call_p50_ns"]
    out["send_us"] = (signal_p50 - blocked_p50) / 1e3
    return out


def ipi_from(d: dict) -> dict:
    """ipicost's JSON line -> what one IPI costs: the spinner's loss while the calls ran, less the
    background's rate over the same time, per call."""
    bg, on, calls = d["background"], d["with_calls"], d["calls"]
    scale = on["elapsed_ns"] / bg["elapsed_ns"]
    return {"lost_us_per_ipi": (on["gap_ns"] - bg["gap_ns"] * scale) / calls / 1e3,
            "gaps_per_ipi": (on["gaps"] - bg["gaps"] * scale) / calls, "call_p50_us": d["call_p50_ns"] / 1e3}


def _spinner(exe: Path, seconds: float, thresh_ns: int) -> subprocess.Popen:
    """The spinner on CPU 1, once it says it is pinned and catches SIGTERM."""
    p = subprocess.Popen([str(exe), "1", str(seconds), str(thresh_ns)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    if p.stdout.readline().strip() != "ready":
        p.kill()
        raise SystemExit("busy_target: spingaps did not start (pinning to CPU 1 or nice failed)")
    return p


def _stop(p: subprocess.Popen, wait: bool = False) -> dict:
    """The spinner's result: at once (SIGTERM), or once its time is up (``wait``)."""
    if not wait and p.poll() is None:
        p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=700)
    if p.returncode:
        raise SystemExit(f"busy_target: spingaps exited {p.returncode}")
    return json.loads(out)


def gap_p50_us(s: dict) -> float:
    """The median gap length (us) from the spinner's histogram."""
    hist, half, seen = s["hist"], s["gaps"] / 2, 0
    for i, n in enumerate(hist):
        seen += n
        if seen >= half:
            return (i + 0.5) * s["bin_ns"] / 1e3
    return float("nan")


def host_point(exe: Path, transport: str, size: int, count: int, thresh_ns: int, base_rate: float) -> dict:
    """One ping-pong beside the spinner: CPU 1's loss per round trip, net of the background's."""
    warmup = 200
    spin = _spinner(exe, 30.0, thresh_ns)
    try:
        res = run_harness(transport, "pingpong", size, count, warmup, 0, 1, max_seconds=10)
    finally:
        s = _stop(spin)
    rts = count + warmup
    lost = s["gap_ns"] - base_rate * s["elapsed_ns"]
    return {"lost_us_per_rt": lost / rts / 1e3, "gaps_per_rt": s["gaps"] / rts, "gap_p50_us": gap_p50_us(s),
            "rtt_p50_us": float(res["p50_ns"]) / 1e3 if "p50_ns" in res else float("nan")}


def model_point(transport: str, size: int, costs: str) -> dict:
    """CPU 1's time outside the background spinner per round trip, with its largest stages."""
    r = lbsim.simulate(transport=transport, workload="pingpong", msg_bytes=size, placement="cross",
                       background=[1], messages=2000, costs=costs, seed=1, trace=True)
    per: dict[str, float] = defaultdict(float)
    for _msg, stage, cpu, ctx, start, end, _kind in r.trace or ():
        if cpu == 1:
            per[stage] += end - start
    n = r.latency_ns["count"] or 1
    return {"lost_us_per_rt": sum(per.values()) / n / 1e3, "rtt_p50_us": r.latency_ns["p50"] / 1e3,
            "top": sorted(((s, ns / n / 1e3) for s, ns in per.items()), key=lambda x: -x[1])[:5]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--transports", default=",".join(TRANSPORTS))
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--count", type=int, default=20000, help="round trips per run (after 200 warm-up)")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    ap.add_argument("--thresh-ns", type=int, default=300, help="a gap between two clock reads longer than this")
    ap.add_argument("--costs", default="", help="a profile to simulate the same points with")
    a = ap.parse_args(argv)
    transports = [t for t in a.transports.split(",") if t]
    if not transports or any(t not in TRANSPORTS for t in transports):
        raise SystemExit(f"busy_target: --transports: allowed {', '.join(TRANSPORTS)}; got {a.transports!r}")
    if not 1 <= a.count <= 200000 or not 1 <= a.reps <= 20 or not 50 <= a.thresh_ns <= 100000:
        raise SystemExit("busy_target: --count must be 1..200000, --reps 1..20, --thresh-ns 50..100000")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("busy_target: needs 2 CPUs")
    print(f"loadavg before: {open('/proc/loadavg').read().split()[:3]}")
    rows: dict[str, list[dict]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="lbsim-spingaps-") as tmp:
        exe = build(Path(tmp))
        ipi_exe = build(Path(tmp), IPI_SOURCE)
        for rep in range(a.reps):
            ipi = ipi_receive(ipi_exe, 5000, a.thresh_ns)
            rows["ipi"].append(ipi)
            print(f"rep {rep}: one IPI takes {ipi['lost_us_per_ipi']:.2f} us from busy CPU 1 "
                  f"({ipi['gaps_per_ipi']:.2f} extra gaps per IPI); membarrier call p50 {ipi['call_p50_us']:.2f} us; "
                  f"sending a reschedule IPI {ipi['send_us']:.2f} us")
            base = _stop(_spinner(exe, 1.0, a.thresh_ns), wait=True)
            rate = base["gap_ns"] / base["elapsed_ns"]
            print(f"rep {rep}: spinner alone loses {rate * 100:.2f} % of CPU 1 "
                  f"({base['gaps'] / base['elapsed_ns'] * 1e9:.0f} gaps/s, p50 {gap_p50_us(base):.2f} us)")
            for tr in transports:
                pt = host_point(exe, tr, a.size, a.count, a.thresh_ns, rate)
                rows[tr].append(pt)
                print(f"  {tr:11s} {a.size} B: CPU 1 loses {pt['lost_us_per_rt']:.2f} us per round trip in "
                      f"{pt['gaps_per_rt']:.2f} gaps (p50 {pt['gap_p50_us']:.2f} us); rtt p50 {pt['rtt_p50_us']:.1f} us")
    print(f"loadavg after: {open('/proc/loadavg').read().split()[:3]}")
    v = [r["lost_us_per_ipi"] for r in rows["ipi"]]
    w = [r["send_us"] for r in rows["ipi"]]
    print(f"\none IPI on a busy CPU: {statistics.median(v):.2f} us ({min(v):.2f}-{max(v):.2f}); sending one to "
          f"a running vCPU {statistics.median(w):.2f} us ({min(w):.2f}-{max(w):.2f})")
    print("median over repetitions (range) | model")
    for tr in transports:
        v = [r["lost_us_per_rt"] for r in rows[tr]]
        line = f"{tr:11s} host {statistics.median(v):6.2f} us ({min(v):.2f}-{max(v):.2f})"
        if a.costs:
            m = model_point(tr, a.size, a.costs)
            line += (f" | model {m['lost_us_per_rt']:6.2f} us (rtt p50 {m['rtt_p50_us']:.1f}): "
                     + ", ".join(f"{s} {us:.2f}" for s, us in m["top"]))
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
