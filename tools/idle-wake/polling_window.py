#!/usr/bin/env python3
"""How long a CPU that has just gone idle can be woken without an IPI (the idle-entry polling window).

``do_idle`` (kernel/sched/idle.c) sets TIF_POLLING_NRFLAG at idle entry and clears it only just before
the halt (``default_enter_idle`` -> ``current_clr_polling_and_test``, drivers/cpuidle/cpuidle-haltpoll.c),
after the nohz tick stop and the governor.  A wake-up in that window needs no IPI
(kernel/sched/core.c ``send_call_function_single_ipi``: ``set_nr_if_polling`` ->
``sched_wake_idle_without_ipi``).  This traces a cross-CPU run (writer or requester on CPU 0, reader or
peer on CPU 1) and, for every time the followed CPU (``--idle-cpu``) switches to idle, reports what ended
it: a wake-up without IPI (and after how long) or a halt (``cpu_idle`` enter, and after how long).
Counting with timestamps: tracing adds its own cost to every interval, so the intervals are upper
bounds.  Needs root; no knob changed.

Usage:  python tools/idle-wake/polling_window.py [--transports udp,tcp] [--sizes 1024,16384]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from lbsim.measure.harness import run_harness
from lbsim.measure.stages_parse import text_events
from lbsim.measure.stages_tracefs import event_trace

EVENTS = (("sched", "sched_switch", None), ("sched", "sched_wake_idle_without_ipi", None),
          ("ipi", "ipi_send_cpu", None), ("power", "cpu_idle", None))


def windows(text: str, idle_cpu: int = 1) -> dict[str, list[float]]:
    """Intervals (us) from ``idle_cpu``'s switch to idle to what ends the idle, and from the
    wake-up (without IPI, or the IPI after the halt) to the woken task's switch-in."""
    out: dict[str, list[float]] = {"no_ipi": [], "halt": [], "ipi_after_halt": [],
                                   "no_ipi_to_run": [], "ipi_to_run": []}
    idle_at: float | None = None
    halted = False
    woken: tuple[str, float] | None = None  # how and when idle_cpu was last woken
    other = 1 - idle_cpu  # the waker's CPU
    for cpu, ts, ev, rest in text_events(text):
        if ev == "sched_switch" and cpu == idle_cpu:
            if "next_comm=swapper" in rest:
                idle_at, halted, woken = ts, False, None
            else:
                if woken is not None and "prev_comm=swapper" in rest:
                    out[woken[0] + "_to_run"].append(ts - woken[1])
                idle_at, woken = None, None
        elif idle_at is None:
            continue
        elif ev == "cpu_idle" and cpu == idle_cpu and "state=4294967295" not in rest and not halted:
            out["halt"].append(ts - idle_at)
            halted = True
        elif ev == "sched_wake_idle_without_ipi" and cpu == other:
            out["no_ipi"].append(ts - idle_at)
            idle_at, woken = None, ("no_ipi", ts)
        elif ev == "ipi_send_cpu" and cpu == other and halted:
            out["ipi_after_halt"].append(ts - idle_at)
            idle_at, woken = None, ("ipi", ts)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transports", default="udp,tcp,unix_stream,unix_dgram")
    ap.add_argument("--sizes", default="1024,16384")
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--workload", default="stream", choices=("stream", "pingpong"),
                    help="pingpong: the peer's CPU 1 idles between requests")
    ap.add_argument("--idle-cpu", type=int, default=1, choices=(0, 1),
                    help="the CPU whose idles are followed (0: the writer's or requester's)")
    ap.add_argument("--busy", action="store_true", help="a nice-19 spinner on CPU 1 (the peer's), as cross/busy")
    ap.add_argument("--flows", type=int, default=1, help="concurrent flows (harness --flows): all clients on CPU 0, "
                    "all peers on CPU 1")
    ap.add_argument("--sndbuf", type=int, default=0, help="SO_SNDBUF on every socket (harness --sndbuf; 0: default)")
    ap.add_argument("--rcvbuf", type=int, default=0, help="SO_RCVBUF on every socket (harness --rcvbuf; 0: default)")
    args = ap.parse_args()
    with event_trace(list(EVENTS), buffer_size_kb=65536) as tr:
        for t in args.transports.split(","):
            for size in (int(x) for x in args.sizes.split(",")):
                _, text = tr.around(lambda t=t, z=size: run_harness(t, args.workload, z, args.count, 200, 0, 1,
                                                                     max_seconds=5,
                                                                     busy_cpus=(1,) if args.busy else (),
                                                                     flows=args.flows, sndbuf=args.sndbuf,
                                                                     rcvbuf=args.rcvbuf))
                w = windows(text, args.idle_cpu)
                n = len(w["no_ipi"]) + len(w["halt"])
                parts = []
                for k, v in w.items():
                    q = np.percentile(v, [10, 50, 90]).round(1).tolist() if v else []
                    parts.append(f"{k} {len(v)} (p10/50/90 {q} us)")
                share = len(w["no_ipi"]) / n if n else float("nan")
                bufs = "".join(f" {k}={v}" for k, v in (("so_sndbuf", args.sndbuf), ("so_rcvbuf", args.rcvbuf)) if v)
                what = (f"{t} {args.workload}{' busy' if args.busy else ''} {size} B flows={args.flows}{bufs}, "
                        f"idles of CPU {args.idle_cpu}")
                print(f"{what}: idles {n}, woken without IPI {share:.2f}; " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
