#!/usr/bin/env python3
"""TCP segments and pure ACKs per message of a stream over lo, host against model.

Counting only: /proc/net/snmp (Tcp OutSegs) and /proc/net/netstat (TcpExt TCPHPAcks + TCPPureAcks,
the pure ACKs received: on lo, the pure ACKs sent; TCPOFOQueue, segments queued out of order) around
one C-harness stream run, writer on CPU 0, reader on CPU 1 (or both on 0), against the model's
tcp_data_packets, tcp_pure_acks and tcp_ofo_queued.  How often the reader ACKs decides how much work
lands on its CPU (docs/notes/knob-effects.md).  No knob changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lbsim
from lbsim.measure.harness import run_harness
from lbsim.measure.netns_run import parse_snmp


def _counts() -> tuple[int, int, int]:
    tcp = parse_snmp(Path("/proc/net/snmp").read_text())
    ext = parse_snmp(Path("/proc/net/netstat").read_text())
    return (tcp["Tcp.OutSegs"], ext.get("TcpExt.TCPHPAcks", 0) + ext.get("TcpExt.TCPPureAcks", 0),
            ext.get("TcpExt.TCPOFOQueue", 0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64,1024,4096")
    ap.add_argument("--placements", default="cross,same")
    ap.add_argument("--costs", default="auto")
    ap.add_argument("--count", type=int, default=100000)
    args = ap.parse_args()
    for pl in args.placements.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            o0, a0, q0 = _counts()
            r = run_harness("tcp", "stream", size, args.count, 0, 0, 1 if pl == "cross" else 0, max_seconds=3)
            o1, a1, q1 = _counts()
            msgs = r["received"] or args.count
            acks = a1 - a0
            data = (o1 - o0) - acks
            sim = lbsim.simulate(transport="tcp", workload="stream", msg_bytes=size, messages=20000, placement=pl,
                                 costs=args.costs, seed=1)
            c = sim.counters
            n = c["messages_sent"]
            print(f"tcp {pl:5s} {size:6d} B  host: data segs/msg {data / msgs:.3f}, pure ACKs/msg {acks / msgs:.3f}"
                  f", out-of-order queued/msg {(q1 - q0) / msgs:.4f} | model: {c['tcp_data_packets'] / n:.3f}, "
                  f"{c['tcp_pure_acks'] / n:.3f}, {c['tcp_ofo_queued'] / n:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
