"""UDP over loopback: ``udp_sendmsg`` -> IP output -> lo -> backlog -> ``udp_rcv``.

Send (task context, sender CPU): ``syscall``, ``udp_sendmsg`` (ip_make_skb),
``ip_generic_getfrag`` (copy #1, per byte), ``ip_output``; a datagram larger than
``mtu - 28`` is cut by ``ip_fragment`` into fragments of ``(mtu - 20) & ~7`` payload bytes,
and each fragment goes through ``dev_queue_xmit`` -> ``loopback_xmit`` -> ``netif_rx``
separately (each followed by ``local_bh_enable``, where NET_RX runs inline).  Each fragment is
its own skb, allocated by ``__ip_append_data`` as a datagram of its length would be: a linear
head above 8 KiB is ``kmalloc_large``'s (``__alloc_pages`` in the send, ``__free_pages`` where
the skb is freed: the read, or the softirq on a drop), and the reassembled datagram is charged
the sum of its fragments' truesize (``lbsim.model.skb.truesize_udp_fragments``).

No send buffer: ``sk_sndbuf`` (SO_SNDBUF, ``wmem_default`` through ``sock_init_data``) is
read on this path only by ``sock_alloc_send_pskb`` (net/core/sock.c), which waits in
``sock_wait_for_wmem`` while ``sk_wmem_alloc >= sk_sndbuf``.  The charge lasts from that
allocation (``__ip_append_data``) to ``skb_orphan`` in ``loopback_xmit``
(drivers/net/loopback.c), inside the same send call, so the next send finds
``sk_wmem_alloc`` back at 0 and never waits (measured: 5000 non-blocking sends, no EAGAIN;
``sleeps_per_msg_sender`` 0.000 in every udp run of the knob grids, SO_SNDBUF 1 .. 4194304).
Left out: a fragmented datagram's later fragments are allocated only while
``sk_wmem_alloc + delta <= 2 * sk_sndbuf`` (``__ip_append_data``), else the send fails
with ENOBUFS; a tiny SO_SNDBUF with a datagram above the MTU is not modelled.

Receive (softirq, on the CPU that owns the backlog): ``process_backlog``, ``ip_rcv``
(``ip_defrag`` per fragment when fragmented; the datagram continues when its last
fragment arrives), ``udp_rcv`` -> ``__udp_enqueue_schedule_skb``: the truesize of the
datagram is charged to ``sk_rmem_alloc`` and checked against ``sk_rcvbuf`` by the
kernel's rule (see ``KernelParams.udp_rcvbuf_rule``); a drop counts ``RcvbufErrors``
and ``InErrors``.  Then ``sock_def_readable`` wakes the reader.

``udp_recvmsg`` (receiver task): dequeue one datagram, copy (``skb_copy_datagram_msg``),
uncharge ``sk_rmem_alloc``; if the queue is empty, sleep in ``__skb_wait_for_more_packets``.
Then ``skb_consume_udp`` frees the skb (``__kfree_skb``, the part of the read's traced interval
the calibration splits off, as for TCP): from 6.18 (``KernelParams.udp_defer_free``) a reader on
another CPU than the writer's hands it to ``skb_attempt_defer_free``, and the writer's CPU frees it
in its next ``net_rx_action`` (``skb_defer_free_flush``); traced in docs/notes/udp-defer-free.md.
Every datagram of a socket is allocated on its sender's CPU (``tx_cpu``: the senders are pinned,
several senders share one CPU).  A datagram dropped at the receive buffer is freed by the softirq
that dropped it (``kfree_skb`` in ``udp_queue_rcv_one_skb``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from typing import Any

from lbsim.model.cpu import CPU
from lbsim.model.netdev import Net
from lbsim.model.sim import Sim
from lbsim.model.skb import page_calls_udp, truesize_udp, truesize_udp_fragments
from lbsim.model.stages import SID
from lbsim.model.task import BH_ENABLE, PREEMPT, Task, WaitQueue
from lbsim.model.zerocopy import MsgZerocopy

__all__ = ["UdpSocket", "udp_fragments"]

S = SID
# the stages of the fixed commands (work items: stage ids), built once
_XMIT = (S["dev_queue_xmit"], S["loopback_xmit"], S["netif_rx"])
_XMIT_FRAG = (S["ip_fragment"], S["dev_queue_xmit"], S["loopback_xmit"], S["netif_rx"])
_RCV = (S["process_backlog"], S["ip_rcv"], S["udp_rcv"])
_RCV_FRAG = (S["process_backlog"], S["ip_rcv"], S["ip_defrag"])
S_SYSCALL = S["syscall"]
S_SENDMSG = S["udp_sendmsg"]
S_COPY_IN = S["ip_generic_getfrag"]
S_IP_OUTPUT = S["ip_output"]
S_UDP_RCV = S["udp_rcv"]
S_READABLE = S["sock_def_readable"]
S_RECVMSG = S["udp_recvmsg"]
S_COPY_OUT = S["skb_copy_datagram_msg"]
S_C2C = S["cache_to_cache_copy"]
S_C2C_WRITE = S["cache_to_cache_write"]
S_ALLOC_PAGES = S["__alloc_pages"]
S_FREE_PAGES = S["__free_pages"]
S_KFREE = S["__kfree_skb"]


def udp_fragments(payload: int, mtu: int) -> list[int]:
    """IP payload bytes (UDP header included) of each fragment (ip_do_fragment)."""
    total = payload + 8
    if total + 20 <= mtu:
        return [total]
    per = (mtu - 20) & ~7
    out = []
    while total > per:
        out.append(per)
        total -= per
    out.append(total)
    return out


class UdpSocket:
    """A connected UDP socket pair's receiving end, with the sender's send path."""

    BOUNCE_SID = S["cacheline_transfer"]  # Sim.touch: the cache-line transfer this socket type costs
    BOUNCE_ITEMS = (BOUNCE_SID,)  # the work items Sim.touch returns

    def __init__(self, sim: Sim, net: Net, *, rcvbuf: int, flow: int, stats: Any) -> None:
        self.sim = sim
        self.net = net
        self.env = sim.env
        k = net.kernel
        self.mtu = k.mtu
        self.modern = k.name != "linux-2.6.32"
        self.rule = k.udp_rcvbuf_rule
        self.defer = k.udp_defer_free  # skb_consume_udp -> skb_attempt_defer_free (6.18+)
        self.rcvbuf = rcvbuf
        self.rmem = 0
        self.queue: deque[tuple[int, int, int, float, float]] = deque()  # (msg, len, truesize, t_send, t_enq)
        self.wq = WaitQueue("udp sk_wq")
        self.ep: Any = None  # an epoll receiver's item (lbsim.model.eventpoll.EpollItem)
        self.flow = flow
        self.stats = stats
        self.rcvbuf_errors = 0
        self.frag_pending: dict[int, int] = {}  # msg -> fragments still to come
        self.frag_dead: set[int] = set()  # datagrams that lost a fragment
        self.max_rmem = 0
        self.last_cpu: CPU | None = None
        # where datagrams to this socket were last written and read (cache_to_cache_copy)
        self.tx_cpu: CPU | None = None
        self.rx_cpu: CPU | None = None
        #: MSG_ZEROCOPY state of the sending socket (lbsim/model/zerocopy.py), None: off
        self.zc: MsgZerocopy | None = None
        #: datagram length -> its skbs' page-allocator calls (_page_calls: fixed per length and socket)
        self._pages: dict[int, int] = {}
        #: connected (TCP_ESTABLISHED), so sock_rps_record_flow records it (lbsim/model/rfs.py)
        self.rfs_established = True

    # ---------------------------------------------------------------- sender side
    def sender(self, flow: int) -> Callable[[Task, int, int, float], Generator[Any, None, None]]:
        """The send path of another socket that sends to this one (a second sender: its own
        source port, so its own skb->hash ``flow`` and RPS target; udp_sendmsg's wmem charge
        is dropped in loopback_xmit, so it shares nothing else with the first sender)."""
        def send(task: Task, msg: int, nbytes: int, t_send: float) -> Generator[Any, None, None]:
            return self.sendmsg(task, msg, nbytes, t_send, flow)
        return send

    def sendmsg(self, task: Task, msg: int, nbytes: int, t_send: float,
                flow: int | None = None) -> Generator[Any, None, None]:
        sim = self.sim
        if flow is None:
            flow = self.flow
        frags = udp_fragments(nbytes, self.mtu)
        nfr = len(frags)
        cpu = task.cpu
        rx = self.rx_cpu
        zc = self.zc
        pages = self._page_calls(nbytes)
        if zc is not None and nfr == 1:
            # skb_zerocopy_iter_dgram: the pages are pinned, not copied (the copy is deferred: rx)
            zc.sends += 1
            yield sim.work_of_ids((S_SYSCALL, S_SENDMSG, S_IP_OUTPUT))
        elif rx is None or rx is cpu:
            yield sim.work_of((S_SYSCALL, S_SENDMSG, *(S_ALLOC_PAGES,) * pages,
                               (S_COPY_IN, nbytes, self.rmem > sim.cache_bytes), S_IP_OUTPUT))
        else:  # the buffers were last read (and freed) on that CPU
            yield sim.work_of((S_SYSCALL, S_SENDMSG, *(S_ALLOC_PAGES,) * pages,
                               (S_COPY_IN, nbytes, self.rmem > sim.cache_bytes), (S_C2C_WRITE, nbytes), S_IP_OUTPUT))
        self.tx_cpu = cpu
        if nfr > 1:
            self.frag_pending[msg] = nfr
            truesize = truesize_udp_fragments(frags, self.modern)
        else:
            truesize = truesize_udp(nbytes, self.modern)
        self.stats.sent(msg, nbytes, t_send)
        net = self.net
        for i, flen in enumerate(frags):
            if nfr > 1:
                w = sim.work_of_ids(_XMIT_FRAG)
            else:
                w = sim.work_of_ids(_XMIT)
            yield w
            last = i == nfr - 1
            net.netif_rx(cpu, (self, msg, flen + 20, flow, self.env._now, nbytes, truesize, t_send, nfr > 1, last))
            yield BH_ENABLE
        yield PREEMPT
        if zc is not None:
            if nfr > 1:  # above the MTU __ip_append_data copied it: only the notification remains
                zc.sends += 1
                zc.complete()
            yield sim.work_of_ids(zc.reap_items())  # the sender's recvmsg(MSG_ERRQUEUE)
            yield PREEMPT

    # ---------------------------------------------------------------- softirq side
    def _page_calls(self, length: int) -> int:
        """Page-allocator calls for the skbs of a datagram of ``length`` bytes: __ip_append_data
        builds one per fragment, whose kmalloc_large head is the page allocator's
        (``page_calls_udp``); none for an unfragmented MSG_ZEROCOPY send (its pages are pinned)."""
        n = self._pages.get(length)
        if n is None:
            frags = udp_fragments(length, self.mtu)
            n = 0 if self.zc is not None and len(frags) == 1 else sum(
                page_calls_udp(f - 8, self.modern) for f in frags)
            self._pages[length] = n
        return n

    def _free_items(self, length: int) -> tuple[int, ...]:
        """Freeing a datagram of ``length`` bytes where it stands: ``__kfree_skb``, and
        ``__free_pages`` once per page-allocator call its send made."""
        return (S_KFREE, *(S_FREE_PAGES,) * self._page_calls(length))

    def dropped(self, pkt: tuple[Any, ...], where: str) -> None:
        msg = pkt[1]
        if pkt[8]:  # a fragment: the datagram is lost once, its other fragments are discarded
            if msg in self.frag_dead:
                return
            self.frag_dead.add(msg)
        self.stats.dropped(msg, where)

    def rx(self, cpu: CPU, ctx: Any, pkt: tuple[Any, ...]) -> Generator[Any, None, None]:
        sim = self.sim
        msg = pkt[1]
        if pkt[8]:
            # ip_local_deliver -> ip_defrag: queue until the datagram is complete
            yield sim.work_of_ids(_RCV_FRAG)
            left = self.frag_pending.get(msg, 0) - 1
            if left > 0:
                self.frag_pending[msg] = left
                return
            self.frag_pending.pop(msg, None)
            if msg in self.frag_dead:
                self.frag_dead.discard(msg)
                return
            items = [S_UDP_RCV]
        else:
            items = list(_RCV)
            zc = self.zc
            if zc is not None:
                # __netif_receive_skb_core -> skb_orphan_frags_rx -> skb_copy_ubufs: the deferred copy
                yield sim.work_of(zc.rx_items(pkt[5], self.tx_cpu is not cpu))
                zc.complete()
        items += sim.touch(self, cpu)
        truesize = pkt[6]
        accept = self._rcvbuf_accepts(truesize)
        waiter = self.wq.waiters[0] if (accept and self.wq.waiters) else None
        ep = self.ep
        if accept:
            items.append(S_READABLE)
            items += sim.wake_items(waiter, cpu)
            if ep is not None:  # an epoll receiver: ep_poll_callback (lbsim.model.eventpoll)
                items += ep.callback_items(cpu)
        yield sim.work_of_ids(items)
        if not self._rcvbuf_accepts(truesize):  # re-check at the time the skb is charged
            self.rcvbuf_errors += 1
            self.stats.dropped(msg, "rcvbuf")
            yield sim.work_of_ids(self._free_items(pkt[5]))  # kfree_skb here, in the softirq
            return
        self.rmem += truesize
        if self.rmem > self.max_rmem:
            self.max_rmem = self.rmem
        self.queue.append((msg, pkt[5], truesize, pkt[7], self.env._now))
        if self.wq.waiters:
            sim.wake_all(self.wq, cpu)
        if ep is not None:
            ep.callback(cpu)

    def _rcvbuf_accepts(self, truesize: int) -> bool:
        rmem, rcvbuf = self.rmem, self.rcvbuf
        if self.rule == "empty":
            return rmem + truesize <= rcvbuf or rmem == 0
        if self.rule == "le":
            return rmem + truesize <= rcvbuf or rmem <= rcvbuf
        return rmem + truesize < rcvbuf  # "ge": 2.6.32 sock_queue_rcv_skb

    # ---------------------------------------------------------------- receiver side
    def recvmsg(self, task: Task, bufsize: int) -> Generator[Any, None, int]:
        """Returns the bytes read; ``task.msg`` names the datagram."""
        sim = self.sim
        yield sim.work_of_ids((S_SYSCALL,))
        while not self.queue:
            yield self.wq
        msg, length, truesize, t_send, t_enq = self.queue.popleft()
        sim.stage_wait[S_RECVMSG] += self.env._now - t_enq
        n = min(length, bufsize)
        task.msg = msg
        cpu = task.cpu
        tx = self.tx_cpu
        self.rx_cpu = cpu
        if tx is None or tx is cpu:
            yield sim.work_of((S_RECVMSG, (S_COPY_OUT, n, self.rmem > sim.cache_bytes), *sim.touch(self, cpu)))
        else:  # written on another CPU: the payload's lines come from its cache
            yield sim.work_of((S_RECVMSG, (S_COPY_OUT, n, self.rmem > sim.cache_bytes), (S_C2C, n),
                               *sim.touch(self, cpu)))
        self.rmem -= truesize
        # skb_consume_udp: the skb and its kmalloc_large heads, here or (6.18+, from another CPU
        # than the writer's) on the writer's CPU
        frees, kick = self.net.defer_free(cpu, tx if self.defer else None, 1, self._page_calls(length))
        if frees:  # (nothing to pay here when the whole free went on the writer's list)
            yield sim.work_of_ids(frees)
        if kick is not None:
            self.net.kick_defer(kick)
        rfs = self.net.rfs
        if rfs is not None:
            rfs.record(self, cpu.idx)  # inet_recvmsg -> sock_rps_record_flow
        if self.zc is not None and length + 28 <= self.mtu:
            yield sim.work_of_ids(MsgZerocopy.free_items(length))  # the pages skb_copy_ubufs allocated
        yield PREEMPT
        return n

    def in_flight(self, cpus: list[CPU]) -> int:
        """Datagrams on their way, read from the queues: backlogs (whole datagrams and the
        softirq's packet in hand), reassembly queues, the socket receive queue."""
        n = len(self.queue) + sum(1 for m in self.frag_pending if m not in self.frag_dead)
        for cpu in cpus:
            for q in (cpu.input_pkt_queue, cpu.process_queue):
                n += sum(1 for p in q if p[0] is self and not p[8])
            p = cpu.cur_pkt
            if p is not None and p[0] is self and not p[8]:
                n += 1
        return n
