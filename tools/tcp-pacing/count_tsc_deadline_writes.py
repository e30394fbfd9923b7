#!/usr/bin/env python3
"""Count TCP pacing-timer arms and TSC-deadline writes, by CPU, around short TCP runs over lo.

Counting only (no timing, no sysctl touched): a private ftrace instance with
timer:hrtimer_start filtered on ``function.function == tcp_pace_kick`` and msr:write_msr
filtered on ``msr == 0x6e0`` (MSR_IA32_TSC_DEADLINE, written by lapic_next_deadline,
arch/x86/kernel/apic/apic.c), one harness run per setting, the lines counted by event and
CPU, the instance removed (also on error).  Needs root.  Evidence for the pacing timer's
cost in lbsim/model/tcp_pacing.py (docs/notes/tcp-small-rcvbuf.md).
"""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys

from lbsim.measure.harness import PROGRAM_NAME, build_harness
from lbsim.measure.stages_tracefs import event_trace

EVENTS = (("timer", "hrtimer_start", "function.function == tcp_pace_kick"), ("msr", "write_msr", "msr == 0x6e0"))
LINE = re.compile(r"\s*\S+-\d+\s+\[(\d+)\]\s+\S+\s+[\d.]+:\s+(\w+):")
RUNS = (("so_rcvbuf=1", 4000, ["--rcvbuf", "1"]), ("so_rcvbuf=4096", 20000, ["--rcvbuf", "4096"]),
        ("default", 20000, []))


def main() -> int:
    import argparse

    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # --help, nothing else
    exe = str(build_harness())
    with event_trace(EVENTS, buffer_size_kb=32768) as tr:
        for name, count, extra in RUNS:
            argv = ["--transport", "tcp", "--workload", "stream", "--size", "1024", "--count", str(count),
                    "--warmup", "100", "--cpu-a", "0", "--cpu-b", "1", "--max-seconds", "2", *extra]
            p, text = tr.around(lambda argv=argv: subprocess.run([PROGRAM_NAME, *argv], executable=exe,
                                                                  capture_output=True, text=True, timeout=30))
            n: collections.Counter[tuple[str, str]] = collections.Counter()
            for ln in text.splitlines():
                m = LINE.match(ln)
                if m:
                    n[(m.group(2), m.group(1))] += 1
            r = json.loads(p.stdout.strip().splitlines()[-1])
            msgs = max(int(r.get("received") or 0), 1)
            per = ", ".join(f"{ev} cpu{cpu} {v / msgs:.3f}" for (ev, cpu), v in sorted(n.items()))
            print(f"{name} stream cross 1024: {msgs} messages; per message: {per}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
