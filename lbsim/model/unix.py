"""AF_UNIX stream, datagram and seqpacket sockets (net/unix/af_unix.c): no IP, no device, no softirq.

``unix_stream_sendmsg`` cuts a write into skbs of at most
``min(sk_sndbuf / 2 - 64, SKB_MAX_HEAD(0) + UNIX_SKB_FRAGS_SZ)`` bytes (36544 on 6.x;
linear ``SKB_MAX_ALLOC`` skbs on 2.6.32).  Per skb: ``sock_alloc_send_pskb`` blocks while
the *sender's* ``sk_wmem_alloc >= sk_sndbuf`` (``sk_rcvbuf`` is never consulted), copy #1,
``skb_queue_tail`` onto the **peer's** receive queue under ``unix_state_lock(other)``, and
``other->sk_data_ready`` (one wake-up per skb).  All of it runs in the sender's task.

``unix_stream_read_generic`` copies from as many skbs as the buffer takes; each fully
consumed skb is freed (``consume_skb`` -> ``sock_wfree`` -> ``unix_write_space``), which
wakes a blocked writer only once ``wmem_alloc * 4 <= sndbuf`` (25 %: hysteresis).  The free
of one skb is in ``unix_stream_recvmsg``'s cost (fitted on reads of one skb); each further
skb a read empties costs a ``__kfree_skb``.

Pages (6.x): a unix_stream skb longer than ``SKB_MAX_HEAD(0)`` (3776 B) holds its data in
page frags; a unix_dgram skb's head above 8 KiB comes from kmalloc_large and its data past
``SKB_MAX_ALLOC`` from page frags (``lbsim.model.skb.page_calls_unix_stream``,
``page_calls_unix_dgram``).  The send pays ``__alloc_pages`` per page-allocator call, the read
that frees the skb ``__free_pages`` per call.  Their costs come from unix_stream's split step
at 3776 B (``lbsim calibrate``), not from the fit of the copies.

``unix_dgram_sendmsg``: EMSGSIZE above ``sk_sndbuf - 32`` (rejected when the configuration
is built); alloc (blocks on the sender's sndbuf) and copy; then the queue check: the peer
is a bound server that is not connected back, so ``skb_queue_len(&other->sk_receive_queue)
> sk_max_ack_backlog`` (``unix_max_dgram_qlen``, test ``>``: qlen + 1 datagrams fit) puts
the sender to sleep on the peer's ``peer_wait`` (``unix_wait_for_peer``), then it retries.
``__unix_dgram_recvmsg`` wakes ``peer_wait`` after each dequeue, copies, frees the skb.

``SOCK_SEQPACKET`` (``unix_seqpacket_ops``): connected like a stream (``unix_stream_connect``,
``unix_accept``), then ``unix_seqpacket_sendmsg`` checks ``sk_state`` and calls
``unix_dgram_sendmsg``, ``unix_seqpacket_recvmsg`` calls ``__unix_dgram_recvmsg``: the same
functions per message as unix_dgram (:class:`UnixSeqpacket`).  Each end is the other's peer, so
the queue test ``unix_peer(other) != sk && unix_recvq_full_lockless(other)`` is never true: no
``max_dgram_qlen`` wait and no ``peer_wait`` sleeper, whatever the sysctl says.  A writer that
outruns its reader sleeps only in ``sock_alloc_send_pskb`` (``sk_wmem_alloc >= sk_sndbuf``, the
sender's own ``sk_wq``), woken by ``unix_write_space`` once ``wmem_alloc * 4 <= sndbuf``:
docs/notes/seqpacket.md.

Left out: credentials/SCM (``maybe_add_creds``, no ancillary data in the workloads),
``MSG_PEEK``, the ``iolock`` mutex (one reader per socket here).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterable
from typing import Any

from lbsim.model.sim import Sim, WorkItem
from lbsim.model.skb import page_calls_unix_dgram, page_calls_unix_stream, truesize_unix_dgram, truesize_unix_stream
from lbsim.model.socket import consume, plan_read
from lbsim.model.stages import SID
from lbsim.model.task import PREEMPT, SLEEPING, Task, WaitQueue

__all__ = ["UnixStream", "UnixDgram", "UnixSeqpacket"]

S = SID
S_SYSCALL = S["syscall"]
S_READABLE = S["sock_def_readable"]
S_STREAM_SENDMSG = S["unix_stream_sendmsg"]
S_STREAM_RECVMSG = S["unix_stream_recvmsg"]
S_DGRAM_SENDMSG = S["unix_dgram_sendmsg"]
S_FIND_OTHER = S["unix_find_other"]
S_DGRAM_RECVMSG = S["unix_dgram_recvmsg"]
S_COPY_IN = S["skb_copy_datagram_from_iter"]
S_COPY_OUT = S["skb_copy_datagram_msg"]
S_C2C = S["cache_to_cache_copy"]
S_C2C_WRITE = S["cache_to_cache_write"]
S_BOUNCE_UNIX = S["cacheline_transfer_unix"]
S_KFREE = S["__kfree_skb"]
S_ALLOC_PAGES = S["__alloc_pages"]
S_FREE_PAGES = S["__free_pages"]


class _UnixBase:
    BOUNCE_SID = S["cacheline_transfer_unix"]  # Sim.touch: the cache-line transfer this socket type costs
    BOUNCE_ITEMS = (BOUNCE_SID,)  # the work items Sim.touch returns

    def __init__(self, sim: Sim, *, sndbuf: int, stats: Any, modern: bool) -> None:
        self.sim = sim
        self.env = sim.env
        self.sndbuf = sndbuf  # the sender's sk_sndbuf: the only flow control
        self.wmem = 0  # the sender's sk_wmem_alloc
        self.queue: deque[list[Any]] = deque()  # the peer's sk_receive_queue
        self.wq_data = WaitQueue("unix peer sk_wq")  # the reader sleeps here
        self.wq_space = WaitQueue("unix sender sk_wq")  # sock_wait_for_wmem
        self.ep: Any = None  # an epoll receiver's item on the peer (lbsim.model.eventpoll.EpollItem)
        self.stats = stats
        self.modern = modern
        self.sender_blocked = 0
        self.last_cpu: Any = None  # the CPU that touched the peer's queue last
        # where the payload was last written and read: a copy on another CPU than the other
        # side's last one moves the payload's cache lines (cache_to_cache_copy / _write)
        self.tx_cpu: Any = None
        self.rx_cpu: Any = None

    def _wake_items(self, wq: WaitQueue, cpu: Any) -> tuple[int, ...]:
        """sk_data_ready / sk_write_space cost, plus try_to_wake_up when someone sleeps."""
        return (S_READABLE, *self.sim.wake_items(wq.waiters[0] if wq.waiters else None, cpu))

    def _data_ready_items(self, cpu: Any) -> tuple[int, ...]:
        """The peer's sk_data_ready: _wake_items of its wait queue, and ep_poll_callback when an
        epoll instance watches it (lbsim.model.eventpoll)."""
        if self.ep is None:
            return self._wake_items(self.wq_data, cpu)
        return (*self._wake_items(self.wq_data, cpu), *self.ep.callback_items(cpu))

    def _free(self, truesize: int, cpu: Any) -> None:
        """sock_wfree -> unix_write_space: wake the sender socket's sleepers once
        wmem_alloc * 4 <= sndbuf (for unix_stream that wait queue is also where the sender's
        own reader sleeps, see lbsim.model.host)."""
        self.wmem -= truesize
        if self.wq_space.waiters and self.wmem * 4 <= self.sndbuf:
            self.sim.wake_all(self.wq_space, cpu)

    def _free_items(self, truesize: int, cpu: Any) -> tuple[int, ...]:
        if self.wq_space.waiters and (self.wmem - truesize) * 4 <= self.sndbuf:
            return self._wake_items(self.wq_space, cpu)
        return ()

    def _wait_wmem(self, task: Task) -> Iterable[Any]:
        """sock_alloc_send_pskb -> sock_wait_for_wmem while wmem_alloc >= sndbuf."""
        if self.wmem >= self.sndbuf:
            return self._wait_wmem_sleep()
        return ()  # room: no generator to run

    def _wait_wmem_sleep(self) -> Generator[Any, None, None]:
        self.sender_blocked += 1
        t0 = self.env._now
        while self.wmem >= self.sndbuf:
            yield self.wq_space
        self.stats.blocked(self.env._now - t0)

    def _queue_on_peer(self, msg: int, size: int, truesize: int, cpu: Any, pages: int = 0) -> None:
        """skb_queue_tail(&other->sk_receive_queue) + other->sk_data_ready(other); the skb is
        ``[msg, len, consumed, truesize, t_enqueued, page-allocator calls of its frags]``."""
        self.queue.append([msg, size, 0, truesize, self.env._now, pages])
        if self.wq_data.waiters:
            self.sim.wake_all(self.wq_data, cpu)
        if self.ep is not None:
            self.ep.callback(cpu)

    def _enter_recv(self) -> Generator[Any, None, None]:
        """The receive call's entry, then sleep until the peer's queue holds something."""
        yield self.sim.work_of_ids((S_SYSCALL,))
        while not self.queue:
            yield self.wq_data

    def in_flight_bytes(self) -> int:
        """Bytes queued on the peer and not yet read."""
        return sum(skb[1] - skb[2] for skb in self.queue)

    def in_flight(self) -> int:
        """Datagrams queued on the peer (a datagram is counted sent once queued)."""
        return len(self.queue)


class UnixStream(_UnixBase):
    """A stream whose two ends run on different CPUs pays ``cacheline_transfer_unix`` on every
    skb, in the send and in the read, not only when the other CPU touched the socket last (the
    rule of ``Sim.touch``, which the same-CPU case keeps).  Each skb carries lines
    that the other CPU wrote last whoever ran in between: the writer allocates the skb that the
    reader freed (``consume_skb`` on the reader's CPU) and charges it to its own
    ``sk_wmem_alloc``, which ``sock_wfree`` on the reader's CPU decrements; the reader takes the
    peer-queue lock and reads the skb the writer filled.  Measured on the Xeon guest
    (``docs/notes/cross-cpu.md``): a cross-CPU write costs 0.25-1.05 us (1-16 KiB) more than the same
    write on one CPU even while the reader sleeps, so the cost does not need the two to
    alternate.  (unix_dgram takes the same rule per call, with one more transfer when the
    sender sleeps, see :class:`UnixDgram`.)
    """

    def __init__(self, sim: Sim, *, sndbuf: int, max_skb: int, stats: Any, modern: bool) -> None:
        super().__init__(sim, sndbuf=sndbuf, stats=stats, modern=modern)
        self.max_skb = max_skb

    def sendmsg(self, task: Task, msg: int, nbytes: int, t_send: float) -> Generator[Any, None, None]:
        sim = self.sim
        cpu = task.cpu
        yield sim.work_of_ids((S_SYSCALL,))
        self.stats.sent(msg, nbytes, t_send)
        left = nbytes
        while left > 0:
            size = min(left, self.sndbuf // 2 - 64, self.max_skb)
            if size <= 0:
                size = min(left, 64)
            yield from self._wait_wmem(task)
            truesize = truesize_unix_stream(size, self.modern)
            pages = page_calls_unix_stream(size, self.modern)
            self.wmem += truesize  # skb_set_owner_w in sock_alloc_send_pskb
            rx = self.rx_cpu
            items: tuple[WorkItem, ...]
            if rx is None or rx is cpu:
                items = (S_STREAM_SENDMSG, (S_COPY_IN, size, self.wmem > sim.cache_bytes), *sim.touch(self, cpu),
                         *self._data_ready_items(cpu))
            else:  # the reader is on another CPU: every skb's lines come from its cache (see the class)
                self.last_cpu = cpu  # Sim.touch(self, cpu), always a transfer here
                items = (S_STREAM_SENDMSG, (S_COPY_IN, size, self.wmem > sim.cache_bytes), (S_C2C_WRITE, size),
                         S_BOUNCE_UNIX, *self._data_ready_items(cpu))
            if pages:
                items += (S_ALLOC_PAGES,) * pages  # alloc_skb_with_frags
            self.tx_cpu = cpu
            yield sim.work_of(items)
            self._queue_on_peer(msg, size, truesize, cpu, pages)
            left -= size
        yield PREEMPT

    def recvmsg(self, task: Task, bufsize: int) -> Generator[Any, None, int]:
        """unix_stream_read_generic; returns the bytes copied."""
        sim = self.sim
        cpu = task.cpu
        # _enter_recv(), inlined: the call's entry, then sleep until the queue holds something
        yield sim.work_of_ids((S_SYSCALL,))
        while not self.queue:
            yield self.wq_data
        copied, wait, freed, nfree = plan_read(self.queue, bufsize, self.env._now)
        sim.stage_wait[S_STREAM_RECVMSG] += wait
        items: tuple[WorkItem, ...]
        if self.tx_cpu is not cpu and self.tx_cpu is not None:  # written on another CPU (see the class)
            self.last_cpu = cpu  # Sim.touch(self, cpu), always a transfer here
            items = (S_STREAM_RECVMSG, (S_COPY_OUT, copied, self.wmem > sim.cache_bytes), S_BOUNCE_UNIX,
                     (S_C2C, copied))
        else:
            items = (S_STREAM_RECVMSG, (S_COPY_OUT, copied, self.wmem > sim.cache_bytes), *sim.touch(self, cpu))
        self.rx_cpu = cpu
        if nfree > 1:
            items += (S_KFREE,) * (nfree - 1)  # consume_skb of each further skb the loop empties
        if nfree:  # the skbs it frees are the first nfree: their frag pages go back (put_page)
            queue = self.queue
            pages = queue[0][5] if nfree == 1 else sum(queue[i][5] for i in range(nfree))
            if pages:
                items += (S_FREE_PAGES,) * pages
        if freed:
            items += self._free_items(freed, cpu)
        task.msg = self.queue[0][0]
        yield sim.work_of(items)
        consume(self.queue, copied, lambda truesize: self._free(truesize, cpu))
        yield PREEMPT
        return copied


class _SenderSide:
    """The sender socket's ``sk_wmem_alloc`` and wait queue, as ``Sim.touch`` sees an object."""

    __slots__ = ("last_cpu",)
    BOUNCE_ITEMS = (S_BOUNCE_UNIX,)

    def __init__(self) -> None:
        self.last_cpu: Any = None


class UnixDgram(_UnixBase):
    """On one CPU two socket objects are tracked apart by ``Sim.touch``: the peer's receive
    queue and its lock (``last_cpu``), which the send appends to and the read unlinks from, and
    the sender's ``sk_wmem_alloc`` and wait queue (``sender_side``), which ``skb_set_owner_w``
    raises in the send and ``sock_wfree`` -> ``unix_write_space`` lowers and checks in the read.

    Across CPUs each call pays ``cacheline_transfer_unix`` once, for the lines of both objects
    that the other CPU wrote last (the rule unix_stream pays per skb), and the read pays it a
    second time when the sender is asleep: ``unix_write_space`` reads the sender's wait queue
    (``skwq_has_sleeper``), which the sleeper's ``prepare_to_wait`` wrote on its own CPU.  A
    writer that keeps writing never sleeps there, so a one-way stream pays one transfer per call
    on each side, and a round trip, where each side sleeps for the reply, pays six against UDP's
    four (``loopback_xmit`` orphans a UDP skb on the sender's CPU: the reader never touches the
    sender's socket).  The payload's copies pay as unix_stream's do: the read ``cache_to_cache_copy``
    (it pulls the lines the writer filled), the send ``cache_to_cache_write`` (it fills buffers the
    reader freed).  Until each side's CPU time was measured, the send paid nothing here, a split
    the throughput alone asked for (docs/notes/cross-cpu.md, "unix_dgram across CPUs, per call");
    the writer's CPU time says it pays (docs/notes/side-busy.md).
    """

    def __init__(self, sim: Sim, *, sndbuf: int, max_qlen: int, stats: Any, modern: bool,
                 addressed: bool = False) -> None:
        super().__init__(sim, sndbuf=sndbuf, stats=stats, modern=modern)
        self.max_qlen = max_qlen
        #: the writer sends to a path (sendto), not on a connected socket: each send looks it up
        self.send_items: tuple[WorkItem, ...] = (S_DGRAM_SENDMSG, S_FIND_OTHER) if addressed else (S_DGRAM_SENDMSG,)
        self.peer_wait = WaitQueue("unix peer_wait")
        self.sender_side = _SenderSide()  # the sender's sk_wmem_alloc and wait queue, for Sim.touch
        self.sender_task: Task | None = None  # the writer: sock_wfree checks its wait queue

    def sendmsg(self, task: Task, msg: int, nbytes: int, t_send: float) -> Generator[Any, None, None]:
        sim = self.sim
        cpu = task.cpu
        yield sim.work_of_ids((S_SYSCALL,))
        yield from self._wait_wmem(task)
        self.sender_task = task
        truesize = truesize_unix_dgram(nbytes, self.modern)
        pages = page_calls_unix_dgram(nbytes, self.modern)
        self.wmem += truesize
        full = len(self.queue) > self.max_qlen
        items: tuple[WorkItem, ...]
        if self.rx_cpu is not cpu and self.rx_cpu is not None:  # the reader is on another CPU (see the class)
            self.last_cpu = cpu  # Sim.touch of both objects, one transfer for the two
            self.sender_side.last_cpu = cpu
            items = (*self.send_items, (S_COPY_IN, nbytes, self.wmem > sim.cache_bytes), (S_C2C_WRITE, nbytes),
                     S_BOUNCE_UNIX)
        else:
            items = (*self.send_items, (S_COPY_IN, nbytes, self.wmem > sim.cache_bytes), *sim.touch(self, cpu),
                     *sim.touch(self.sender_side, cpu))  # skb_set_owner_w
        if pages:
            items += (S_ALLOC_PAGES,) * pages  # kmalloc_large head, alloc_skb_with_frags
        self.tx_cpu = cpu
        if not full:
            items += self._data_ready_items(cpu)
        yield sim.work_of(items)
        if len(self.queue) > self.max_qlen:
            # unix_recvq_full_lockless(other) -> unix_wait_for_peer(), then restart_locked
            self.sender_blocked += 1
            t0 = self.env._now
            while len(self.queue) > self.max_qlen:
                yield self.peer_wait
            self.stats.blocked(self.env._now - t0)
            yield sim.work_of_ids(self._data_ready_items(cpu))
        self.stats.sent(msg, nbytes, t_send)
        self._queue_on_peer(msg, nbytes, truesize, cpu, pages)
        yield PREEMPT

    def recvmsg(self, task: Task, bufsize: int) -> Generator[Any, None, int]:
        """__unix_dgram_recvmsg; returns the bytes read, ``task.msg`` names the datagram."""
        sim = self.sim
        cpu = task.cpu
        # _enter_recv(), inlined: the call's entry, then sleep until the queue holds something
        yield sim.work_of_ids((S_SYSCALL,))
        while not self.queue:
            yield self.wq_data
        skb = self.queue.popleft()
        sim.stage_wait[S_DGRAM_RECVMSG] += self.env._now - skb[4]
        task.msg = skb[0]
        n = min(skb[1], bufsize)
        cross = self.tx_cpu is not cpu and self.tx_cpu is not None  # written on another CPU (see the class)
        items: tuple[WorkItem, ...]
        if cross:
            self.last_cpu = cpu  # Sim.touch of both objects, one transfer for the two
            self.sender_side.last_cpu = cpu
            items = (S_DGRAM_RECVMSG, S_BOUNCE_UNIX)
        else:
            items = (S_DGRAM_RECVMSG, *sim.touch(self, cpu))
        if self.peer_wait.waiters:
            items += self._wake_items(self.peer_wait, cpu)
        items += ((S_COPY_OUT, n, self.wmem > sim.cache_bytes),)
        if not cross:
            items += sim.touch(self.sender_side, cpu)  # sock_wfree
        elif self.sender_task is not None and (self.sender_task.state == SLEEPING or self.sender_task.blocking):
            items += (S_BOUNCE_UNIX,)  # sock_wfree -> unix_write_space reads the sleeper's wait queue
        items += self._free_items(skb[3], cpu)
        if cross:
            items += ((S_C2C, n),)
        if skb[5]:
            items += (S_FREE_PAGES,) * skb[5]  # skb_release_data: put_page of each frag, kfree of the head
        self.rx_cpu = cpu
        # wake_up_interruptible_sync_poll(&u->peer_wait) happens right after the dequeue
        if self.peer_wait.waiters:
            sim.wake(self.peer_wait.waiters[0], cpu)  # exclusive wait: one writer
        yield sim.work_of(items)
        self._free(skb[3], cpu)
        yield PREEMPT
        return n


class UnixSeqpacket(UnixDgram):
    """A ``SOCK_SEQPACKET`` pair: unix_dgram's send and receive (the same stages, the same
    cache-line rules), built by the host with no queue limit in either direction, because
    ``unix_dgram_sendmsg`` waits on ``max_dgram_qlen`` only when ``unix_peer(other) != sk``, and
    ``unix_stream_connect`` connects the two ends to each other.  So the writer's only flow
    control is its ``sk_sndbuf`` (``_wait_wmem``): it sleeps on its own wait queue and
    ``unix_write_space`` wakes it at 25 % of ``sk_sndbuf``, where unix_dgram's writer sleeps on
    the reader's ``peer_wait``, woken by every read (``__unix_dgram_recvmsg``).

    Left out, as smaller than the stages' spread: ``unix_seqpacket_sendmsg``'s ``sock_error`` and
    ``sk_state`` tests, and the ``security_unix_may_send`` hook it skips.  The harness's unix_dgram
    server replies with ``sendto(path)``, a ``unix_find_other`` path lookup per reply (the
    ``addressed`` UnixDgram of the replies); a seqpacket end calls ``send`` and never pays it.
    """
