"""TCP's send side: tcp_sendmsg and transmission (net/ipv4/tcp.c, net/ipv4/tcp_output.c).

Models ``tcp_sendmsg_locked`` (net/ipv4/tcp.c: the copy into skbs, ``tcp_xmit_size_goal``,
``sk_stream_wait_memory``, ``tcp_push``), and from net/ipv4/tcp_output.c ``tcp_write_xmit``
(``tcp_cwnd_test``, ``tcp_snd_wnd_test``, ``tso_fragment``, ``tcp_nagle_test``),
``tcp_transmit_skb``, ``tcp_current_mss``/``tcp_bound_to_half_wnd``, ``__tcp_select_window``,
``tcp_event_ack_sent``, ``__tcp_send_ack``; the rate-sample fields an skb carries are
``tcp_rate_skb_sent`` (net/ipv4/tcp_rate.c).

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
``TCP_NODELAY``) allow; an skb of several segments is cut (``tso_fragment``) at the window
edge and at the cwnd quota (``tcp_mss_split_point`` with ``tcp_cwnd_test``: ``cwnd -
in_flight`` segments, from 4.x at most half the cwnd), so a smaller MSS makes more skbs;
TSQ and autocorking are inert on lo (``skb_orphan`` in ``loopback_xmit`` runs
``tcp_wfree`` at once: drivers/net/loopback.c) and are not modelled.  Each skb goes
``tcp_transmit_skb`` -> ``ip_output`` -> ``dev_queue_xmit`` -> ``loopback_xmit`` ->
``netif_rx``; with TSO off on lo the GSO skb is cut by ``skb_gso_segment`` and each segment
crosses lo on its own.  ``release_sock`` processes what arrived on the socket backlog.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from lbsim.model.stages import SID
from lbsim.model.task import BH_ENABLE, PREEMPT
from lbsim.model.tcp_pacing import PACED_ARMED

if TYPE_CHECKING:
    from lbsim.model.cpu import CPU
    from lbsim.model.sim import WorkItem
    from lbsim.model.task import Task
    from lbsim.model.tcp_state import TcpState
else:  # TcpSock.__slots__ holds the state; TcpState declares it for mypy
    TcpState = object

__all__ = ["TcpOutput", "tcp_size_goal", "MAX_TCP_HEADER", "TCP_MSS_DEFAULT", "HDR"]

S = SID
MAX_TCP_HEADER = 320  # L1_CACHE_ALIGN(128 + MAX_HEADER) on x86-64
TCP_MSS_DEFAULT = 536
TCP_MIN_MSS = 88
HDR = 20 + 20 + 12  # IP + TCP + timestamp option bytes on the wire

# the stages of the fixed commands (work items: stage ids), built once
_XMIT = (S["tcp_transmit_skb"], S["ip_output"], S["dev_queue_xmit"], S["loopback_xmit"], S["netif_rx"])
_XMIT_GSO_HEAD = (S["tcp_transmit_skb"], S["ip_output"], S["dev_queue_xmit"])
_XMIT_GSO_SEG = (S["skb_gso_segment"], S["loopback_xmit"], S["netif_rx"])
_SEND_ACK = (S["tcp_send_ack"], S["ip_output"], S["dev_queue_xmit"], S["loopback_xmit"], S["netif_rx"])
_SENDMSG = (S["syscall"], S["tcp_sendmsg"])
S_BOUNCE = S["cacheline_transfer"]
S_C2C = S["cache_to_cache_copy"]
S_C2C_WRITE = S["cache_to_cache_write"]
S_ALLOC_SKB = S["tcp_stream_alloc_skb"]
S_COPY_IN = S["skb_copy_to_page_nocache"]


def tcp_size_goal(mss: int, gso_max_size: int) -> tuple[int, int]:
    """tcp_xmit_size_goal(): (gso_segs, size_goal bytes) for a socket with GSO."""
    segs = max(1, (gso_max_size - 1 - MAX_TCP_HEADER) // mss)
    return segs, segs * mss


class TcpOutput(TcpState):
    """The send side of TcpSock (a mixin: TcpSock holds the state)."""

    __slots__ = ()

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

    def window(self) -> int:
        """__tcp_select_window: free receive space scaled by the len/truesize ratio."""
        if not self.rcv_wscale:  # a small SO_RCVBUF: the unscaled branch (tcp_recv.py)
            return self.select_window_unscaled()
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

    def mark_push(self) -> None:
        """tcp_push's tcp_mark_push (net/ipv4/tcp.c): PSH on the tail skb of the write queue,
        ``pushed_seq`` = ``write_seq``; nothing when every skb has left (the queue holds only
        unsent skbs)."""
        if self.write_q:
            self.write_psh[-1] = True
            self.pushed_seq = self.write_seq

    def forced_push(self) -> bool:
        """forced_push (net/ipv4/tcp.c): more than half the peer's largest window written since
        the last PSH."""
        return self.write_seq > self.pushed_seq + (self.max_window >> 1)

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
        clock = self.env._now  # tcp_mstamp_refresh: tcp_clock_cache, once per call
        paced = self.cc is not None  # BBR: SK_PACING_NEEDED, internal pacing (tcp_pacing.py)
        while self.write_q:
            if paced:
                wait = self.pacing_check(cpu, clock)
                if wait:  # tcp_pacing_check: the next departure time is still ahead
                    if wait == PACED_ARMED:
                        yield self.arm_work()  # hrtimer_start -> lapic_next_deadline (tcp_pacing.py)
                    break
            length = self.write_q[0]
            if self.tail_open and len(self.write_q) == 1 and not push and length < self.size_goal():
                break  # still being filled by tcp_sendmsg (tcp_push comes at the end)
            quota = self.cwnd - self.packets_out
            if quota <= 0:
                break  # tcp_cwnd_test
            if self.modern and quota > self.cwnd >> 1:
                quota = self.cwnd >> 1 or 1  # tcp_cwnd_test (4.x+): at most half the cwnd per skb
            mss = self.mss()
            room = self.snd_una + self.snd_wnd - self.snd_nxt
            if room > quota * mss:
                room = quota * mss  # tcp_mss_split_point: no more segments than the cwnd quota
            if length > room:  # tcp_snd_wnd_test; tso_fragment at the window or cwnd edge
                if room >= mss:
                    cut = (room // mss) * mss
                    self.write_q[0] = length - cut
                    self.write_q.appendleft(cut)
                    self.write_psh.appendleft(False)  # tso_fragment: PSH stays on the second part
                    length = cut
                else:
                    break
            if length < mss and not self.nodelay and self.packets_out > 0:
                break  # Nagle (tcp_nagle_test): a partial segment waits for the ACK
            self.write_q.popleft()
            psh = self.write_psh.popleft()
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
                             self.delivered_mstamp, self.first_tx_mstamp, self.app_limited, psh])
            self.packets_out += segs
            self.out_segs += segs
            if paced:
                self.pacing_sent(length, clock)  # tcp_wstamp_ns (tcp_update_skb_after_send)
            ack, wnd = self._stamp_ack()
            if self.last_rcv > self.env._now - self.delack_ns:
                self.pingpong = True  # tcp_event_data_sent: a reply within ato
            self.data_packets += 1 if (self.tso or segs == 1) else segs
            if self.tso or segs == 1:
                yield sim.work_of_ids(_XMIT)
                net.netif_rx(cpu, (self.peer, msg, length + HDR, self.flow, self.env._now, seq, length, segs,
                                   ack, wnd, psh))
            else:
                yield sim.work_of_ids(_XMIT_GSO_HEAD + _XMIT_GSO_SEG * segs)
                off = 0
                while off < length:  # tcp_gso_segment: PSH on the last segment only
                    n = min(mss, length - off)
                    net.netif_rx(cpu, (self.peer, msg, n + HDR, self.flow, self.env._now, seq + off, n, 1, ack, wnd,
                                       psh and off + n >= length))
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
        self.net.netif_rx(cpu, (self.peer, -1, HDR, self.flow, self.env._now, self.snd_nxt, 0, 0, ack, wnd, False))
        if in_task:
            yield BH_ENABLE

    # ================================================================ system call
    def sendmsg(self, task: Task, msg: int, nbytes: int, t_send: float,
                more: bool = False) -> Generator[Any, None, None]:
        """tcp_sendmsg; ``more``: MSG_MORE (lbsim.model.batching), the partial tail skb stays corked."""
        sim = self.sim
        cpu = task.cpu
        last = self.last_cpu  # Sim.touch(self, cpu), inlined (no call, no tuple to unpack)
        self.last_cpu = cpu
        yield sim.work_of_ids(_SENDMSG) if last is None or last is cpu else sim.work_of_ids((*_SENDMSG, S_BOUNCE))
        zc = self.zc
        rfs = self.net.rfs
        if rfs is not None:
            rfs.record(self, cpu.idx)  # inet_sendmsg -> sock_rps_record_flow
        if zc is not None:
            zc.sends += 1
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
                # sk_stream_wait_memory: push what we have (tcp_push, PSH on the tail if this
                # call copied anything), release the lock, sleep
                if left < nbytes:
                    self.mark_push()
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
                items: tuple[WorkItem, ...] = ((S_COPY_IN, chunk),)
            else:
                chunk = left if left < goal else goal
                self.write_q.append(chunk)
                self.write_psh.append(False)
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
                items += ((S_C2C_WRITE, chunk),)  # the buffers were last read (and freed) on that CPU
            if zc is not None:  # skb_zerocopy_iter_stream: pinned, not copied (the copy is deferred)
                items = (S_ALLOC_SKB,) if items[0] == S_ALLOC_SKB else ()
            if items:
                yield sim.work_of(items)
            if self.write_q and self.write_q[-1] >= goal:
                # a full skb goes at once (tcp_push_one), without PSH unless forced_push
                # (then tcp_mark_push and __tcp_push_pending_frames): net/ipv4/tcp.c
                if self.forced_push():
                    self.mark_push()
                yield from self.write_xmit(cpu, True, False)
            if new_skbs >= 16:  # sk_flush_backlog every 16 skbs
                new_skbs = 0
                yield from self.release_sock(cpu)
                self.lock_sock()
        # tcp_push(): PSH on the last unsent skb (with MSG_MORE only if forced_push); Nagle
        # decides unless TCP_NODELAY
        if more:
            # MSG_MORE: tcp_push with TCP_NAGLE_CORK sends full skbs only; the tail stays open
            # until a write without it, or an ACK (tcp_data_snd_check), pushes it
            if self.forced_push():
                self.mark_push()
            self.tail_open = bool(self.write_q)
            yield from self.write_xmit(cpu, True, False)
        else:
            self.mark_push()
            self.tail_open = False
            yield from self.write_xmit(cpu, True, True)
        if self.backlog or self.deferred_rto or self.deferred_delack or self.deferred_tsq:
            yield from self._release_sock(cpu)
        else:
            self.owned = False  # release_sock() with nothing to process, inlined
        yield PREEMPT
        if zc is not None:
            yield sim.work_of_ids(zc.reap_items())  # the sender's recvmsg(MSG_ERRQUEUE)
            yield PREEMPT
