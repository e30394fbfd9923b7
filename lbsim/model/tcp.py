"""TCP over loopback (net/ipv4/tcp*.c): one established connection between two sockets.

Send path (``tcp_sendmsg``, sender task): ``lock_sock``; copy into skbs of up to the size
goal (``skb_copy_to_page_nocache``, per byte; a new skb costs ``tcp_stream_alloc_skb``);
MSS = ``min(mtu - 40, 65495) - 12`` clamped to half the peer's largest window
(``tcp_bound_to_half_wnd``); size goal = ``gso_segs * mss`` with ``gso_segs =
(gso_max_size - 1 - MAX_TCP_HEADER) / mss`` (at least 1): one 65483-byte segment per skb
at MTU 65536, 3 x 16384 at 16436, 45 x 1448 at 1500.  ``sk_wmem_queued`` counts the
write queue **and un-ACKed data**; above ``sk_sndbuf`` the writer pushes what it has and
sleeps (``sk_stream_wait_memory``) until ``sk_stream_write_space`` finds
``wmem_queued <= 2/3 sndbuf``.  ``tcp_write_xmit`` sends while the congestion window
(initially ``TCP_INIT_CWND``, slow start), the peer's receive window and Nagle (off with
``TCP_NODELAY``) allow; TSQ and autocorking are inert on lo (``skb_orphan`` in
``loopback_xmit`` runs ``tcp_wfree`` at once, §1.3) and are not modelled.  Each skb goes
``tcp_transmit_skb`` -> ``ip_output`` -> ``dev_queue_xmit`` -> ``loopback_xmit`` ->
``netif_rx``; with TSO off on lo the GSO skb is cut by ``skb_gso_segment`` and each segment
crosses lo on its own.  ``release_sock`` processes what arrived on the socket backlog.

Receive path (``tcp_v4_rcv``, in NET_RX softirq on the CPU whose backlog holds the skb):
a socket owned by its task (inside ``tcp_sendmsg``/``tcp_recvmsg``) gets the skb on its
backlog (``tcp_add_backlog``, limit ``2*rcvbuf + sndbuf/2 + 64 KB``), processed at
``release_sock`` in task context; otherwise ``tcp_rcv_established``: ``tcp_ack`` (frees
ACKed skbs, grows cwnd, may wake the writer and transmit more data from this softirq:
``tcp_data_snd_check``), then in-order data is queued (``rmem += truesize``), the ACK
decision of ``__tcp_ack_snd_check`` (now if more than one full ``rcv_mss`` is un-ACKed or
in quick-ack mode, else the delayed-ACK timer, ``TCP_DELACK_MIN`` = 40 ms), and
``sk_data_ready`` wakes the reader.  Any data segment carries an ACK (piggy-back) and
cancels a pending delayed ACK.  ACKs are their own skbs (``tcp_send_ack``) and cross lo
on the CPU that sends them.

``tcp_recvmsg`` (receiver task): copy (``skb_copy_datagram_msg``), free consumed skbs
(``__kfree_skb``; from another CPU ``skb_attempt_defer_free`` hands them back to the
sender's CPU, which frees them in its next NET_RX run, see netdev.py),
``tcp_rcv_space_adjust`` (DRS: the receive buffer grows toward ``tcp_rmem[2]`` when the
reader drains more than a window per round), ``tcp_cleanup_rbuf`` (ACK when one is
pending and more than a segment is un-ACKed or it was pushed -- a segment shorter than
``rcv_mss``, or from 6.7 one of ``rcv_mss`` or more with PSH, which every write's last
skb carries -- or when the window at least doubled), ``release_sock``.  The advertised window is ``(rcvbuf - rmem) x ratio``
(``tcp_win_from_space``; ratio 50 % until learned from ``len / truesize``).

Out-of-order segments (lo reorders when an ACK processed in softirq on the receiver's
CPU transmits from there while the sender task transmits from its own CPU) wait in an
out-of-order queue until the hole fills, and are dup-ACKed at once.

Left out, documented: SACK and fast retransmit (lo only drops when RPS or a full backlog
is involved; a lost segment is recovered by the RTO, ``tcp_rto_min``); congestion
avoidance after loss (cwnd restarts at 1 and slow-starts); TSQ; autocorking; pacing;
timestamps (only their 12 option bytes).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Generator, Iterable

from lbsim.model.cpu import CPU
from lbsim.model.sim import Sim
from lbsim.model.task import BH_ENABLE, PREEMPT, Task, WaitQueue
from lbsim.model.timers import LazyTimer
from lbsim.model.netdev import Net
from lbsim.model.skb import truesize_tcp
from lbsim.model.socket import consume, plan_read
from lbsim.model.stages import SID
from lbsim.model.tcp_cc import Bbr

__all__ = ["TcpSock", "tcp_connect", "tcp_size_goal"]

S = SID
MAX_TCP_HEADER = 320  # L1_CACHE_ALIGN(128 + MAX_HEADER) on x86-64
TCP_MSS_DEFAULT = 536
TCP_MIN_MSS = 88
RCV_RTT_NS = 100_000.0  # the DRS measurement round on lo (see TcpSock._rcv_space_adjust)
HDR = 20 + 20 + 12  # IP + TCP + timestamp option bytes on the wire

# the stages of the fixed commands (work items: stage ids), built once
_XMIT = (S["tcp_transmit_skb"], S["ip_output"], S["dev_queue_xmit"], S["loopback_xmit"], S["netif_rx"])
_XMIT_GSO_HEAD = (S["tcp_transmit_skb"], S["ip_output"], S["dev_queue_xmit"])
_XMIT_GSO_SEG = (S["skb_gso_segment"], S["loopback_xmit"], S["netif_rx"])
_SEND_ACK = (S["tcp_send_ack"], S["ip_output"], S["dev_queue_xmit"], S["loopback_xmit"], S["netif_rx"])
_RCV = (S["process_backlog"], S["ip_rcv"], S["tcp_v4_rcv"])
_SENDMSG = (S["syscall"], S["tcp_sendmsg"])
_RECVMSG = (S["syscall"], S["tcp_recvmsg"])
S_BOUNCE = S["cacheline_transfer"]
S_C2C = S["cache_to_cache_copy"]
S_READABLE = S["sock_def_readable"]
S_ACK = S["tcp_ack"]
S_ADD_BACKLOG = S["tcp_add_backlog"]
S_DELACK_TIMER = S["tcp_delack_timer"]
S_RTX_TIMER = S["tcp_retransmit_timer"]
S_ALLOC_SKB = S["tcp_stream_alloc_skb"]
S_COPY_IN = S["skb_copy_to_page_nocache"]
S_COPY_OUT = S["skb_copy_datagram_msg"]
S_CLEANUP_RBUF = S["tcp_cleanup_rbuf"]
S_RECVMSG = S["tcp_recvmsg"]
S_KFREE = S["__kfree_skb"]


def tcp_size_goal(mss: int, gso_max_size: int) -> tuple[int, int]:
    """tcp_xmit_size_goal(): (gso_segs, size_goal bytes) for a socket with GSO."""
    segs = max(1, (gso_max_size - 1 - MAX_TCP_HEADER) // mss)
    return segs, segs * mss


def _roundup_pow2(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


class TcpSock:
    """One end of an established connection."""

    # __slots__: attribute loads and method lookups specialise (LOAD_ATTR_SLOT, LOAD_METHOD_NO_DICT);
    # with ~75 attributes an instance dict is not shared-key, so they went through dict lookups
    __slots__ = ("sim", "env", "net", "name", "flow", "stats", "modern", "nodelay", "tso",
                 "gso_max_size", "advmss", "wmem_max", "rmem_max", "quickacks_max", "delack_ns",
                 "rto_ns", "peer", "write_q", "tail_open", "rtx", "write_seq", "snd_una", "snd_nxt",
                 "wmem_queued", "packets_out", "cwnd", "snd_wnd", "max_window", "_goal_for",
                 "_goal", "user_sndbuf", "sndbuf", "wq_space", "rto_token", "rto_armed",
                 "rto_timer", "msg_ends", "tx_cpu", "rx_cpu", "rcv_nxt", "rcv_wup", "rcv_wnd", "copied_seq",
                 "rcvq", "rmem", "user_rcvbuf", "rcvbuf", "ratio", "rcv_mss", "ack_pending",
                 "pushed", "quick", "pingpong", "last_rcv", "delack_token", "delack_armed",
                 "delack_timer", "rcvq_space", "rcvq_time", "rcvq_space_prev", "wq_data",
                 "last_cpu", "owned", "backlog", "backlog_bytes", "deferred_delack", "deferred_rto",
                 "out_segs", "in_segs", "retrans_segs", "pure_acks_sent", "data_packets",
                 "backlog_drops", "ofo_queued", "ofo", "lost_bytes", "skb_overhead", "cc", "delivered",
                 "delivered_mstamp", "first_tx_mstamp", "app_limited", "rtt_min_us", "mss_clamp")

    BOUNCE_SID = S_BOUNCE  # Sim.touch: the cache-line transfer this socket type costs
    BOUNCE_ITEMS = (BOUNCE_SID,)  # the work items Sim.touch returns

    def __init__(self, sim: Sim, net: Net, name: str, *, kernel: Any, flow: int, stats: Any,
                 nodelay: bool, so_sndbuf: int | None, so_rcvbuf: int | None) -> None:
        self.sim = sim
        self.env = sim.env
        self.net = net
        self.name = name
        self.flow = flow
        self.stats = stats
        self.modern = kernel.name != "linux-2.6.32"
        self.skb_overhead = truesize_tcp(0, self.modern)  # truesize_tcp(n, modern) is n + this (per-packet paths)
        self.nodelay = nodelay
        self.tso = kernel.tso
        self.gso_max_size = kernel.gso_max_size
        self.advmss = kernel.tcp_mss
        self.wmem_max = kernel.tcp_wmem[2]
        self.rmem_max = kernel.tcp_rmem[2]
        self.quickacks_max = kernel.tcp_max_quickacks
        self.delack_ns = float(kernel.tcp_delack_min_ns)
        self.rto_ns = kernel.tcp_rto_min_us * 1000.0
        self.peer: TcpSock = self  # set by tcp_connect
        # send side
        self.write_q: deque[int] = deque()  # skb lengths not yet sent (head first)
        self.tail_open = False  # the last skb in write_q may still grow
        self.rtx: deque[list[int]] = deque()  # [end_seq, len, truesize, segs, msg]
        self.write_seq = 0
        self.snd_una = 0
        self.snd_nxt = 0
        self.wmem_queued = 0
        self.packets_out = 0
        self.cwnd = kernel.tcp_init_cwnd
        # net/ipv4/tcp_rate.c: packets delivered, when (us), the send time of the newest ACKed
        # packet, and the app-limited mark; tcp_min_rtt (us)
        self.delivered = 0
        self.delivered_mstamp = 0
        self.first_tx_mstamp = 0
        self.app_limited = 0
        self.rtt_min_us = float("inf")
        # tp->rx_opt.mss_clamp: the peer's SYN MSS option (lo: the same advmss at both ends)
        self.mss_clamp = kernel.tcp_mss
        # the congestion control's state: None = cubic (inline in _process_ack), else Bbr
        self.cc: Bbr | None = (Bbr(sim.cc_rng, sim.env.now / 1000.0, self.cwnd, self.advmss)
                               if kernel.tcp_congestion_control == "bbr" else None)
        self.snd_wnd = 65535
        self.max_window = 0
        self._goal_for = -1  # the max_window size_goal() was last computed for, and its result
        self._goal = 0
        self.user_sndbuf = so_sndbuf is not None
        self.sndbuf = 2 * so_sndbuf if so_sndbuf is not None else kernel.tcp_wmem[1]
        self.wq_space = WaitQueue(f"{name} sk_wq (write)")
        self.rto_token = 0
        self.rto_armed = False
        self.rto_timer = LazyTimer(self.env, self._rto_expired)
        self.msg_ends: deque[tuple[int, int]] = deque()  # (write_seq at the end of a write, msg)
        self.tx_cpu: CPU | None = None  # where tcp_sendmsg allocates our skbs (skb->alloc_cpu)
        self.rx_cpu: CPU | None = None  # where tcp_recvmsg last copied our data out (cache_to_cache_copy)
        # receive side
        self.rcv_nxt = 0
        self.rcv_wup = 0
        self.rcv_wnd = 0
        self.copied_seq = 0
        self.rcvq: deque[list[Any]] = deque()  # [end_seq, len, consumed, truesize, t_enq, msg, heads]
        self.rmem = 0
        self.user_rcvbuf = so_rcvbuf is not None
        self.rcvbuf = 2 * so_rcvbuf if so_rcvbuf is not None else kernel.tcp_rmem[1]
        self.ratio = kernel.tcp_default_scaling_ratio
        self.rcv_mss = TCP_MSS_DEFAULT
        self.ack_pending = False
        self.pushed = False
        self.quick = kernel.tcp_max_quickacks
        self.pingpong = False
        self.last_rcv = -1e18
        self.delack_token = 0
        self.delack_armed = False
        self.delack_timer = LazyTimer(self.env, self._delack_expired)
        self.rcvq_space = 0
        self.rcvq_time = 0.0
        # tcp_init_buffer_space: rcvq_space.space = min(rcv_wnd, TCP_INIT_CWND * advmss)
        self.rcvq_space_prev = 0
        self.wq_data = WaitQueue(f"{name} sk_wq (read)")
        # socket lock
        self.last_cpu: CPU | None = None  # the CPU that touched this socket last
        self.owned = False
        self.backlog: deque[tuple[Any, ...]] = deque()
        self.backlog_bytes = 0
        self.deferred_delack = False
        self.deferred_rto = False
        # counters
        self.out_segs = 0
        self.in_segs = 0
        self.retrans_segs = 0
        self.pure_acks_sent = 0
        self.data_packets = 0  # data skbs handed to loopback_xmit (GSO skbs count once)
        self.backlog_drops = 0
        self.ofo_queued = 0
        self.ofo: dict[int, tuple[Any, ...]] = {}  # out-of-order segments by seq
        self.lost_bytes = 0

    # ================================================================ helpers
    def mss(self) -> int:
        """tcp_current_mss: advmss bounded to half the peer's largest window."""
        m = self.advmss
        mw = self.max_window
        if mw:
            cutoff = mw >> 1 if mw > TCP_MSS_DEFAULT else mw
            if m > cutoff:
                m = max(cutoff, 68 - 32)
        return m

    def size_goal(self) -> int:
        mw = self.max_window
        if mw == self._goal_for:
            return self._goal  # advmss and gso_max_size are fixed: it only changes with max_window
        mss = self.mss()
        self._goal = goal = tcp_size_goal(mss, self._bound_half_wnd(self.gso_max_size))[1]
        self._goal_for = mw
        return goal

    def _bound_half_wnd(self, size: int) -> int:
        mw = self.max_window
        if mw and mw > TCP_MSS_DEFAULT:
            return min(size, max(mw >> 1, self.mss() + 1 + MAX_TCP_HEADER))
        return size

    def _cold(self) -> bool:
        """Is this direction's queued data (our write queue + un-ACKed, the peer's receive
        queue) larger than the cache?  Then the reader's copy out (copy #2) streams from
        memory.  Copy #1 is never cold: it reads a hot user buffer into recently freed pages
        (as for UDP and AF_UNIX; docs/scheduling.md)."""
        return self.wmem_queued + self.peer.rmem > self.sim.cache_bytes

    def window(self) -> int:
        """__tcp_select_window: free receive space scaled by the len/truesize ratio."""
        # (max()/min() spelt out on this path: the same values, without a builtin call)
        free = self.rcvbuf - self.rmem
        if not free > 0:
            free = 0
        win = int(free * self.ratio)
        # never shrink the window already offered (tcp_select_window)
        cur = self.rcv_wup + self.rcv_wnd - self.rcv_nxt
        if cur > win:
            win = cur
        return win if win >= 0 else 0  # max(win, cur, 0)

    def _expand_sndbuf(self) -> None:
        """tcp_sndbuf_expand: 2 x max(cwnd, TCP_INIT_CWND) x per-MSS memory."""
        if self.user_sndbuf:
            return
        # per_mss from max(mss_clamp, mss_cache); x 2 (x 3 for BBR: bbr_sndbuf_expand)
        per_mss = _roundup_pow2(max(self.mss_clamp, self.mss()) + MAX_TCP_HEADER + 320) + 256
        factor = 2 if self.cc is None else Bbr.SNDBUF_EXPAND
        want = min(self.wmem_max, factor * max(10, self.cwnd) * per_mss)
        if want > self.sndbuf:
            self.sndbuf = want

    def _stamp_ack(self) -> tuple[int, int]:
        """Every segment we send carries ACK = rcv_nxt and our window (tcp_event_ack_sent)."""
        wnd = self.window()
        self.rcv_wup = self.rcv_nxt
        self.rcv_wnd = wnd
        if self.ack_pending:
            self.ack_pending = False
            self.pushed = False
            self.delack_armed = False
            self.delack_token += 1
            if self.quick > 0 and not self.pingpong:
                self.quick -= 1
        return self.rcv_nxt, wnd

    # ================================================================ transmit
    def write_xmit(self, cpu: CPU, in_task: bool, push: bool) -> Generator[Any, None, None]:
        """tcp_write_xmit: send what cwnd, the peer window and Nagle allow."""
        sim = self.sim
        net = self.net
        while self.write_q:
            length = self.write_q[0]
            if self.tail_open and len(self.write_q) == 1 and not push and length < self.size_goal():
                break  # still being filled by tcp_sendmsg (tcp_push comes at the end)
            if self.packets_out >= self.cwnd:
                break  # tcp_cwnd_test
            mss = self.mss()
            room = self.snd_una + self.snd_wnd - self.snd_nxt
            if length > room:  # tcp_snd_wnd_test; tso_fragment at the window edge
                if room >= mss:
                    cut = (room // mss) * mss
                    self.write_q[0] = length - cut
                    self.write_q.appendleft(cut)
                    length = cut
                else:
                    break
            if length < mss and not self.nodelay and self.packets_out > 0:
                break  # Nagle (tcp_nagle_test): a partial segment waits for the ACK
            self.write_q.popleft()
            if not self.write_q:
                self.tail_open = False
            segs = -(-length // mss)
            seq = self.snd_nxt
            self.snd_nxt += length
            truesize = length + self.skb_overhead  # truesize_tcp(length, self.modern)
            ends = self.msg_ends
            while ends and ends[0][0] <= seq:
                ends.popleft()
            msg = ends[0][1] if ends else -1
            # tcp_rate_skb_sent: the rate-sample fields each skb carries
            now_us = int(self.env._now // 1000)
            if not self.packets_out:
                self.first_tx_mstamp = self.delivered_mstamp = now_us
                if self.cc is not None:
                    self.cc.tx_start(self, now_us)  # tcp_event_data_sent: CA_EVENT_TX_START
            self.rtx.append([self.snd_nxt, length, truesize, segs, msg, now_us, self.delivered,
                             self.delivered_mstamp, self.first_tx_mstamp, self.app_limited])
            self.packets_out += segs
            self.out_segs += segs
            ack, wnd = self._stamp_ack()
            if self.last_rcv > self.env._now - self.delack_ns:
                self.pingpong = True  # tcp_event_data_sent: a reply within ato
            self.data_packets += 1 if (self.tso or segs == 1) else segs
            if self.tso or segs == 1:
                yield sim.work_of_ids(_XMIT)
                net.netif_rx(cpu, (self.peer, msg, length + HDR, self.flow, self.env._now, seq, length, segs,
                                   ack, wnd))
            else:
                yield sim.work_of_ids(_XMIT_GSO_HEAD + _XMIT_GSO_SEG * segs)
                off = 0
                while off < length:
                    n = min(mss, length - off)
                    net.netif_rx(cpu, (self.peer, msg, n + HDR, self.flow, self.env._now, seq + off, n, 1, ack, wnd))
                    off += n
            if not self.rto_armed:
                self._arm_rto(cpu)
            if in_task:
                yield BH_ENABLE

    def send_ack(self, cpu: CPU, in_task: bool) -> Generator[Any, None, None]:
        """__tcp_send_ack: a pure ACK through the whole IP/lo path on this CPU."""
        ack, wnd = self._stamp_ack()
        self.pure_acks_sent += 1
        yield self.sim.work_of_ids(_SEND_ACK)
        self.net.netif_rx(cpu, (self.peer, -1, HDR, self.flow, self.env._now, self.snd_nxt, 0, 0, ack, wnd))
        if in_task:
            yield BH_ENABLE

    # ================================================================ timers
    def _arm_rto(self, cpu: CPU) -> None:
        self.rto_armed = True
        self.rto_token += 1
        self.rto_timer.arm(self.rto_ns, cpu, self.rto_token)

    def _rto_expired(self, cpu: CPU, tok: int) -> None:
        if tok == self.rto_token and self.rto_armed:
            self.net.add_timer(cpu, (self, "rto", tok))

    def _arm_delack(self, cpu: CPU) -> None:
        if self.delack_armed:
            return
        self.delack_armed = True
        self.delack_token += 1
        self.delack_timer.arm(self.delack_ns, cpu, self.delack_token)

    def _delack_expired(self, cpu: CPU, tok: int) -> None:
        if tok == self.delack_token and self.delack_armed:
            self.net.add_timer(cpu, (self, "delack", tok))

    def timer(self, cpu: CPU, ctx: Any, item: tuple[Any, ...]) -> Generator[Any, None, None]:
        kind, tok = item[1], item[2]
        if kind == "delack":
            if tok != self.delack_token or not self.delack_armed:
                return
            self.delack_armed = False
            if self.owned:
                self.deferred_delack = True  # TCP_DELACK_TIMER_DEFERRED
                return
            yield self.sim.work_of_ids((S_DELACK_TIMER,))
            if self.ack_pending:
                self.quick = max(self.quick, 1) if not self.pingpong else self.quick
                self.pingpong = False  # inet_csk_exit_pingpong_mode on delack timeout
                yield from self.send_ack(cpu, False)
        else:
            if tok != self.rto_token or not self.rto_armed:
                return
            self.rto_armed = False
            if self.owned:
                self.deferred_rto = True
                return
            yield self.sim.work_of_ids((S_RTX_TIMER,))
            yield from self._retransmit(cpu, False)

    def _retransmit(self, cpu: CPU, in_task: bool) -> Generator[Any, None, None]:
        """RTO: go back to snd_una, cwnd = 1 (tcp_enter_loss), resend."""
        if not self.rtx:
            return
        back = list(self.rtx)
        self.rtx.clear()
        for r in reversed(back):
            self.write_q.appendleft(r[1])
            self.wmem_queued -= r[2]
            self.retrans_segs += r[3]
        self.wmem_queued += sum(r[2] for r in back)  # still queued, now unsent
        self.snd_nxt = self.snd_una
        self.packets_out = 0
        self.cwnd = 1
        yield from self.write_xmit(cpu, in_task, True)

    # ================================================================ receive (softirq)
    def dropped(self, pkt: tuple[Any, ...], where: str) -> None:
        if pkt[6] > 0:
            self.lost_bytes += pkt[6]
        self.stats.packet_dropped(where)

    def rx(self, cpu: CPU, ctx: Any, pkt: tuple[Any, ...]) -> Generator[Any, None, None]:
        """process_backlog -> ip_rcv -> tcp_v4_rcv (then tcp_rcv_established: do_rcv)."""
        return self.do_rcv(cpu, pkt, False, True)  # (one generator for both: no yield-from level)

    def do_rcv(self, cpu: CPU, pkt: tuple[Any, ...], in_task: bool,
               from_ip: bool = False) -> Generator[Any, None, None]:
        """tcp_rcv_established: ACK processing, then data, then the ACK decision; ``from_ip``:
        first the receive path up to the socket (``rx``), which may put it on the backlog."""
        sim = self.sim
        if from_ip:
            last = self.last_cpu  # Sim.touch(self, cpu), inlined (no call, no tuple to unpack)
            self.last_cpu = cpu
            yield sim.work_of_ids(_RCV) if last is None or last is cpu else sim.work_of_ids((*_RCV, S_BOUNCE))
            # bh_lock_sock_nested + sock_owned_by_user, decided now (the owner may have let go
            # while this CPU was in ip_rcv)
            if self.owned:
                limit = 2 * self.rcvbuf + self.sndbuf // 2 + 65536
                if self.backlog_bytes > limit:
                    self.backlog_drops += 1
                    self.dropped(pkt, "tcp_backlog")
                    return
                self.backlog.append(pkt)
                self.backlog_bytes += pkt[6] + 832
                yield sim.work_of_ids((S_ADD_BACKLOG,))
                return
        _, msg, _, _, _, seq, length, segs, ack, wnd = pkt
        if length:
            self.in_segs += segs
        # ---- tcp_ack (_process_ack's state changes, then its command and what follows it)
        if ack > self.snd_una or (ack == self.snd_una and wnd != self.snd_wnd):
            wake = self._process_ack(cpu, ack, wnd)
            if wake:
                yield sim.work_of_ids((S_ACK, S_READABLE, *sim.wake_items(self.wq_space.waiters[0], cpu)))
            else:
                yield sim.work_of_ids((S_ACK,))
            if wake and self.wq_space.waiters and self.wmem_queued * 3 <= self.sndbuf * 2:
                sim.wake_all(self.wq_space, cpu)  # sk_stream_write_space
            # tcp_data_snd_check: transmit more from this context
            if self.write_q:
                yield from self.write_xmit(cpu, in_task, True)
        if not length:
            return
        # ---- data
        if seq != self.rcv_nxt:
            if seq > self.rcv_nxt and seq not in self.ofo:
                # tcp_data_queue_ofo: hold it until the hole fills; dup-ACK at once
                self.ofo[seq] = pkt
                self.ofo_queued += 1
                self.rmem += truesize_tcp(length, self.modern)
            self.ack_pending = True
            yield from self.send_ack(cpu, in_task)
            return
        now = self.env._now
        self.rcv_nxt += length
        if self.modern and self.rcvq:
            # tcp_queue_rcv -> tcp_try_coalesce (3.5+): in-order data joins the tail skb of a
            # non-empty receive queue; skb_try_coalesce takes the page frags (charged by the
            # byte in tcp_sendmsg) and frees the head, so sk_rmem_alloc grows by the payload
            # and the reader later frees one skb for both
            truesize = length
            heads = 0
        else:
            truesize = length + self.skb_overhead  # truesize_tcp(length, self.modern)
            heads = 1
        self.rmem += truesize
        # tcp_measure_rcv_mss and the scaling ratio learned from len/truesize (6.7+)
        per_seg = length // segs if segs else length
        if per_seg >= self.rcv_mss:
            self.rcv_mss = per_seg if not self.advmss < per_seg else self.advmss
            if self.modern:
                # 6.7+: a segment of at least rcv_mss with PSH (every write's last skb carries
                # it) sets ICSK_ACK_PUSHED too, so that tcp_cleanup_rbuf() ACKs a read that
                # empties the queue (tcp_input.c, "the end of an application write")
                self.pushed = True
        else:
            self.pushed = True
        if self.modern:
            self.ratio = max(self.ratio, min(0.99, length / truesize)) if length >= 4096 else self.ratio
        self.rcvq.append([self.rcv_nxt, length, 0, truesize, now, msg, heads])
        while self.ofo and self.rcv_nxt in self.ofo:  # tcp_ofo_queue: the hole is filled
            q = self.ofo.pop(self.rcv_nxt)
            self.rcv_nxt += q[6]
            self.rcvq.append([self.rcv_nxt, q[6], 0, truesize_tcp(q[6], self.modern), now, q[1], 1])
        self.last_rcv = now
        self.ack_pending = True
        waiter = self.wq_data.waiters[0] if self.wq_data.waiters else None
        yield sim.work_of_ids((S_READABLE, *sim.wake_items(waiter, cpu)))
        if self.wq_data.waiters:
            sim.wake_all(self.wq_data, cpu)
        # ---- __tcp_ack_snd_check
        quick = self.quick > 0 and not self.pingpong
        if (self.rcv_nxt - self.rcv_wup > self.rcv_mss and self.window() >= self.rcv_wnd) or quick:
            yield from self.send_ack(cpu, in_task)
        else:
            self._arm_delack(cpu)

    def _process_ack(self, cpu: CPU, ack: int, wnd: int) -> bool:
        """tcp_ack's state changes (do_rcv yields its command); returns whether the writer is
        to be woken (sk_stream_write_space)."""
        freed = 0
        acked_segs = 0
        out_before = self.packets_out
        done_msgs = 0
        last = None
        while self.rtx and self.rtx[0][0] <= ack:
            last = r = self.rtx.popleft()
            freed += r[2]
            acked_segs += r[3]
            done_msgs += 1
        self.wmem_queued -= freed
        out = self.packets_out - acked_segs
        self.packets_out = out if out > 0 else 0
        if ack > self.snd_nxt:
            # after an RTO rewound snd_nxt, the peer had the data already: drop it from the queue
            skip = ack - self.snd_nxt
            while skip > 0 and self.write_q:
                head = self.write_q[0]
                if head <= skip:
                    self.write_q.popleft()
                    self.wmem_queued -= truesize_tcp(head, self.modern)
                    skip -= head
                else:
                    self.write_q[0] = head - skip
                    self.wmem_queued -= truesize_tcp(head, self.modern) - truesize_tcp(head - skip, self.modern)
                    skip = 0
            self.snd_nxt = ack
        if ack > self.snd_una:
            self.snd_una = ack
        self.snd_wnd = wnd
        if wnd > self.max_window:
            self.max_window = wnd
        if self.cc is not None:
            if last is not None:
                self._bbr_ack(last, acked_segs, out_before)
        elif acked_segs and self.cwnd < 2 * out_before:
            # slow start while cwnd-limited (tcp_is_cwnd_limited); lo never loses, ssthresh stays infinite
            self.cwnd += acked_segs
            self._expand_sndbuf()
        if self.rtx:
            self._arm_rto(cpu)
        else:
            self.rto_armed = False
        return bool(self.wq_space.waiters) and self.wmem_queued * 3 <= self.sndbuf * 2

    def _bbr_ack(self, last: list[Any], acked: int, prior_in_flight: int) -> None:
        """tcp_ack's rate sample (tcp_rate_skb_delivered + tcp_rate_gen, for the newest packet
        this ACK covers), then the congestion control (tcp_cong_control -> bbr_main)."""
        now_us = int(self.env._now // 1000)
        tx_us, prior_delivered, prior_mstamp, first_tx, app_limited = last[5:10]
        rtt_us = now_us - tx_us
        if rtt_us < self.rtt_min_us:
            self.rtt_min_us = rtt_us  # tcp_update_rtt_min (a 300 s window: the run's minimum)
        snd_us = tx_us - first_tx  # the send phase
        self.first_tx_mstamp = tx_us
        self.delivered += acked
        if self.app_limited and self.delivered > self.app_limited:
            self.app_limited = 0  # the bubble is ACKed and gone
        self.delivered_mstamp = now_us
        delivered = self.delivered - prior_delivered
        interval = max(snd_us, now_us - prior_mstamp)  # the longer of the send and ACK phases
        if interval < self.rtt_min_us:
            interval = -1  # shorter than an RTT: not a valid sample
        cc = self.cc
        assert cc is not None
        before = self.cwnd
        cc.on_ack(self, now_us, acked, delivered, interval, rtt_us, prior_delivered, bool(app_limited),
                  prior_in_flight)
        if self.cwnd > before:
            self._expand_sndbuf()

    # ================================================================ socket lock
    def lock_sock(self) -> None:
        self.owned = True

    def release_sock(self, cpu: CPU) -> Iterable[Any]:
        """__release_sock: process the backlog in task context, then tcp_release_cb."""
        if not (self.backlog or self.deferred_rto or self.deferred_delack):
            self.owned = False
            return ()  # nothing to process: no generator to run
        return self._release_sock(cpu)

    def _release_sock(self, cpu: CPU) -> Generator[Any, None, None]:
        sim = self.sim
        while True:  # anything that arrives while we work here also waits for us
            while self.backlog:
                pkt = self.backlog.popleft()
                self.backlog_bytes -= pkt[6] + 832
                yield from self.do_rcv(cpu, pkt, True)
            if self.deferred_rto:
                self.deferred_rto = False
                yield sim.work_of_ids((S_RTX_TIMER,))
                yield from self._retransmit(cpu, True)
                continue
            if self.deferred_delack:
                self.deferred_delack = False
                if self.ack_pending:
                    yield sim.work_of_ids((S_DELACK_TIMER,))
                    yield from self.send_ack(cpu, True)
                continue
            break
        self.owned = False

    # ================================================================ system calls
    def sendmsg(self, task: Task, msg: int, nbytes: int, t_send: float) -> Generator[Any, None, None]:
        sim = self.sim
        cpu = task.cpu
        last = self.last_cpu  # Sim.touch(self, cpu), inlined (no call, no tuple to unpack)
        self.last_cpu = cpu
        yield sim.work_of_ids(_SENDMSG) if last is None or last is cpu else sim.work_of_ids((*_SENDMSG, S_BOUNCE))
        self.tx_cpu = cpu
        self.owned = True  # lock_sock()
        if self.cc is not None and self.write_seq - self.snd_nxt < self.mss() and self.packets_out < self.cwnd:
            # tcp_rate_check_app_limited: less than a packet to send and cwnd not full
            self.app_limited = (self.delivered + self.packets_out) or 1
        self.stats.sent(msg, nbytes, t_send)
        self.msg_ends.append((self.write_seq + nbytes, msg))
        left = nbytes
        new_skbs = 0
        while left > 0:
            if self.wmem_queued >= self.sndbuf:
                # sk_stream_wait_memory: push what we have, release the lock, sleep
                yield from self.write_xmit(cpu, True, True)
                yield from self.release_sock(cpu)
                t0 = self.env._now
                # woken by sk_stream_write_space only once wmem_queued <= 2/3 sndbuf
                while self.wmem_queued >= self.sndbuf:
                    yield self.wq_space
                self.stats.blocked(self.env._now - t0)
                self.lock_sock()
                continue
            # size_goal(), its cached answer without the call
            goal = self._goal if self.max_window == self._goal_for else self.size_goal()
            if self.write_q and self.write_q[-1] < goal:  # unsent tail skb with room
                room = goal - self.write_q[-1]
                chunk = left if left < room else room
                self.write_q[-1] += chunk
                items = ((S_COPY_IN, chunk),)
            else:
                chunk = left if left < goal else goal
                self.write_q.append(chunk)
                self.tail_open = True
                new_skbs += 1
                items = (S_ALLOC_SKB, (S_COPY_IN, chunk))
            old = self.write_q[-1] - chunk
            oh = self.skb_overhead  # truesize_tcp(n, self.modern) = n + oh
            self.wmem_queued += (self.write_q[-1] + oh) - ((old + oh) if old else 0)
            self.write_seq += chunk
            left -= chunk
            rx = self.peer.rx_cpu
            if rx is not None and rx is not cpu:
                items += ((S_C2C, chunk),)  # the buffers were last read (and freed) on that CPU
            yield sim.work_of(items)
            if self.write_q and self.write_q[-1] >= goal:
                # forced push of a full skb (tcp_push_one / __tcp_push_pending_frames)
                yield from self.write_xmit(cpu, True, False)
            if new_skbs >= 16:  # sk_flush_backlog every 16 skbs
                new_skbs = 0
                yield from self.release_sock(cpu)
                self.lock_sock()
        # tcp_push(): PSH on the last skb; Nagle decides unless TCP_NODELAY
        self.tail_open = False
        yield from self.write_xmit(cpu, True, True)
        if self.backlog or self.deferred_rto or self.deferred_delack:
            yield from self._release_sock(cpu)
        else:
            self.owned = False  # release_sock() with nothing to process, inlined
        yield PREEMPT

    def recvmsg(self, task: Task, bufsize: int) -> Generator[Any, None, int]:
        """tcp_recvmsg: returns bytes copied (>= 1; returns as soon as data was copied)."""
        sim = self.sim
        cpu = task.cpu
        last = self.last_cpu  # Sim.touch(self, cpu), inlined (no call, no tuple to unpack)
        self.last_cpu = cpu
        yield sim.work_of_ids(_RECVMSG) if last is None or last is cpu else sim.work_of_ids((*_RECVMSG, S_BOUNCE))
        self.owned = True  # lock_sock()
        while not self.rcvq:
            # sk_wait_data: flush the backlog, maybe ACK, release the lock and sleep
            if self.backlog or self.deferred_rto or self.deferred_delack:
                yield from self._release_sock(cpu)
            else:
                self.owned = False  # release_sock() with nothing to process, inlined
            if self.rcvq:
                self.owned = True  # lock_sock()
                break
            yield self.wq_data
            self.owned = True  # lock_sock()
            if not self.rcvq:
                yield from self.release_sock(cpu)
                self.lock_sock()
        copied, wait, _, nfree = plan_read(self.rcvq, bufsize, self.env._now)
        sim.stage_wait[S_RECVMSG] += wait
        task.msg = self.rcvq[0][5]
        # tcp_eat_recv_skb -> skb_attempt_defer_free for each skb consumed whole
        peer = self.peer
        alloc = peer.tx_cpu  # the writer's CPU (skb->alloc_cpu)
        remote = alloc is not cpu and alloc is not None
        if not nfree:
            frees, kick = (), None
        elif not remote:
            frees, kick = (S_KFREE,) * nfree, None  # defer_free's answer for skbs of this CPU, inlined
        else:
            frees, kick = self.net.defer_free(cpu, alloc, nfree)
        cold = peer.wmem_queued + self.rmem > sim.cache_bytes  # peer._cold(), inlined
        self.rx_cpu = cpu
        if remote:  # written on another CPU: the payload's lines come from its cache
            yield sim.work_of(((S_COPY_OUT, copied, cold), (S_C2C, copied), *frees, S_CLEANUP_RBUF))
        else:
            yield sim.work_of(((S_COPY_OUT, copied, cold), *frees, S_CLEANUP_RBUF))
        if kick is not None:
            self.net.kick_defer(kick)
        rcvq = self.rcvq
        skb = rcvq[0]
        if skb[1] - skb[2] == copied:
            # consume(), inlined for a read of exactly the rest of the head skb (the common case)
            skb[2] = skb[1]
            rcvq.popleft()
            self.rmem -= skb[3]  # _uncharge
        else:
            consume(rcvq, copied, self._uncharge)
        self.copied_seq += copied
        self.rcvq_space += copied  # _rcv_space_adjust(copied), inlined up to its once-per-round test
        if self.env._now - self.rcvq_time >= RCV_RTT_NS:
            self._rcv_space_adjust(0)
        # tcp_cleanup_rbuf: ACK a pending ACK when more than a segment is un-ACKed or it was
        # pushed (not in ping-pong mode); send a window update when the window doubled
        time_to_ack = self.ack_pending and (
            (self.rcv_nxt - self.rcv_wup > self.rcv_mss) or (self.pushed and not self.pingpong))
        if not time_to_ack and copied > 0:
            cur = self.rcv_wup + self.rcv_wnd - self.rcv_nxt
            if not cur > 0:
                cur = 0
            if 2 * cur <= self.rcvbuf:
                new = self.window()
                if new and new >= 2 * cur:
                    time_to_ack = True
        if time_to_ack:
            yield from self.send_ack(cpu, True)
        if self.backlog or self.deferred_rto or self.deferred_delack:
            yield from self._release_sock(cpu)
        else:
            self.owned = False  # release_sock() with nothing to process, inlined
        yield PREEMPT
        return copied

    def _uncharge(self, truesize: int) -> None:
        self.rmem -= truesize  # tcp_eat_recv_skb -> skb_free: sk_rmem_alloc shrinks

    def _rcv_space_adjust(self, copied: int) -> None:
        """tcp_rcv_space_adjust (DRS): once per receive round trip, if the reader drained more
        than in the previous round, grow sk_rcvbuf to twice that (plus 16 segments) scaled
        to memory, up to tcp_rmem[2].  The round is RCV_RTT_NS: on lo the receiver's RTT
        estimate (tcp_rcv_rtt_measure_ts) is tens to hundreds of microseconds."""
        self.rcvq_space += copied
        now = self.env._now
        if now - self.rcvq_time < RCV_RTT_NS:
            return
        space = self.rcvq_space
        self.rcvq_space = 0
        self.rcvq_time = now
        if space <= self.rcvq_space_prev:
            return
        self.rcvq_space_prev = space
        if self.user_rcvbuf:
            return
        rcvwin = 2 * space + 16 * self.advmss
        want = min(self.rmem_max, int(rcvwin / max(self.ratio, 0.25)))
        if want > self.rcvbuf:
            self.rcvbuf = want

    def in_flight_bytes(self, cpus: list[CPU]) -> int:
        """Bytes written by this end and not yet read by the peer, read from the queues:
        the write queue, packets in CPU backlogs (and in a softirq's hand), the peer's
        socket backlog, the peer's receive queue.  Exact when nothing was lost."""
        peer = self.peer
        n = sum(self.write_q) + sum(s[1] - s[2] for s in peer.rcvq) + sum(p[6] for p in peer.backlog)
        n += sum(p[6] for p in peer.ofo.values())
        for cpu in cpus:
            for q in (cpu.input_pkt_queue, cpu.process_queue):
                n += sum(p[6] for p in q if p[0] is peer)
            p = cpu.cur_pkt
            if p is not None and p[0] is peer:
                n += p[6]
        return n


def tcp_connect(sim: Sim, net: Net, *, kernel: Any, flow: int, stats: Any, nodelay: bool,
                so_sndbuf: int | None, so_rcvbuf: int | None) -> tuple[TcpSock, TcpSock]:
    """Two ends of an established connection, as after the three-way handshake."""
    a = TcpSock(sim, net, f"tcp{flow}.client", kernel=kernel, flow=flow, stats=stats, nodelay=nodelay,
                so_sndbuf=so_sndbuf, so_rcvbuf=so_rcvbuf)
    b = TcpSock(sim, net, f"tcp{flow}.server", kernel=kernel, flow=flow, stats=stats, nodelay=nodelay,
                so_sndbuf=so_sndbuf, so_rcvbuf=so_rcvbuf)
    a.peer, b.peer = b, a
    for s in (a, b):
        # after the handshake: the peer's window (SYN/SYN-ACK), rcv_wnd, quick-ack budget
        s.rcv_wnd = s.window()
        s.quick = min(s.rcv_wnd // (2 * TCP_MSS_DEFAULT), s.quickacks_max)
        s.rcvq_space_prev = min(s.rcv_wnd, 10 * s.advmss)
    for s in (a, b):
        s.snd_wnd = s.peer.rcv_wnd
        s.max_window = s.snd_wnd
        s._expand_sndbuf()  # tcp_init_buffer_space -> tcp_sndbuf_expand
    return a, b
