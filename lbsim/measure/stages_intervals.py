"""Per-stage intervals of a traced ping-pong: from parsed events (:mod:`.stages_parse`) to
per-message intervals named after kernel stages, and their medians.

The harness uses ``send()``/``recv()``, which glibc issues as the ``sendto`` and
``recvfrom`` system calls (checked with ``strace -f -c``: the ping-pong makes no other
socket I/O calls; read/write only touch the control pipes outside the measured loop),
so those are the syscall tracepoints used.

Interval definitions (all per message; "S" is the sender, "R" the receiver):

sender, loopback (tcp/udp), inside S's ``sendto``:
  ``send_syscall``               sys_enter_sendto -> sys_exit_sendto (everything, incl. the softirq)
  ``send_to_dev``                sys_enter_sendto -> net_dev_queue (syscall entry, tcp/udp_sendmsg
                                 with copy #1, IP output)
  ``dev_to_netif_rx``            net_dev_queue -> netif_rx_entry of the same skb (dev_queue_xmit,
                                 loopback_xmit)
  ``netif_rx_to_softirq``        netif_rx_entry -> softirq_entry(NET_RX) (enqueue_to_backlog,
                                 rest of dev_queue_xmit, local_bh_enable -> do_softirq)
  ``softirq_to_receive_skb``     softirq_entry -> netif_receive_skb of the same skb (net_rx_action,
                                 process_backlog)
  ``receive_skb_to_waking``      netif_receive_skb -> sched_waking(R) (ip_rcv, tcp_v4_rcv/udp_rcv,
                                 sock_def_readable)
  ``receive_skb_to_softirq_exit`` netif_receive_skb -> softirq_exit when R was not asleep
                                 (no wake-up)
  ``softirq_tail``               same CPU: sched_wakeup(R) -> softirq_exit; cross CPU:
                                 sched_waking(R) -> softirq_exit (includes ttwu_queue_wakelist and
                                 the IPI send) -- the rest of the softirq
  ``softirq``                    softirq_entry -> softirq_exit (whole NET_RX run)
  ``after_softirq_to_exit``      softirq_exit -> sys_exit_sendto (return path, release_sock)

sender, AF_UNIX (no device, no softirq):
  ``send_syscall``, ``send_to_waking`` (sys_enter_sendto -> sched_waking(R)),
  ``waking_to_exit`` (sched_waking(R) -> sys_exit_sendto)

wake-up of R (only when S's send woke R):
  ``waking_to_wakeup``           same CPU: sched_waking -> sched_wakeup (try_to_wake_up)
  ``remote_wakeup``              cross CPU: sched_waking on CPU A -> sched_wakeup on CPU B
                                 (IPI delivery, idle exit, sched_ttwu_pending)
  ``wakeup_to_switch``           sched_wakeup(R) -> sched_switch(next=R)
  ``switch``                     the last traced event on R's CPU before sched_switch(next=R)
                                 (not earlier than R's sched_wakeup) -> sched_switch(next=R):
                                 the way into __schedule of the task that gives up the CPU
  ``wakeup_latency``             sched_waking(R) -> sched_switch(next=R) (cross CPU: IPI + idle
                                 exit + schedule; same CPU: also the rest of the waker's run)
  ``waking_to_running``          sched_waking(R) -> R's first own event afterwards (also available
                                 when the sched_switch(next=R) record is missing)

receiver, R's first ``recvfrom`` of the message:
  ``recv_entry_to_switch_out``   sys_enter_recvfrom -> first sched_switch(prev=R, state S/D)
  ``switch_in_to_copy``          last sched_switch(next=R) before the copy ->
                                 skb_copy_datagram_iovec
  ``switch_in_to_exit``          last sched_switch(next=R) -> sys_exit_recvfrom
  ``copy_to_exit``               skb_copy_datagram_iovec -> sys_exit_recvfrom
  ``recv_entry_to_copy``         sys_enter_recvfrom -> skb_copy_datagram_iovec (did not sleep)
  ``recv_syscall``               sys_enter_recvfrom -> sys_exit_recvfrom (did not sleep)

round trip: ``rtt`` -- the client's first sys_enter_sendto -> its last sys_exit_recvfrom of the
reply.  It misses what happens in user space and after the syscall-exit tracepoint (e.g. a
preemption on the way out), so it can be below the harness's own p50; the tracing overhead
is therefore computed from the harness's p50 with and without tracing (same clock):
``overhead_ns_per_event = (rtt_traced_harness_p50_ns - rtt_untraced_median_ns) /
events_per_rtt``, where events_per_rtt counts every recorded event in the measured window.
Across CPUs the round trip is dominated by IPI/idle-exit latency whose run-to-run spread is
far larger than the tracing cost, so that estimate is noisy there.

What the trace of this kind of run shows and how it is handled:

* On the same CPU the receiver is often *not* asleep when data arrives (the woken peer
  preempts the client at its sendto's return; its reply is queued before the client
  reaches recvfrom), so many messages have no wake-up: counted in ``wakeups['none']``;
  their receive side is ``recv_syscall``/``recv_entry_to_copy`` instead of the
  switch intervals, and their softirq ``receive_skb_to_softirq_exit``.
* TCP in a ping-pong sends no separate ACKs (they ride on the replies); the first
  net_dev_queue of the sendto and the skb address are followed through the softirq.
* Cross CPU, the send to a sleeping peer on an idle CPU costs the *sender* the IPI
  (``softirq_tail``/``waking_to_exit``: ttwu_queue_wakelist + the IPI, tens of us in a VM).
* AF_UNIX stream: consuming an skb calls sock_wfree -> unix_write_space, which wakes
  the *other* task if it sleeps in recvfrom (the wait queue entry ignores the poll key):
  a spurious wake-up (it is inside the consumer's recvfrom, so ``copy_to_exit`` of
  unix_stream includes it).  If the woken task gets the CPU before the data arrives it
  sleeps again (an extra sleep inside one recvfrom: ``spurious_sleeps``); if not (the
  usual case across CPUs, where the remote wake-up takes longer than the next send),
  the sender's sendto finds it already runnable and wakes nobody: the message then
  rides on that earlier wake-up, counted as ``wakeups['early']`` and used for the
  wake-up intervals (``remote_wakeup``, ``wakeup_latency``, ...) but not for
  ``send_to_waking``/``waking_to_exit``.
* ``wakeups`` per message: ``local``/``remote`` (the sender's sendto woke R on its own
  / another CPU), ``early`` (see above), ``none`` (R was not asleep: on one CPU the
  woken peer usually preempts the client, whose reply is then queued before the client
  reaches recvfrom), ``before_switch_out`` (woken while still on its way to sleep).
* UDP copies linear skbs with copy_linear_skb(), which has no tracepoint: no
  skb_copy_datagram_iovec for udp, only ``switch_in_to_exit``/``recv_syscall``.
* A sched_switch(next=R) may be absent from the buffer (seen on some kernels/VMs for
  idle -> task switches on one CPU); counted in ``unmatched['sched_switch_in']``.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from .stages_parse import Ev

__all__ = ["analyze", "STAGE_ORDER", "STAGE_DOC", "DEVICE_STAGES"]

STAGE_ORDER: tuple[str, ...] = (
    "send_syscall", "send_to_dev", "dev_to_netif_rx", "netif_rx_to_softirq",
    "softirq_to_receive_skb", "receive_skb_to_waking", "receive_skb_to_softirq_exit",
    "softirq_tail", "softirq", "after_softirq_to_exit", "send_to_waking", "waking_to_exit",
    "waking_to_wakeup", "remote_wakeup", "wakeup_to_switch", "switch", "wakeup_latency",
    "waking_to_running", "recv_entry_to_switch_out", "switch_in_to_copy", "switch_in_to_exit",
    "copy_to_exit", "recv_entry_to_copy", "recv_syscall", "rtt",
)
STAGE_DOC: dict[str, str] = {
    "send_syscall": "sys_enter_sendto -> sys_exit_sendto (whole send, incl. the softirq it runs)",
    "send_to_dev": "sys_enter_sendto -> net_dev_queue (entry, tcp/udp_sendmsg + copy #1, IP out)",
    "dev_to_netif_rx": "net_dev_queue -> netif_rx_entry, same skb (dev_queue_xmit, loopback_xmit)",
    "netif_rx_to_softirq": "netif_rx_entry -> softirq_entry NET_RX (enqueue_to_backlog, bh enable)",
    "softirq_to_receive_skb": "softirq_entry -> netif_receive_skb, same skb (net_rx_action, "
                              "process_backlog)",
    "receive_skb_to_waking": "netif_receive_skb -> sched_waking(receiver) (ip_rcv, tcp_v4_rcv/"
                             "udp_rcv, sock_def_readable)",
    "receive_skb_to_softirq_exit": "netif_receive_skb -> softirq_exit, receiver not asleep",
    "softirq_tail": "sched_wakeup (same CPU) / sched_waking (cross CPU, incl. IPI send) -> "
                    "softirq_exit",
    "softirq": "softirq_entry -> softirq_exit (NET_RX run inside the sendto)",
    "after_softirq_to_exit": "softirq_exit -> sys_exit_sendto (return path, release_sock)",
    "send_to_waking": "AF_UNIX: sys_enter_sendto -> sched_waking(receiver)",
    "waking_to_exit": "AF_UNIX: sched_waking(receiver) -> sys_exit_sendto",
    "waking_to_wakeup": "same CPU: sched_waking -> sched_wakeup (try_to_wake_up)",
    "remote_wakeup": "cross CPU: sched_waking on A -> sched_wakeup on B (IPI, idle exit)",
    "wakeup_to_switch": "sched_wakeup(R) -> sched_switch(next=R)",
    "switch": "last event on R's CPU (>= wakeup) -> sched_switch(next=R)",
    "wakeup_latency": "sched_waking(R) -> sched_switch(next=R)",
    "waking_to_running": "sched_waking(R) -> R's first own event afterwards",
    "recv_entry_to_switch_out": "sys_enter_recvfrom -> sched_switch(prev=R, S/D)",
    "switch_in_to_copy": "last sched_switch(next=R) -> skb_copy_datagram_iovec",
    "switch_in_to_exit": "last sched_switch(next=R) -> sys_exit_recvfrom",
    "copy_to_exit": "skb_copy_datagram_iovec -> sys_exit_recvfrom",
    "recv_entry_to_copy": "sys_enter_recvfrom -> skb_copy_datagram_iovec (did not sleep)",
    "recv_syscall": "sys_enter_recvfrom -> sys_exit_recvfrom (did not sleep)",
    "rtt": "client sys_enter_sendto -> its sys_exit_recvfrom of the reply",
}

DEVICE_STAGES = ("send_to_dev", "dev_to_netif_rx", "netif_rx_to_softirq",
                 "softirq_to_receive_skb", "receive_skb_to_waking",
                 "receive_skb_to_softirq_exit", "softirq_tail", "softirq",
                 "after_softirq_to_exit")


@dataclass
class _Syscall:
    name: str          # "sendto" / "recvfrom"
    enter: Ev
    exit: Ev
    inner: list        # the task's own events strictly between enter and exit

    @property
    def ret(self) -> int:
        return self.exit.f.get("ret", 0)


@dataclass
class _Acc:
    samples: dict = field(default_factory=dict)
    unmatched: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)

    def add(self, key: str, a: Ev | None, b: Ev | None) -> None:
        if a is None or b is None:
            return
        self.samples.setdefault(key, []).append(b.ts - a.ts)

    def miss(self, key: str, n: int = 1) -> None:
        self.unmatched[key] = self.unmatched.get(key, 0) + n

    def count(self, key: str, sub: str, n: int = 1) -> None:
        d = self.counts.setdefault(key, {})
        d[sub] = d.get(sub, 0) + n


def _syscalls(own: list[Ev], acc: _Acc) -> list[_Syscall]:
    out: list[_Syscall] = []
    cur: Ev | None = None
    inner: list[Ev] = []
    for e in own:
        if e.name.startswith("sys_enter_"):
            if cur is not None:
                acc.miss("sys_exit")
            cur, inner = e, []
        elif e.name.startswith("sys_exit_"):
            if cur is not None and e.name[9:] == cur.name[10:]:
                out.append(_Syscall(cur.name[10:], cur, e, inner))
            elif cur is None:
                pass   # exit of a syscall entered before tracing started
            else:
                acc.miss("sys_exit")
            cur, inner = None, []
        elif cur is not None:
            inner.append(e)
    return out


def _phases(calls: list[_Syscall]) -> list[tuple[str, list[_Syscall]]]:
    """Maximal runs of successful sendto (or recvfrom) calls; ret <= 0 ends a run."""
    out: list[tuple[str, list[_Syscall]]] = []
    for c in calls:
        if c.ret <= 0:
            out.append(("end", [c]))
            continue
        if out and out[-1][0] == c.name:
            out[-1][1].append(c)
        else:
            out.append((c.name, [c]))
    return [p for p in out if p[0] != "end"]


def _first(seq: Iterable[Ev], name: str, after: Ev | None = None, **match) -> Ev | None:
    for e in seq:
        if e.name != name or (after is not None and e.i <= after.i):
            continue
        if all(e.f.get(k) == v for k, v in match.items()):
            return e
    return None


def _is_sleep(e: Ev, pid: int) -> bool:
    """sched_switch(prev=pid) that puts pid to sleep (state S or D, not a preemption)."""
    return (e.name == "sched_switch" and e.f.get("prev_pid") == pid
            and e.f.get("prev_state", "R")[:1] in ("S", "D"))


def _pct(xs: list, q: float) -> float:
    s = sorted(xs)
    if len(s) == 1:
        return float(s[0])
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (k - lo))


class _Trace:
    """The events by task and by CPU, with the look-ups the interval rules need."""

    def __init__(self, events: list[Ev]):
        self.events = events
        self.by_pid: dict[int, list[Ev]] = {}
        self.by_cpu: dict[int, list[Ev]] = {}
        for e in events:
            self.by_pid.setdefault(e.pid, []).append(e)
            self.by_cpu.setdefault(e.cpu, []).append(e)
        self.cpu_pos = {id(e): k for lst in self.by_cpu.values() for k, e in enumerate(lst)}
        self.pid_idx: dict[int, list[int]] = {}

    def index(self, pids: Iterable[int]) -> None:
        """Global indices of each of ``pids``' events (for the bisections below)."""
        self.pid_idx = {p: [e.i for e in self.by_pid[p]] for p in pids}

    def first_own_after(self, pid: int, ev: Ev) -> Ev | None:
        k = bisect.bisect_right(self.pid_idx[pid], ev.i)
        return self.by_pid[pid][k] if k < len(self.pid_idx[pid]) else None

    def last_own_before(self, pid: int, ev: Ev) -> Ev | None:
        k = bisect.bisect_left(self.pid_idx[pid], ev.i) - 1
        return self.by_pid[pid][k] if k >= 0 else None

    def switch_in(self, r: int, after: Ev, before: Ev | None) -> Ev | None:
        """The first sched_switch(next=r) after ``after`` and before ``before``."""
        for e in self.events[after.i + 1: before.i if before is not None else len(self.events)]:
            if e.name == "sched_switch" and e.f.get("next_pid") == r:
                return e
        return None

    def prev_on_cpu(self, ev: Ev) -> Ev | None:
        """The event recorded on ``ev``'s CPU just before it."""
        k = self.cpu_pos[id(ev)]
        return self.by_cpu[ev.cpu][k - 1] if k > 0 else None


