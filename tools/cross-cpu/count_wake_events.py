#!/usr/bin/env python3
"""Count scheduler, IPI and idle events per round trip (or message) of short cross-CPU runs.

Counting only (no timing, no sysctl touched): a private ftrace instance with the events below,
one C-harness run per transport (64 B ping-pong, CPUs 0 and 1), the lines counted per CPU and the
instance removed (also on error).  Needs root.  Asks why one transport's cross-CPU round trip
costs more than another's: a second sleep, an extra IPI or idle exit per round trip shows here.
"""

from __future__ import annotations

import argparse
import collections
import sys

from lbsim.measure.harness import run_harness
from lbsim.measure.stages_parse import text_events
from lbsim.measure.stages_tracefs import event_trace

EVENTS = (("sched", "sched_switch"), ("sched", "sched_wakeup"), ("sched", "sched_wake_idle_without_ipi"),
          ("ipi", "ipi_send_cpu"), ("irq_vectors", "call_function_single_entry"),
          ("irq_vectors", "reschedule_entry"), ("power", "cpu_idle"), ("timer", "hrtimer_start"),
          ("irq_vectors", "local_timer_entry"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transports", default="unix_stream,unix_dgram,udp,tcp")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--flows", type=int, default=1, help="concurrent ping-pong flows (harness --flows)")
    ap.add_argument("--workload", default="pingpong", choices=("pingpong", "stream"),
                    help="stream: per message written, with the writer on CPU 0 and the reader on CPU 1")
    ap.add_argument("--busy", action="store_true", help="a nice-19 spinner on CPU 1 (the peer's), as cross/busy")
    ap.add_argument("--sizes", default=None, help="several message sizes (comma-separated; overrides --size)")
    ap.add_argument("--dump", type=int, default=0, metavar="N",
                    help="also print N trace lines from the middle of each run (a timeline to read)")
    args = ap.parse_args()
    with event_trace([(s, e, None) for s, e in EVENTS], buffer_size_kb=32768) as tr:
        print("events:", " ".join(e for _, e, _ in tr.events))
        sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else [args.size]
        for t, size in ((t, z) for t in args.transports.split(",") for z in sizes):
            r, text = tr.around(lambda t=t, z=size: run_harness(t, args.workload, z, args.count, 200, 0, 1,
                                                                 max_seconds=5, flows=args.flows,
                                                                 busy_cpus=(1,) if args.busy else ()))
            n: collections.Counter[tuple[int, str]] = collections.Counter()
            for cpu, _, ev, fields in text_events(text):
                if ev == "cpu_idle":
                    ev += "(exit)" if "state=4294967295" in fields else "(enter)"
                n[(cpu, ev)] += 1
            msgs = (args.count + 200) * args.flows
            if args.dump:
                body = [ln for ln in text.splitlines() if not ln.startswith("#")]
                mid = len(body) // 2
                print("\n".join(body[mid:mid + args.dump]))
            per = {f"cpu{c} {e}": round(v / msgs, 2) for (c, e), v in sorted(n.items())}
            what = (f"p50 {r.get('p50_ns')} ns, per round trip" if args.workload == "pingpong" else
                    f"{r.get('throughput_Bps', 0) / 1e6:.0f} MB/s, sleeps/msg writer {r.get('sleeps_per_msg_sender')} "
                    f"reader {r.get('sleeps_per_msg_receiver')}, per message")
            print(f"{t} {args.workload}{' busy' if args.busy else ''} {size} B flows={args.flows}: {what}: {per}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
