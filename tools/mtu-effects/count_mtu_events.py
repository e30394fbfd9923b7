#!/usr/bin/env python3
"""Count TCP events of a short harness stream over lo at several lo MTUs, each in a private netns.

Counting only (no timing, no host sysctl or host lo touched): every run goes through
lbsim.measure.netns_run (a private network namespace whose own lo gets the MTU; the host's
tcp_rmem/tcp_wmem are copied in, as knob_run.py does), while a private ftrace instance
(kernel/trace/trace_events_filter.c filters) records the pacing hrtimer (``tcp_pace_kick``),
the delayed-ACK timer (``tcp_delack_timer``) armed and expired, ``tcp:tcp_probe`` (one line
per skb through ``tcp_rcv_established``: data at the receiver, ACKs at the sender),
``tcp:tcp_rcv_space_adjust``, ``tcp:tcp_rcvbuf_grow`` and ``tcp:tcp_retransmit_skb``.  The
instance is removed on exit and on error.  Needs root.  Evidence for docs/notes/mtu-effects.md.

    nice -n 10 .venv/bin/python tools/mtu-effects/count_mtu_events.py --mtus 65536,16436,9000,1500
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

from lbsim.measure.harness import PROGRAM_NAME, build_harness
from lbsim.measure.netns_run import netns_argv
from lbsim.measure.stages_tracefs import event_trace

EVENTS = {
    ("timer", "hrtimer_expire_entry"): "function.function == tcp_pace_kick",
    ("timer", "timer_start"): "function.function == tcp_delack_timer",
    ("timer", "timer_expire_entry"): "function.function == tcp_delack_timer",
    ("tcp", "tcp_probe"): None,
    ("tcp", "tcp_rcv_space_adjust"): None,
    ("tcp", "tcp_rcvbuf_grow"): None,
    ("tcp", "tcp_retransmit_skb"): None,
}
PROBE = re.compile(r"tcp_probe: .*data_len=(\d+) .*snd_cwnd=(\d+) ssthresh=(\d+) snd_wnd=(\d+) "
                   r"srtt=(\d+) rcv_wnd=(\d+)")


def summarize(text: str) -> dict:
    """Event counts, and from tcp_probe: data skbs (receiver) and ACKs (sender), the zero-window
    ACKs, medians of the sender's cwnd / ssthresh / srtt (us) and of the receiver's rcv_wnd."""
    n: collections.Counter = collections.Counter()
    cwnd: list[int] = []
    ssth: list[int] = []
    srtt: list[int] = []
    rwnd: list[int] = []
    sizes: collections.Counter[int] = collections.Counter()
    zero = 0
    for ln in text.splitlines():
        if ln.startswith("#"):
            continue
        m = re.search(r" (\w+): ", ln)
        if m:
            n[m.group(1)] += 1
        p = PROBE.search(ln)
        if not p:
            continue
        d, cw, ss, sw, rtt, rw = map(int, p.groups())
        if d == 0:
            n["acks"] += 1
            zero += sw == 0
            cwnd.append(cw)
            ssth.append(ss)
            srtt.append(rtt)
        else:
            n["data_skbs"] += 1
            rwnd.append(rw)
            sizes[d] += 1

    def med(xs: list) -> float | None:
        return statistics.median(xs) if xs else None
    return {"counts": dict(n), "zero_window_acks": zero, "cwnd": med(cwnd), "ssthresh": med(ssth),
            "srtt_us": med(srtt), "rcv_wnd": med(rwnd), "data_len_top": sizes.most_common(3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mtus", default="65536,16436,9000,1500")
    ap.add_argument("--size", type=int, default=65536)
    ap.add_argument("--count", type=int, default=4000)
    ap.add_argument("--cpu-b", default="0", help="receiver CPU (sender on 0): 0 = same CPU")
    a = ap.parse_args()
    exe = str(build_harness())
    rmem = " ".join(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split())
    wmem = " ".join(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split())
    with event_trace([(sub, ev, flt) for (sub, ev), flt in EVENTS.items()], buffer_size_kb=32768) as tr:
        for mtu in (int(x) for x in a.mtus.split(",")):
            argv = [PROGRAM_NAME, "--transport", "tcp", "--workload", "stream", "--size", str(a.size),
                    "--count", str(a.count), "--warmup", "100", "--cpu-a", "0", "--cpu-b", a.cpu_b,
                    "--max-seconds", "4"]
            knobs = {"mtu": mtu, "sysctl": {"net.ipv4.tcp_rmem": rmem, "net.ipv4.tcp_wmem": wmem}}
            p, text = tr.around(lambda argv=argv, knobs=knobs: subprocess.run(
                netns_argv(knobs, exe, argv), capture_output=True, text=True, timeout=60))
            r = json.loads(p.stdout.strip().splitlines()[-1])
            print(json.dumps({"mtu": mtu, "size": a.size, "cpu_b": a.cpu_b,
                              "messages": r.get("received") or r.get("count"),
                              "sleeps_sender": r.get("sleeps_per_msg_sender"),
                              "sleeps_receiver": r.get("sleeps_per_msg_receiver"),
                              "counters": r.get("counters"), **summarize(text)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
