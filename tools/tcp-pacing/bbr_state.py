#!/usr/bin/env python3
"""BBR's state on the host's sender against the model's, on a 64 KiB TCP stream over lo.

Why: the model fires TCP's pacing timer a quarter too often on one CPU and never across CPUs, where the
host fires it 0.3-0.4 times per message (docs/notes/hrtimer-cost.md). The pacing rate is BBR's bandwidth
estimate times its gain, so this reads both sides' view of it.

Host: the harness's stream (writer on CPU 0, reader on CPU 0 or 1, default settings, no knob changed) runs
for ``--seconds``; in its middle ``ss -tin`` is read ``--samples`` times and the sender's line parsed
(``cwnd``, ``rtt``, ``minrtt``, ``pacing_rate``, ``delivery_rate``, ``bbr:(bw, mrtt, pacing_gain,
cwnd_gain)``). Placements are interleaved, ``--reps`` times. Model: the same stream simulated with
``--costs``, bbr and the host's ``tcp_rmem``, its sender's state read at the end.

  .venv/bin/python tools/tcp-pacing/bbr_state.py --costs amd-epyc-v1300-2026-12-06
  .venv/bin/python tools/tcp-pacing/bbr_state.py --tcp-rmem "4096 16384 65536" --placement cross

``--tcp-rmem`` runs the host's stream in a private network namespace with that ``tcp_rmem`` (as
``lbsim measure --knobs`` sets it; it dies with the run) and reads ``ss`` in that namespace; the model
gets the same value. Root.

Bounded: each harness run stops after ``--seconds`` + 30 s; ``--samples`` <= 50.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lbsim.measure.harness import build_harness, harness_argv  # noqa: E402
from lbsim.measure.netns_run import netns_argv  # noqa: E402

DEFAULT_RMEM = (4096, 131072, 33554432)

FIELDS = {
    "cwnd": r"\bcwnd:(\d+)", "rtt_us": r"\brtt:([\d.]+)/", "minrtt_us": r"\bminrtt:([\d.]+)",
    "pacing_rate": r"\bpacing_rate (\S+)", "delivery_rate": r"\bdelivery_rate (\S+)",
    "bbr_bw": r"bbr:\(bw:(\S+?),", "bbr_mrtt_us": r"mrtt:([\d.]+)", "pacing_gain": r"pacing_gain:([\d.]+)",
    "cwnd_gain": r"cwnd_gain:([\d.]+)", "bytes_sent": r"\bbytes_sent:(\d+)", "ssthresh": r"\bssthresh:(\d+)",
    "bytes_retrans": r"\bbytes_retrans:(\d+)",
}
UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}


def _bps(s: str) -> float:
    """ss's rates ('12.3Gbps', '800Mbps', '5.1Gbps') in bytes/s."""
    m = re.match(r"([\d.]+)([KMG]?)bps", s)
    return float(m.group(1)) * UNITS[m.group(2)] / 8 if m else float("nan")


def _sender(ss_out: str) -> dict[str, float] | None:
    """The line of the socket that has sent the most bytes (the stream's writer)."""
    best = None
    for block in re.split(r"\n(?=ESTAB)", ss_out):
        if "bbr" not in block or "127.0.0.1" not in block:
            continue
        row: dict[str, float] = {}
        for k, pat in FIELDS.items():
            m = re.search(pat, block)
            if m:
                v = m.group(1)
                # rates in bytes/s; ss prints times in ms, kept here in us
                row[k] = (_bps(v) if k in ("pacing_rate", "delivery_rate", "bbr_bw")
                          else 1000 * float(v) if k.endswith("_us") else float(v))
        if best is None or row.get("bytes_sent", 0) > best.get("bytes_sent", 0):
            best = row
    return best


