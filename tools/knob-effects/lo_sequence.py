#!/usr/bin/env python3
"""The packets a short C-harness run puts on lo, in order: length, CPU and time of each
(`net:net_dev_xmit`), the receiving side's view of each TCP segment (`tcp:tcp_probe`: payload,
the sender's window, the receiver's window) and the harness's context switches, from a private
ftrace instance.  Per-namespace sysctls (`--sysctl net.ipv4.tcp_wmem="4096 8192 32768"`) are set in
a private network namespace that dies with the run, as `lbsim measure --knobs` does; socket options
(`--rcvbuf`, `--sndbuf`, `--nagle`) need no namespace.  Root.  Nothing is timed: the tracepoints cost
microseconds, so the sequence shows the mechanism, not its speed.

docs/notes/tcp-small-rcvbuf.md (a 1 KiB ping-pong with SO_RCVBUF 1: `66 514 66 642` per message;
`tcp_wmem` 32 KiB with 64 KiB writes: the 41 ms delayed-ACK stalls) and docs/notes/knob-effects.md
(Nagle's segment sizes, with `--summary`).

Usage:  python tools/knob-effects/lo_sequence.py tcp pingpong 1024 --placement same --rcvbuf 1
        python tools/knob-effects/lo_sequence.py tcp stream 65536 --sysctl net.ipv4.tcp_wmem="4096 8192 32768"
        python tools/knob-effects/lo_sequence.py tcp stream 64 --nagle --count 20000 --summary
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable

from lbsim.measure.harness import HarnessError, build_harness, harness_argv
from lbsim.measure.knob_run import trace_harness_command
from lbsim.measure.stages_parse import text_events

_LEN = re.compile(r"\bdev=lo\b.*?\blen=(\d+)")
_PROBE = re.compile(r"data_len=(\d+).*?snd_wnd=(\d+).*?rcv_wnd=(\d+)")
_SWITCH = re.compile(r"prev_comm=(\S+) prev_pid=\d+ .*prev_state=(\S+) ==> next_comm=(\S+)")
#: a TCP segment on lo without payload: Ethernet 14 + IPv4 20 + TCP with timestamps 32
HEADERS = 66


def sequence(text: str, comm: str = "harness") -> list[tuple[float, int, str]]:
    """(ms since the first packet, CPU, what) for each packet, probe and switch of a task whose
    name starts with ``comm``, in trace order; nothing before the first packet."""
    out: list[tuple[float, int, str]] = []
    t0 = None
    for cpu, t_us, ev, fields in text_events(text):
        if ev == "net_dev_xmit":
            m = _LEN.search(fields)
            if m is None:
                continue
            t0 = t_us if t0 is None else t0
            out.append(((t_us - t0) / 1e3, cpu, f"xmit {m.group(1)}"))
        elif t0 is None:
            continue
        elif ev == "tcp_probe":
            m = _PROBE.search(fields)
            if m:
                out.append(((t_us - t0) / 1e3, cpu, "probe data_len={} snd_wnd={} rcv_wnd={}".format(*m.groups())))
        elif ev == "sched_switch":
            m = _SWITCH.search(fields)
            if m and (m.group(1).startswith(comm) or m.group(3).startswith(comm)):
                out.append(((t_us - t0) / 1e3, cpu, f"switch {m.group(1)}[{m.group(2)}] -> {m.group(3)}"))
    return out


def summary(seq: Iterable[tuple[float, int, str]], messages: int, size: int) -> dict[str, float]:
    """Data segments and pure ACKs per message, and payload bytes per data segment (lo's packets
    of the run: every transport's, so use it on a TCP run)."""
    data = acks = payload = 0
    for _, _, what in seq:
        if what.startswith("xmit "):
            n = int(what.split()[1]) - HEADERS
            if n > 0:
                data += 1
                payload += n
            else:
                acks += 1
    return {"data_per_msg": data / messages, "acks_per_msg": acks / messages,
            "bytes_per_segment": payload / data if data else 0.0, "size": size}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("transport", choices=("tcp", "udp"))
    ap.add_argument("workload", choices=("pingpong", "stream"))
    ap.add_argument("size", type=int)
    ap.add_argument("--placement", choices=("same", "cross"), default="cross")
    ap.add_argument("--count", type=int, default=200, help="messages (plus 10 warm-up)")
    ap.add_argument("--rcvbuf", type=int, default=0)
    ap.add_argument("--sndbuf", type=int, default=0)
    ap.add_argument("--nagle", action="store_true")
    ap.add_argument("--sysctl", action="append", default=[], metavar="NAME=VALUE",
                    help="a per-namespace sysctl, set in a private network namespace")
    ap.add_argument("--summary", action="store_true", help="segments and ACKs per message instead of the sequence")
    ap.add_argument("--lines", type=int, default=120, help="sequence lines to print")
    args = ap.parse_args()
    exe = build_harness()
    argv = harness_argv(args.transport, args.workload, args.size, args.count, 10, 0,
                        1 if args.placement == "cross" else 0, 5, (), "other",
                        rcvbuf=args.rcvbuf, sndbuf=args.sndbuf, nagle=args.nagle)
    sysctls = dict(s.split("=", 1) for s in args.sysctl)
    events = [("net", "net_dev_xmit", None), ("sched", "sched_switch", None), ("tcp", "tcp_probe", None)]
    try:
        res, text = trace_harness_command(events, exe, argv, {"sysctl": sysctls} if sysctls else None)
    except HarnessError as e:
        print(e, file=sys.stderr)
        return 1
    keep = ("throughput_Bps", "rtt_p50_ns", "sleeps_per_msg_sender", "sleeps_per_msg_receiver", "netns")
    print(json.dumps({k: res[k] for k in keep if k in res}))
    seq = sequence(text)
    if args.summary:
        print(json.dumps(summary(seq, args.count + 10, args.size)))
        return 0
    for t, cpu, what in seq[:args.lines]:
        print(f"{t:9.3f} ms  cpu{cpu}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