def _peer(tr: _Trace, client_pid: int) -> int:
    """The echo peer: the task other than the client (and idle) that sent the most."""
    sends = {p: sum(1 for e in lst if e.name == "sys_enter_sendto")
             for p, lst in tr.by_pid.items() if p not in (client_pid, 0)}
    sends = {p: n for p, n in sends.items() if n > 0}
    if client_pid not in tr.by_pid or not sends:
        raise ValueError("trace has no ping-pong (no sendto by the harness client and a peer)")
    return max(sends, key=lambda p: sends[p])


def _round_trips(cph: list[tuple[str, list[_Syscall]]], warmup: int) -> list[tuple[Ev, Ev]]:
    """(client send phase's first enter, next client recv phase's last exit), after warmup."""
    rtts: list[tuple[Ev, Ev]] = []
    for k, (kind, cs) in enumerate(cph):
        if kind == "sendto" and k + 1 < len(cph) and cph[k + 1][0] == "recvfrom":
            rtts.append((cs[0].enter, cph[k + 1][1][-1].exit))
    rtts = rtts[warmup:]
    if not rtts:
        raise ValueError("no complete round trip in the trace")
    return rtts


def _messages(phases: dict, pids: tuple[int, int], t_start: int, t_end: int,
              acc: _Acc) -> list[tuple]:
    """A send phase of S paired with the next recv phase of R, both directions, in the
    measured window, sorted by send time: [(s, r, send phase, recv phase)]."""
    msgs = []
    for s, r in (pids, pids[::-1]):
        rph = [cs for kind, cs in phases[r] if kind == "recvfrom"]
        j = 0
        for kind, sp in phases[s]:
            if kind != "sendto":
                continue
            while j < len(rph) and rph[j][-1].exit.ts < sp[0].enter.ts:
                j += 1
            if j >= len(rph):
                acc.miss("recv_phase")
                continue
            rp = rph[j]
            j += 1
            if sum(c.ret for c in sp) != sum(c.ret for c in rp):
                acc.miss("byte_count_mismatch")
            if t_start <= sp[0].enter.ts <= t_end:
                msgs.append((s, r, sp, rp))
    msgs.sort(key=lambda m: m[2][0].enter.ts)
    return msgs