def host(placement: str, seconds: float, samples: int, at_ms: list[float] | None = None,
         tcp_rmem: tuple[int, int, int] | None = None) -> list[dict[str, float]]:
    """The sender's ss lines: ``samples`` spread over the middle third of the run, or one at each of
    ``at_ms`` (ms from the start, each row then carries its ``at_ms``); with ``tcp_rmem`` the run
    and ``ss`` in a private network namespace."""
    exe = build_harness()
    argv = harness_argv("tcp", "stream", 65536, 10_000_000, 100, 0, 0 if placement == "same" else 1, seconds, (),
                        "other")
    cmd, executable, ss = argv, str(exe), ["ss", "-tin"]
    if tcp_rmem is not None:
        cmd = netns_argv({"sysctl": {"net.ipv4.tcp_rmem": " ".join(map(str, tcp_rmem))}}, str(exe), argv)
        executable = None
    out = []
    with tempfile.TemporaryDirectory(prefix="lbsim-bbr-") as td:
        p = subprocess.Popen(cmd, executable=executable, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={"TMPDIR": td, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        if tcp_rmem is not None:  # unshare execs in the new namespace: its pid names it
            ss = ["nsenter", "-t", str(p.pid), "-n", "ss", "-tin"]
        try:
            t0 = time.monotonic()
            when = [ms / 1000 for ms in at_ms] if at_ms else [seconds / 3 * (1 + i / samples) for i in range(samples)]
            for w in when:
                time.sleep(max(0.0, t0 + w - time.monotonic()))
                r = subprocess.run(ss, capture_output=True, text=True, timeout=10)
                s = _sender(r.stdout.replace("\n\t", " "))
                if s:
                    out.append({"at_ms": round(w * 1000), **s} if at_ms else s)
        finally:
            p.communicate(timeout=seconds + 30)
    return out


def model(placement: str, costs: str, tcp_rmem: tuple[int, int, int] = DEFAULT_RMEM) -> dict[str, float]:
    import lbsim
    from lbsim.model import tcp_cc, tcp_pacing

    seen: list = []
    socks: list = []
    fires = [0]
    init, pinit, timer = tcp_cc.Bbr.__init__, tcp_pacing.TcpPacing._init_pacing, tcp_pacing._PaceTimer.timer

    def bbr_init(self, *a, **k):  # type: ignore[no-untyped-def]
        init(self, *a, **k)
        seen.append(self)

    def pace_init(self):  # type: ignore[no-untyped-def]
        pinit(self)
        socks.append(self)

    def fired(self, *a):  # type: ignore[no-untyped-def]
        fires[0] += 1
        return timer(self, *a)

    tcp_cc.Bbr.__init__, tcp_pacing.TcpPacing._init_pacing, tcp_pacing._PaceTimer.timer = bbr_init, pace_init, fired
    try:
        r = lbsim.simulate(transport="tcp", workload="stream", msg_bytes=65536, messages=4000, placement=placement,
                           costs=costs, seed=1, tcp_congestion_control="bbr", tcp_rmem=tcp_rmem)
    finally:
        tcp_cc.Bbr.__init__, tcp_pacing.TcpPacing._init_pacing, tcp_pacing._PaceTimer.timer = init, pinit, timer
    b = seen[0]
    s = socks[0]
    mss = s.mss()
    modes = ("STARTUP", "DRAIN", "PROBE_BW", "PROBE_RTT")
    return {"throughput_Bps": r.throughput["bytes_per_s"], "mode": modes[b.mode],
            "pacing_rate": b.pacing_rate, "bbr_bw": b.bw.get() * mss * 1e6, "min_rtt_us": b.min_rtt_us,
            "pacing_gain": b.pacing_gain, "full_bw_reached": b.full_bw_reached, "full_bw_cnt": b.full_bw_cnt,
            "rtt_cnt": b.rtt_cnt, "ssthresh": b.ssthresh, "cwnd": getattr(s, "cwnd", float("nan")),
            "snd_wnd": s.snd_wnd, "mss": mss,
            "pacing_timers_per_msg": fires[0] / 4000}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--costs", default="amd-epyc-v1300-2026-12-06")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--no-model", action="store_true")
    ap.add_argument("--placement", choices=("same", "cross", "both"), default="both")
    ap.add_argument("--tcp-rmem", help='e.g. "4096 16384 65536": set in a private network namespace (root)')
    ap.add_argument("--at-ms", help="comma-separated sample times (ms from the start) instead of the middle third: "
                    "one row per sample, e.g. 30,60,90,120,300,600 with --seconds 1")
    a = ap.parse_args()
    if not (0 < a.seconds <= 30 and 1 <= a.samples <= 50 and 1 <= a.reps <= 10):
        ap.error("--seconds in (0, 30], --samples 1..50, --reps 1..10")
    print(f"loadavg before: {Path('/proc/loadavg').read_text().strip()}")
    at = [float(x) for x in a.at_ms.split(",")] if a.at_ms else None
    rmem = tuple(int(x) for x in a.tcp_rmem.split()) if a.tcp_rmem else None
    if rmem is not None and len(rmem) != 3:
        ap.error("--tcp-rmem: three numbers, min default max")
    places = ("same", "cross") if a.placement == "both" else (a.placement,)
    if at and not all(0 < x < 1000 * a.seconds for x in at):
        ap.error("--at-ms: each time must fall inside the run (0, --seconds)")
    for rep in range(a.reps):
        for pl in places:
            rows = host(pl, a.seconds, a.samples, at, rmem)
            if at:
                for row in rows:
                    print(json.dumps({"side": "host", "placement": pl, "rep": rep, **row}))
                continue
            med = {k: statistics.median(r[k] for r in rows if k in r) for k in FIELDS if any(k in r for r in rows)}
            print(json.dumps({"side": "host", "placement": pl, "rep": rep, "samples": len(rows), **med}))
    if not a.no_model:
        for pl in places:
            print(json.dumps({"side": "model", "placement": pl, **model(pl, a.costs, rmem or DEFAULT_RMEM)},
                             default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
