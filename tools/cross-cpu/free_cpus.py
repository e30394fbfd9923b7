#!/usr/bin/env python3
"""Which CPU frees a stream's skbs over lo, and from where: the reader's, or the writer's
(``skb_attempt_defer_free`` hands a consumed skb back to the CPU that allocated it, which frees it
in ``skb_defer_free_flush`` at its next ``net_rx_action``).

Counting only: a private ftrace instance with ``skb:consume_skb`` and ``skb:kfree_skb`` (their
``location`` is the caller), split by CPU and caller, around one C-harness stream per transport and
placement (writer on CPU 0; reader on CPU 1 across, on 0 alike).  No knob changed.  Needs root.
docs/notes/udp-defer-free.md uses it for UDP, whose reader defers the free from 6.18.

Usage:  python tools/cross-cpu/free_cpus.py [--transports udp,tcp] [--size 1024] [--count 20000]
"""

from __future__ import annotations

import argparse
import collections
import re
import sys

from lbsim.measure.harness import run_harness
from lbsim.measure.stages_parse import text_events
from lbsim.measure.stages_tracefs import event_trace

_LOC = re.compile(r"\blocation=([^\s+]+)")
MIN_SHARE = 0.005  # leave out (cpu, event, caller) rows rarer than this per message


def free_counts(text: str, msgs: int) -> dict[str, float]:
    """Per message: skb frees by ``cpuN event caller`` in an ftrace listing (rows rarer than
    MIN_SHARE left out)."""
    n: collections.Counter[tuple[int, str, str]] = collections.Counter()
    for cpu, _, ev, fields in text_events(text):
        m = _LOC.search(fields)
        n[(cpu, ev, m.group(1) if m else "?")] += 1
    return {f"cpu{c} {e} {loc}": round(v / msgs, 3) for (c, e, loc), v in sorted(n.items()) if v / msgs > MIN_SHARE}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transports", default="udp,tcp")
    ap.add_argument("--placements", default="cross,same")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=1, help="rounds over every transport and placement")
    args = ap.parse_args()
    with event_trace([("skb", "consume_skb", None), ("skb", "kfree_skb", None)], buffer_size_kb=65536) as tr:
        for _ in range(args.reps):
            for t in args.transports.split(","):
                for pl in args.placements.split(","):
                    r, text = tr.around(lambda t=t, pl=pl: run_harness(t, "stream", args.size, args.count, 0, 0,
                                                                        1 if pl == "cross" else 0, max_seconds=5))
                    msgs = r.get("received") or args.count
                    print(f"{t} {pl} {args.size} B: {r.get('throughput_Bps', 0) / 1e6:.0f} MB/s, frees per message "
                          f"received: {free_counts(text, msgs)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