def _send_to_softirq(sc: _Syscall, acc: _Acc) -> tuple[Ev | None, Ev | None]:
    """Loopback send up to the NET_RX softirq inside the sendto: (softirq_entry, net_dev_queue)."""
    inner = sc.inner
    dq = _first(inner, "net_dev_queue")
    if dq is None:
        acc.miss("net_dev_queue")
        return None, None
    acc.add("send_to_dev", sc.enter, dq)
    rxe = _first(inner, "netif_rx_entry", dq, skb=dq.f.get("skb"))
    if rxe is None:
        acc.miss("netif_rx_entry")
        return None, dq
    acc.add("dev_to_netif_rx", dq, rxe)
    se = _first(inner, "softirq_entry", rxe)
    if se is None:
        acc.miss("softirq_entry")   # NET_RX ran elsewhere (ksoftirqd, irq exit)
        return None, dq
    acc.add("netif_rx_to_softirq", rxe, se)
    return se, dq


def _net_rx_softirq(sc: _Syscall, se: Ev, dq: Ev, r: int, acc: _Acc) -> Ev | None:
    """The NET_RX softirq run from ``se``: its stages; returns sched_waking(r) inside it."""
    inner = sc.inner
    wk: Ev | None = None
    sx = _first(inner, "softirq_exit", se)
    within = [e for e in inner if se.i < e.i and (sx is None or e.i < sx.i)]
    rcv = _first(within, "netif_receive_skb", skb=dq.f.get("skb"))
    if rcv is None:
        acc.miss("netif_receive_skb")
    else:
        acc.add("softirq_to_receive_skb", se, rcv)
        wk = _first(within, "sched_waking", rcv, pid=r)
    if sx is None:
        acc.miss("softirq_exit")
    else:
        acc.add("softirq", se, sx)
        acc.add("after_softirq_to_exit", sx, sc.exit)
        if rcv is not None and wk is None:
            acc.add("receive_skb_to_softirq_exit", rcv, sx)
    if wk is not None:
        acc.add("receive_skb_to_waking", rcv, wk)
        wu_local = _first(within, "sched_wakeup", wk, pid=r)
        if sx is not None:
            acc.add("softirq_tail", wu_local or wk, sx)
    return wk


