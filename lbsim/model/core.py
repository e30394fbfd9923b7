"""CPUs, tasks and the scheduler: the resources every stage runs on.

Execution model
---------------
Kernel and user work runs in *contexts*: tasks (sender, receiver, ksoftirqd/N, a
background spinner) and each CPU's NET_RX softirq.  A context is a Python generator
that yields *commands*:

``[ns, stages]``   run ``ns`` of CPU time, charged to ``stages`` (a tuple of
                   ``(stage_id, ns)``); effects written after the ``yield`` happen when
                   the work completes
``BH_ENABLE``      ``local_bh_enable()``: pending softirqs run here, inline, in this
                   task's time slot (this is how loopback RX runs inside ``send()``)
``PREEMPT``        a preemption point (return to user space): ``need_resched`` is honoured
a ``WaitQueue``    sleep until woken (``sk_wait_data``, ``sk_stream_wait_memory``, ...)
``Sleep(t)``       sleep until simulated time ``t`` (open-loop arrivals)

Each CPU serialises its work (one command at a time).  Softirq work pre-empts task
work: a softirq raised while a task runs executes at the next BH_ENABLE of that task
(raised by the task itself) or immediately (raised by an IPI, e.g. RPS).  Tasks are
scheduled by policy: ``fair`` (EEVDF, kernel/sched/fair.c 6.6+: vruntime, virtual
deadlines, lag kept across a sleep, eligibility against the load-weighted average
vruntime, RUN_TO_PARITY, DELAY_DEQUEUE; the linux-2.6.32 profile keeps these rules without
DELAY_DEQUEUE, an approximation of its CFS; the kernel runs PREEMPT_NONE so a task in a
syscall is only pre-empted at its next preemption point; a used-up slice is noticed only by
update_curr(), at the scheduler tick every 1/HZ or when a task is enqueued on the CPU) or
``fifo`` (SCHED_FIFO, run to block).
Background spinners and ksoftirqd are SCHED_OTHER (nice 19 and 0).

A wake-up onto the waker's own CPU makes the task runnable at once (the context switch
costs ``schedule`` when it happens); onto another CPU it costs the waker
``ttwu_queue_wakelist`` (plus ``send_call_function_single_ipi`` when the target CPU is idle:
kicking a halted vCPU is what makes cross-CPU wake-ups so expensive in a VM) and reaches the
target after a delay that depends on whether the target CPU is idle
(``wakeup_remote_idle_ns``, IPI + idle exit) or busy (``wakeup_remote_busy_ns``).

One simulated time unit is 1 ns.  No SimPy process exists per message: every command is
one SimPy ``Timeout`` whose callback resumes the context.
"""

from __future__ import annotations

from collections import deque
from heapq import heappush
from typing import Any, Callable, Generator, Iterator

import numpy as np
import simpy
from simpy.core import NORMAL

from lbsim.model.stages import SID, STAGES

__all__ = ["Sim", "CPU", "Task", "WaitQueue", "Sleep", "BH_ENABLE", "PREEMPT", "CTX_TASK", "CTX_SOFTIRQ",
           "CTX_BACKGROUND"]

BH_ENABLE = "bh_enable"
PREEMPT = "preempt"
CTX_TASK, CTX_SOFTIRQ, CTX_BACKGROUND = 0, 1, 2
CONTEXT_NAMES = ("task", "softirq", "background")

# task states
RUNNING, RUNNABLE, SLEEPING, WAKING, DONE = range(5)

NICE_0_WEIGHT = 1024
NICE_19_WEIGHT = 15  # kernel/sched/core.c sched_prio_to_weight[39]

S_SCHEDULE = SID["schedule"]
S_BLOCK = SID["schedule_timeout"]
S_TTWU = SID["try_to_wake_up"]
S_TTWU_REMOTE = SID["ttwu_queue_wakelist"]
S_IPI_IDLE = SID["send_call_function_single_ipi"]
# constant work items (stage ids) of Sim.wake_items
_TTWU_ITEMS = (S_TTWU,)
_TTWU_REMOTE_ITEMS = (S_TTWU_REMOTE,)
_TTWU_REMOTE_IPI_ITEMS = (S_TTWU_REMOTE, S_IPI_IDLE)


class _Fire(simpy.events.Event):
    """The completion of one command on a CPU (a Timeout without its constructor's checks)."""


_new_event = object.__new__


def _push_fire(env: simpy.Environment, when: float, eid: int, callback: Callable[[Any], None],
               value: Any) -> _Fire:
    """The heap entry ``env.timeout`` would make, due at ``when`` with event id ``eid``,
    calling ``callback`` (a Timeout without its constructor's checks and scheduling call)."""
    ev = _new_event(_Fire)
    ev.env = env
    ev.callbacks = [callback]
    ev._value = value
    ev._ok = True
    heappush(env._queue, (when, NORMAL, eid, ev))
    return ev


_INLINE = object()  # CPU.ev of a command completed by the trampoline, not by a heap entry


class LazyTimer:
    """A timer that is re-armed far more often than it expires (TCP's RTO and delayed ACK),
    with the heap traffic of one Timeout per arm cut to about one entry per expiry.

    ``arm(delay, *args)`` stands for ``env.timeout(delay)`` with a callback ``fn(*args)``,
    where ``fn`` does nothing unless its arm is the latest one (a token check): so only the
    latest arm's entry matters.  It is given the key (time, priority, event id) the Timeout
    would have had, taken when armed; while an older arm's entry, due earlier, is on the heap
    it is not pushed yet: when that older entry pops (doing nothing, as its Timeout would),
    the latest arm's entry is pushed with its key.  Heap order is by key alone, so every
    other event pops in the same order and at the same time as with a Timeout per arm."""

    __slots__ = ("env", "fn", "latest", "queued")

    def __init__(self, env: simpy.Environment, fn: Callable[..., None]) -> None:
        self.env = env
        self.fn = fn
        self.latest: tuple[Any, ...] | None = None  # (time, event id, args) of the latest arm
        self.queued: dict[int, float] = {}  # event id -> time of this timer's entries on the heap

    def arm(self, delay: float, *args: Any) -> None:
        env = self.env
        when = env._now + delay
        eid = next(env._eid)
        self.latest = (when, eid, args)
        for t in self.queued.values():  # (min(queued.values()) > when, without the builtin call)
            if t <= when:
                return  # an entry of this timer due no later is on the heap: it pushes this one
        self._push(when, eid)  # nothing of this timer on the heap due before it

    def _push(self, when: float, eid: int) -> None:
        _push_fire(self.env, when, eid, self._popped, eid)
        self.queued[eid] = when

    def _popped(self, ev: Any) -> None:
        eid = ev._value
        del self.queued[eid]
        when, latest_eid, args = self.latest  # type: ignore[misc]
        if eid == latest_eid:
            self.fn(*args)
        elif latest_eid not in self.queued and not any(t <= when for t in self.queued.values()):
            self._push(when, latest_eid)


