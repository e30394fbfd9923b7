"""TCP's reader: tcp_recvmsg (net/ipv4/tcp.c).

Models ``tcp_recvmsg_locked`` (net/ipv4/tcp.c: ``sk_wait_data``, ``skb_copy_datagram_msg``,
``tcp_eat_recv_skb`` -> ``skb_attempt_defer_free`` of net/core/skbuff.c,
``tcp_cleanup_rbuf``) and ``tcp_rcv_space_adjust`` (net/ipv4/tcp_input.c, DRS).

``tcp_recvmsg`` (receiver task): copy (``skb_copy_datagram_msg``), free consumed skbs
(``__kfree_skb``; from another CPU ``skb_attempt_defer_free`` hands them back to the
sender's CPU, which frees them in its next NET_RX run, see netdev.py),
``tcp_rcv_space_adjust`` (DRS: the receive buffer grows toward ``tcp_rmem[2]`` when the
reader drains more than a window per round), ``tcp_cleanup_rbuf`` (ACK when one is
pending and more than a segment is un-ACKed, or it was pushed -- a segment shorter than
``rcv_mss``, or from 6.7 one of ``rcv_mss`` or more with PSH, which a write's last unsent
skb carries and a full skb sent in the middle of a write does not -- and the read emptied
the queue, or when the window at least doubled), ``release_sock``.  The advertised
window is ``(rcvbuf - rmem) x ratio`` (``tcp_win_from_space``; ratio 50 % until learned
from ``len / truesize``).

A receive buffer locked small by SO_RCVBUF (``SOCK_RCVBUF_LOCK``) gets an unscaled window:
``tcp_connect_init``/``tcp_openreq_init_rwin`` clamp ``window_clamp`` to ``tcp_full_space``
and ``tcp_select_initial_window`` (net/ipv4/tcp_output.c) takes the scale from
``min(max(tcp_rmem[2], rmem_max), window_clamp)``.  ``__tcp_select_window``'s unscaled branch
(:meth:`TcpRecv.select_window_unscaled`) then offers a zero window once the free space is
below half the full space and below one ``rcv_mss`` (or 1/16 of the allowed space), else the
free space rounded down to a multiple of ``rcv_mss``.  With a 1 KiB stream's 576-byte
segments (``truesize`` 1408) in a 2304-byte ``sk_rcvbuf`` one queued segment closes the
window, and ``tcp_cleanup_rbuf`` reopens it after the read: one segment per reader wake-up.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from lbsim.model.socket import consume, plan_read
from lbsim.model.stages import SID
from lbsim.model.task import PREEMPT
from lbsim.model.tcp_output import S_BOUNCE, S_C2C

if TYPE_CHECKING:
    from lbsim.model.task import Task
    from lbsim.model.tcp_state import TcpState
else:  # TcpSock.__slots__ holds the state; TcpState declares it for mypy
    TcpState = object

__all__ = ["TcpRecv", "RCV_RTT_NS"]

S = SID
RCV_RTT_NS = 100_000.0  # the DRS measurement round on lo (see TcpSock._rcv_space_adjust)
_RECVMSG = (S["syscall"], S["tcp_recvmsg"])
S_COPY_OUT = S["skb_copy_datagram_msg"]
S_CLEANUP_RBUF = S["tcp_cleanup_rbuf"]
S_RECVMSG = S["tcp_recvmsg"]
S_KFREE = S["__kfree_skb"]


class TcpRecv(TcpState):
    """The reader's side of TcpSock (a mixin: TcpSock holds the state)."""

    __slots__ = ()

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
            if self.backlog or self.deferred_rto or self.deferred_delack or self.deferred_tsq:
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
        frees: Sequence[int]
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
        if peer.zc is not None:  # the pages skb_copy_ubufs allocated go back with the skbs
            yield sim.work_of_ids(peer.zc.free_items(copied))
        rfs = self.net.rfs
        if rfs is not None:
            rfs.record(self, cpu.idx)  # inet_recvmsg -> sock_rps_record_flow
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
        # tcp_cleanup_rbuf: ACK a pending ACK when more than a segment is un-ACKed, or when it
        # was pushed (not in ping-pong mode) and this read emptied the receive queue
        # (``!atomic_read(&sk->sk_rmem_alloc)``, net/ipv4/tcp.c __tcp_cleanup_rbuf); send a
        # window update when the window doubled
        time_to_ack = self.ack_pending and (
            (self.rcv_nxt - self.rcv_wup > self.rcv_mss)
            or (self.pushed and not self.pingpong and not self.rmem))
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
        if self.backlog or self.deferred_rto or self.deferred_delack or self.deferred_tsq:
            yield from self._release_sock(cpu)
        else:
            self.owned = False  # release_sock() with nothing to process, inlined
        yield PREEMPT
        return copied

    def init_window_clamp(self, rmem_max: int) -> None:
        """tcp_connect_init / tcp_openreq_init_rwin, then tcp_select_initial_window's scale:
        with SOCK_RCVBUF_LOCK the clamp is tcp_full_space (net/ipv4/tcp_output.c,
        net/ipv4/tcp_minisocks.c); wscale = ilog2(min(max(tcp_rmem[2], rmem_max), clamp)) - 15,
        in 0..14 (TCP_MAX_WSCALE)."""
        clamp = int(self.rcvbuf * self.ratio) if self.user_rcvbuf else 65535 << 14
        self.window_clamp = clamp
        space = min(max(self.rmem_max, rmem_max), clamp)
        self.rcv_wscale = min(max(space.bit_length() - 1 - 15, 0), 14)

    def initial_window(self) -> int:
        """The window of the SYN/SYN-ACK (tcp_select_initial_window): unscaled, the full space
        up to the clamp, not rounded to an MSS below advmss; scaled, as :meth:`window`."""
        if self.rcv_wscale:
            return self.window()
        return min(int(self.rcvbuf * self.ratio), self.window_clamp)

    def select_window_unscaled(self) -> int:
        """tcp_select_window for rcv_wscale 0 (net/ipv4/tcp_output.c ``__tcp_select_window``,
        then "never shrink" the window already offered)."""
        ratio = self.ratio
        mss = self.rcv_mss
        free = int((self.rcvbuf - self.rmem - self.backlog_bytes) * ratio)  # tcp_space
        allowed = int(self.rcvbuf * ratio)  # tcp_full_space
        full = min(self.window_clamp, allowed)
        if mss > full:
            mss = full
        window = 0
        if mss > 0:
            if free < full >> 1:
                self.quick = 0  # icsk_ack.quick = 0: leave quick-ack mode
            if not (free < full >> 1 and (free < allowed >> 4 or free < mss)):
                window = self.rcv_wnd
                if window <= free - mss or window > free:
                    window = (free // mss) * mss
                elif mss == full and free > window + (full >> 1):
                    window = free
        cur = self.rcv_wup + self.rcv_wnd - self.rcv_nxt  # tcp_receive_window
        if cur > window:
            window = cur
        return window if window > 0 else 0

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
