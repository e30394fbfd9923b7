"""One CPU: serialises the work of its contexts, softirq above tasks; the per-command hot path.

Models the CPU side of kernel/sched/core.c (``__schedule``: the context switch,
``schedule()`` from a blocking task, ``preempt_schedule`` at a preemption point),
kernel/softirq.c (``local_bh_enable`` -> ``do_softirq``, ``irq_exit`` -> ``invoke_softirq``
for a softirq raised by an IPI, handing over to ``ksoftirqd``) and the scheduler tick's
look at a used-up slice (``scheduler_tick``), and ``sched_ttwu_pending`` (the wake list an
IPI hands to an idle CPU).  The fair-class policy is the mixin
lbsim.model.sched_fair.FairRunQueue; contexts and commands are in lbsim.model.task.

Execution model
---------------
Kernel and user work runs in *contexts*: tasks (sender, receiver, ksoftirqd/N, a
background spinner) and each CPU's NET_RX softirq, generators yielding commands (see
lbsim.model.task).  Each CPU serialises its work (one command at a time).  Softirq work
pre-empts task work: a softirq raised while a task runs executes at the next BH_ENABLE of
that task (raised by the task itself) or immediately (raised by an IPI, e.g. RPS).  Tasks
are scheduled by policy: ``fair`` (EEVDF, see sched_fair.py) or ``fifo`` (SCHED_FIFO, run
to block).  Background spinners and ksoftirqd are SCHED_OTHER (nice 19 and 0).

Each command ends with one heap entry on SimPy's queue (lbsim.model.timers.push_fire) whose
callback, ``CPU._done``, completes it and starts the next; a command that is the next thing
to happen anyway is completed without one (the trampoline: ``Sim.run_inline``).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from lbsim.model.sched_fair import FairRunQueue
from lbsim.model.stages import SID
from lbsim.model.task import (
    BH_ENABLE,
    CTX_BACKGROUND,
    CTX_SOFTIRQ,
    CTX_TASK,
    DONE,
    NICE_0_WEIGHT,
    PREEMPT,
    RUNNING,
    SLEEPING,
    Sleep,
    Softirq,
    Task,
    WaitQueue,
)
from lbsim.model.timers import push_fire

if TYPE_CHECKING:
    from lbsim.model.sim import Sim

__all__ = ["CPU", "INLINE"]

S_SCHEDULE = SID["schedule"]
S_BLOCK = SID["schedule_timeout"]

INLINE = object()  # CPU.ev of a command completed by the trampoline, not by a heap entry


class CPU(FairRunQueue):
    """One CPU: serialises work; softirq above tasks; a run queue of tasks."""

    # __slots__: the attribute loads/stores of the command loop specialise (LOAD_ATTR_SLOT);
    # with ~40 attributes an instance dict is not shared-key (they went through dict lookups).
    # A new attribute belongs here; "__dict__" keeps one that is not (slower) working.
    __slots__ = ("sim", "env", "idx", "rq", "curr", "prev", "exec", "exec_switch", "ev", "end", "start",
                 "in_dispatch", "need_resched", "min_vruntime", "softirq", "softirq_pending",
                 "softirq_deferred", "softirq_active", "input_pkt_queue", "process_queue", "timer_queue",
                 "rps_ipi_list", "defer_count", "defer_pages", "defer_kicked", "_done_cb", "ksoftirqd", "cur_pkt",
                 "processed", "dropped", "time_squeeze", "received_rps", "lo_tx_packets", "lo_tx_bytes",
                 "backlog_max", "busy", "switches", "ksoftirqd_wakeups", "_switch_ns", "napi_scheduled",
                 "ksoftirqd_wq", "next_tick", "wake_list", "__dict__")

    def __init__(self, sim: Sim, idx: int) -> None:
        self.sim = sim
        self.env = sim.env
        self.idx = idx
        self.rq: list[Task] = []
        self.curr: Task | None = None
        self.prev: Task | None = None
        self.exec: Any = None  # the context whose work is on the CPU now (None: nothing)
        self.exec_switch = False
        self.ev: object = None  # the command's completion: a heap entry (push_fire), INLINE or None
        self.end = 0.0
        self.start = 0.0
        self.in_dispatch = False
        self.need_resched = False
        # the next scheduler tick (tick_sched_timer): every CPU ticks on the same jiffy grid
        # (skew_tick=0), at a phase drawn per run
        self.next_tick = sim.tick_phase_ns
        # remote wake-ups queued for this idle CPU and not yet activated (the TTWU entries of
        # its call_single_queue): empty, or the tasks one IPI's sched_ttwu_pending will wake
        self.wake_list: list[Task] = []
        self.min_vruntime = 0.0
        # NET_RX state (per-CPU softnet_data)
        self.softirq = Softirq(idx)
        self.softirq_pending = False
        # handed to ksoftirqd after the restart limit, until the running task's next
        # local_bh_enable or an irq exit runs them again (kernel/softirq.c, 6.5+)
        self.softirq_deferred = False
        self.softirq_active = False  # a do_softirq() run is in progress (inline or ksoftirqd)
        self.input_pkt_queue: deque[tuple[Any, ...]] = deque()
        self.process_queue: deque[tuple[Any, ...]] = deque()
        self.timer_queue: deque[tuple[Any, ...]] = deque()
        self.rps_ipi_list: list[CPU] = []
        self.defer_count = 0  # skbs other CPUs queued for this CPU to free (sd->defer_count)
        self.defer_pages = 0  # page-allocator calls of those skbs' kmalloc_large heads (UDP, MTU 9000)
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
                marker = INLINE
                self.ev = marker
                sim._pending = self
                return
        self._materialize()

    def _materialize(self) -> None:
        """Turn a pending inline completion into the heap entry it stands for."""
        env = self.env
        self.ev = push_fire(env, self.end, next(env._eid), self._done_cb, None)

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

    # long on purpose: the per-command hot path; its inlined helpers save a call per command
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
                            elif ctx is not self.ksoftirqd:
                                self.softirq_deferred = False  # local_bh_enable runs them again (6.5+)
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
            if sim._pending is self and self.ev is INLINE:
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
            if ctx is not self.ksoftirqd:
                self.softirq_deferred = False
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

            def wake(_ev: Any, t: Task = ctx) -> None:
                self.sim.wake(t, None)

            ev.callbacks.append(wake)
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

    def ttwu_pending(self) -> None:
        """sched_ttwu_pending (kernel/sched/core.c): the IPI has reached this CPU, which
        activates every task on its wake list at once (in the order they were queued:
        __flush_smp_call_function_queue in kernel/smp.c reverses the llist), and only then
        schedules (the idle task's schedule() picks among them all)."""
        tasks = self.wake_list
        self.wake_list = []
        if len(tasks) == 1:
            self.enqueue_task(tasks[0])
            return
        was = self.in_dispatch
        self.in_dispatch = True  # no dispatch between the activations: they are one batch
        for t in tasks:
            self.enqueue_task(t)
        self.in_dispatch = was
        self.kick()

    def _preempt_running_task(self, c: Task) -> None:
        """Interrupt the running task's command (IRQ exit); it keeps the remainder."""
        now = self.env._now
        done = now - self.start
        c.work[0] = self.end - now  # type: ignore[index]  # a running task has a command
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
        self.softirq_deferred = False  # irq exit: invoke_softirq runs them (6.5+)
        self._preempt_running_task(c)

    def _softirq_finished(self) -> None:
        self.softirq.gen = None
        self.softirq.work = None
        self.softirq_active = False