def _sender_side(sc: _Syscall, r: int, loopback: bool, acc: _Acc) -> Ev | None:
    """Stages of S's first sendto of a message; returns the sched_waking(r) it made, if any."""
    acc.add("send_syscall", sc.enter, sc.exit)
    wk: Ev | None = None
    if loopback:
        se, dq = _send_to_softirq(sc, acc)
        if se is not None and dq is not None:  # (dq is set whenever se is)
            wk = _net_rx_softirq(sc, se, dq, r, acc)
        if wk is None:
            # a wake-up outside the softirq (e.g. backlog processed at release_sock)
            wk = _first(sc.inner, "sched_waking", pid=r)
    else:
        wk = _first(sc.inner, "sched_waking", pid=r)
        if wk is not None:
            acc.add("send_to_waking", sc.enter, wk)
            acc.add("waking_to_exit", wk, sc.exit)
    return wk


def _early_waking(tr: _Trace, sc: _Syscall, r: int) -> Ev | None:
    """R asleep but already woken before the send (AF_UNIX stream: the write-space wake-up
    from S's previous recvfrom); the data then rides on that wake-up."""
    last = tr.last_own_before(r, sc.enter)
    if last is not None and _is_sleep(last, r):
        for e in reversed(tr.events[last.i + 1: sc.enter.i]):
            if e.name == "sched_waking" and e.f.get("pid") == r:
                return e
    return None