class Sleep:
    __slots__ = ("until",)

    def __init__(self, until: float) -> None:
        self.until = until


class WaitQueue:
    """A kernel wait queue (``wait_queue_head_t``): tasks sleeping on a condition."""

    __slots__ = ("waiters", "name")

    def __init__(self, name: str = "") -> None:
        self.waiters: list[Task] = []
        self.name = name


class Task:
    """A schedulable entity: a user process or a kernel thread (ksoftirqd/N)."""

    __slots__ = ("name", "cpu", "gen", "state", "work", "vruntime", "deadline", "vlag", "vprot", "delayed", "weight",
                 "rt",
                 "preemptible",
                 "user_mode", "run_start", "enq_time", "kind", "wq", "msg", "on_done",
                 "sleep_start", "blocked_ns", "blocking", "woken")

    def __init__(self, name: str, cpu: "CPU", gen: Iterator[Any] | None, *, rt: bool = False,
                 weight: int = NICE_0_WEIGHT, kind: int = CTX_TASK) -> None:
        self.name = name
        self.cpu = cpu
        self.gen = gen
        self.state = RUNNABLE
        self.work: list[Any] | None = None
        self.vruntime = 0.0
        self.deadline = 0.0  # EEVDF virtual deadline (set when it first becomes runnable)
        self.vlag = 0.0  # lag saved when it went to sleep (update_entity_lag)
        self.vprot = 0.0  # RUN_TO_PARITY: protected from wake-up pre-emption below this vruntime
        self.delayed = False  # DELAY_DEQUEUE: asleep but still on the run queue (sched_delayed)
        self.weight = weight
        self.rt = rt
        self.preemptible = True
        self.user_mode = False
        self.run_start = 0.0
        self.enq_time = 0.0
        self.kind = kind
        self.wq: WaitQueue | None = None
        self.msg = -1
        self.on_done: Callable[[Task], None] | None = None
        self.sleep_start = 0.0
        self.blocked_ns = 0.0
        self.blocking = False  # between prepare_to_wait and schedule(): on the wait queue, still running
        self.woken = False  # woken while blocking: the sleep is called off

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<Task {self.name} cpu{self.cpu.idx} state={self.state}>"


class Softirq:
    """The NET_RX softirq context of one CPU (runs above every task)."""

    __slots__ = ("gen", "work", "name", "msg", "kind")

    def __init__(self, cpu_idx: int) -> None:
        self.gen: Generator[Any, None, None] | None = None
        self.work: list[Any] | None = None
        self.name = f"softirq/{cpu_idx}"
        self.msg = -1
        self.kind = CTX_SOFTIRQ


