"""The loopback device and the per-CPU backlog: ``loopback_xmit`` -> ``netif_rx`` -> NET_RX.

Kernel functions modelled (net/core/dev.c, drivers/net/loopback.c, kernel/softirq.c):

``loopback_xmit``       skb_orphan (the sender's wmem is released here), eth_type_trans,
                        per-CPU lstats (packets, bytes) of the CPU that transmits;
                        always returns NETDEV_TX_OK, so a backlog drop is silent
``__netif_rx``          picks the backlog: the current CPU, or with ``rps_cpus`` set the
                        RPS target chosen by flow hash (``get_rps_cpu``); with RFS
                        (``rps_sock_flow_entries`` and ``rps_flow_cnt``) first the CPU the
                        socket was last used on (lbsim/model/rfs.py)
``enqueue_to_backlog``  ``qlen <= netdev_max_backlog`` enqueues (so 1001 skbs fit),
                        otherwise softnet ``dropped++`` and the skb is freed; on an empty
                        queue NAPI_STATE_SCHED is set and NET_RX raised (locally, or for a
                        remote RPS target queued on ``rps_ipi_list`` and kicked by IPI from
                        the end of this CPU's net_rx_action)
``do_softirq``          ``handle_softirqs``: TIMER, NET_RX, then HRTIMER (the softirq bits in
                        order, include/linux/interrupt.h); restarts while pending, at
                        most MAX_SOFTIRQ_RESTART times and 2 ms, then wakes ksoftirqd; the
                        interrupted task's next ``local_bh_enable`` (or the next irq exit)
                        runs what is pending inline again: since 6.5 nothing waits for
                        ksoftirqd (d15121be7485 reverted 4cd13c21b207's ``ksoftirqd_running``)
``net_rx_action``       ``netdev_budget`` packets and ``netdev_budget_usecs`` per run,
                        checked after each ``napi_poll``; over budget -> ``time_squeeze++``
``process_backlog``     ``dev_weight`` packets per poll from ``process_queue``; when it is
                        empty the whole ``input_pkt_queue`` is spliced over (only
                        ``input_pkt_queue`` counts against the limit)
``skb_attempt_defer_free`` (5.19+) a TCP reader (and from 6.18 a UDP one) hands each skb it consumed back to the CPU
                        that allocated it (up to ``skb_defer_max`` queued per CPU); that CPU
                        frees them in ``skb_defer_free_flush`` at each net_rx_action round,
                        and the skb that finds the list half full kicks it by IPI

Left out: flow limit (off by default: ``flow_limit_cpu_bitmap`` = 0), GRO (not on this
path), netfilter hooks (no rules), ptype_all taps.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from typing import Any

import numpy as np

from lbsim.model.cpu import CPU
from lbsim.model.rfs import Rfs
from lbsim.model.sim import S_IPI_IDLE, Sim
from lbsim.model.stages import SID
from lbsim.model.task import CTX_SOFTIRQ, PREEMPT, Task, WaitQueue

__all__ = ["Net", "Packet", "flow_hash"]


def flow_hash(flow: int) -> int:
    """A stable 32-bit skb->hash for flow ``flow`` (Fibonacci hashing of the flow id)."""
    return ((flow + 1) * 0x9E3779B1) & 0xFFFFFFFF

S_NET_RX_ACTION = SID["net_rx_action"]
S_RPS_IPI = SID["net_rps_send_ipi"]
S_KFREE = SID["__kfree_skb"]
S_DEFER_KICK = SID["kick_defer_list_purge"]
S_FREE_PAGES = SID["__free_pages"]

#: a packet in a backlog: (owner, msg_id, length_bytes, flow_hash (32 bit), enqueue_time, *payload)
Packet = tuple


class Net:
    """Per-host networking state shared by the IP transports."""

    def __init__(self, sim: Sim, kernel: Any) -> None:
        self.sim = sim
        self.env = sim.env
        self.kernel = kernel
        self.max_backlog = kernel.netdev_max_backlog
        self.weight = kernel.dev_weight
        self.budget = kernel.netdev_budget
        self.budget_ns = kernel.netdev_budget_usecs * 1000.0
        self.max_restart = kernel.max_softirq_restart
        self.max_softirq_ns = kernel.max_softirq_time_ns
        n = len(sim.cpus)
        self.rps_targets = [i for i in range(n) if (kernel.rps_cpus >> i) & 1]
        self._hash_rng: np.random.Generator | None = None  # socket_hash's draws (several RPS CPUs)
        # RFS needs both tables (get_rps_cpu: sock_flow_table and the rx queue's flow table)
        self.rfs = Rfs() if kernel.rps_sock_flow_entries and kernel.rps_flow_cnt else None
        self.backlog_wait_ns = 0.0
        self.backlog_waits = 0
        # expired soft hrtimers per CPU (HRTIMER_SOFTIRQ: TCP's pacing timer)
        self.hrtimer_queues: list[deque[tuple[Any, ...]]] = [deque() for _ in range(n)]
        for cpu in sim.cpus:
            cpu.napi_scheduled = False
            wq = WaitQueue(f"ksoftirqd/{cpu.idx}")
            t = Task(f"ksoftirqd/{cpu.idx}", cpu, None)
            t.gen = self._ksoftirqd(cpu, t, wq)
            t.state = 2  # SLEEPING until woken
            t.wq = wq
            wq.waiters.append(t)
            cpu.ksoftirqd = t
            cpu.ksoftirqd_wq = wq

    def socket_hash(self, key: int) -> int:
        """skb->hash of the packets of socket number ``key`` of the run.  The kernel's is random
        per run: ``__skb_get_hash`` hashes the 4-tuple with ``jhash`` under a boot-time random
        seed (``hashrnd``, net/core/flow_dissector.c), and the ephemeral source port is drawn at
        random (``udp_lib_get_port``, ``__inet_hash_connect``), so with several CPUs in
        ``rps_cpus`` each run's flow lands on a CPU drawn at random (``get_rps_cpu``).  Drawn
        here from the run's seed when the mask has several CPUs; otherwise where the hash
        lands does not matter and the fixed :func:`flow_hash` is kept."""
        if len(self.rps_targets) < 2:
            return flow_hash(key)
        if self._hash_rng is None:
            self._hash_rng = np.random.default_rng(self.sim.hash_seed)
        return int(self._hash_rng.integers(1 << 32))

    # ------------------------------------------------------------------ transmit side
    def netif_rx(self, cpu: CPU, pkt: Packet) -> bool:
        """loopback_xmit's tail: lstats, then __netif_rx -> enqueue_to_backlog."""
        cpu.lo_tx_packets += 1
        cpu.lo_tx_bytes += pkt[2]
        target = cpu
        rfs = self.rfs
        if rfs is not None and (steered := rfs.steer(pkt[0], self.sim.cpus)) is not None:
            target = self.sim.cpus[steered]  # get_rps_cpu: the sock flow table's CPU (RFS)
        elif self.rps_targets:
            # get_rps_cpu: map->cpus[reciprocal_scale(hash, map->len)]
            target = self.sim.cpus[self.rps_targets[(pkt[3] * len(self.rps_targets)) >> 32]]
        if target is not cpu:
            target.received_rps += 1
        q = target.input_pkt_queue
        qlen = len(q)
        if qlen > self.max_backlog:
            target.dropped += 1
            pkt[0].dropped(pkt, "backlog")
            return False
        if qlen == 0 and not target.napi_scheduled:
            target.napi_scheduled = True
            if target is not cpu:
                cpu.rps_ipi_list.append(target)
            cpu.softirq_pending = True
        q.append(pkt)
        if rfs is not None:
            rfs.queued(pkt[0], target)  # rflow->last_qtail
        if qlen + 1 > target.backlog_max:
            target.backlog_max = qlen + 1
        return True

    def defer_free(self, cpu: CPU, alloc: CPU | None, n: int,
                   pages: int = 0) -> tuple[tuple[int, ...] | list[int], CPU | None]:
        """skb_attempt_defer_free for ``n`` skbs a reader on ``cpu`` consumed, allocated on
        ``alloc``: returns the stages the reader pays now (frees it may not defer, the kick;
        work items: stage ids) and the CPU to kick, if any.  Each skb goes on ``alloc``'s defer
        list unless that CPU is this one or the list already holds ``skb_defer_max``; the skb
        that finds the list at half of it sends an IPI (kick_defer_list_purge) that raises
        NET_RX there.  ``pages``: page-allocator calls of each skb's kmalloc_large head, freed
        with it (``__free_pages``) wherever the skb is freed."""
        dmax = self.kernel.skb_defer_max
        free = (S_KFREE, *(S_FREE_PAGES,) * pages)  # one skb freed here
        if alloc is None or alloc is cpu or dmax <= 0:
            return free * n, None
        items: list[int] = []
        kick = None
        for _ in range(n):
            if alloc.defer_count >= dmax:
                items += free
                continue
            if alloc.defer_count == dmax >> 1 and not alloc.defer_kicked:
                kick = alloc
                items.append(S_DEFER_KICK)
            alloc.defer_count += 1
            alloc.defer_pages += pages
        return items, kick

    def kick_defer(self, tgt: CPU) -> None:
        """kick_defer_list_purge: NET_RX raised on ``tgt`` by IPI."""
        tgt.defer_kicked = True
        self.raise_net_rx_by_ipi(tgt)

    def raise_net_rx_by_ipi(self, tgt: CPU) -> None:
        """An IPI that raises NET_RX on ``tgt`` (RPS, the defer-list kick): it arrives after
        the target's wake-up delay."""
        ev = self.env.timeout(self.sim.wakeup_delay(tgt))
        ev.callbacks.append(lambda _e: tgt.raise_softirq_irq())

    def add_timer(self, cpu: CPU, item: tuple[Any, ...]) -> None:
        """A timer (TIMER_SOFTIRQ) expired on ``cpu``: run its handler in softirq."""
        cpu.timer_queue.append(item)
        cpu.raise_softirq_irq()

    def add_hrtimer(self, cpu: CPU, item: tuple[Any, ...]) -> None:
        """A soft hrtimer (HRTIMER_MODE_*_SOFT) expired on ``cpu``: its handler runs in
        HRTIMER_SOFTIRQ, after NET_RX in the same handle_softirqs pass."""
        self.hrtimer_queues[cpu.idx].append(item)
        cpu.raise_softirq_irq()

    # ------------------------------------------------------------------ softirq
    def do_softirq(self, cpu: CPU, ctx: Any) -> Generator[Any, None, None]:
        """handle_softirqs(): TIMER, NET_RX, then HRTIMER, with the restart limits."""
        sim = self.sim
        env = self.env
        start = env._now
        restarts = 0
        hq = self.hrtimer_queues[cpu.idx]
        rfs = self.rfs
        while True:
            cpu.softirq_pending = False
            n_hr = len(hq)  # the pending bits are read once per pass: later expiries wait for the next
            while cpu.timer_queue:
                item = cpu.timer_queue.popleft()
                yield from item[0].timer(cpu, ctx, item)
            if cpu.napi_scheduled or cpu.defer_kicked:
                # net_rx_action (_net_rx_action's body, inlined: one yield-from level less under
                # every packet's receive path)
                iq = cpu.process_queue or cpu.input_pkt_queue
                ctx.msg = iq[0][1] if iq else -1
                yield sim.work_of_ids((S_NET_RX_ACTION,))
                cpu.defer_kicked = False
                budget = self.budget
                time_limit = env._now + self.budget_ns
                weight = self.weight
                polling = True
                while polling:
                    if cpu.defer_count:
                        # skb_defer_free_flush: free what other CPUs' readers handed back to this CPU
                        n, pages = cpu.defer_count, cpu.defer_pages
                        cpu.defer_count = cpu.defer_pages = 0
                        yield sim.work_of_ids((S_KFREE,) * n + (S_FREE_PAGES,) * pages)
                    # napi_poll(backlog) -> process_backlog, at most `weight` packets
                    work = 0
                    quota = weight
                    while work < quota:
                        pq = cpu.process_queue
                        if not pq:
                            iq = cpu.input_pkt_queue
                            if not iq:
                                cpu.napi_scheduled = False
                                polling = False  # the backlog is empty: net_rx_action is done
                                break
                            cpu.process_queue = iq  # skb_queue_splice_tail_init
                            cpu.input_pkt_queue = deque()
                            pq = iq
                        pkt = pq.popleft()
                        cpu.processed += 1
                        self.backlog_wait_ns += env._now - pkt[4]
                        self.backlog_waits += 1
                        ctx.msg = pkt[1]
                        cpu.cur_pkt = pkt
                        if rfs is not None:
                            rfs.seen.add(pkt[0])  # sock_rps_save_rxhash (in the protocol's receive)
                        yield from pkt[0].rx(cpu, ctx, pkt)
                        cpu.cur_pkt = None
                        work += 1
                    else:
                        budget -= work
                        if budget <= 0 or env._now >= time_limit:
                            cpu.time_squeeze += 1
                            cpu.softirq_pending = True  # napi stays on the poll list; NET_RX re-raised
                            polling = False
            if cpu.rps_ipi_list:
                # net_rps_action_and_irq_enable -> net_rps_send_ipi for each queued target;
                # net_rps_send_ipi -> smp_call_function_single_async -> send_call_function_single_ipi
                # (kernel/smp.c), where a remote wake-up ends too: an idle target costs the sender
                # the same kick of a halted vCPU (Sim.wake_items), a busy one does not
                targets = cpu.rps_ipi_list
                cpu.rps_ipi_list = []
                items: list[int] = []
                for tgt in targets:
                    items.append(S_RPS_IPI)
                    if not tgt._is_busy_for_wakeup():
                        items.append(S_IPI_IDLE)
                yield sim.work_of_ids(items)
                for tgt in targets:
                    self.raise_net_rx_by_ipi(tgt)
            for _ in range(n_hr):
                item = hq.popleft()
                yield from item[0].timer(cpu, ctx, item)
            if not cpu.softirq_pending:
                return
            restarts += 1
            if restarts >= self.max_restart or env._now - start >= self.max_softirq_ns:
                # wakeup_softirqd(): the rest runs in ksoftirqd/N, a SCHED_OTHER task
                cpu.softirq_deferred = True
                cpu.ksoftirqd_wakeups += 1
                if cpu.ksoftirqd is not None and cpu.ksoftirqd.state == 2:
                    sim.wake(cpu.ksoftirqd, cpu)
                return

    def _ksoftirqd(self, cpu: CPU, me: Task, wq: WaitQueue) -> Generator[Any, None, None]:
        """run_ksoftirqd(): process pending softirqs in task context."""
        while True:
            if cpu.softirq_pending and not cpu.softirq_active:
                cpu.softirq_active = True
                me.kind = CTX_SOFTIRQ
                yield from self.do_softirq(cpu, me)
                me.kind = 0
                cpu.softirq_active = False
                yield PREEMPT
                continue
            cpu.softirq_deferred = False
            yield wq
