"""Trace idlewake (block mode) and measure each IPI that A's write sends to B's CPU (docs/notes/idle-wake.md).

Records, in a private tracefs instance (lbsim.measure.stages; root needed, restored afterwards): sched_waking,
sched_wakeup, sched_switch, sched_wake_idle_without_ipi, power:cpu_idle, ipi:ipi_send_cpu and
irq_vectors:call_function_single_entry, with trace_clock mono.  For every ttwu IPI that A (CPU 0) sends to CPU 1
after the 100 warm-up round trips it reports the delivery (send -> call_function_single_entry on CPU 1), the
delivery against A's next idle entry, and how long CPU 1 had been in cpuidle.

Usage (on a quiet machine):  cc -O2 -o /tmp/idlewake idlewake.c;  python trace_idlewake.py /tmp/idlewake [D,E ...]
"""
import bisect
import json
import re
import subprocess
import sys

from lbsim.measure.stages import _Instance, _Tracefs

EVENTS = ["sched/sched_waking", "sched/sched_wakeup", "sched/sched_switch", "sched/sched_wake_idle_without_ipi",
          "power/cpu_idle", "ipi/ipi_send_cpu", "irq_vectors/call_function_single_entry"]
LINE = re.compile(r"^\s*(.+?)-(\d+)\s+\[(\d+)\]\s+\S+\s+([\d.]+):\s+(\w+)(?::|\(|\s->)\s*(.*)$")
IDLE_EXIT = "4294967295"


def run(binary, points, n=600):
    out = {}
    with _Tracefs() as t:
        inst = _Instance(t.root)
        try:
            inst.set("buffer_size_kb", "16384")
            inst.set("trace_clock", "mono")
            for e in EVENTS:
                inst.set(f"events/{e}/enable", "1")
            for d, e in points:
                inst.set("trace", "")
                inst.set("tracing_on", "1")
                p = subprocess.run([binary, "block", str(n), "3000", str(d), str(e)], capture_output=True, text=True)
                inst.set("tracing_on", "0")
                out[(d, e)] = (p.stdout, inst.get("trace"))
        finally:
            inst.remove()
    return out


def parse(txt):
    evs = []
    for ln in txt.splitlines():
        m = LINE.match(ln)
        if m:
            comm, pid, cpu, ts, name, rest = m.groups()
            evs.append((float(ts) * 1e6, int(cpu), comm.strip(), int(pid), name, rest))
    return evs


def analyze(evs, warmup=100):
    sends = [ts for ts, cpu, comm, pid, name, rest in evs if name == "ipi_send_cpu" and cpu == 0
             and "cpu=1" in rest and "ttwu" in rest and comm.startswith("idlewake")]
    rx = sorted(ts for ts, cpu, comm, pid, name, rest in evs if name == "call_function_single_entry" and cpu == 1)
    a_idle = sorted(ts for ts, cpu, comm, pid, name, rest in evs if name == "cpu_idle" and cpu == 0
                    and IDLE_EXIT not in rest)
    b_enter = sorted(ts for ts, cpu, comm, pid, name, rest in evs if name == "cpu_idle" and cpu == 1
                     and IDLE_EXIT not in rest)
    lat, rel, bidle = [], [], []
    for ts in sends[warmup:]:
        i = bisect.bisect_left(rx, ts)
        if i >= len(rx):
            continue
        lat.append(rx[i] - ts)
        j = bisect.bisect_left(a_idle, ts)
        if j < len(a_idle):
            rel.append(rx[i] - a_idle[j])
        k = bisect.bisect_right(b_enter, ts) - 1
        if k >= 0:
            bidle.append(ts - b_enter[k])

    def q(v, p):
        return round(sorted(v)[int(len(v) * p)], 1) if v else None
    return {"ipis": len(sends) - warmup, "send->rx p10/p50/p90": (q(lat, .1), q(lat, .5), q(lat, .9)),
            "rx - waker idle entry p10/p50/p90": (q(rel, .1), q(rel, .5), q(rel, .9)),
            "B in cpuidle since p50": q(bidle, .5)}


if __name__ == "__main__":
    pts = [tuple(map(int, a.split(","))) for a in sys.argv[2:]] or [(0, 0), (0, 5), (0, 15), (30, 0), (30, 15),
                                                                   (100, 0), (100, 15)]
    print("loadavg before:", open("/proc/loadavg").read().split()[0])
    for k, (so, txt) in run(sys.argv[1], pts).items():
        o = analyze(parse(txt))
        o["idlewake"] = so.strip().splitlines()[-1]
        print(f"D={k[0]} E={k[1]}", json.dumps(o), flush=True)
