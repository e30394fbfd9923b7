#!/usr/bin/env python3
"""A unix_dgram stream of 64 B writes with writer and reader on one CPU runs in two regimes: batches
(the reader's wake-up does not pre-empt the writer, which writes until its send buffer or the
queue limit stops it) and one-message cycles (each write wakes the reader, which pre-empts, reads
one datagram and sleeps).  This counts how many messages go through each, and how long a run of
one-message cycles lasts, on the host (`sched_switch`, `sched_wakeup` and the send/recv syscall
entries of CPU 0 in a private ftrace instance; `net.unix.max_dgram_qlen` set in a private network
namespace; root) or in the model (`--model COSTS`).  docs/notes/knob-effects.md, item 4.

Usage:  python tools/scheduling/dgram_regimes.py --qlen 1000
        python tools/scheduling/dgram_regimes.py --qlen 1000 --model amd-epyc-v1300-2026-12-06
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys

#: one one-message cycle in the token string: the writer writes, wakes the reader and is pre-empted
#: (R), the reader reads and sleeps (S)
CYCLE = "Ww|tR|R|rS|"
_CYCLES = re.compile("(?:" + re.escape(CYCLE) + ")+")
SENDTO, RECVFROM = 44, 45  # x86-64 syscall numbers: the harness's send() and recv()


def regimes(tokens: str) -> dict[str, float]:
    """From a token string (W a write, R a read, w the reader woken, v the writer woken, |tS| or
    |tR| the writer switched out asleep or pre-empted, |rS| / |rR| the reader): the runs of
    one-message cycles, the messages they carry, and the writer's sleeps (batches ended by a full
    buffer or queue)."""
    runs = [len(m.group(0)) // len(CYCLE) for m in _CYCLES.finditer(tokens)]
    writes = tokens.count("W")
    return {"writes": writes, "cycle_runs": len(runs), "cycle_messages": sum(runs),
            "cycle_run_median": statistics.median(runs) if runs else 0.0,
            "writer_sleeps": tokens.count("|tS|"), "reader_sleeps": tokens.count("|rS|")}


def host_tokens(text: str, cpu: int = 0) -> str:
    """The token string of CPU ``cpu`` from an ftrace text listing: the writer is the task that
    calls sendto most, the reader the one that calls recvfrom most."""
    from lbsim.measure.stages_parse import text_events

    events = []
    for c, _, ev, fields in text_events(text):
        if c != cpu:
            continue
        if ev == "sys_enter":
            m = re.search(r"NR (\d+)", fields)
            events.append(("sys", int(m.group(1)) if m else -1))
        elif ev == "sched_wakeup":
            m = re.search(r"pid=(\d+)", fields)
            events.append(("wake", int(m.group(1)) if m else -1))
        elif ev == "sched_switch":
            m = re.search(r"prev_pid=(\d+) .*prev_state=(\S+) ==> next_comm=\S+ next_pid=(\d+)", fields)
            if m:
                events.append(("switch", int(m.group(1)), m.group(2)[0], int(m.group(3))))
    calls: dict[tuple[int, int], int] = {}
    cur = None
    for e in events:
        if e[0] == "switch":
            cur = e[3]
        elif e[0] == "sys" and cur is not None:
            calls[(cur, e[1])] = calls.get((cur, e[1]), 0) + 1
    if not calls:
        return ""
    writer = max((p for p, nr in calls if nr == SENDTO), key=lambda p: calls[(p, SENDTO)], default=None)
    reader = max((p for p, nr in calls if nr == RECVFROM), key=lambda p: calls[(p, RECVFROM)], default=None)
    out = []
    cur = None
    for e in events:
        if e[0] == "switch":
            who = "t" if e[1] == writer else "r" if e[1] == reader else None
            if who and e[2] in "SR":
                out.append(f"|{who}{e[2]}|")
            cur = e[3]
        elif e[0] == "wake":
            out.append("w" if e[1] == reader else "v" if e[1] == writer else "")
        elif e[0] == "sys" and cur in (writer, reader):
            out.append("W" if e[1] == SENDTO and cur == writer else "R" if e[1] == RECVFROM and cur == reader else "")
    return "".join(out)


def model_tokens(costs: str, qlen: int, messages: int, seed: int = 1) -> str:
    """The same token string from a simulation (the writer is the model's client task)."""
    import lbsim.model.cpu as cpu_mod
    import lbsim.model.sim as sim_mod
    import lbsim.model.unix as unix_mod
    from lbsim.profiles import resolve_run
    from lbsim.simulate import simulate

    out: list[str] = []
    send, recv = unix_mod.UnixDgram.sendmsg, unix_mod.UnixDgram.recvmsg
    block, put_prev, wake = cpu_mod.CPU._block, cpu_mod.CPU._put_prev, sim_mod.Sim.wake

    def role(t) -> str:
        return "t" if t.name.startswith("client") else "r"

    def sendmsg(self, *a, **k):
        out.append("W")
        return (yield from send(self, *a, **k))

    def recvmsg(self, *a, **k):
        out.append("R")
        return (yield from recv(self, *a, **k))

    def _block(self, t, wq):
        out.append(f"|{role(t)}S|")
        return block(self, t, wq)

    def _put_prev(self, t):
        out.append(f"|{role(t)}R|")
        return put_prev(self, t)

    def _wake(self, t, from_cpu):
        woke = wake(self, t, from_cpu)
        if woke:
            out.append("w" if role(t) == "r" else "v")
        return woke

    patches = [(unix_mod.UnixDgram, "sendmsg", sendmsg), (unix_mod.UnixDgram, "recvmsg", recvmsg),
               (cpu_mod.CPU, "_block", _block), (cpu_mod.CPU, "_put_prev", _put_prev), (sim_mod.Sim, "wake", _wake)]
    saved = [(cls, name, getattr(cls, name)) for cls, name, _ in patches]
    try:
        for cls, name, f in patches:
            setattr(cls, name, f)
        model, _ = resolve_run(costs)
        simulate(dict(transport="unix_dgram", workload="stream", msg_bytes=64, messages=messages, placement="same",
                      kernel="linux-6.18", seed=seed, unix_max_dgram_qlen=qlen), costs=model)
    finally:
        for cls, name, f in saved:
            setattr(cls, name, f)
    return "".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qlen", type=int, default=1000)
    ap.add_argument("--count", type=int, default=4000)
    ap.add_argument("--model", metavar="COSTS", help="simulate with this profile or cost file instead")
    args = ap.parse_args()
    if args.model:
        print(json.dumps(regimes(model_tokens(args.model, args.qlen, args.count))))
        return 0
    from lbsim.measure.harness import HarnessError, build_harness, harness_argv
    from lbsim.measure.knob_run import trace_harness_command

    argv = harness_argv("unix_dgram", "stream", 64, args.count, 100, 0, 0, 5)
    events = [("sched", "sched_switch", None), ("sched", "sched_wakeup", None),
              ("raw_syscalls", "sys_enter", f"id == {SENDTO} || id == {RECVFROM}")]
    try:
        res, text = trace_harness_command(events, build_harness(), argv,
                                          {"sysctl": {"net.unix.max_dgram_qlen": args.qlen}})
    except HarnessError as e:
        print(e, file=sys.stderr)
        return 1
    print(json.dumps({k: res.get(k) for k in ("throughput_Bps", "sleeps_per_msg_sender", "sleeps_per_msg_receiver")}))
    print(json.dumps(regimes(host_tokens(text))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