class CPU:
    """One CPU: serialises work; softirq above tasks; a run queue of tasks."""

    # __slots__: the attribute loads/stores of the command loop specialise (LOAD_ATTR_SLOT);
    # with ~40 attributes an instance dict is not shared-key (they went through dict lookups).
    # A new attribute belongs here; "__dict__" keeps one that is not (slower) working.
    __slots__ = ("sim", "env", "idx", "rq", "curr", "prev", "exec", "exec_switch", "ev", "end", "start",
                 "in_dispatch", "need_resched", "min_vruntime", "softirq", "softirq_pending",
                 "softirq_deferred", "softirq_active", "input_pkt_queue", "process_queue", "timer_queue",
                 "rps_ipi_list", "defer_count", "defer_kicked", "_done_cb", "ksoftirqd", "cur_pkt",
                 "processed", "dropped", "time_squeeze", "received_rps", "lo_tx_packets", "lo_tx_bytes",
                 "backlog_max", "busy", "switches", "ksoftirqd_wakeups", "_switch_ns", "napi_scheduled",
                 "ksoftirqd_wq", "next_tick", "__dict__")

    def __init__(self, sim: "Sim", idx: int) -> None:
        self.sim = sim
        self.env = sim.env
        self.idx = idx
        self.rq: list[Task] = []
        self.curr: Task | None = None
        self.prev: Task | None = None
        self.exec: Any = None  # the context whose work is on the CPU now (None: nothing)
        self.exec_switch = False
        self.ev: simpy.events.Timeout | None = None
        self.end = 0.0
        self.start = 0.0
        self.in_dispatch = False
        self.need_resched = False
        # the next scheduler tick (tick_sched_timer): every CPU ticks on the same jiffy grid
        # (skew_tick=0), at a phase drawn per run
        self.next_tick = sim.tick_phase_ns
        self.min_vruntime = 0.0
        # NET_RX state (per-CPU softnet_data)
        self.softirq = Softirq(idx)
        self.softirq_pending = False
        self.softirq_deferred = False  # handed to ksoftirqd after the restart limit
        self.softirq_active = False  # a do_softirq() run is in progress (inline or ksoftirqd)
        self.input_pkt_queue: deque[tuple[Any, ...]] = deque()
        self.process_queue: deque[tuple[Any, ...]] = deque()
        self.timer_queue: deque[tuple[Any, ...]] = deque()
        self.rps_ipi_list: list[CPU] = []
        self.defer_count = 0  # skbs other CPUs queued for this CPU to free (sd->defer_count)
        self.defer_kicked = False  # NET_RX raised by kick_defer_list_purge (sd->defer_ipi_scheduled)
        self._done_cb = self._done
        self.ksoftirqd: Task | None = None
        self.ksoftirqd_wq: WaitQueue | None = None  # set by Net with ksoftirqd
        self.napi_scheduled = False  # the backlog NAPI is on the poll list (Net)
        self._switch_ns = 0.0  # the cost of the context switch in progress (exec_switch)
        self.cur_pkt: tuple[Any, ...] | None = None  # the packet a softirq is processing
        # statistics (softnet_stat, lo lstats, busy time)
        self.processed = 0
        self.dropped = 0
        self.time_squeeze = 0
        self.received_rps = 0
        self.lo_tx_packets = 0
        self.lo_tx_bytes = 0
        self.backlog_max = 0
        self.busy = [0.0, 0.0, 0.0]
        self.switches = 0
        self.ksoftirqd_wakeups = 0

    # ------------------------------------------------------------------ state
    def _is_busy_for_wakeup(self) -> bool:
        return not (self.exec is None and self.curr is None)

    # ------------------------------------------------------------------ execution
    def _start(self, ctx: Any, ns: float) -> None:
        # the hot path: the same heap entry env.timeout(ns) would make, without its overhead
        self.exec = ctx
        env = self.env
        self.start = now = env._now
        self.end = end = now + ns
        sim = self.sim
        if sim._tramp and sim._pending is None:
            # nothing else can happen before this command ends? then the trampoline in
            # Sim.run_inline completes it without a heap entry (checked again there)
            q = env._queue
            if not q or q[0][0] > end:
                marker = _INLINE
                self.ev = marker
                sim._pending = self
                return
        self._materialize()

    def _materialize(self) -> None:
        """Turn a pending inline completion into the heap entry it stands for."""
        env = self.env
        self.ev = _push_fire(env, self.end, next(env._eid), self._done_cb, None)

    def _done(self, ev: Any) -> None:
        sim = self.sim
        if not sim._tramp:
            # entered from SimPy: run this completion, then every inline one it leads to
            sim._tramp = True
            try:
                self._done_one(ev)
                sim.run_inline()
            finally:
                sim._tramp = False
            return
        self._done_one(ev)

    def _done_one(self, ev: Any) -> None:
        """Complete the command on this CPU, then start what runs next.  While the command
        started here is again the next thing to happen, complete it too (what Sim.run_inline
        would do next), without returning."""
        if ev is not self.ev:
            return  # a pre-empted command's stale completion
        sim = self.sim
        env = self.env
        softirq = self.softirq
        count = sim.stage_count
        busy = sim.stage_busy
        plain = not sim.trace_on
        cpu_busy = self.busy
        q = env._queue
        while True:
            ctx = self.exec
            self.exec = None
            self.ev = None
            self.in_dispatch = True
            work = None
            advance = True  # it completed a command of its own: resume it first
            if self.exec_switch:
                self.exec_switch = False
                self.prev = ctx
                ns = self._switch_ns
                if plain:  # Sim.account, inlined
                    count[S_SCHEDULE] += 1
                    busy[S_SCHEDULE] += ns
                    cpu_busy[CTX_TASK] += ns
                else:
                    sim.account(self, ctx, S_SCHEDULE, self.start, ns, CTX_TASK)
                w = ctx.weight  # the switch-in runs as the task (ns * NICE_0_WEIGHT / w: exactly ns at nice 0)
                ctx.vruntime += ns if w == NICE_0_WEIGHT else ns * NICE_0_WEIGHT / w
                advance = False  # switched in: _dispatch's checks come first
            else:
                work = ctx.work
                ctx.work = None
                kind = ctx.kind
                if ctx is self.ksoftirqd and self.softirq_active and kind != CTX_SOFTIRQ:
                    kind = CTX_SOFTIRQ
                if plain and len(work) == 2:
                    # Sim.account_work, inlined (the common case: accounted in one piece, no
                    # trace).  work[0] is the sum of the stages, added up in their order by
                    # Sim.work, or the length of a command without stages (the busy spinner's
                    # user-space tick).
                    for sid, ns in work[1]:
                        count[sid] += 1
                        busy[sid] += ns
                    cpu_busy[kind] += work[0]
                else:
                    sim.account_work(self, ctx, work, kind)
                work = None
                if ctx.kind != CTX_SOFTIRQ:
                    # d * NICE_0_WEIGHT / weight; at weight NICE_0_WEIGHT (a power of two) exactly d
                    d = env._now - self.start
                    w = ctx.weight
                    ctx.vruntime += d if w == NICE_0_WEIGHT else d * NICE_0_WEIGHT / w
                    if ctx.blocking:
                        ctx.blocking = False
                        if not ctx.woken:
                            self._block(ctx, None)  # already on its wait queue
                            ctx = None
            if ctx is not None:
                # _advance(ctx) and what _dispatch would do next, inlined for the common cases:
                # the same context keeps the CPU, or it passes from a task to the softirq it
                # raised (BH_ENABLE) and back when that is done
                gen = ctx.gen
                while True:
                    if advance:
                        try:
                            cmd = next(gen)
                        except StopIteration:
                            self._finished(ctx)
                            if ctx is not softirq:
                                break
                            cmd = None  # the softirq is done: _dispatch looks again
                        if type(cmd) is list:
                            ctx.work = cmd
                            if ctx is softirq:
                                work = cmd  # the softirq keeps the CPU
                                break
                            if ctx.kind != CTX_SOFTIRQ:
                                ctx.preemptible = ctx.user_mode = ctx.kind == CTX_BACKGROUND
                        elif cmd is None:
                            pass
                        elif (cmd is PREEMPT or cmd is BH_ENABLE) and ctx is not softirq:
                            ctx.work = None
                            if cmd is PREEMPT:
                                ctx.preemptible = True
                        else:
                            self._command(ctx, cmd)
                    advance = True
                    # _dispatch: 1. the softirq runs above tasks (unless handed to ksoftirqd)
                    if softirq.gen is not None or (
                            self.softirq_pending and not self.softirq_deferred and not self.softirq_active):
                        if softirq.gen is None:
                            self.softirq_active = True
                            softirq.gen = sim.net.do_softirq(self, softirq)
                        ctx = softirq
                        gen = ctx.gen
                        work = ctx.work
                        if work is not None:
                            break
                        continue
                    # 2. the current task goes on, unless it gives way at a preemption point
                    t = self.curr
                    if t is None:
                        break
                    if t is not ctx:
                        ctx = t
                        gen = t.gen
                    if t.preemptible and self.rq and (
                            self.need_resched or (not t.rt and env._now >= self.next_tick)
                    ) and self._should_yield(t):  # (its quick "no" answers, tested here first)
                        self._put_prev(t)
                        break
                    work = t.work
                    if work is not None:
                        break
            self.in_dispatch = False
            if work is not None:
                # _start(ctx, work[0]), inlined (sim._tramp is always set here: _done_one runs
                # only from CPU._done and Sim.run_inline, both inside the trampoline)
                self.exec = ctx
                self.start = now = env._now
                self.end = end = now + work[0]
                if sim._pending is None:
                    if not q or q[0][0] > end:
                        env._now = end  # it is next: Sim.run_inline's step, taken here
                        continue
                self._materialize()
                return
            self._dispatch()
            if sim._pending is self and self.ev is _INLINE:
                # _dispatch started a command that is next: Sim.run_inline's step, taken here
                sim._pending = None
                env._now = self.end
                continue
            return

    def _advance(self, ctx: Any) -> None:
        """Resume a context's generator until it yields its next command."""
        try:
            cmd = next(ctx.gen)
        except StopIteration:
            self._finished(ctx)
            return
        if type(cmd) is list:
            ctx.work = cmd
            if ctx.kind != CTX_SOFTIRQ:
                ctx.preemptible = ctx.user_mode = ctx.kind == CTX_BACKGROUND
            return
        self._command(ctx, cmd)

    def _finished(self, ctx: Any) -> None:
        if ctx is self.softirq:
            self._softirq_finished()
        else:
            self._task_exit(ctx)

    def _command(self, ctx: Any, cmd: Any) -> None:
        """Act on a command other than work."""
        if cmd is BH_ENABLE:
            ctx.work = None
            return
        if cmd is PREEMPT:
            ctx.work = None
            ctx.preemptible = True
            return
        if ctx is self.softirq:
            raise RuntimeError(f"softirq yielded {cmd!r}")
        if type(cmd) is WaitQueue:
            # prepare_to_wait: on the queue from now (no lost wake-up), then the sleep itself
            # costs schedule_timeout, after which the task blocks unless it was woken meanwhile
            ctx.wq = cmd
            cmd.waiters.append(ctx)
            ctx.blocking = True
            ctx.woken = False
            ns = self.sim.cost(S_BLOCK)
            ctx.work = [ns, [(S_BLOCK, ns)]]
            ctx.preemptible = ctx.user_mode = False
            return
        if type(cmd) is Sleep:
            ctx.wq = None
            self._block(ctx, None)
            delay = max(0.0, cmd.until - self.env._now)
            ev = self.env.timeout(delay)
            ev.callbacks.append(lambda _ev, t=ctx: self.sim.wake(t, None))
            return
        raise RuntimeError(f"{ctx.name} yielded {cmd!r}")

    def _block(self, t: Task, wq: WaitQueue | None) -> None:
        if not t.rt and self.curr is t:
            if self.rq:
                self._dequeue_sleeper(t)
            else:
                t.vlag = 0.0  # dequeue_entity() of the only task: V is its own vruntime
        t.state = SLEEPING
        t.work = None
        if wq is not None:
            t.wq = wq
            wq.waiters.append(t)
        t.sleep_start = self.env._now
        if self.curr is t:
            self.curr = None

    def _task_exit(self, t: Task) -> None:
        t.state = DONE
        t.work = None
        if self.curr is t:
            self.curr = None
        if t.on_done is not None:
            t.on_done(t)

    # ------------------------------------------------------------------ dispatch
    def kick(self) -> None:
        """Something became runnable here; start it if the CPU is free."""
        if self.exec is None and not self.in_dispatch:
            self._dispatch()

    def _dispatch(self) -> None:
        sim = self.sim
        while self.exec is None:
            # 1. softirq (NET_RX, TIMER) runs above tasks unless handed to ksoftirqd
            if self.softirq.gen is not None or (
                    self.softirq_pending and not self.softirq_deferred and not self.softirq_active):
                s = self.softirq
                if s.gen is None:
                    self.softirq_active = True
                    s.gen = sim.net.do_softirq(self, s)
                if s.work is None:
                    self.in_dispatch = True
                    self._advance(s)
                    self.in_dispatch = False
                    continue
                self._start(s, s.work[0])
                return
            t = self.curr
            if t is not None and t.preemptible and self.rq and self._should_yield(t):
                self._put_prev(t)
                t = None
            if t is None:
                t = self._pick() if self.rq else None
                if t is None:
                    self.prev = None  # switched to the idle task: the next task costs a switch
                    return
                self.curr = t
                t.state = RUNNING
                t.run_start = self.env._now
                sim.runq_wait(self, t)
                if t is not self.prev:
                    self.switches += 1
                    ns = sim.cost_schedule()
                    self._switch_ns = ns
                    self.exec_switch = True
                    self._start(t, ns)
                    return
            if t.work is None:
                self.in_dispatch = True
                self._advance(t)
                self.in_dispatch = False
                continue
            self._start(t, t.work[0])
            return

    def _should_yield(self, t: Task) -> bool:
        """At a preemption point: give way on need_resched, or (fair) when a scheduler tick
        has come since the last look and found the task past its virtual deadline.

        The kernel notices that a running task's slice is used up only in update_curr():
        at the tick (task_tick_fair, every 1/HZ), or when something is enqueued on its
        CPU (see enqueue_task); nothing else interrupts a task that makes syscalls without
        waking anyone, so it runs on to the first tick after its deadline.
        update_deadline() then gives it a new deadline and reschedules when another task is
        runnable (pick_eevdf may pick it again).  A tick that passed while nothing else was
        runnable is looked at here, at the next preemption point, with the vruntime of now
        (the difference is at most one syscall's run)."""
        if self.need_resched:
            self.need_resched = False
            return True
        if t.rt:
            return False
        now = self.env._now
        nt = self.next_tick
        if now < nt:
            return False
        tick = self.sim.tick_ns
        self.next_tick = nt + (int((now - nt) // tick) + 1) * tick
        if t.vruntime < t.deadline:
            return False
        t.deadline = t.vruntime + self.sim.sched_slice_ns * NICE_0_WEIGHT / t.weight
        return bool(self.rq)

    def _put_prev(self, t: Task) -> None:
        t.state = RUNNABLE
        t.enq_time = self.env._now
        self.rq.append(t)
        self.curr = None

    def _pick(self) -> Task | None:
        """pick_next_task: an RT task first, else pick_eevdf(); a sleeper whose dequeue was
        delayed is dequeued for good when it comes up (None: nothing left to run)."""
        rq = self.rq
        while rq:
            n = len(rq)
            if n == 1:
                t = rq.pop()  # the only runnable task
                avg = t.vruntime  # (alone: V is its own vruntime)
            elif n == 2 and not (rq[0].rt or rq[1].rt):
                # pick_eevdf() of two (the common case): the average lies between them, so the
                # one with the lower vruntime is the only eligible one (both when equal: the
                # earlier deadline)
                a, b = rq
                i = 0 if a.vruntime < b.vruntime or (a.vruntime == b.vruntime and a.deadline <= b.deadline) else 1
                t = rq[i]
                avg = self._avg_load()[0] if t.delayed else 0.0  # V with it still queued
                del rq[i]
            else:
                i, avg = self._pick_eevdf()
                t = rq.pop(i)
            if not t.delayed:
                if t is not self.prev:
                    # set_next_entity() -> set_protect_slice(): equal slices, protected to its
                    # deadline.  A task picked again right after it was put back keeps its old
                    # protection (put_prev_set_next_task() does nothing when next == prev)
                    t.vprot = t.deadline
                return t
            # dequeue_entities(DEQUEUE_DELAYED): update_entity_lag, then DELAY_ZERO clips a
            # positive lag to 0
            self._set_lag(t, avg - t.vruntime)
            if t.vlag > 0.0:
                t.vlag = 0.0
            t.delayed = False
        return None

    def _pick_eevdf(self) -> tuple[int, float]:
        """The index of the task to run next (an RT task first, else pick_eevdf(): of the
        eligible tasks, vruntime <= the load-weighted average, the one with the earliest
        virtual deadline, the queue order breaking ties), and that average (0.0 for an RT
        pick)."""
        rq = self.rq
        for i, t in enumerate(rq):
            if t.rt:
                return i, 0.0
        avg = self._avg_load()[0]
        best_i = -1
        best_d = 0.0
        for i, t in enumerate(rq):
            if t.vruntime <= avg and (best_i < 0 or t.deadline < best_d):
                best_i = i
                best_d = t.deadline
        if best_i < 0:  # (rounding: nobody at or below the average) the least vruntime
            best_i = min(range(len(rq)), key=lambda i: rq[i].vruntime)
        return best_i, avg

    # ------------------------------------------------------------------ wake-ups
    def enqueue_task(self, t: Task) -> None:
        """Make ``t`` runnable here (the end of try_to_wake_up)."""
        now = self.env._now
        t.state = RUNNABLE
        t.enq_time = now
        t.blocked_ns += now - t.sleep_start
        rq = self.rq
        c = self.curr
        cv = None  # the current fair task's vruntime (_curr_vruntime(c), inlined), if there is one
        if c is not None and not c.rt and c.state == RUNNING:
            cv = c.vruntime
            if self.exec is c and not self.exec_switch:
                cv += (self.env._now - self.start) * NICE_0_WEIGHT / c.weight
            if cv >= c.deadline:
                # enqueue_entity() -> update_curr() -> update_deadline(): past its deadline, the
                # current task gets a new one and is rescheduled (there is another task now)
                c.deadline = cv + self.sim.sched_slice_ns * NICE_0_WEIGHT / c.weight
                self.need_resched = True
        if t.delayed:
            # requeue_delayed_entity(): still queued; with DELAY_ZERO a task whose lag has
            # turned positive meanwhile is placed again with lag 0, else it keeps its vruntime
            t.delayed = False
            if len(rq) == 1 and cv is not None:
                # it and the current task: V > its vruntime when the current one's is larger;
                # placed with lag 0 next to the current task alone, it lands on its vruntime
                if cv > t.vruntime:
                    t.vlag = 0.0
                    t.vruntime = cv
                    t.deadline = cv + self.sim.sched_slice_ns * NICE_0_WEIGHT / t.weight
            elif self._avg_load()[0] > t.vruntime:
                rq.remove(t)
                t.vlag = 0.0
                self._place_entity(t)
                rq.append(t)
        elif t.rt:
            rq.append(t)
        else:
            if not rq and cv is not None:
                # place_entity() next to the current task alone: V is its vruntime
                w = c.weight
                t.vruntime = cv - t.vlag * (w + t.weight) / w
                t.deadline = t.vruntime + self.sim.sched_slice_ns * NICE_0_WEIGHT / t.weight
            else:
                self._place_entity(t)
            rq.append(t)
        if self.exec is None and not self.in_dispatch and self.curr is None:
            self._dispatch()
            return
        c = self.curr
        if c is None or c is t:
            return
        if self._wakeup_preempts(t, c):
            self.need_resched = True
            if c.user_mode and self.exec is c and not self.exec_switch:
                self._preempt_running_task(c)

    def _curr_vruntime(self, c: Task) -> float:
        """update_curr(): the current task's vruntime including what its running command has
        used so far."""
        if self.exec is c and not self.exec_switch:
            return c.vruntime + (self.env._now - self.start) * NICE_0_WEIGHT / c.weight
        return c.vruntime

    def _avg_load(self) -> tuple[float, int]:
        """avg_vruntime() and the load: the load-weighted average vruntime V of the fair tasks
        queued here and the current one (a task is eligible when its vruntime is at most V),
        and their total weight (V is min_vruntime when there are none)."""
        num = 0.0
        load = 0
        for t in self.rq:
            if not t.rt:
                w = t.weight
                num += t.vruntime * w
                load += w
        c = self.curr
        if c is not None and not c.rt and c.state == RUNNING:
            w = c.weight
            v = c.vruntime  # update_curr(), as _curr_vruntime
            if self.exec is c and not self.exec_switch:
                v += (self.env._now - self.start) * NICE_0_WEIGHT / w
            num += v * w
            load += w
        return (num / load if load else self.min_vruntime), load

    def _place_entity(self, t: Task) -> None:
        """place_entity() on a wake-up (PLACE_LAG): the task comes back at the average
        vruntime less the lag it had when it went to sleep, that lag inflated by
        (load + w) / load so that adding it leaves the average where the lag says; its
        deadline is a slice (at its weight) later.  On an otherwise empty queue the lag is
        dropped."""
        avg, load = self._avg_load()
        if load:
            t.vruntime = avg - t.vlag * (load + t.weight) / load
        else:
            t.vruntime = self._min_vruntime()
        t.deadline = t.vruntime + self.sim.sched_slice_ns * NICE_0_WEIGHT / t.weight

    def _set_lag(self, t: Task, lag: float) -> None:
        """update_entity_lag(): vlag = V - v when the task leaves the run queue, clamped to
        +-max(2 slices, TICK_NSEC) of CPU at its weight."""
        limit = self.sim.lag_limit_ns * NICE_0_WEIGHT / t.weight
        t.vlag = limit if lag > limit else (-limit if lag < -limit else lag)

    def _dequeue_sleeper(self, t: Task) -> None:
        """dequeue_entity(DEQUEUE_SLEEP): an eligible task leaves with its lag saved; with
        DELAY_DEQUEUE (6.12+) one that is not eligible (it has had more than its share)
        stays queued, competing, until pick_eevdf() comes to it or it is woken."""
        rq = self.rq
        if not rq:
            t.vlag = 0.0  # alone: V is its own vruntime
            return
        delay = self.sim.kernel.sched_delay_dequeue
        if len(rq) == 1 and not rq[0].rt:
            # it and one other: not eligible when its vruntime is above the other's
            x = rq[0]
            if delay and t.vruntime > x.vruntime:
                t.delayed = True
                rq.append(t)
                return
            xw, tw = x.weight, t.weight
            avg = (x.vruntime * xw + t.vruntime * tw) / (xw + tw)
        else:
            avg = self._avg_load()[0]
            if delay and t.vruntime > avg:
                t.delayed = True
                rq.append(t)
                return
        self._set_lag(t, avg - t.vruntime)

    def _wakeup_preempts(self, w: Task, c: Task) -> bool:
        """check_preempt_wakeup_fair (EEVDF): pre-empt when pick_eevdf() would now pick the
        woken task: the current task keeps the CPU while it is eligible and inside its
        RUN_TO_PARITY protection; otherwise the eligible task with the earliest virtual
        deadline wins (the current one only if it is eligible)."""
        if c.rt:
            return False
        if w.rt:
            return True
        cv = self._curr_vruntime(c)
        rq = self.rq
        if len(rq) == 1:
            # the woken task and the current one: the average lies between their vruntimes,
            # so each is eligible when its vruntime is at most the other's
            wv = w.vruntime
            if cv <= wv:
                if cv < c.vprot or wv > cv:
                    return False  # protected, or the woken task is not eligible
                return not c.deadline < w.deadline
            return True  # the current task is not eligible; the woken one is
        avg = self._avg_load()[0]
        curr_eligible = cv <= avg
        if curr_eligible and cv < c.vprot:
            return False
        best = None
        for t in self.rq:
            if not t.rt and t.vruntime <= avg and (best is None or t.deadline < best.deadline):
                best = t
        if best is not w:
            return False
        return not (curr_eligible and c.deadline < w.deadline)

    def _min_vruntime(self) -> float:
        m = None  # min() of the vruntimes of the fair tasks here, without building the list
        for t in self.rq:
            if not t.rt:
                v = t.vruntime
                if m is None or v < m:
                    m = v
        c = self.curr
        if c is not None and not c.rt:
            v = c.vruntime
            if m is None or v < m:
                m = v
        if m is not None and m > self.min_vruntime:
            self.min_vruntime = m
        return self.min_vruntime

    def _preempt_running_task(self, c: Task) -> None:
        """Interrupt the running task's command (IRQ exit); it keeps the remainder."""
        now = self.env._now
        done = now - self.start
        c.work[0] = self.end - now
        c.vruntime += done * NICE_0_WEIGHT / c.weight
        self.sim.account_partial(self, c, done)
        self.exec = None
        self.ev = None
        if not self.in_dispatch:
            self._dispatch()

    def raise_softirq_irq(self) -> None:
        """NET_RX raised from an IPI: runs at irq exit, pre-empting a running task."""
        self.softirq_pending = True
        if self.exec is None:
            self.kick()
            return
        c = self.exec
        if c is self.softirq or self.exec_switch or c is self.ksoftirqd:
            return
        if self.softirq_deferred:
            return
        self._preempt_running_task(c)

    def _softirq_finished(self) -> None:
        self.softirq.gen = None
        self.softirq.work = None
        self.softirq_active = False


class Sim:
    """One simulation: the SimPy environment, CPUs, random costs, statistics, trace."""

    def __init__(self, *, cpus: int, costs: Any, kernel: Any, seed: int, deterministic: bool,
                 trace: bool, policy: str) -> None:
        self.env = simpy.Environment()
        self.kernel = kernel
        self.costs = costs
        self.deterministic = deterministic
        self.policy = policy
        self.seedseq = np.random.SeedSequence(seed)
        # one random stream per stage and per delay (SeedSequence.spawn), drawn in blocks
        children = self.seedseq.spawn(len(STAGES) + 6)
        self._fixed = [costs.stages[s].fixed_ns for s in STAGES]
        self._per_byte = [costs.stages[s].per_byte_ns for s in STAGES]
        # the cost of an item without bytes, computed as cost() computes it
        self._fixed0 = [f + b * 0 for f, b in zip(self._fixed, self._per_byte)]
        self._per_byte_cold = [costs.stages[s].per_byte_cold_ns if costs.stages[s].per_byte_cold_ns is not None
                               else costs.stages[s].per_byte_ns for s in STAGES]
        self.cache_bytes = costs.cache_bytes
        self._cv = [0.0 if deterministic else costs.stages[s].cv for s in STAGES]
        self._rngs = [np.random.default_rng(c) for c in children[:len(STAGES) + 4]]
        self._buf: list[list[float]] = [[] for _ in range(len(STAGES) + 4)]
        self._draw = [b.pop for b in self._buf]  # the next multiplier of each stream (IndexError: refill)
        self._delay_idle = costs.delays["wakeup_remote_idle_ns"]
        self._delay_busy = costs.delays["wakeup_remote_busy_ns"]
        self.arrival_rng = np.random.default_rng(children[len(STAGES) + 3])
        # kernel/sched/fair.c: sysctl_sched_base_slice = 750000 (EEVDF, 6.6+), scaled at boot by
        # SCHED_TUNABLESCALING_LOG: x (1 + ilog2(min(ncpus, 8)))
        factor = 1 + int(np.log2(min(cpus, 8)))
        self.sched_slice_ns = float(kernel.sched_base_slice_ns * factor)
        # update_entity_lag(): a sleeper keeps at most max(2 * slice, TICK_NSEC) of lag
        self.lag_limit_ns = max(2 * self.sched_slice_ns, 1e9 / kernel.hz)
        # the scheduler tick: TICK_NSEC = 1e9 / HZ; its phase against the start of the run is
        # drawn from the run's seed (the jiffy grid of a real machine is not tied to it)
        self.tick_ns = 1e9 / kernel.hz
        self.tick_phase_ns = float(np.random.default_rng(children[len(STAGES) + 4]).uniform(0.0, self.tick_ns))
        # congestion control's own draws (BBR's first gain-cycle phase)
        self.cc_rng = np.random.default_rng(children[len(STAGES) + 5])
        # the inline trampoline (see CPU._start / Sim.run_inline)
        self._tramp = False
        self._pending: CPU | None = None
        self.cpus = [CPU(self, i) for i in range(cpus)]
        # statistics
        n = len(STAGES)
        self.stage_count = [0] * n
        self.stage_busy = [0.0] * n
        self.stage_wait = [0.0] * n
        self.trace_on = trace
        self.trace: list[tuple[int, str, int, str, float, float, str]] = []
        self.net: Any = None  # set by the host wiring (lbsim.model.netdev.Net)

    def run_inline(self) -> None:
        """Complete commands without the event heap while each is the next thing to happen.

        Exact: a command is completed here only if no heap entry is due at or before its end,
        which is when SimPy would have popped its Timeout next anyway; otherwise it is put on
        the heap as the Timeout it stands for."""
        env = self.env
        q = env._queue
        while self._pending is not None:
            cpu = self._pending
            self._pending = None
            if cpu.ev is not _INLINE:
                continue  # pre-empted meanwhile
            end = cpu.end
            if q and q[0][0] <= end:
                cpu._materialize()
                return
            env._now = end
            cpu._done_one(_INLINE)

    # ------------------------------------------------------------------ random costs
    def _mult(self, i: int, cv: float) -> float:
        buf = self._buf[i]
        if not buf:
            sigma2 = np.log1p(cv * cv)
            draws = self._rngs[i].lognormal(-sigma2 / 2, np.sqrt(sigma2), 1024)
            buf.extend(draws.tolist()[::-1])
        return buf.pop()

    def _refill(self, sid: int) -> float:
        """The next multiplier of stage ``sid`` when its buffer is empty; a stage without
        spread (cv 0) gets multipliers of exactly 1.0 (``ns * 1.0 == ns``) and no draws."""
        cv = self._cv[sid]
        if cv > 0.0:
            return self._mult(sid, cv)
        buf = self._buf[sid]
        buf.extend([1.0] * 1024)
        return buf.pop()

    def cost(self, sid: int, nbytes: int = 0, cold: bool = False) -> float:
        if not nbytes and not cold:
            # fixed0 * multiplier: the same value as below (a cv-0 stage draws exact 1.0s)
            try:
                return self._fixed0[sid] * self._draw[sid]()
            except IndexError:
                return self._fixed0[sid] * self._refill(sid)
        ns = self._fixed[sid] + (self._per_byte_cold[sid] if cold else self._per_byte[sid]) * nbytes
        cv = self._cv[sid]
        if cv > 0.0:
            ns *= self._mult(sid, cv)
        return ns

    def work(self, *items: int | tuple[int, ...]) -> list[Any]:
        """A command: run the given items back to back; an item is a stage id (per-packet
        work, no bytes) or a (stage, bytes[, cold]) tuple."""
        return self.work_of(items)

    def work_of(self, items: tuple[int | tuple[int, ...], ...]) -> list[Any]:
        """``work(*items)`` for a tuple of items.  The model's commands are built here (and in
        work_of_ids): a plain call, which the 3.11 interpreter specialises and runs without a
        C-level recursion, unlike a call of a ``*args`` function.  (cost(), inlined: this runs
        for every command.)"""
        fixed0 = self._fixed0
        draw = self._draw
        stages = []
        total = 0.0
        for it in items:
            if type(it) is int:
                try:
                    ns = fixed0[it] * draw[it]()
                except IndexError:
                    ns = fixed0[it] * self._refill(it)
                stages.append((it, ns))
            else:
                sid = it[0]
                ns = self._fixed[sid] + (
                    self._per_byte_cold[sid] if (len(it) > 2 and it[2]) else self._per_byte[sid]) * it[1]
                try:
                    ns *= draw[sid]()  # (exact 1.0 for a cv-0 stage)
                except IndexError:
                    ns *= self._refill(sid)
                stages.append((sid, ns))
            total += ns
        return [total, stages]

    def work_ids(self, *sids: int) -> list[Any]:
        """``work()`` for items that are all stage ids (per-packet work, no bytes): the same
        command, without testing each item's type."""
        return self.work_of_ids(sids)

    def work_of_ids(self, sids: tuple[int, ...]) -> list[Any]:
        """``work_ids(*sids)`` for a tuple of stage ids (a plain call, see work_of)."""
        fixed0 = self._fixed0
        draw = self._draw
        stages = []
        total = 0.0
        for sid in sids:
            try:
                ns = fixed0[sid] * draw[sid]()
            except IndexError:
                ns = fixed0[sid] * self._refill(sid)
            stages.append((sid, ns))
            total += ns
        return [total, stages]

    def cost_schedule(self) -> float:
        return self.cost(S_SCHEDULE)

    def wakeup_delay(self, target: CPU) -> float:
        d = self._delay_busy if target._is_busy_for_wakeup() else self._delay_idle
        slot = len(STAGES) + (1 if d is self._delay_busy else 0)
        ns = d.fixed_ns
        if d.cv > 0 and not self.deterministic:
            ns *= self._mult(slot, d.cv)
        return ns

    def touch(self, sock: Any, cpu: CPU) -> tuple[int, ...]:
        """``cpu`` touches ``sock``: a cache-line transfer if another CPU touched it last
        (work items: stage ids)."""
        last = sock.last_cpu
        sock.last_cpu = cpu
        if last is None or last is cpu:
            return ()
        return sock.BOUNCE_ITEMS

    # ------------------------------------------------------------------ wake-ups
    def wake_items(self, waiter: Task | None, cpu: CPU) -> tuple[int, ...]:
        """The waker's stages for waking ``waiter`` from ``cpu`` (none if nobody sleeps;
        work items: stage ids)."""
        if waiter is None:
            return ()
        target = waiter.cpu
        if target is cpu:
            return _TTWU_ITEMS
        if target._is_busy_for_wakeup():
            return _TTWU_REMOTE_ITEMS
        return _TTWU_REMOTE_IPI_ITEMS

    def wake_all(self, wq: WaitQueue, from_cpu: CPU | None) -> int:
        n = 0
        while wq.waiters:
            t = wq.waiters.pop(0)
            if self.wake(t, from_cpu):
                n += 1
        return n

    def wake(self, t: Task, from_cpu: CPU | None) -> bool:
        """try_to_wake_up(): the waker's CPU cost is charged by the caller's stages."""
        if t.blocking and not t.woken:
            # woken between prepare_to_wait and schedule(): it never goes to sleep
            if t.wq is not None and t in t.wq.waiters:
                t.wq.waiters.remove(t)
            t.wq = None
            t.woken = True
            return True
        if t.state != SLEEPING:
            return False
        if t.wq is not None:
            waiters = t.wq.waiters
            if t in waiters:  # (wake_all has taken it off already: no ValueError to raise)
                waiters.remove(t)
            t.wq = None
        target = t.cpu
        if from_cpu is None or from_cpu is target:
            target.enqueue_task(t)
            return True
        t.state = WAKING
        ev = self.env.timeout(self.wakeup_delay(target))
        ev.callbacks.append(lambda _ev: target.enqueue_task(t))
        return True

    # ------------------------------------------------------------------ statistics
    def account_work(self, cpu: CPU, ctx: Any, work: list[Any], kind: int) -> None:
        count = self.stage_count
        busy = self.stage_busy
        if not work[1]:
            # no stages (the busy spinner's tick): what ran since the last pre-emption, which
            # left the remainder in work[0] (the earlier pieces were added by account_partial)
            cpu.busy[kind] += work[0]
            return
        total = 0.0
        for sid, ns in work[1]:
            count[sid] += 1
            busy[sid] += ns
            total += ns
        if len(work) > 2:  # partially accounted before a pre-emption
            total -= work[2]
        cpu.busy[kind] += total
        if self.trace_on:
            # a command pre-empted part-way is traced as if it ran in one piece, ending now
            self._trace_stages(cpu, ctx, work[1], self.env._now - sum(ns for _, ns in work[1]), kind)

    def account_partial(self, cpu: CPU, ctx: Any, done: float) -> None:
        work = ctx.work
        kind = ctx.kind
        cpu.busy[kind] += done
        if len(work) > 2:
            work[2] += done
        else:
            work.append(done)

    def runq_wait(self, cpu: CPU, t: Task) -> None:
        self.stage_wait[S_SCHEDULE] += self.env._now - t.enq_time

    def account(self, cpu: CPU, ctx: Any, sid: int, start: float, ns: float, kind: int) -> None:
        self.stage_count[sid] += 1
        self.stage_busy[sid] += ns
        cpu.busy[kind] += ns
        if self.trace_on:
            self.trace.append((ctx.msg, STAGES[sid], cpu.idx, ctx.name, start, start + ns, CONTEXT_NAMES[kind]))

    def _trace_stages(self, cpu: CPU, ctx: Any, stages: list[tuple[int, float]], t: float, kind: int) -> None:
        rec = self.trace.append
        name = ctx.name
        msg = ctx.msg
        kname = CONTEXT_NAMES[kind]
        for sid, ns in stages:
            rec((msg, STAGES[sid], cpu.idx, name, t, t + ns, kname))
            t += ns
