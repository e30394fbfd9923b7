#!/usr/bin/env python3
"""Count TCP's pacing hrtimer (tcp_pace_kick) around short TCP runs of the C harness over lo.

Counting only (no timing, no sysctl touched): a private ftrace instance with
timer:hrtimer_start and timer:hrtimer_expire_entry filtered on
``function.function == tcp_pace_kick`` (kernel/trace/trace_events_filter.c), one harness run
per setting, the lines counted, the instance removed (also on error).  Needs root.
Evidence for lbsim/model/tcp_pacing.py (docs/notes/tcp-pacing.md).
"""

from __future__ import annotations

import json
import subprocess
import sys

from lbsim.measure.harness import PROGRAM_NAME, build_harness
from lbsim.measure.stages_tracefs import event_trace

EVENTS = (("timer", "hrtimer_start"), ("timer", "hrtimer_expire_entry"))
FILTER = "function.function == tcp_pace_kick"


def _tcp(workload: str, size: int, count: int, *extra: str) -> list[str]:
    return ["--transport", "tcp", "--workload", workload, "--size", str(size), "--count", str(count),
            "--warmup", "100", "--cpu-a", "0", "--cpu-b", "1", "--max-seconds", "3", *extra]


RUNS = (
    ("default stream cross 1024", _tcp("stream", 1024, 100000)),
    ("so_rcvbuf=1 stream cross 1024", _tcp("stream", 1024, 10000, "--rcvbuf", "1")),
    ("so_rcvbuf=4096 stream cross 1024", _tcp("stream", 1024, 20000, "--rcvbuf", "4096")),
    ("default stream cross 65536", _tcp("stream", 65536, 10000)),
    ("default pingpong cross 1024", _tcp("pingpong", 1024, 20000)),
)


def main() -> int:
    import argparse

    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # --help, nothing else
    exe = str(build_harness())
    with event_trace([(s, e, FILTER) for s, e in EVENTS], buffer_size_kb=16384) as tr:
        for name, argv in RUNS:
            p, text = tr.around(lambda argv=argv: subprocess.run([PROGRAM_NAME, *argv], executable=exe,
                                                                  capture_output=True, text=True, timeout=40))
            r = json.loads(p.stdout.strip().splitlines()[-1])
            lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
            n = {e: sum(f" {e}:" in ln and "tcp_pace_kick" in ln for ln in lines) for _, e in EVENTS}
            msgs = r.get("received") or r.get("count") or 0
            print(f"{name}: messages {msgs}, pacing timer armed {n['hrtimer_start']}, "
                  f"fired {n['hrtimer_expire_entry']} ({n['hrtimer_expire_entry'] / max(msgs, 1):.4f}"
                  f" per message), receiver sleeps/msg {r.get('sleeps_per_msg_receiver')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