def _wakeup(tr: _Trace, sc: _Syscall, r: int, rp: list[_Syscall], wk: Ev | None,
            acc: _Acc) -> None:
    """The wake-up of R for one message (``wk``: the sender's sched_waking(R), if any)."""
    rcpu = rp[0].enter.cpu
    early = False
    if wk is None:
        wk = _early_waking(tr, sc, r)
        early = wk is not None
    if wk is None:
        acc.count("wakeups", "none")
        return
    remote = wk.cpu != rcpu
    acc.count("wakeups", "early" if early else "remote" if remote else "local")
    fe = tr.first_own_after(r, wk)
    wu = _first(tr.events[wk.i + 1: fe.i if fe is not None else len(tr.events)],
                "sched_wakeup", pid=r)
    if wu is None:
        acc.miss("sched_wakeup")
    else:
        acc.add("remote_wakeup" if remote else "waking_to_wakeup", wk, wu)
    sw = tr.switch_in(r, wu or wk, fe)
    if sw is None:
        last = tr.last_own_before(r, wk)
        if last is not None and _is_sleep(last, r):
            acc.miss("sched_switch_in")   # R was switched out, switch-in not recorded
        else:
            acc.count("wakeups", "before_switch_out")   # R had not gone to sleep yet
    else:
        acc.add("wakeup_to_switch", wu, sw)
        acc.add("wakeup_latency", wk, sw)
        prev = tr.prev_on_cpu(sw)
        start = wu if wu is not None else wk
        if prev is not None and prev.i > start.i:
            start = prev
            acc.count("switch_after", prev.name)
        elif wu is not None:
            acc.count("switch_after", "sched_wakeup")
        acc.add("switch", start, sw)
    if fe is not None:
        acc.add("waking_to_running", wk, fe)


