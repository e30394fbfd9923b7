"""TCP over loopback (net/ipv4/tcp*.c): one established connection between two sockets.

``TcpSock`` is one end (``struct tcp_sock``); its behaviour is split as the kernel's files
are: lbsim.model.tcp_output (``tcp_sendmsg``, ``tcp_write_xmit``, ACK sending),
lbsim.model.tcp_input (``tcp_v4_rcv``, ``tcp_rcv_established``, ``tcp_ack``),
lbsim.model.tcp_recv (``tcp_recvmsg``, ``tcp_cleanup_rbuf``) and lbsim.model.tcp_timer
(RTO, delayed ACK), lbsim.model.tcp_pacing (BBR's internal pacing: ``tcp_pacing_check``,
the pacing hrtimer).  Here: the socket's state, the socket lock (``lock_sock``,
``release_sock`` -> ``__release_sock``, ``tcp_release_cb``: net/core/sock.c,
net/ipv4/tcp_output.c) and the connection as after the handshake (``tcp_connect``,
``tcp_init_buffer_space``).

Out-of-order segments (lo reorders when an ACK processed in softirq on the receiver's
CPU transmits from there while the sender task transmits from its own CPU) wait in an
out-of-order queue until the hole fills, and are dup-ACKed at once.

Left out, documented: SACK and fast retransmit (lo only drops when RPS or a full backlog
is involved; a lost segment is recovered by the RTO, ``tcp_rto_min``); congestion
avoidance after loss (cwnd restarts at 1 and slow-starts); TSQ; autocorking;
timestamps (only their 12 option bytes).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterable
from typing import Any

from lbsim.model.cpu import CPU
from lbsim.model.netdev import Net
from lbsim.model.sim import Sim
from lbsim.model.skb import truesize_tcp
from lbsim.model.task import WaitQueue
from lbsim.model.tcp_cc import Bbr
from lbsim.model.tcp_input import TcpInput
from lbsim.model.tcp_output import S_BOUNCE, TCP_MSS_DEFAULT, TcpOutput, tcp_size_goal
from lbsim.model.tcp_pacing import TcpPacing
from lbsim.model.tcp_recv import TcpRecv
from lbsim.model.tcp_timer import S_DELACK_TIMER, S_RTX_TIMER, TcpTimers
from lbsim.model.timers import LazyTimer
from lbsim.model.zerocopy import MsgZerocopy

__all__ = ["TcpSock", "tcp_connect", "tcp_size_goal"]


class TcpSock(TcpOutput, TcpInput, TcpRecv, TcpTimers, TcpPacing):
    """One end of an established connection."""

    # __slots__: attribute loads and method lookups specialise (LOAD_ATTR_SLOT, LOAD_METHOD_NO_DICT);
    # with ~75 attributes an instance dict is not shared-key, so they went through dict lookups
    __slots__ = ("sim", "env", "net", "name", "flow", "stats", "modern", "nodelay", "tso",
                 "gso_max_size", "advmss", "wmem_max", "rmem_max", "quickacks_max", "delack_ns",
                 "rto_ns", "peer", "write_q", "write_psh", "pushed_seq", "tail_open", "rtx", "write_seq",
                 "snd_una", "snd_nxt",
                 "wmem_queued", "packets_out", "cwnd", "snd_wnd", "max_window", "_goal_for",
                 "_goal", "user_sndbuf", "sndbuf", "wq_space", "rto_token", "rto_armed",
                 "rto_timer", "msg_ends", "tx_cpu", "rx_cpu", "rcv_nxt", "rcv_wup", "rcv_wnd", "copied_seq",
                 "rcvq", "rmem", "user_rcvbuf", "rcvbuf", "ratio", "rcv_mss", "ack_pending",
                 "pushed", "quick", "pingpong", "last_rcv", "delack_token", "delack_armed",
                 "delack_timer", "rcvq_space", "rcvq_time", "rcvq_space_prev", "wq_data",
                 "last_cpu", "owned", "backlog", "backlog_bytes", "deferred_delack", "deferred_rto",
                 "out_segs", "in_segs", "retrans_segs", "pure_acks_sent", "data_packets",
                 "backlog_drops", "ofo_queued", "ofo", "lost_bytes", "skb_overhead", "cc", "delivered",
                 "delivered_mstamp", "first_tx_mstamp", "app_limited", "rtt_min_us", "mss_clamp",
                 "window_clamp", "rcv_wscale", "wstamp_ns", "pace_timer", "deferred_tsq", "zc", "ep")

    BOUNCE_SID = S_BOUNCE  # Sim.touch: the cache-line transfer this socket type costs
    BOUNCE_ITEMS = (BOUNCE_SID,)  # the work items Sim.touch returns

    def __init__(self, sim: Sim, net: Net, name: str, *, kernel: Any, flow: int, stats: Any,
                 nodelay: bool, sk_sndbuf: int | None, sk_rcvbuf: int | None) -> None:
        self.sim = sim
        self.env = sim.env
        self.net = net
        self.name = name
        self.flow = flow
        self.stats = stats
        self.zc: MsgZerocopy | None = None  # MSG_ZEROCOPY (lbsim/model/zerocopy.py), None: off
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
        self._init_send_side(kernel, sk_sndbuf)
        self._init_receive_side(kernel, sk_rcvbuf)
        # socket lock
        self.last_cpu: CPU | None = None  # the CPU that touched this socket last
        self.owned = False
        self.backlog: deque[tuple[Any, ...]] = deque()
        self.backlog_bytes = 0
        self.deferred_delack = False
        self.deferred_rto = False
        self._init_pacing()  # tcp_wstamp_ns, the pacing hrtimer, TCP_TSQ_DEFERRED
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

    def _init_send_side(self, kernel: Any, sk_sndbuf: int | None) -> None:
        """The send side's state (write and retransmit queues, cwnd, the rate sample, the
        congestion control, sk_sndbuf, the RTO timer)."""
        sim = self.sim
        name = self.name
        self.write_q: deque[int] = deque()  # skb lengths not yet sent (head first)
        # each unsent skb's PSH flag (tcp_mark_push), and write_seq at the last mark
        self.write_psh: deque[bool] = deque()
        self.pushed_seq = 0
        self.tail_open = False  # the last skb in write_q may still grow
        self.rtx: deque[list[int]] = deque()  # [end_seq, len, truesize, segs, msg, rate fields, psh]
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
        # sk_sndbuf: the SO_SNDBUF result (SimConfig.sk_sndbuf, already clamped and doubled)
        self.user_sndbuf = sk_sndbuf is not None
        self.sndbuf = sk_sndbuf if sk_sndbuf is not None else kernel.tcp_wmem[1]
        self.wq_space = WaitQueue(f"{name} sk_wq (write)")
        self.rto_token = 0
        self.rto_armed = False
        self.rto_timer = LazyTimer(self.env, self._rto_expired)
        self.msg_ends: deque[tuple[int, int]] = deque()  # (write_seq at the end of a write, msg)
        self.tx_cpu: CPU | None = None  # where tcp_sendmsg allocates our skbs (skb->alloc_cpu)
        self.rx_cpu: CPU | None = None  # where tcp_recvmsg last copied our data out (cache_to_cache_copy)

    def _init_receive_side(self, kernel: Any, sk_rcvbuf: int | None) -> None:
        """The receive side's state (receive queue, sk_rcvbuf, the ACK state, the delayed-ACK
        timer, DRS)."""
        name = self.name
        self.rcv_nxt = 0
        self.rcv_wup = 0
        self.rcv_wnd = 0
        self.copied_seq = 0
        self.rcvq: deque[list[Any]] = deque()  # [end_seq, len, consumed, truesize, t_enq, msg, heads]
        self.rmem = 0
        self.user_rcvbuf = sk_rcvbuf is not None
        self.rcvbuf = sk_rcvbuf if sk_rcvbuf is not None else kernel.tcp_rmem[1]
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
        self.ep: Any = None  # an epoll receiver's item (lbsim.model.eventpoll.EpollItem)
        self.window_clamp = 0
        self.rcv_wscale = 0
        self.init_window_clamp(kernel.rmem_max)

    def _cold(self) -> bool:
        """Is this direction's queued data (our write queue + un-ACKed, the peer's receive
        queue) larger than the cache?  Then the reader's copy out (copy #2) streams from
        memory.  Copy #1 is never cold: it reads a hot user buffer into recently freed pages
        (as for UDP and AF_UNIX; docs/notes/scheduling.md)."""
        return self.wmem_queued + self.peer.rmem > self.sim.cache_bytes

    # ================================================================ socket lock
    def lock_sock(self) -> None:
        self.owned = True

    def release_sock(self, cpu: CPU) -> Iterable[Any]:
        """__release_sock: process the backlog in task context, then tcp_release_cb."""
        if not (self.backlog or self.deferred_rto or self.deferred_delack or self.deferred_tsq):
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
            if self.deferred_tsq:  # tcp_release_cb: TCP_TSQ_DEFERRED -> tcp_tsq_write
                self.deferred_tsq = False
                yield from self.write_xmit(cpu, True, True)
                continue
            break
        self.owned = False

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
                sk_sndbuf: int | None, sk_rcvbuf: int | None) -> tuple[TcpSock, TcpSock]:
    """Two ends of an established connection, as after the three-way handshake."""
    a = TcpSock(sim, net, f"tcp{flow}.client", kernel=kernel, flow=flow, stats=stats, nodelay=nodelay,
                sk_sndbuf=sk_sndbuf, sk_rcvbuf=sk_rcvbuf)
    b = TcpSock(sim, net, f"tcp{flow}.server", kernel=kernel, flow=flow, stats=stats, nodelay=nodelay,
                sk_sndbuf=sk_sndbuf, sk_rcvbuf=sk_rcvbuf)
    a.peer, b.peer = b, a
    for s in (a, b):
        # after the handshake: the peer's window (SYN/SYN-ACK), rcv_wnd, quick-ack budget
        s.rcv_wnd = s.initial_window()
        s.quick = min(s.rcv_wnd // (2 * TCP_MSS_DEFAULT), s.quickacks_max)
        s.rcvq_space_prev = min(s.rcv_wnd, 10 * s.advmss)
    for s in (a, b):
        s.snd_wnd = s.peer.rcv_wnd
        s.max_window = s.snd_wnd
        s._expand_sndbuf()  # tcp_init_buffer_space -> tcp_sndbuf_expand
    return a, b
