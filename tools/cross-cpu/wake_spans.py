#!/usr/bin/env python3
"""Where a cross-CPU ping-pong's round trip goes: the spans of each wake-up, per transport.

A private ftrace instance with ``sched_waking``, ``ipi_send_cpu``, ``cpu_idle``,
``call_function_single_entry``, ``sched_wakeup`` and ``sched_switch`` around one C-harness
ping-pong (64 B, client on CPU 0, server on CPU 1).  Each half round trip is cut where the kernel
hands over, and the median of each span printed (microseconds, the text listing's resolution):

- ``work``: the woken task switched in -> its own ``sched_waking`` of the peer (receive, reply);
- ``to ipi``: ``sched_waking`` -> ``ipi_send_cpu`` to the peer's CPU, on the waker's CPU;
- ``to handler``: the IPI sent -> its handler starts on the peer's CPU
  (``call_function_single_entry``: delivery to a halted vCPU and the halt exit);
- ``to switch``: the handler's start -> the peer's ``sched_switch`` to its task (the wake list,
  the idle exit, the switch);
- ``waker on``: ``sched_waking`` -> the waker's own switch to idle (the rest of its send, its next
  receive call up to the sleep);
- ``idle before``: how long the peer's CPU had been idle when the IPI was sent;
- ``send to waking`` (with ``--syscalls``, which adds ``raw_syscalls:sys_enter``): the waker's last
  syscall entry (its send) -> its ``sched_waking``, so that ``work`` splits into the receive's tail
  and the send up to the wake-up.

``--placement same`` runs both ends on CPU 0: ``work`` and ``send to waking`` of a wake-up that
needs no IPI, the same-CPU reference for the cross-CPU spans.

Counting and timestamps only: no knob touched, no sysctl changed.  Needs root.  The events
themselves cost time (the traced round trip is longer than the untraced one); compare transports
with each other, not with untraced figures.
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import sys
from typing import Any

from lbsim.measure.harness import run_harness
from lbsim.measure.stages_parse import text_events
from lbsim.measure.stages_tracefs import event_trace

EVENTS = (("sched", "sched_waking"), ("sched", "sched_wakeup"), ("sched", "sched_switch"),
          ("ipi", "ipi_send_cpu"), ("irq_vectors", "call_function_single_entry"), ("power", "cpu_idle"))
_TARGET = re.compile(r"\btarget_cpu=(\d+)")
_IPI_CPU = re.compile(r"\bcpu=(\d+)")
_NEXT = re.compile(r"\bnext_comm=(\S+)")
SPANS = ("work", "send to waking", "to ipi", "to handler", "to switch", "waker on", "idle before")
COMMS = ("harness", "lbsim-peer")  # the C harness's two processes


def spans(text: str, comms: tuple[str, ...] = COMMS, same_cpu: bool = False) -> dict[str, list[float]]:
    """The spans (us) of every complete half round trip in an event listing (see the module text);
    ``same_cpu``: both ends on one CPU (wake-ups of a task on the waker's own CPU count)."""
    out: dict[str, list[Any]] = {k: [] for k in (*SPANS, "pairs")}
    last_switch_in: dict[int, float] = {}   # cpu -> when its harness task last switched in
    idle_since: dict[int, float] = {}       # cpu -> when it went idle (no entry while it runs)
    woke_at: dict[int, float] = {}          # cpu -> its running task's last cross-CPU sched_waking
    pending: dict[int, dict[str, float]] = {}  # target cpu -> the wake-up on its way
    running: dict[int, bool] = {}           # cpu -> a harness task runs there
    entered: dict[int, float] = {}          # cpu -> its harness task's last syscall entry
    for cpu, t, ev, f in text_events(text):
        if ev == "sys_enter":
            if running.get(cpu):
                entered[cpu] = t
        elif ev == "sched_waking":
            m = _TARGET.search(f)
            if m and any(c in f for c in comms) and (same_cpu or int(m.group(1)) != cpu):
                tgt = int(m.group(1))
                if tgt != cpu:
                    pending[tgt] = {"waking": t}
                    woke_at[cpu] = t
                if cpu in last_switch_in:
                    t_in = last_switch_in.pop(cpu)
                    out["work"].append(t - t_in)
                    if entered.get(cpu, -1.0) >= t_in:
                        out["send to waking"].append(t - entered[cpu])
        elif ev == "ipi_send_cpu":
            m = _IPI_CPU.search(f)
            tgt = int(m.group(1)) if m else -1
            p = pending.get(tgt)
            if p is not None and "ipi" not in p:
                p["ipi"] = t
                if tgt in idle_since:
                    p["idle_before"] = t - idle_since[tgt]
        elif ev == "call_function_single_entry":
            p = pending.get(cpu)
            if p is not None and "ipi" in p and "handler" not in p:
                p["handler"] = t
        elif ev == "cpu_idle":
            if "state=4294967295" in f:  # exit
                idle_since.pop(cpu, None)
            else:
                idle_since[cpu] = t
        elif ev == "sched_switch":
            m = _NEXT.search(f)
            nxt = m.group(1) if m else ""
            running[cpu] = nxt.startswith(comms)
            if nxt.startswith("swapper") and cpu in woke_at:
                out["waker on"].append(t - woke_at.pop(cpu))
            if running[cpu]:
                last_switch_in[cpu] = t
                p = pending.pop(cpu, None)
                if p is not None and "handler" in p:
                    out["to ipi"].append(p["ipi"] - p["waking"])
                    out["to handler"].append(p["handler"] - p["ipi"])
                    out["to switch"].append(t - p["handler"])
                    if "idle_before" in p:
                        out["idle before"].append(p["idle_before"])
                        out["pairs"].append((p["idle_before"], p["handler"] - p["ipi"], t - p["handler"]))
    return out


BINS = (0, 2, 4, 6, 8, 10, 12, 15, 20, 30, 50, 100)


def by_idle_age(pairs: list[tuple[float, float, float]]) -> list[tuple[str, int, float, float]]:
    """(idle-age bin, wake-ups, median IPI -> handler, median handler -> switch) per bin of how
    long the target CPU had been idle when the IPI was sent: a CPU that halted only just now
    may take an IPI sooner than one that has been halted for long (the hypervisor's halt
    polling)."""
    groups: dict[int, list[tuple[float, float]]] = collections.defaultdict(list)
    for age, deliver, switch in pairs:
        i = max(j for j, b in enumerate(BINS) if age >= b)
        groups[i].append((deliver, switch))
    rows = []
    for i in sorted(groups):
        g = groups[i]
        hi = f"{BINS[i + 1]}" if i + 1 < len(BINS) else "inf"
        rows.append((f"{BINS[i]}-{hi}", len(g), statistics.median(d for d, _ in g), statistics.median(s for _, s in g)))
    return rows


def model_spans(trace: list[tuple[Any, ...]]) -> dict[str, list[float]]:
    """The same spans (us) from a simulation's stage trace (``lbsim.simulate(..., trace=True)``):
    ``work`` is a task's ``schedule`` stage end -> its ``send_call_function_single_ipi``, ``to
    switch`` that IPI's start -> the peer's next ``schedule`` end (the model has no handler
    event: delivery and switch in one), ``ipi trap`` the sender's own cost of the IPI."""
    out: dict[str, list[float]] = {"work": [], "to switch": [], "ipi trap": []}
    switched: dict[int, float] = {}
    pending: tuple[int, float] | None = None
    for _msg, stage, cpu, _who, t0, t1, _kind in sorted(trace, key=lambda e: e[4]):
        if stage == "schedule":
            switched[cpu] = t1
            if pending is not None and pending[0] != cpu:
                out["to switch"].append((t1 - pending[1]) / 1000.0)
                pending = None
        elif stage == "send_call_function_single_ipi":
            if cpu in switched:
                out["work"].append((t0 - switched.pop(cpu)) / 1000.0)
            pending = (cpu, t0)
            out["ipi trap"].append((t1 - t0) / 1000.0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transports", default="unix_stream,unix_dgram,udp,tcp")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--reps", type=int, default=2, help="runs per transport, interleaved")
    ap.add_argument("--model", metavar="COSTS", help="print the model's spans with these costs instead (no root)")
    ap.add_argument("--syscalls", action="store_true", help="also trace syscall entries (send to waking)")
    ap.add_argument("--placement", choices=("cross", "same"), default="cross",
                    help="same: both ends on CPU 0 (the spans of a wake-up without IPI)")
    args = ap.parse_args()
    same = args.placement == "same"
    if args.model:
        import lbsim

        for t in args.transports.split(","):
            r = lbsim.simulate(transport=t, workload="pingpong", msg_bytes=args.size, messages=args.count,
                               placement="cross", trace=True, costs=args.model)
            med = {k: (round(statistics.median(v), 2) if v else None) for k, v in model_spans(r.trace or []).items()}
            print(f"model {t} {args.size} B: p50 {r.latency_ns['p50']:.0f} ns, medians (us): {med}")
        return 0
    pairs: list[tuple[float, float, float]] = []
    events = [*EVENTS, ("raw_syscalls", "sys_enter")] if args.syscalls else list(EVENTS)
    with event_trace([(s, e, None) for s, e in events], buffer_size_kb=32768) as tr:
        print("events:", " ".join(e for _, e, _ in tr.events))
        for rep in range(args.reps):
            for t in args.transports.split(","):
                r, text = tr.around(lambda t=t: run_harness(t, "pingpong", args.size, args.count, 200, 0,
                                                            0 if same else 1, max_seconds=5))
                s = spans(text, same_cpu=same)
                med = {k: (round(statistics.median(v), 2) if v else None) for k, v in s.items() if k != "pairs"}
                pairs += s["pairs"]
                print(f"rep {rep} {t} {args.size} B: p50 {r.get('p50_ns')} ns, {len(s['to switch'])} IPI wake-ups, "
                      f"medians (us): {med}", flush=True)
    print("idle age at the IPI (us) | wake-ups | median IPI -> handler (us) | median handler -> switch (us)")
    for rng, n, d, w in by_idle_age(pairs):
        print(f"{rng:>8} | {n:6d} | {d:5.1f} | {w:5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
