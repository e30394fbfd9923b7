"""TCP's receive side in softirq: tcp_v4_rcv and tcp_rcv_established (net/ipv4/tcp_ipv4.c,
net/ipv4/tcp_input.c).

Models ``tcp_v4_rcv`` (net/ipv4/tcp_ipv4.c: ``bh_lock_sock_nested``, ``sock_owned_by_user``,
``tcp_add_backlog``), and from net/ipv4/tcp_input.c ``tcp_rcv_established``, ``tcp_ack``
(``tcp_clean_rtx_queue``, slow start ``tcp_slow_start``, ``tcp_sndbuf_expand``,
``tcp_data_snd_check``), ``tcp_data_queue`` (``tcp_queue_rcv``/``tcp_try_coalesce``,
``tcp_data_queue_ofo``, ``tcp_ofo_queue``), ``tcp_measure_rcv_mss``, ``__tcp_ack_snd_check``;
``sk_stream_write_space`` (net/core/stream.c) and ``sock_def_readable`` (net/core/sock.c).
BBR's rate sample is ``tcp_rate_skb_delivered``/``tcp_rate_gen`` (net/ipv4/tcp_rate.c).

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
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from lbsim.model.skb import truesize_tcp
from lbsim.model.stages import SID
from lbsim.model.tcp_cc import Bbr
from lbsim.model.tcp_output import MAX_TCP_HEADER, S_BOUNCE

if TYPE_CHECKING:
    from lbsim.model.cpu import CPU
    from lbsim.model.tcp_state import TcpState
else:  # TcpSock.__slots__ holds the state; TcpState declares it for mypy
    TcpState = object

__all__ = ["TcpInput"]

S = SID
_RCV = (S["process_backlog"], S["ip_rcv"], S["tcp_v4_rcv"])
S_READABLE = S["sock_def_readable"]
S_ACK = S["tcp_ack"]
S_ADD_BACKLOG = S["tcp_add_backlog"]


def _roundup_pow2(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


class TcpInput(TcpState):
    """The softirq receive side of TcpSock (a mixin: TcpSock holds the state)."""

    __slots__ = ()

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
            zc = self.peer.zc
            if zc is not None and pkt[6]:
                # __netif_receive_skb_core -> skb_orphan_frags_rx -> skb_copy_ubufs: the deferred copy
                yield sim.work_of(zc.rx_items(pkt[6], self.peer.tx_cpu is not cpu))
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
        _, msg, _, _, _, seq, length, segs, ack, wnd, psh = pkt
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
        self._queue_data(length, segs, msg, psh)
        self.ack_pending = True
        waiter = self.wq_data.waiters[0] if self.wq_data.waiters else None
        ep = self.ep
        if ep is None:
            yield sim.work_of_ids((S_READABLE, *sim.wake_items(waiter, cpu)))
        else:  # an epoll receiver: its entry on sk_wq runs ep_poll_callback (lbsim.model.eventpoll)
            yield sim.work_of_ids((S_READABLE, *sim.wake_items(waiter, cpu), *ep.callback_items(cpu)))
            ep.callback(cpu)
        if self.wq_data.waiters:
            sim.wake_all(self.wq_data, cpu)
        # ---- __tcp_ack_snd_check
        quick = self.quick > 0 and not self.pingpong
        if (self.rcv_nxt - self.rcv_wup > self.rcv_mss and self.window() >= self.rcv_wnd) or quick:
            yield from self.send_ack(cpu, in_task)
        else:
            self._arm_delack(cpu)

    def _queue_data(self, length: int, segs: int, msg: int, psh: bool) -> None:
        """tcp_data_queue for an in-order segment: tcp_queue_rcv (or tcp_try_coalesce),
        tcp_measure_rcv_mss, the len/truesize ratio, then tcp_ofo_queue."""
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
            if self.modern and psh:
                # 6.7+: a segment of at least rcv_mss with PSH sets ICSK_ACK_PUSHED too, so
                # that tcp_cleanup_rbuf() ACKs a read that empties the queue (tcp_input.c,
                # "the end of an application write"); a full skb sent in the middle of a
                # write has no PSH (tcp_push_one), and a read of it alone is not ACKed
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
        if done_msgs and self.zc is not None:
            self.zc.complete()  # tcp_clean_rtx_queue frees the skbs holding the ubuf_info
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
                    self.write_psh.popleft()
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
