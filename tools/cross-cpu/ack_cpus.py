#!/usr/bin/env python3
"""Which CPU sends a TCP stream's pure ACKs over lo: the writer's (the data segment's own softirq,
``__tcp_ack_snd_check`` in ``tcp_rcv_established``) or the reader's (``tcp_cleanup_rbuf`` after a read).

Counting only: a private ftrace instance with ``net:net_dev_xmit`` on lo, split by CPU and by length (a
pure ACK with timestamps is 66 bytes on lo; data segments are longer), around one C-harness stream run,
writer on CPU 0 and reader on CPU 1, with ``--sndbuf`` as SO_SNDBUF (a socket option: no knob changed).
Needs root.  docs/notes/idle-polling.md uses it for the SO_SNDBUF=1 stream.

Usage:  python tools/cross-cpu/ack_cpus.py [--sizes 1024] [--sndbufs 0,1,4096] [--count 20000]
"""

from __future__ import annotations

import argparse
import collections
import re
import sys

from lbsim.measure.harness import run_harness
from lbsim.measure.stages_parse import text_events
from lbsim.measure.stages_tracefs import event_trace

_LO_LEN = re.compile(r"\bdev=lo\b.*?\blen=(\d+)")
ACK_MAX_LEN = 100  # a pure ACK: 14 (Ethernet) + 20 (IP) + 32 (TCP with timestamps) = 66 bytes


def counts(text: str) -> collections.Counter[tuple[int, str]]:
    """(cpu, "ack" or "data") -> packets sent on lo."""
    n: collections.Counter[tuple[int, str]] = collections.Counter()
    for cpu, _, ev, fields in text_events(text):
        m = _LO_LEN.search(fields) if ev == "net_dev_xmit" else None
        if m:
            n[(cpu, "ack" if int(m.group(1)) <= ACK_MAX_LEN else "data")] += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1024")
    ap.add_argument("--sndbufs", default="0,1,4096", help="SO_SNDBUF values (0: not set)")
    ap.add_argument("--count", type=int, default=20000)
    args = ap.parse_args()
    with event_trace([("net", "net_dev_xmit", None)], buffer_size_kb=65536) as tr:
        for size in (int(x) for x in args.sizes.split(",")):
            for sb in (int(x) for x in args.sndbufs.split(",")):
                r, text = tr.around(lambda z=size, b=sb: run_harness("tcp", "stream", z, args.count, 200, 0, 1,
                                                                     max_seconds=10, sndbuf=b))
                n = counts(text)
                msgs = args.count + 200
                per = {f"cpu{c} {k}": round(v / msgs, 3) for (c, k), v in sorted(n.items())}
                print(f"tcp stream {size} B sndbuf {sb}: writer sleeps/msg {r.get('sleeps_per_msg_sender')}, "
                      f"reader {r.get('sleeps_per_msg_receiver')}; packets per message: {per}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