def _receiver_side(tr: _Trace, r: int, rp: list[_Syscall], acc: _Acc) -> None:
    """Stages of R's recvfrom calls of one message (its first call, and the one that copied)."""
    rc = rp[0]
    outs = [e for e in rc.inner if _is_sleep(e, r)]
    copy_call = next((c for c in rp if _first(c.inner, "skb_copy_datagram_iovec")), None)
    if copy_call is None:
        acc.miss("skb_copy_datagram_iovec")
    if outs:
        acc.add("recv_entry_to_switch_out", rc.enter, outs[0])
        if len(outs) > 1:
            acc.count("spurious_sleeps", "extra", len(outs) - 1)
        sw_in = tr.switch_in(r, outs[-1], tr.first_own_after(r, outs[-1]))
        if sw_in is None:
            acc.miss("switch_in_receiver")
        else:
            acc.add("switch_in_to_exit", sw_in, rc.exit)
            if copy_call is rc:
                cp = _first(rc.inner, "skb_copy_datagram_iovec", outs[-1])
                acc.add("switch_in_to_copy", sw_in, cp)
    else:
        acc.add("recv_syscall", rc.enter, rc.exit)
        if copy_call is rc:
            acc.add("recv_entry_to_copy", rc.enter,
                    _first(rc.inner, "skb_copy_datagram_iovec"))
    if copy_call is not None:
        cps = [e for e in copy_call.inner if e.name == "skb_copy_datagram_iovec"]
        acc.add("copy_to_exit", cps[-1], copy_call.exit)


