#!/usr/bin/env python3
"""Count scheduler, IPI and idle events per round trip of short cross-CPU ping-pongs.

Counting only (no timing, no sysctl touched): a private ftrace instance with the events below,
one C-harness run per transport (64 B ping-pong, CPUs 0 and 1), the lines counted per CPU and the
instance removed (also on error).  Needs root.  Asks why one transport's cross-CPU round trip
costs more than another's: a second sleep, an extra IPI or idle exit per round trip shows here.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys

from lbsim.measure.harness import PROGRAM_NAME, build_harness
from lbsim.measure.stages_tracefs import event_trace

EVENTS = (("sched", "sched_switch"), ("sched", "sched_wakeup"), ("sched", "sched_wake_idle_without_ipi"),
          ("ipi", "ipi_send_cpu"), ("irq_vectors", "call_function_single_entry"),
          ("irq_vectors", "reschedule_entry"), ("power", "cpu_idle"), ("timer", "hrtimer_start"),
          ("irq_vectors", "local_timer_entry"))
_LINE = re.compile(r"\[(\d{3})\].*?\s(\w+):\s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transports", default="unix_stream,unix_dgram,udp,tcp")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--count", type=int, default=5000)
    args = ap.parse_args()
    exe = str(build_harness())
    with event_trace([(s, e, None) for s, e in EVENTS], buffer_size_kb=32768) as tr:
        print("events:", " ".join(e for _, e, _ in tr.events))
        for t in args.transports.split(","):
            argv = ["--transport", t, "--workload", "pingpong", "--size", str(args.size),
                    "--count", str(args.count), "--warmup", "200", "--cpu-a", "0", "--cpu-b", "1",
                    "--max-seconds", "5"]
            p, text = tr.around(lambda argv=argv: subprocess.run([PROGRAM_NAME, *argv], executable=exe,
                                                                  capture_output=True, text=True, timeout=40))
            r = json.loads(p.stdout.strip().splitlines()[-1])
            n: collections.Counter[tuple[str, str]] = collections.Counter()
            for ln in text.splitlines():
                m = _LINE.search(ln)
                if m and not ln.startswith("#"):
                    ev = m.group(2)
                    if ev == "cpu_idle":
                        ev += "(exit)" if "state=4294967295" in ln else "(enter)"
                    n[(m.group(1), ev)] += 1
            msgs = args.count + 200
            per = {f"cpu{c[-1]} {e}": round(v / msgs, 2) for (c, e), v in sorted(n.items())}
            print(f"{t}: rtt_p50 {r.get('rtt_p50_us')} us, per round trip: {per}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
