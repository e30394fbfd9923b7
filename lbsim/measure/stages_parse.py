"""Parsing of a tracefs buffer into events, for the per-stage timing (:mod:`lbsim.measure.stages`).

The text ``trace`` listing prints microseconds only, so the same frozen buffer is read
twice -- once as text (event fields) and once with ``options/raw`` (``pid cpu ts_ns
type: id``) -- and :func:`parse_trace` zips the two listings line by line (cpu and the
rounded microsecond are cross-checked).  The text formats are the tracepoints'
TP_printk strings: include/trace/events/sched.h (sched_switch, sched_waking,
sched_wakeup), include/trace/events/net.h (net_dev_queue, netif_rx_entry, netif_rx,
netif_receive_skb), include/trace/events/irq.h (softirq_entry/exit),
include/trace/events/skb.h (skb_copy_datagram_iovec) and kernel/trace/trace_syscalls.c
(sys_enter_*/sys_exit_*).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Ev", "parse_trace", "text_events"]


@dataclass(slots=True)
class Ev:
    """One trace event: timestamp (ns), cpu, pid (current task), event name, fields."""
    ts: int
    cpu: int
    pid: int
    name: str
    f: dict
    i: int = 0   # index in the global (time-ordered) event list


_TEXT_RE = re.compile(r"\[(\d+)\]\s+(?:\S+\s+)?(\d+)\.(\d+): (.*)$")
_RAW_RE = re.compile(r"^\s*(-?\d+) (\d+) (\d+) type: (\d+)")
_LOST_RE = re.compile(r"^CPU:(\d+) \[LOST (\d+)? ?EVENTS\]")
_SKB_RE = re.compile(r"skbaddr=(?:0x)?([0-9a-f]+)")
_LEN_RE = re.compile(r"\blen=(\d+)")
_SW_RE = re.compile(r"prev_pid=(-?\d+) prev_prio=-?\d+ prev_state=(\S+) ==> .*next_pid=(-?\d+)")
_WK_RE = re.compile(r" pid=(-?\d+) prio=-?\d+ target_cpu=(\d+)")
_VEC_RE = re.compile(r"vec=(\d+)")
_RET_RE = re.compile(r"-> (0x[0-9a-f]+|-?\d+)")


def _fields(name: str, rest: str) -> dict:
    if name == "sched_switch":
        m = _SW_RE.search(rest)
        if m:
            return {"prev_pid": int(m.group(1)), "prev_state": m.group(2),
                    "next_pid": int(m.group(3))}
    elif name in ("sched_waking", "sched_wakeup"):
        m = _WK_RE.search(rest)
        if m:
            return {"pid": int(m.group(1)), "target_cpu": int(m.group(2))}
    elif name.startswith("sys_exit_"):
        m = _RET_RE.search(rest)
        if m:
            v = int(m.group(1), 0)
            if v >= 1 << 63:
                v -= 1 << 64
            return {"ret": v}
    elif name.startswith("softirq_"):
        m = _VEC_RE.search(rest)
        if m:
            return {"vec": int(m.group(1))}
    elif name.startswith("sys_enter_"):
        return {}
    else:
        m = _SKB_RE.search(rest)
        ln = _LEN_RE.search(rest)
        return {"skb": m.group(1) if m else None, "len": int(ln.group(1)) if ln else None}
    return {}


def text_events(text: str) -> Iterator[tuple[int, float, str, str]]:
    """(cpu, time in us, event name, its fields) of each event line of an ftrace text listing:
    what the counting tools under tools/ read (no raw listing, microsecond times)."""
    for ln in text.splitlines():
        if ln.startswith("#"):
            continue
        m = _TEXT_RE.search(ln)
        if m is None:
            continue
        name, _, fields = m.group(4).partition(": ")
        yield int(m.group(1)), int(m.group(2)) * 1e6 + int(m.group(3)), name, fields


def parse_trace(text: str, raw: str, ids: dict[int, str]) -> tuple[list[Ev], dict]:
    """Zip the text and the ``options/raw`` listing of the same buffer into events.

    ``ids`` maps event type ids to names.  Returns (events, info) where info has
    ``lost_events`` (sum of ``[LOST n EVENTS]`` markers), ``lost_markers``,
    ``mismatched`` (line pairs whose cpu/time disagree; then the text's microsecond
    time is used) and ``ts_resolution_ns``.
    """
    tl = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    rl = [ln for ln in raw.splitlines() if ln and not ln.startswith("#")]
    info = {"lost_events": 0, "lost_markers": 0, "mismatched": 0, "ts_resolution_ns": 1,
            "unknown_lines": 0}
    if len(tl) != len(rl):
        info["mismatched"] = abs(len(tl) - len(rl))
    evs: list[Ev] = []
    for k in range(min(len(tl), len(rl))):
        t, r = tl[k], rl[k]
        lm = _LOST_RE.match(t)
        if lm:
            info["lost_markers"] += 1
            info["lost_events"] += int(lm.group(2) or 0)
            continue
        rm = _RAW_RE.match(r)
        tm = _TEXT_RE.search(t)
        if not rm or not tm:
            info["unknown_lines"] += 1
            continue
        name = ids.get(int(rm.group(4)))
        if name is None:
            info["unknown_lines"] += 1
            continue
        cpu, ts = int(rm.group(2)), int(rm.group(3))
        us = int(tm.group(2)) * 1_000_000 + int(tm.group(3))
        if int(tm.group(1)) != cpu or abs((ts + 500) // 1000 - us) > 1:
            info["mismatched"] += 1
            ts = us * 1000
            cpu = int(tm.group(1))
        rest = tm.group(4)
        evs.append(Ev(ts, cpu, int(rm.group(1)), name, _fields(name, rest)))
    if info["mismatched"]:
        info["ts_resolution_ns"] = 1000
    evs.sort(key=lambda e: e.ts)   # already merged by time; stable for equal stamps
    for i, e in enumerate(evs):
        e.i = i
    return evs, info
