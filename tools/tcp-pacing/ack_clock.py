#!/usr/bin/env python3
"""When the receiver of a 64 KiB TCP stream over lo ACKs, on the host: at the data's arrival or later.

Why: the model's BBR estimates 4-6 times its own throughput because its receiver ACKs a write's two
segments on the second one's arrival, 7 us after the first was sent, where the host's round trips take
80-160 us (docs/notes/hrtimer-cost.md). ``tcp:tcp_probe`` fires for every segment a socket in
ESTABLISHED takes in (``tcp_rcv_established``), with the socket's state before it: on the receiver's
socket each data segment's arrival (CPU, time, ``data_len``, ``rcv_wnd``), on the sender's each ACK's
(``snd_una`` before it, ``srtt``). So for every ACK: when it arrived, on which CPU, after how many data
segments, and how long after the last of them arrived.

Also where each segment is processed: in softirq as it arrives, or from the socket's backlog at
``release_sock`` (the socket was owned by its task; the trace line has no softirq flag), per message,
how many segments ``tcp_add_backlog`` coalesced into the backlog's tail (TcpExt TCPBacklogCoalesce, read
around the run), and whose context the pacing timer's expiries interrupt (``timer:hrtimer_expire_entry``
on ``tcp_pace_kick``): the reader's (its pid takes its backlog in task context) or another's.

A private ftrace instance (lbsim.measure.stages_tracefs.event_trace), one harness run per placement and
size (writer on CPU 0, reader on CPU 0 or 1), default settings, no knob changed; counts and intervals only.
Needs root.

  .venv/bin/python tools/tcp-pacing/ack_clock.py [--count 3000] [--sizes 65536]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lbsim.measure.harness import PROGRAM_NAME, build_harness  # noqa: E402
from lbsim.measure.netns_run import parse_snmp  # noqa: E402
from lbsim.measure.stages_tracefs import event_trace  # noqa: E402

LINE = re.compile(r"-(\d+)\s+\[(\d+)\]\s+(\S+)\s+([\d.]+): tcp_probe: (.*)")
#: the pacing timer's expiries (timer:hrtimer_expire_entry filtered on tcp_pace_kick) and whose context they hit
PACE = re.compile(r"-(\d+)\s+\[(\d+)\]\s+\S+\s+[\d.]+: hrtimer_expire_entry: .*tcp_pace_kick")
FIELD = re.compile(r"(\w+)=(\S+)")


def _events(text: str) -> list[dict]:
    out = []
    for ln in text.splitlines():
        m = LINE.search(ln)
        if not m:
            continue
        f = dict(FIELD.findall(m.group(5)))
        flags = m.group(3)  # irqs-off, need-resched, hardirq/softirq, preempt depth
        f["pid"], f["cpu"], f["t_us"] = int(m.group(1)), int(m.group(2)), float(m.group(4)) * 1e6
        f["softirq"] = len(flags) > 2 and flags[2] in "sSH"
        out.append(f)
    return out


def _pace_pids(text: str) -> list[int]:
    return [int(m.group(1)) for m in PACE.finditer(text)]


def _analyse(ev: list[dict], pace: list[int], msgs: int) -> dict:
    """The data segments (the writer's address as their source) and the pure ACKs coming back (any
    other source); ``msgs`` messages, for the per-message figures."""
    data = [e for e in ev if int(e.get("data_len", 0)) > 0]
    if not data:
        return {"error": "no data segments traced"}
    writer = data[0]["src"]  # tcp_probe's src is the skb's source address (saddr:sport)
    acks = [e for e in ev if e["src"] != writer and int(e.get("data_len", 0)) == 0]
    seq = sorted([(e["t_us"], True) for e in data] + [(e["t_us"], False) for e in acks], key=lambda x: x[0])
    gaps, per_ack = [], []
    last_data_t, since = None, 0
    for t, is_data in seq:
        if is_data:
            last_data_t, since = t, since + 1
        elif last_data_t is not None and since:
            gaps.append(t - last_data_t)
            per_ack.append(since)
            since = 0
    srtt = [int(e["srtt"]) for e in acks if "srtt" in e]
    # whose context took each data segment in softirq: the reader's (it takes its backlog in task
    # context, so its pid is known) means a send that interrupted the reader (the pacing timer's softirq)
    readers = {e["pid"] for e in data if not e["softirq"]}
    in_softirq = [e for e in data if e["softirq"]]
    q = statistics.quantiles(gaps, n=10) if len(gaps) > 10 else [float("nan")] * 9
    per_msg = {"data_from_backlog": sum(not e["softirq"] for e in data),
               "acks_from_backlog": sum(not e["softirq"] for e in acks),
               "data_in_softirq_over_the_reader": sum(e["pid"] in readers for e in in_softirq),
               "data_in_softirq_over_others": sum(e["pid"] not in readers for e in in_softirq),
               "pacing_expiries_over_the_reader": sum(p in readers for p in pace),
               "pacing_expiries_over_others": sum(p not in readers for p in pace)}
    return {"data_segments": len(data), "acks_after_data": len(gaps),
            "data_segments_per_message": round(len(data) / msgs, 2),
            **{k + "_per_message": round(v / msgs, 3) for k, v in per_msg.items()},
            "data_cpus": sorted({e["cpu"] for e in data}), "ack_cpus": sorted({e["cpu"] for e in acks}),
            "segments_per_ack_median": statistics.median(per_ack) if per_ack else None,
            "last_data_to_ack_us_p10_p50_p90": [round(q[0], 1), round(statistics.median(gaps), 1), round(q[8], 1)]
            if gaps else None,
            "acks_within_2us_of_data": sum(g <= 2.0 for g in gaps),
            "sender_srtt_us_median": statistics.median(srtt) if srtt else None}  # (tcp_probe: srtt_us >> 3, in us)


def _coalesced() -> int:
    """TcpExt TCPBacklogCoalesce (/proc/net/netstat)."""
    return parse_snmp(Path("/proc/net/netstat").read_text())["TcpExt.TCPBacklogCoalesce"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=3000, help="messages per run (100..100000)")
    ap.add_argument("--sizes", default="65536", help="comma-separated write sizes, bytes (1..1048576)")
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",")]
    if not 100 <= a.count <= 100_000 or not all(1 <= x <= 1 << 20 for x in sizes):
        ap.error("--count must be 100..100000, --sizes 1..1048576 each")
    exe = str(build_harness())
    print(f"loadavg before: {Path('/proc/loadavg').read_text().strip()}")
    pace = ("timer", "hrtimer_expire_entry", "function.function == tcp_pace_kick")
    with event_trace([("tcp", "tcp_probe", None), pace], buffer_size_kb=65536) as tr:
        if ("tcp", "tcp_probe", None) not in tr.events:
            print("this kernel has no tcp:tcp_probe event")
            return 1
        for size, (pl, cpu_b) in ((z, p) for z in sizes for p in (("same", 0), ("cross", 1))):
            argv = ["--transport", "tcp", "--workload", "stream", "--size", str(size), "--count", str(a.count),
                    "--warmup", "100", "--cpu-a", "0", "--cpu-b", str(cpu_b), "--max-seconds", "5"]
            before = _coalesced()
            p, text = tr.around(lambda argv=argv: subprocess.run([PROGRAM_NAME, *argv], executable=exe,
                                                                  capture_output=True, text=True, timeout=40))
            r = json.loads(p.stdout.strip().splitlines()[-1])
            if "error" in r:
                print(f"harness: {r['error']}")
                return 1
            coalesced = _coalesced() - before
            msgs = a.count + 100  # the warm-up's messages are traced too
            res = _analyse(_events(text), _pace_pids(text), msgs)
            if "data_segments" in res:
                res["backlog_coalesced_per_message"] = round(coalesced / msgs, 3)
            print(json.dumps({"size": size, "placement": pl, "messages": msgs, **res}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