def _stage_stats(acc: _Acc, n_rtt: int) -> dict:
    """{stage: {median_ns, p10_ns, p90_ns, mean_ns, count, per_rtt}} in STAGE_ORDER."""
    stages = {}
    for key in STAGE_ORDER:
        xs = acc.samples.get(key)
        if not xs:
            continue
        stages[key] = {"median_ns": float(statistics.median(xs)), "p10_ns": _pct(xs, 0.1),
                       "p90_ns": _pct(xs, 0.9), "mean_ns": float(statistics.fmean(xs)),
                       "count": len(xs), "per_rtt": len(xs) / n_rtt}
    return stages


def analyze(events: list[Ev], client_pid: int, transport: str, warmup: int = 0) -> dict:
    """Cut a parsed trace into per-message stage intervals (see the module docstring).

    ``warmup`` client round trips at the start are skipped.  Returns a dict with
    ``stages`` ({name: {median_ns, p10_ns, p90_ns, mean_ns, count, per_rtt}}),
    ``medians`` ({name: median_ns}), ``unmatched``, ``wakeups``, ``rtt_traced_median_ns``,
    ``round_trips``, ``messages``, ``events_per_rtt``, ``peer_pid``.
    """
    loopback = transport in ("tcp", "udp")
    acc = _Acc()
    tr = _Trace(events)
    peer_pid = _peer(tr, client_pid)
    pids = (client_pid, peer_pid)
    calls = {p: _syscalls(tr.by_pid[p], acc) for p in pids}
    phases = {p: _phases(calls[p]) for p in pids}

    rtts = _round_trips(phases[client_pid], warmup)
    t_start, t_end = rtts[0][0].ts, rtts[-1][1].ts
    for a, b in rtts:
        acc.add("rtt", a, b)
    n_rtt = len(rtts)

    msgs = _messages(phases, pids, t_start, t_end, acc)
    tr.index(pids)
    for _s, r, sp, rp in msgs:
        wk = _sender_side(sp[0], r, loopback, acc)
        _wakeup(tr, sp[0], r, rp, wk, acc)
        _receiver_side(tr, r, rp, acc)

    stages = _stage_stats(acc, n_rtt)
    n_ev = sum(1 for e in events if t_start <= e.ts <= t_end)
    wake = {"local": 0, "remote": 0, "early": 0, "none": 0, "before_switch_out": 0}
    wake.update(acc.counts.get("wakeups", {}))
    return {
        "peer_pid": peer_pid,
        "round_trips": n_rtt,
        "messages": len(msgs),
        "stages": stages,
        "medians": {k: v["median_ns"] for k, v in stages.items()},
        "unmatched": dict(sorted(acc.unmatched.items())),
        "wakeups": wake,
        "spurious_sleeps": acc.counts.get("spurious_sleeps", {}).get("extra", 0),
        "switch_after": dict(sorted(acc.counts.get("switch_after", {}).items())),
        "rtt_traced_median_ns": stages["rtt"]["median_ns"],
        "events_in_window": n_ev,
        "events_per_rtt": n_ev / n_rtt,
    }
